"""One attempt at uploading a blob: monolithic (POST, then PUT with Content-Length) or chunked.

The caller (RegistryClient.upload_blob) retries whole attempts, opening the source
again each time. Nothing here retries, and no request whose body was a stream is
ever re-sent. The content is verified against its digest on the way out; the
final byte is only sent after that check, so a wrong blob is never committed.

What went where (the bytes-sent report): a `Tally` counts one destination's blob traffic,
the bytes of the upload bodies as they are handed to the connection (every attempt: a
retried upload counts again) and the blobs sent / already there / mounted. The code that
uploads in a thread says where its bytes count (`with metered(tally): client.upload_blob(...)`);
the run step that wants the totals per destination opens a `Ledger` (`with recording() as
ledger:`), and the pushes and copies below it add their counts to `tally_for(client)`.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Iterator
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


# -- what went where ----------------------------------------------------------------------------

@dataclass
class Tally:
    """Blob traffic to one destination: `bytes_sent` counts the upload bodies as they go out
    (manifests not included), the blobs are counted once each. Thread-safe (`add`)."""
    bytes_sent: int = 0
    blobs_sent: int = 0          # uploaded by this run
    blobs_present: int = 0       # the destination had them already (HEAD): nothing sent
    blobs_mounted: int = 0       # mounted from another repository of the same registry
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, bytes_sent: int = 0, blobs_sent: int = 0, blobs_present: int = 0,
            blobs_mounted: int = 0) -> None:
        with self._lock:
            self.bytes_sent += bytes_sent
            self.blobs_sent += blobs_sent
            self.blobs_present += blobs_present
            self.blobs_mounted += blobs_mounted

    def to_dict(self) -> dict:
        with self._lock:
            return {"bytes_sent": self.bytes_sent, "blobs_sent": self.blobs_sent,
                    "blobs_present": self.blobs_present, "blobs_mounted": self.blobs_mounted}


class Ledger:
    """The tallies of one run step, one per destination client (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        # id(client) -> (client, tally): the client is held, so its id is not reused
        self._tallies: dict[int, tuple[object, Tally]] = {}

    def tally(self, client) -> Tally:
        """The tally of `client`, created (all zero) on first use."""
        with self._lock:
            if id(client) not in self._tallies:
                self._tallies[id(client)] = (client, Tally())
            return self._tallies[id(client)][1]

    def get(self, client) -> Tally | None:
        """The tally of `client`; None when nothing recorded a transfer to it."""
        with self._lock:
            entry = self._tallies.get(id(client))
            return entry[1] if entry is not None else None


_LEDGER: ContextVar[Ledger | None] = ContextVar("upload_ledger", default=None)
_METER: ContextVar[Tally | None] = ContextVar("upload_meter", default=None)


@contextmanager
def recording() -> Iterator[Ledger]:
    """A new Ledger that pushes and copies started in this thread (or in a copy of its
    context) record into."""
    ledger = Ledger()
    token = _LEDGER.set(ledger)
    try:
        yield ledger
    finally:
        _LEDGER.reset(token)


def tally_for(client) -> Tally:
    """The tally of transfers to `client` in the ledger being recorded; a loose one (counted,
    reported nowhere) when no ledger is open."""
    ledger = _LEDGER.get()
    return ledger.tally(client) if ledger is not None else Tally()


@contextmanager
def metered(tally: Tally | None) -> Iterator[None]:
    """The blob uploads this thread runs inside the block add their body bytes to `tally`."""
    token = _METER.set(tally)
    try:
        yield
    finally:
        _METER.reset(token)


class _Metered:
    """An upload body (with its length) that counts its bytes as they go to the connection."""

    def __init__(self, body, size: int, tally: Tally):
        self._body = body
        self._size = size
        self._tally = tally

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            self._tally.add(bytes_sent=len(chunk))
            yield chunk


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
    tally = _METER.get()
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
        if tally is not None and not isinstance(body, bytes):
            body = _Metered(body, size, tally)
        resp = transport.request("PUT", with_digest(location, digest), scopes=scopes,
                                 headers={"Content-Type": "application/octet-stream",
                                          "Content-Length": str(size)},
                                 data=body, replayable=False, what=what)
        if tally is not None and isinstance(body, bytes):
            tally.add(bytes_sent=len(body))
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
    tally = _METER.get()
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
            if tally is not None:           # the piece went out, whatever the answer
                tally.add(bytes_sent=len(piece))
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
