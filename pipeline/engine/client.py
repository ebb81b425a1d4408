"""The Docker Engine side: build an image, tag it, push one tag, reading every stream to the end.

docker-py reports build and push failures inside the JSON stream with HTTP 200
and does not raise, so each stream is parsed here and turned into exceptions:
`PushAuthError` (never retried), `PushTransientError` (retried by the caller),
`PushError` (anything else).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from pipeline.engine.socket_api import EngineSocket, EngineSocketError, socket_path
from pipeline.errors import ReleaseError, UsageError
from pipeline.model.platforms import (
    QEMU_HINT,
    from_engine,
    needs_emulation,
    parse_platform,
)
from pipeline.ui import redact

ENGINE_HINT = "start dockerd (or Docker Desktop), or set DOCKER_HOST"
DIGEST_LINE = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: (\d+)")

AUTH_PATTERNS = ("unauthorized", "authentication required", "denied", "no basic auth credentials",
                 "incorrect username or password", "forbidden", "insufficient_scope",
                 "authorization failed", "401", "403")
TRANSIENT_PATTERNS = ("connection refused", "connection reset", "eof", "timeout", "timed out",
                      "i/o timeout", "temporarily unavailable", "too many requests", "toomanyrequests",
                      "502", "503", "504", "500 internal server error", "bad gateway",
                      "service unavailable", "no such host", "broken pipe", "tls handshake",
                      "server misbehaving", "connection was closed", "retrying")


class BuildFailed(ReleaseError):
    pass


class PushError(ReleaseError):
    transient = False           # what registry/retry.py retries


class PushAuthError(PushError):
    pass


class PushTransientError(PushError):
    transient = True


def explain_push_error(message: str) -> str:
    """Add what the daemon's raw text does not say, for the failures users meet."""
    low = message.lower()
    if "405" in low or "method not allowed" in low:
        return (message + " (the registry refuses uploads: read-only/maintenance mode, or a "
                "pull-through mirror, which cannot be pushed to)")
    return message


def classify_push_error(message: str) -> type[PushError]:
    low = message.lower()
    if any(p in low for p in AUTH_PATTERNS):
        return PushAuthError
    if any(p in low for p in TRANSIENT_PATTERNS):
        return PushTransientError
    return PushError


@dataclass(frozen=True)
class PushProgress:
    """One event of a push: a layer's status and bytes, for the live view."""
    layer: str | None
    status: str
    current: int | None = None
    total: int | None = None


def stream_error(chunk: dict) -> str | None:
    detail = chunk.get("errorDetail")
    if isinstance(detail, dict) and detail.get("message"):
        return str(detail["message"])
    if chunk.get("error"):
        return str(chunk["error"])
    return None


