"""The seams of the use cases: what they need of a registry client and of a progress reporter.

pipeline/registry/client.py's RegistryClient and pipeline/ui/progress.py's reporters
satisfy these; the release rules are tested with fakes (tests/unit/test_release_rules.py).
The registry functions the use cases hand a client to (registry/copy.py, registry/fanout.py,
registry/image.py) need no more than `RegistryAPI` either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol

from pipeline.model.status import Status

if TYPE_CHECKING:       # for annotations only: the client module pulls in urllib3
    from pipeline.auth.credentials import Credentials
    from pipeline.registry.client import ManifestInfo


class RegistryAPI(Protocol):
    """One registry's distribution API (OCI distribution spec), as the use cases call it."""

    host: str

    @property
    def api_host(self) -> str: ...

    @property
    def registry_key(self) -> str:
        """Two clients with the same key talk to the same registry (blob mounts work)."""

    def head_manifest(self, repository: str, reference: str) -> ManifestInfo | None: ...

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, ManifestInfo]: ...

    def put_manifest(self, repository: str, reference: str, body: bytes,
                     media_type: str | None = None) -> ManifestInfo: ...

    def delete_manifest(self, repository: str, digest: str) -> None: ...

    def head_blob(self, repository: str, digest: str) -> int | None: ...

    def get_blob(self, repository: str, digest: str, size: int | None = None) -> bytes: ...

    def open_blob(self, repository: str, digest: str, size: int | None = None) -> Any: ...

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool: ...

    def upload_blob(self, repository: str, digest: str, size: int,
                    source: bytes | Callable[[], Iterable[bytes]]) -> None: ...

    def list_tags(self, repository: str) -> list[str]: ...

    def catalog(self) -> list[str]: ...

    def close(self) -> None: ...


class ClientFactory(Protocol):
    """Makes the client of one release.yml registry entry (`registry`: its RegistryConfig).

    `retry`: release.yml's retry settings (attempts, max_delay); `on_retry(what, attempt,
    error, wait)` reports a retry; `renew()` returns fresh credentials when the registry
    refuses these (a cloud token that expired)."""

    def __call__(self, registry: Any, credentials: Credentials, *, retry: Any,
                 on_retry: Callable[[str, int, BaseException, float], None],
                 renew: Callable[[], Credentials]) -> RegistryAPI: ...


class Reporter(Protocol):
    """What the user sees while a release runs (all of it goes to stderr)."""

    def start(self, targets) -> None:
        """The pushes to these targets (plan.Target) begin."""

    def stop(self) -> None: ...

    def close(self) -> None:
        """End whatever is open (CI log sections), before an error is printed."""

    def message(self, text: str) -> None: ...

    def build_line(self, line: str) -> None: ...

    def push_started(self, registry: str, ref: str) -> None: ...

    def push_progress(self, registry: str, event) -> None:
        """`event`: an engine.client.PushProgress (layer, status, current, total)."""

    def push_done(self, registry: str, ref: str, status: Status, digest: str | None) -> None: ...

    def retrying(self, registry: str, ref: str, attempt: int, error: str, delay: float) -> None: ...
