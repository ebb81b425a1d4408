"""A small OCI Distribution API client: manifests, blobs, tags, catalog.

    client = RegistryClient("localhost:5000", creds, ca_file=None, insecure=False)
    info = client.head_manifest("team/app", "1.0")             # ManifestInfo | None
    body, info = client.get_manifest("team/app", "1.0")        # exact bytes, verified digest
    client.put_manifest("team/app", "1.1", body)               # Content-Type = its mediaType
    client.upload_blob("team/app", digest, size, source)       # source: bytes | () -> iterable

Every public operation is retried as a whole on transient failures (retry.py), holds
one of the host's concurrency slots (limits.py) and raises RegistryAPIError
(`.status`, `.auth`, `.transient`) whose message is redacted. Connection, TLS and
authentication details live in transport.py and auth.py, HTTP itself in session.py (urllib3).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlencode

from pipeline.auth.credentials import ANONYMOUS, Credentials
from pipeline.errors import UsageError
from pipeline.registry import upload
from pipeline.registry.auth import merge_scopes, repository_scope
from pipeline.registry.digest import hasher_for, is_digest
from pipeline.registry.errors import DigestMismatch, RegistryAPIError, from_response
from pipeline.registry.limits import LIMITER
from pipeline.registry.links import next_url
from pipeline.registry.manifest import (
    ACCEPT,
    MANIFEST_TYPES,
    ManifestError,
    media_type_of,
)
from pipeline.registry.reference import normalize_host
from pipeline.registry.retry import retrying
from pipeline.registry.stream import BlobStream, Source
from pipeline.registry.tls import docker_certs_d_ca, ssl_verify
from pipeline.registry.transport import Transport

__all__ = ["RegistryClient", "RegistryAPIError", "DigestMismatch", "ManifestInfo", "MANIFEST_TYPES"]

CATALOG_SCOPE = ("registry:catalog:*",)
DELETE_HINT = ("the registry does not allow deleting manifests (distribution/registry:2: set "
               "storage.delete.enabled: true, or REGISTRY_STORAGE_DELETE_ENABLED=true)")


@dataclass(frozen=True)
class ManifestInfo:
    digest: str
    media_type: str
    size: int


class RegistryClient:
    def __init__(self, host: str, credentials: Credentials = ANONYMOUS, *, ca_file=None,
                 insecure: bool = False, timeout: float = 30.0, retry_attempts: int = 5,
                 retry_max_delay: float = 30.0, sleep: Callable[[float], None] = time.sleep,
                 on_retry: Callable[[str, int, BaseException, float], None] | None = None,
                 renew: Callable[[], Credentials] | None = None):
        """`sleep` and `on_retry(what, attempt, error, wait)` are hooks for tests and progress
        output; `renew()` gives fresh credentials when the registry refuses these (a cloud token
        that expired): tried once per client."""
        self.host = host
        self.credentials = credentials
        self.timeout = timeout
        self.retry_attempts = retry_attempts
        self.retry_max_delay = retry_max_delay
        self._sleep = sleep
        self._on_retry = on_retry
        self._abandoned: BaseException | None = None
        self._renew = renew
        self._renewed = False
        self._renew_lock = threading.Lock()
        try:
            verify = ssl_verify(ca_file or docker_certs_d_ca(host))
        except OSError as exc:
            raise UsageError(f"registry {host}: cannot read ca_file {ca_file}: {exc.strerror or exc}",
                             hint="ca_file must be a PEM file with the registry's CA certificate") from None
        self._transport = Transport(host, credentials, verify=verify, insecure=insecure,
                                    timeout=timeout)

    def __repr__(self) -> str:
        return f"<RegistryClient {self.host} ({self.credentials.describe()})>"

    @property
    def api_host(self) -> str:
        """The host the HTTP API is served from (Docker Hub: registry-1.docker.io)."""
        return self._transport.api_host

    @property
    def registry_key(self) -> str:
        """Canonical host: two clients with the same key talk to the same registry (mounts work)."""
        return normalize_host(self._transport.api_host)

    def close(self) -> None:
        self._transport.session.close()

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------
    def _run(self, what: str, fn, *args, **kwargs):
        """fn(*args) under the host's concurrency limit, retried as a whole when transient;
        refused credentials are renewed once (see `renew`) and the operation run again."""
        try:
            return self._attempts(what, fn, *args, **kwargs)
        except RegistryAPIError as exc:
            if not (exc.auth and self._renew_credentials()):
                raise
        return self._attempts(what, fn, *args, **kwargs)

    def _renew_credentials(self) -> bool:
        """New credentials from `renew`, once per client; True when they differ."""
        with self._renew_lock:
            if self._renew is None or self._renewed:
                return False
            self._renewed = True
            try:
                fresh = self._renew()
            except Exception:       # noqa: BLE001 - the refusal the caller has says enough
                return False
            if fresh is None or (fresh.password, fresh.identity_token, fresh.registry_token) == (
                    self.credentials.password, self.credentials.identity_token,
                    self.credentials.registry_token):
                return False
            self.credentials = self._transport.credentials = fresh
            self._transport.tokens = type(self._transport.tokens)()
            return True

    def _attempts(self, what: str, fn, *args, **kwargs):
        def on_retry(attempt: int, error: BaseException, wait: float) -> None:
            if self._on_retry:
                self._on_retry(what, attempt, error, wait)

        with LIMITER.hold(self._transport.api_host):
            for attempt in retrying(self.retry_attempts, self.retry_max_delay, sleep=self._sleep,
                                    on_retry=on_retry):
                with attempt:
                    if self._abandoned is not None:     # not transient: no further attempt
                        raise RegistryAPIError(f"{self.host}: given up ({self._abandoned})",
                                               status=getattr(self._abandoned, "status", None))
                    return fn(*args, **kwargs)

    def abandon(self, error: BaseException) -> None:
        """Give this registry up as a whole: operations still retrying stop at their next
        attempt, new ones fail at once (a registry found unreachable after its retries is not
        tried again layer by layer)."""
        self._abandoned = error

    def _request(self, method: str, path: str, **kw):
        return self._transport.request(method, path, **kw)

    @staticmethod
    def _pull(repository: str) -> tuple[str, ...]:
        return (repository_scope(repository, "pull"),)

    @staticmethod
    def _push(repository: str) -> tuple[str, ...]:
        return (repository_scope(repository, "pull", "push"),)

    def ping(self) -> None:
        """Reach /v2/ (choosing https/http) and learn the auth challenge."""
        self._run("ping", self._transport.ping)

    # -- manifests --------------------------------------------------------------------------
    def head_manifest(self, repository: str, reference: str) -> ManifestInfo | None:
        """What a tag or digest resolves to, or None when the registry does not have it."""
        return self._run(f"HEAD manifest {repository}:{reference}", self._head_manifest,
                         repository, reference)

    def _head_manifest(self, repository: str, reference: str) -> ManifestInfo | None:
        what = f"manifest {repository}:{reference}"
        resp = self._request("HEAD", f"/v2/{repository}/manifests/{reference}",
                             scopes=self._pull(repository), headers={"Accept": ACCEPT}, what=what)
        with resp:
            if resp.status_code == 404:
                return None
            if resp.status_code >= 400:
                raise from_response(resp, self.host, what)
            digest = resp.headers.get("Docker-Content-Digest")
            media_type = resp.headers.get("Content-Type", "").split(";", 1)[0].strip()
            size = int(resp.headers.get("Content-Length") or 0)
        if not is_digest(digest) or media_type not in MANIFEST_TYPES:
            # Some registries omit the header on HEAD: fetch the bytes and hash them ourselves.
            return self._get_manifest(repository, reference)[1]
        if is_digest(reference) and digest != reference:
            raise DigestMismatch(f"{self.host}: {what}: registry answered with digest {digest}")
        return ManifestInfo(digest, media_type, size)

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, ManifestInfo]:
        """The manifest's exact bytes; its digest is computed here and checked against the registry's."""
        return self._run(f"GET manifest {repository}:{reference}", self._get_manifest,
                         repository, reference)

    def _get_manifest(self, repository: str, reference: str) -> tuple[bytes, ManifestInfo]:
        what = f"manifest {repository}:{reference}"
        resp = self._request("GET", f"/v2/{repository}/manifests/{reference}",
                             scopes=self._pull(repository), headers={"Accept": ACCEPT}, what=what)
        with resp:
            if resp.status_code >= 400:
                raise from_response(resp, self.host, what)
            body = resp.content
            claimed = resp.headers.get("Docker-Content-Digest")
            content_type = resp.headers.get("Content-Type")
        expected = reference if is_digest(reference) else claimed if is_digest(claimed) else None
        algorithm = expected.split(":", 1)[0] if expected else "sha256"
        h = hasher_for(f"{algorithm}:")
        h.update(body)
        digest = f"{algorithm}:{h.hexdigest()}"
        if expected and digest != expected:
            raise DigestMismatch(f"{self.host}: {what}: content has digest {digest}, expected {expected}")
        if claimed and is_digest(claimed) and claimed != digest:
            raise DigestMismatch(f"{self.host}: {what}: content has digest {digest} but the "
                                 f"registry claims {claimed}")
        try:
            media_type = media_type_of(body, content_type)
        except ManifestError as exc:
            raise RegistryAPIError(f"{self.host}: {what}: {exc}") from None
        return body, ManifestInfo(digest, media_type, len(body))

    def put_manifest(self, repository: str, reference: str, body: bytes,
                     media_type: str | None = None) -> ManifestInfo:
        """PUT the exact bytes under a tag or digest; Content-Type is the manifest's mediaType.

        Raises DigestMismatch when `reference` is a digest of other bytes, or when the
        registry stored something else (a converted manifest).
        """
        try:
            declared = media_type_of(body, media_type)
        except ManifestError as exc:
            raise UsageError(f"cannot push manifest to {repository}:{reference}: {exc}") from None
        if media_type and declared != media_type:
            raise UsageError(f"manifest declares mediaType {declared}, not {media_type}")
        algorithm = reference.split(":", 1)[0] if is_digest(reference) else "sha256"
        h = hasher_for(f"{algorithm}:")
        h.update(body)
        digest = f"{algorithm}:{h.hexdigest()}"
        if is_digest(reference) and reference != digest:
            raise DigestMismatch(f"manifest bytes have digest {digest}, not {reference}")
        return self._run(f"PUT manifest {repository}:{reference}", self._put_manifest, repository,
                         reference, bytes(body), declared, digest)

    def _put_manifest(self, repository, reference, body, media_type, digest) -> ManifestInfo:
        what = f"manifest {repository}:{reference}"
        resp = self._request("PUT", f"/v2/{repository}/manifests/{reference}",
                             scopes=self._push(repository), data=body,
                             headers={"Content-Type": media_type}, what=f"PUT {what}")
        with resp:
            if resp.status_code >= 400:
                hint = None
                if resp.status_code == 400:
                    hint = "check that every blob and child manifest exists in the repository"
                raise from_response(resp, self.host, f"PUT {what}", hint=hint)
            claimed = resp.headers.get("Docker-Content-Digest")
        if claimed and is_digest(claimed) and claimed.startswith("sha256:") and digest.startswith("sha256:") \
                and claimed != digest:
            raise DigestMismatch(f"{self.host}: PUT {what}: registry stored {claimed}, we sent {digest}")
        return ManifestInfo(digest, media_type, len(body))

    def delete_manifest(self, repository: str, digest: str) -> None:
        """Delete a manifest by digest (removes every tag pointing at it)."""
        if not is_digest(digest):
            raise UsageError(f"delete_manifest needs a digest, not '{digest}'",
                             hint="resolve the tag with head_manifest() first; deleting by digest "
                                  "removes every tag of that manifest")
        self._run(f"DELETE manifest {repository}@{digest}", self._delete_manifest, repository, digest)

    def _delete_manifest(self, repository: str, digest: str) -> None:
        what = f"delete manifest {repository}@{digest}"
        resp = self._request("DELETE", f"/v2/{repository}/manifests/{digest}",
                             scopes=(repository_scope(repository, "delete"),), what=what)
        with resp:
            if resp.status_code in (200, 202, 204):
                return
            hint = DELETE_HINT if resp.status_code == 405 or (
                resp.status_code == 400 and "UNSUPPORTED" in resp.text[:4096]) else None
            raise from_response(resp, self.host, what, hint=hint)

    # -- blobs ------------------------------------------------------------------------------
    def head_blob(self, repository: str, digest: str) -> int | None:
        """The blob's size if the repository has it, else None."""
        return self._run(f"HEAD blob {digest[:19]}", self._head_blob, repository, digest)

    def _head_blob(self, repository: str, digest: str) -> int | None:
        what = f"blob {repository}@{digest}"
        resp = self._request("HEAD", f"/v2/{repository}/blobs/{digest}",
                             scopes=self._pull(repository), what=what)
        with resp:
            if resp.status_code == 404:
                return None
            if resp.status_code >= 400:
                raise from_response(resp, self.host, what)
            return int(resp.headers.get("Content-Length") or 0)

    def open_blob(self, repository: str, digest: str, size: int | None = None) -> BlobStream:
        """Start a streamed GET; iterate the result to read it (verified against `digest`)."""
        return self._run(f"GET blob {digest[:19]}", self._open_blob, repository, digest, size)

    def _open_blob(self, repository: str, digest: str, size: int | None) -> BlobStream:
        what = f"blob {repository}@{digest}"
        resp = self._request("GET", f"/v2/{repository}/blobs/{digest}",
                             scopes=self._pull(repository), stream=True, what=what)
        if resp.status_code >= 400:
            with resp:
                raise from_response(resp, self.host, what)
        return BlobStream(resp, digest, size, host=self.host, where=what)

    def get_blob(self, repository: str, digest: str, size: int | None = None) -> bytes:
        """A whole (small) blob, e.g. an image config, verified."""
        def fetch():
            return self._open_blob(repository, digest, size).read_all()
        return self._run(f"GET blob {digest[:19]}", fetch)

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Cross-repository mount on this registry; True when the registry mounted it (201).

        Any other answer (202: the registry started an upload instead, which we cancel;
        4xx: e.g. no pull access to the source) returns False: upload it instead.
        """
        scopes = merge_scopes(self._push(repository), self._pull(from_repository))
        query = urlencode({"mount": digest, "from": from_repository})
        what = f"mount of blob {digest[:19]} from {from_repository} into {repository}"

        def attempt() -> bool:
            resp = self._request("POST", f"/v2/{repository}/blobs/uploads/?{query}", scopes=scopes,
                                 headers={"Content-Length": "0"}, what=what)
            with resp:
                if resp.status_code == 201:
                    return True
                location = resp.headers.get("Location") if resp.status_code == 202 else None
                if location:
                    upload.cancel(self._transport, upload.location_of(resp, self._transport, what),
                                  scopes)
                return False

        try:
            return self._run(what, attempt)
        except RegistryAPIError:
            return False

    def upload_blob(self, repository: str, digest: str, size: int, source: Source, *,
                    chunk_size: int | None = None) -> None:
        """Upload a blob: monolithic PUT (falls back to chunked PATCHes), or chunked if chunk_size.

        `source` is the content as bytes, or a function returning a fresh iterable of
        chunks (called again for every attempt: a consumed stream is never replayed).
        The content is verified against `digest` before its last byte is sent.
        """
        if not is_digest(digest):
            raise UsageError(f"invalid blob digest '{digest}'")
        scopes = self._push(repository)
        t = self._transport
        if chunk_size:
            self._run(f"upload blob {digest[:19]}", upload.chunked_attempt, t, repository, digest,
                      size, source, scopes, chunk_size=chunk_size)
            return
        try:
            self._run(f"upload blob {digest[:19]}", upload.monolithic_attempt, t, repository, digest,
                      size, source, scopes)
        except upload.UseChunked:
            self._run(f"upload blob {digest[:19]} (chunked)", upload.chunked_attempt, t, repository,
                      digest, size, source, scopes)

    # -- listing ----------------------------------------------------------------------------
    def list_tags(self, repository: str, *, page_size: int | None = None) -> list[str]:
        """Every tag of the repository (following `Link` pagination); [] if it does not exist."""
        return self._paginate(f"/v2/{repository}/tags/list", "tags", self._pull(repository),
                              page_size, f"tags of {repository}", missing_ok=True)

    def catalog(self, *, page_size: int | None = None) -> list[str]:
        """Every repository name (`/v2/_catalog`, following `Link` pagination)."""
        return self._paginate("/v2/_catalog", "repositories", CATALOG_SCOPE, page_size, "catalog",
                              missing_ok=False)

    def _paginate(self, path: str, key: str, scopes, page_size, what: str, *,
                  missing_ok: bool) -> list[str]:
        url: str | None = path + (f"?n={page_size}" if page_size else "")
        items: dict[str, None] = {}          # ordered set: a registry ignoring `last` repeats pages
        seen_urls: set[str] = set()
        while url:
            if url in seen_urls:
                raise RegistryAPIError(f"{self.host}: {what}: pagination loops on {url}")
            seen_urls.add(url)
            page, url = self._run(f"GET {what}", self._page, url, key, scopes, what, missing_ok)
            if page is None:
                return []
            before = len(items)
            items.update(dict.fromkeys(page))
            if len(items) == before:
                break
            if url is None and page_size and len(page) == page_size:
                # No Link header but a full page: ask for what comes after the last item.
                # (A longer page means the registry ignored `n`: it sent everything.)
                url = f"{path}?{urlencode({'n': page_size, 'last': page[-1]})}"
                if url in seen_urls:
                    url = None
        return list(items)

    def _page(self, url: str, key: str, scopes, what: str, missing_ok: bool):
        resp = self._request("GET", url, scopes=scopes, what=what)
        with resp:
            if resp.status_code == 404 and missing_ok:
                return None, None
            if resp.status_code >= 400:
                raise from_response(resp, self.host, what)
            try:
                page = resp.json().get(key) or []
            except (ValueError, AttributeError):
                raise RegistryAPIError(f"{self.host}: {what}: answer is not the expected JSON") from None
            if not isinstance(page, list):
                raise RegistryAPIError(f"{self.host}: {what}: \"{key}\" is not a list in the answer")
            try:
                nxt = next_url(resp.url, resp.headers.get("Link"))
            except ValueError as exc:
                raise RegistryAPIError(f"{self.host}: {what}: {exc}") from None
        return [str(x) for x in page], nxt
