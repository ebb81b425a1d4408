"""Blob byte streams: a verifying download stream, a sized upload body, re-chunking."""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from pipeline.registry.digest import verified_chunks
from pipeline.registry.errors import connection_error
from pipeline.registry.session import HTTPError

READ_CHUNK = 1024 * 1024

# What upload_blob accepts: the bytes, or a function that opens the content afresh
# (called once per attempt: a consumed stream is never replayed).
Source = bytes | Callable[[], Iterable[bytes]]


class BlobStream:
    """The body of a blob GET, verified against its digest while it is read.

        with client.open_blob(repo, digest, size=n) as blob:
            for chunk in blob: ...

    Iterating raises DigestMismatch before yielding the last chunk when the content
    is wrong, and RegistryAPIError(transient=True) when the connection breaks.
    """

    def __init__(self, resp, digest: str, size: int | None, *, host: str, where: str):
        self._resp = resp
        self.digest = digest
        self.size = size
        self._host = host
        self._where = where
        self._used = False

    def _raw(self) -> Iterator[bytes]:
        try:
            yield from self._resp.iter_content(READ_CHUNK)
        except (HTTPError, OSError) as exc:
            raise connection_error(self._host, f"reading {self._where}", exc) from None

    def __iter__(self) -> Iterator[bytes]:
        if self._used:
            raise RuntimeError("a blob stream can be read only once; open the blob again")
        self._used = True
        try:
            yield from verified_chunks(self._raw(), self.digest, self.size,
                                       where=f"{self._host}: {self._where}")
        finally:
            self.close()

    def read_all(self) -> bytes:
        return b"".join(self)

    def close(self) -> None:
        self._resp.close()

    def __enter__(self) -> "BlobStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FileBody:
    """A blob in a local file whose digest the caller computed from these very bytes.

    Uploads trust that digest (the registry checks it again when the upload is
    committed) instead of hashing the file once more.
    """

    def __init__(self, path, size: int, digest: str):
        self.path = path
        self.size = size
        self.digest = digest

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        with open(self.path, "rb") as f:
            while block := f.read(READ_CHUNK):
                yield block


class SizedBody:
    """An iterable request body with a known length.

    session.Session sends `Transfer-Encoding: chunked` for iterables without a length,
    which some registries refuse for a monolithic PUT; `__len__` makes it send
    `Content-Length` and stream the chunks as they come.
    """

    def __init__(self, chunks: Iterable[bytes], size: int):
        self._chunks = chunks
        self._size = size

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)


def open_source(source: Source) -> Iterable[bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return iter([data] if data else [])
    opened = source()
    if isinstance(opened, (bytes, bytearray)):
        return iter([bytes(opened)] if opened else [])
    return opened


def close_source(opened) -> None:
    close = getattr(opened, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            pass


def rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Regroup a byte stream into pieces of exactly `size` bytes (the last may be shorter)."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)