class Engine:
    """A thin wrapper over docker-py's low-level API with honest error handling.

    docker-py is imported and connected on first use only: image inspect and export go
    over the local Unix socket when there is one (engine_socket.py), so a release that
    has nothing to build or push never pays for importing it.
    """

    def __init__(self, client=None, timeout: int = 900, env=None):

        self.timeout = timeout
        self._client = client
        self._api = client.api if client is not None else None
        path = socket_path(os.environ if env is None else env) if client is None else None
        self._socket = EngineSocket(path, timeout) if path else None

    @property
    def client(self):
        if getattr(self, "_client", None) is None:
            # lazy: docker-py takes ~0.2 s to import; only engine calls need it
            import docker
            from docker.errors import DockerException
            try:
                client = docker.from_env(timeout=self.timeout)
                client.ping()
            except DockerException as exc:
                raise ReleaseError(
                    f"cannot reach the Docker Engine: {redact.redact(str(exc))}",
                    hint=ENGINE_HINT) from None
            self._client = client
        return self._client

    @client.setter
    def client(self, value) -> None:
        self._client = value

    @property
    def api(self):
        if getattr(self, "_api", None) is None:
            self._api = self.client.api
        return self._api

    @api.setter
    def api(self, value) -> None:
        self._api = value

    def _local(self):
        """The Unix-socket reader, unless this engine was given a client (tests, fakes)."""
        return getattr(self, "_socket", None) if getattr(self, "_client", None) is None else None

    def _read(self, call, *args):
        """A read over the Unix socket; engine errors as ReleaseError."""
        try:
            return call(*args)
        except EngineSocketError as exc:
            raise ReleaseError(redact.redact(str(exc)), hint=ENGINE_HINT) from None

    # -- build ------------------------------------------------------------------------------
    def build(self, *, context: Path, dockerfile: str, tag: str, build_args: dict[str, str],
              target: str | None, labels: dict[str, str], platform: str | None = None,
              on_line: Callable[[str], None] = lambda line: None,
              cache_from: list[str] | None = None, nocache: bool = False) -> str:
        """Build and tag the image; return its id. Raises BuildFailed with the failing step."""
        # lazy: docker-py takes ~0.2 s to import; only engine calls need it
        from docker.errors import APIError

        last_step = None
        image_id = None
        exec_format = False         # a foreign binary ran without QEMU
        extra = {}
        if cache_from:
            extra["cache_from"] = cache_from
        if nocache:
            extra["nocache"] = True
        try:
            stream = self.api.build(path=str(context), dockerfile=dockerfile, tag=tag,
                                    buildargs=build_args or None, target=target, labels=labels,
                                    rm=True, forcerm=True, decode=True, platform=platform, **extra)
            for chunk in stream:
                error = stream_error(chunk)
                if error:
                    where = f" at {last_step}" if last_step else ""
                    hint = None
                    if exec_format or "exec format error" in error.lower():
                        where, hint = self.explain_exec_format(where, platform)
                    raise BuildFailed(f"build failed{where}: {redact.redact(error.strip())}",
                                      hint=hint)
                text = chunk.get("stream")
                if text:
                    if "exec format error" in text.lower():
                        exec_format = True
                    for line in text.splitlines():
                        if line.startswith("Step "):
                            last_step = line.strip()
                        if line.strip():
                            on_line(redact.redact(line))
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("ID"):
                    image_id = aux["ID"]
        except APIError as exc:
            raise BuildFailed(f"build failed: {redact.redact(exc.explanation or str(exc))}") from None
        if image_id is None:
            image_id = self.api.inspect_image(tag)["Id"]
        return image_id

    def explain_exec_format(self, where: str, platform: str | None) -> tuple[str, str | None]:
        """Explain "exec format error": a foreign platform without QEMU, or a wrong binary."""
        native = None
        try:
            native = self.platform()
        except Exception:       # the explanation must not hide the build error
            pass
        wanted = parse_platform(platform) if platform else native
        if wanted is not None and native is not None and needs_emulation(wanted, native):
            return (f"{where} (exec format error: this {native} engine cannot run {wanted} "
                    f"binaries; no QEMU binfmt handler is registered)",
                    QEMU_HINT.format(arch=wanted.architecture, platform=wanted))
        return (f"{where} (exec format error: a program run by this step is not built for "
                f"{wanted or 'the engine'})",
                "check that the base image and the binaries copied in are for that platform")

    # -- the engine itself ------------------------------------------------------------------
    def info(self) -> dict:
        local = self._local()
        return self._read(local.info) if local is not None else self.api.info()

    def version(self) -> dict:
        """The engine's /version answer (ApiVersion, Os, Version...)."""
        # lazy: docker-py takes ~0.2 s to import; only engine calls need it
        from docker.errors import APIError, DockerException
        try:
            return self.api.version()
        except (APIError, DockerException) as exc:
            raise ReleaseError(f"cannot reach the Docker Engine: {redact.redact(str(exc))}",
                               hint=ENGINE_HINT) from None

    def pull(self, name: str, reference: str, auth_config: dict | None,
             platform: str | None = None) -> None:
        """Pull name:tag or name@digest with these credentials (per call, never a stored
        login). A digest creates no tag: nothing the user tagged locally is moved."""
        # lazy: docker-py takes ~0.2 s to import; only engine calls need it
        from docker.errors import APIError
        shown = f"{name}{'@' if reference.startswith('sha256:') else ':'}{reference}"
        try:
            for chunk in self.api.pull(name, tag=reference, auth_config=auth_config,
                                       platform=platform, stream=True, decode=True):
                error = stream_error(chunk)
                if error:
                    raise ReleaseError(f"pull of {shown} failed: {redact.redact(error.strip())}")
        except APIError as exc:
            raise ReleaseError(f"pull of {shown} failed: "
                               f"{redact.redact(exc.explanation or str(exc))}") from None

    def uses_containerd_store(self) -> bool:
        """Images kept in containerd's content store (Engine 29's default): their id is the
        manifest digest, and `docker push` sends the stored compressed layers as they are."""
        status = self.info().get("DriverStatus") or []
        return any(isinstance(pair, (list, tuple)) and len(pair) == 2
                   and "containerd.snapshotter" in str(pair[1]) for pair in status)

    def platform(self):
        """The engine's own platform (platforms.Platform), e.g. linux/amd64."""
        return from_engine(self.info())

    def export(self, ref: str) -> Iterator[bytes]:
        """`docker save REF` as a stream of tar chunks (layers uncompressed, config exact)."""
        local = self._local()
        if local is not None:
            try:
                yield from local.export(ref)
            except EngineSocketError as exc:
                if exc.status == 404:
                    raise UsageError(f"local image {ref} not found") from None
                raise ReleaseError(f"cannot export {ref} from the engine: "
                                   f"{redact.redact(str(exc))}") from None
            return
        # lazy: docker-py takes ~0.2 s to import; only engine calls need it
        from docker.errors import APIError, ImageNotFound
        try:
            yield from self.api.get_image(ref)
        except ImageNotFound:
            raise UsageError(f"local image {ref} not found") from None
        except APIError as exc:
            raise ReleaseError(f"cannot export {ref} from the engine: "
                               f"{redact.redact(exc.explanation or str(exc))}") from None

    # -- local images -----------------------------------------------------------------------
    def image_id(self, ref: str) -> str | None:
        info = self.inspect(ref)
        return info["Id"] if info else None

    def inspect(self, ref: str) -> dict | None:
        local = self._local()
        if local is not None:
            return self._read(local.inspect_image, ref)
        # lazy: docker-py takes ~0.2 s to import; only engine calls need it
        from docker.errors import ImageNotFound
        try:
            return self.api.inspect_image(ref)
        except ImageNotFound:
            return None

    def require_image(self, ref: str) -> str:
        return self.require_inspect(ref)["Id"]

    def require_inspect(self, ref: str) -> dict:
        """The inspect document of a local image that must exist (--no-build)."""
        info = self.inspect(ref)
        if info is None:
            raise UsageError(f"local image {ref} not found",
                             hint="run without --no-build, or build and tag it first")
        return info

    def tag(self, image: str, repository: str, tag: str) -> None:
        self.api.tag(image, repository, tag, force=True)

    def history(self, ref: str) -> list[dict]:
        return self.api.history(ref)

    def remove_if_untagged(self, image_id: str) -> None:
        """Remove an image no tag names any more (an image still tagged or used is kept)."""
        # lazy: docker-py takes ~0.2 s to import; only engine calls need it
        from docker.errors import APIError
        try:
            if not (self.api.inspect_image(image_id).get("RepoTags") or []):
                self.api.remove_image(image_id, noprune=False)
        except APIError:
            pass

    def untag(self, ref: str) -> None:
        # lazy: docker-py takes ~0.2 s to import; only engine calls need it
        from docker.errors import APIError
        try:
            self.api.remove_image(ref, noprune=True)
        except APIError:
            pass

    # -- push -------------------------------------------------------------------------------
    def push(self, repository: str, tag: str, auth_config: dict | None,
             on_progress: Callable[[PushProgress], None] = lambda p: None) -> str:
        """Push repository:tag and return the manifest digest the registry accepted."""
        # lazy: docker-py's HTTP exceptions, only where docker-py is in use; docker-py takes ~0.2 s to import; only engine calls need it
        import requests
        from docker.errors import APIError

        if not tag:
            raise ValueError("an explicit tag is required: an empty tag pushes every local tag")
        digest = None
        try:
            stream = self.api.push(repository, tag=tag, auth_config=auth_config,
                                   stream=True, decode=True)
            for chunk in stream:  # read to the end: closing early cancels the push
                error = stream_error(chunk)
                if error:
                    message = explain_push_error(redact.redact(error.strip()))
                    raise classify_push_error(message)(message)
                status = chunk.get("status") or ""
                match = DIGEST_LINE.search(status)
                if match:
                    digest = match.group(1)
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = aux["Digest"]
                detail = chunk.get("progressDetail") or {}
                on_progress(PushProgress(chunk.get("id"), status, detail.get("current"),
                                         detail.get("total")))
        except APIError as exc:
            message = redact.redact(exc.explanation or str(exc))
            raise classify_push_error(message)(message) from None
        except requests.exceptions.RequestException as exc:
            raise PushTransientError(f"lost the connection to the Docker Engine: "
                                     f"{redact.redact(str(exc))[:200]}") from None
        if digest is None:
            raise PushError(f"push of {repository}:{tag} ended without a digest")
        return digest
