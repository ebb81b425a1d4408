"""One attempt at uploading a blob: monolithic (POST, then PUT with Content-Length) or chunked.

The caller (RegistryClient.upload_blob) retries whole attempts, opening the source
again each time. Nothing here retries, and no request whose body was a stream is
ever re-sent. The content is verified against its digest on the way out; the
final byte is only sent after that check, so a wrong blob is never committed.
"""

from __future__ import annotations

from urllib.parse import quote, urljoin

from pipeline.registry.digest import verified_chunks
from pipeline.registry.errors import RegistryAPIError, from_response
from pipeline.registry.stream import (
    BlobStream,
    FileBody,
    SizedBody,
    close_source,
    open_source,
    rechunk,
)

DEFAULT_CHUNK = 8 * 1024 * 1024
MAX_CHUNK_MIN = 1024 * 1024 * 1024
# A monolithic PUT answered with one of these: the registry wants chunks.
FALLBACK_STATUSES = frozenset({405, 411, 413, 415, 501})
FALLBACK_CODES = frozenset({"BLOB_UPLOAD_INVALID", "SIZE_INVALID", "UNSUPPORTED"})


class UseChunked(Exception):
    """The registry refused a monolithic upload in a way chunks may fix."""


def with_digest(location: str, digest: str) -> str:
    sep = "&" if "?" in location else "?"
    return f"{location}{sep}digest={quote(digest, safe='')}"


def start_session(transport, repository: str, scopes, *, what: str) -> tuple[str, int | None]:
    """POST /blobs/uploads/ -> (absolute upload URL, OCI-Chunk-Min-Length or None)."""
    path = f"/v2/{repository}/blobs/uploads/"
    resp = transport.request("POST", path, scopes=scopes, headers={"Content-Length": "0"},
                             what=what)
    with resp:
        if resp.status_code != 202:
            raise from_response(resp, transport.host, what)
        return location_of(resp, transport, what), _int(resp.headers.get("OCI-Chunk-Min-Length"))


def location_of(resp, transport, what: str) -> str:
    location = resp.headers.get("Location")
    if not location:
        raise RegistryAPIError(f"{transport.host}: {what}: no Location header in the answer",
                               status=resp.status_code)
    return urljoin(resp.url, location)


def cancel(transport, location: str, scopes) -> None:
    """Best effort DELETE of an upload session we will not use."""
    try:
        transport.request("DELETE", location, scopes=scopes, what="cancel upload").close()
    except RegistryAPIError:
        pass


def _verified(opened, digest: str, size: int | None, where: str):
    # A BlobStream verifies itself, a FileBody was hashed as it was written: hashing it a
    # second time would only cost CPU (the registry checks the digest on commit as well).
    if isinstance(opened, BlobStream) and opened.digest == digest:
        return iter(opened)
    if isinstance(opened, FileBody) and opened.digest == digest and opened.size == size:
        return opened
    return verified_chunks(opened, digest, size, where=where)


def monolithic_attempt(transport, repository: str, digest: str, size: int, source, scopes) -> None:
    what = f"upload of blob {digest[:19]} to {repository}"
    opened = open_source(source)
    try:
        location, _ = start_session(transport, repository, scopes, what=what)
    except BaseException:
        close_source(opened)
        raise
    try:
        chunks = _verified(opened, digest, size, f"{transport.host}: {what}")
        body = chunks if isinstance(chunks, FileBody) else \
            SizedBody(chunks, size) if size else b"".join(chunks)
        resp = transport.request("PUT", with_digest(location, digest), scopes=scopes,
                                 headers={"Content-Type": "application/octet-stream",
                                          "Content-Length": str(size)},
                                 data=body, replayable=False, what=what)
    except RegistryAPIError:
        cancel(transport, location, scopes)     # wrong content or broken source: drop the session
        raise
    finally:
        close_source(opened)
    with resp:
        if resp.status_code in (200, 201, 204):
            _check_committed(resp, transport, digest, what)
            return
        err = from_response(resp, transport.host, what)
    cancel(transport, location, scopes)
    if resp.status_code in FALLBACK_STATUSES or (resp.status_code == 400 and err.code in FALLBACK_CODES):
        raise UseChunked(str(err))
    raise err


def chunked_attempt(transport, repository: str, digest: str, size: int | None, source, scopes, *,
                    chunk_size: int = DEFAULT_CHUNK) -> None:
    what = f"chunked upload of blob {digest[:19]} to {repository}"
    offset = 0
    location = None
    opened = open_source(source)
    try:
        location, minimum = start_session(transport, repository, scopes, what=what)
        if minimum:
            chunk_size = max(chunk_size, min(minimum, MAX_CHUNK_MIN))
        for piece in rechunk(_verified(opened, digest, size, f"{transport.host}: {what}"), chunk_size):
            end = offset + len(piece) - 1
            resp = transport.request("PATCH", location, scopes=scopes, data=piece,
                                     headers={"Content-Type": "application/octet-stream",
                                              "Content-Length": str(len(piece)),
                                              "Content-Range": f"{offset}-{end}"},
                                     what=what)
            with resp:
                if resp.status_code not in (202, 204):
                    raise from_response(resp, transport.host, f"{what} (bytes {offset}-{end})")
                location = location_of(resp, transport, what)
            offset = end + 1
        resp = transport.request("PUT", with_digest(location, digest), scopes=scopes,
                                 headers={"Content-Length": "0"}, what=what)
        with resp:
            if resp.status_code not in (200, 201, 204):
                raise from_response(resp, transport.host, what)
            _check_committed(resp, transport, digest, what)
    except RegistryAPIError:
        if location:
            cancel(transport, location, scopes)
        raise
    finally:
        close_source(opened)


def _check_committed(resp, transport, digest: str, what: str) -> None:
    claimed = resp.headers.get("Docker-Content-Digest")
    if claimed and claimed != digest:
        raise RegistryAPIError(f"{transport.host}: {what}: registry stored {claimed}, expected {digest}")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None
