"""Gzip for registry layers: the same input gives the same bytes, so the same digest, every run.

ISA-L (the `isal` package) when it is installed, which compresses about ten times
faster than zlib at a ratio close to zlib's level 1 (measured in the README); zlib
level 6 (what `docker push` uses) otherwise. Output bytes depend on the library,
its level and how the input is cut into calls, so input is always fed in blocks of
exactly BLOCK bytes: a layer compressed again later, e.g. the unchanged base layer
of the next release, gets the digest the registry already has and is not uploaded
again. The gzip header carries no name and mtime 0.
"""

from __future__ import annotations

import zlib
from typing import Iterable, Iterator

BLOCK = 1024 * 1024
ISAL_LEVEL = 2
ZLIB_LEVEL = 6
GZIP_WBITS = 31          # gzip wrapper, 32 KiB window


def _isal():
    try:
        # lazy: optional accelerator (ISA-L); zlib otherwise
        from isal import isal_zlib
    except ImportError:
        return None
    return isal_zlib


def describe() -> str:
    """Which compressor this machine uses, for reports and the benchmark."""
    lib = _isal()
    if lib is not None:
        # lazy: optional accelerator (ISA-L); zlib otherwise
        import isal
        return f"isal {getattr(isal, '__version__', '?')} level {ISAL_LEVEL}"
    return f"zlib {zlib.ZLIB_RUNTIME_VERSION} level {ZLIB_LEVEL}"


def compressor():
    """A fresh gzip compressor object (compress()/flush())."""
    lib = _isal()
    if lib is not None:
        return lib.compressobj(ISAL_LEVEL, lib.DEFLATED, GZIP_WBITS)
    return zlib.compressobj(ZLIB_LEVEL, zlib.DEFLATED, GZIP_WBITS)


def decompressor():
    """A gzip decompressor (for layers the engine already exported compressed)."""
    lib = _isal()
    if lib is not None:
        return lib.decompressobj(GZIP_WBITS)
    return zlib.decompressobj(GZIP_WBITS)


class Blocks:
    """Regroup a byte stream into blocks of exactly BLOCK bytes (the last may be shorter)."""

    def __init__(self, size: int = BLOCK):
        self.size = size
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not self._buf and len(data) == self.size:
            yield data
            return
        self._buf += data
        while len(self._buf) >= self.size:
            yield bytes(self._buf[:self.size])
            del self._buf[:self.size]

    def rest(self) -> Iterator[bytes]:
        if self._buf:
            yield bytes(self._buf)
            self._buf.clear()


def gzip_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Compress a stream; the output depends only on the input bytes (see the module text)."""
    c = compressor()
    blocks = Blocks()
    for chunk in chunks:
        for block in blocks.feed(chunk):
            out = c.compress(block)
            if out:
                yield out
    for block in blocks.rest():
        out = c.compress(block)
        if out:
            yield out
    tail = c.flush()
    if tail:
        yield tail
