"""Content digests: compute them, recognise them, verify a stream while it passes through."""

from __future__ import annotations

import hashlib
import re
from typing import Iterable, Iterator

from pipeline.registry.errors import DigestMismatch

_DIGEST = re.compile(r"(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})\Z")


def is_digest(text: str | None) -> bool:
    return bool(text and _DIGEST.match(text))


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hasher_for(digest: str):
    algorithm = digest.split(":", 1)[0]
    if algorithm not in ("sha256", "sha512"):
        raise ValueError(f"unsupported digest algorithm in {digest!r}")
    return hashlib.new(algorithm)


def verified_chunks(chunks: Iterable[bytes], digest: str, size: int | None, *,
                    where: str) -> Iterator[bytes]:
    """Yield `chunks` unchanged while hashing them; fail before the last byte if they are wrong.

    The last chunk is held back until the stream has ended and its digest (and size,
    when known) has been checked, so a consumer streaming into an upload never sends
    the complete content of a corrupted blob: the upload stays short and is never
    committed. Raises DigestMismatch (never retried).
    """
    h = hasher_for(digest)
    total = 0
    pending: bytes | None = None
    for chunk in chunks:
        if not chunk:
            continue
        h.update(chunk)
        total += len(chunk)
        if size is not None and total > size:
            raise DigestMismatch(f"{where}: more than the expected {size} bytes for {digest}")
        if pending is not None:
            yield pending
        pending = chunk
    actual = f"{digest.split(':', 1)[0]}:{h.hexdigest()}"
    if size is not None and total != size:
        raise DigestMismatch(f"{where}: got {total} bytes for {digest}, expected {size}")
    if actual != digest:
        raise DigestMismatch(f"{where}: content has digest {actual}, expected {digest} "
                             "(corrupted in transit or in the registry's storage)")
    if pending is not None:
        yield pending
