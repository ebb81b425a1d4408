"""The build context as a tar, with `.dockerignore` applied the way the docker CLI applies it.

The Engine API's BuildKit takes the context as the request body. What is left out never
leaves this machine, so a `.dockerignore` that keeps 190 MB of data out also keeps it off
the socket. The matching rules are docker-py's port of the CLI's (`PatternMatcher`:
`**`, `!` exceptions, directory pruning); BuildKit's `<Dockerfile>.dockerignore`, next to
the Dockerfile, wins over the context's `.dockerignore`, as in `docker buildx build`.

One difference from the CLI remains: the engine reads the Dockerfile from this tar, so the
Dockerfile (and `.dockerignore`) are in the context even when `.dockerignore` lists them,
and `COPY . .` copies them; the CLI sends them apart. (BuildKit does not apply
`.dockerignore` to an uploaded context itself: measured on Engine 20.10.)

The tar is written in GNU format with whole-second mtimes: the engine sniffs the first
512 bytes to tell a context tar from a bare Dockerfile, and a PAX header there (Python's
default format adds one for every file with a fractional mtime) makes it read the tar as a
Dockerfile ("unknown instruction: ././@PAXHEADER").
"""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pipeline.errors import UsageError

OUTSIDE_DOCKERFILE = ".release.Dockerfile"   # where a Dockerfile from outside the context goes


@dataclass(frozen=True)
class Context:
    """What goes to the engine: the paths, where the Dockerfile is in the tar, which ignore
    file applied. Every file in it was readable when it was listed."""
    root: Path
    paths: tuple[str, ...]          # relative, sorted; files, directories, links
    dockerfile: str                 # the Dockerfile's path inside the tar
    outside_dockerfile: Path | None # a Dockerfile from outside the context, added at the end
    ignore_file: str | None         # relative to the context

    def tar(self, chunk: int = 1 << 16) -> Iterator[bytes]:
        """The context as a tar stream, written as it is read: no spool file, nothing held
        in memory beyond a chunk or two (the request goes out chunked). Small pieces (tar
        headers, small files) are gathered into chunks of about `chunk` bytes."""
        pending: list[bytes] = []
        size = 0
        for piece in self._pieces():
            pending.append(piece)
            size += len(piece)
            if size >= chunk:
                yield b"".join(pending)
                pending, size = [], 0
        if pending:
            yield b"".join(pending)

    def _pieces(self) -> Iterator[bytes]:
        maker = tarfile.TarFile(fileobj=io.BytesIO(), mode="w", format=tarfile.GNU_FORMAT)
        for rel in self.paths:
            full = os.path.join(self.root, rel)
            try:
                info = maker.gettarinfo(full, arcname=rel.replace(os.sep, "/"))
            except FileNotFoundError:
                continue                 # deleted since it was listed
            if info is None:              # a socket: the docker CLI skips them too
                continue
            _normalise(info)
            yield info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
            if info.isreg():
                yield from _file_blocks(full, info.size)
        if self.outside_dockerfile is not None:
            data = self.outside_dockerfile.read_bytes()
            info = tarfile.TarInfo(OUTSIDE_DOCKERFILE)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            yield info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
            yield data + b"\0" * (-len(data) % tarfile.BLOCKSIZE)
        yield b"\0" * (2 * tarfile.BLOCKSIZE)      # end of archive


def ignore_patterns(context: Path, dockerfile: str) -> tuple[list[str], str | None]:
    """The patterns that apply, and the file they came from (relative to the context)."""
    specific = Path(context, dockerfile + ".dockerignore")
    for candidate in (specific, Path(context, ".dockerignore")):
        if candidate.is_file():
            lines = candidate.read_text(encoding="utf-8", errors="replace").splitlines()
            patterns = [line.strip() for line in lines]
            return ([p for p in patterns if p and not p.startswith("#")],
                    os.path.relpath(candidate, context))
    return [], None


def prepare_context(context: Path, dockerfile: str) -> Context:
    """List what goes to the engine. A file or directory that cannot be read is a usage
    error now (the docker CLI's "no permission to read"), before anything is sent."""
    context = Path(context)
    patterns, source = ignore_patterns(context, dockerfile)
    inside = _inside(context, dockerfile)
    # lazy: docker-py takes ~0.2 s to import; only a build needs its .dockerignore matcher
    from docker.utils.build import exclude_paths
    try:
        # the Dockerfile always goes in, even when a pattern matches it (as with the CLI)
        paths = sorted(exclude_paths(str(context), patterns,
                                     dockerfile=dockerfile if inside else None))
    except PermissionError as exc:
        raise _unreadable(context, exc.filename) from None
    for rel in paths:
        full = os.path.join(context, rel)
        if os.path.isdir(full) and not os.path.islink(full):
            ok = os.access(full, os.R_OK | os.X_OK)
        else:
            ok = os.path.islink(full) or os.access(full, os.R_OK) or not os.path.exists(full)
        if not ok:
            raise _unreadable(context, full)
    return Context(context, tuple(paths), dockerfile.replace(os.sep, "/") if inside
                   else OUTSIDE_DOCKERFILE, None if inside else Path(context, dockerfile),
                   source)


def _unreadable(context: Path, path) -> UsageError:
    rel = os.path.relpath(path, context) if path else "a file"
    return UsageError(f"the build context {context} has {rel}, which release cannot read",
                      hint=f"fix its permissions, or list it in .dockerignore: {rel}")


def _file_blocks(path: str, size: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """A file's `size` bytes (as listed: a file that grew is cut, one that shrank is padded)
    and the padding to the next tar block."""
    remaining = size
    with open(path, "rb") as handle:
        while remaining:
            data = handle.read(min(chunk, remaining))
            if not data:
                data = b"\0" * min(chunk, remaining)
            remaining -= len(data)
            yield data
    if size % tarfile.BLOCKSIZE:
        yield b"\0" * (tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE)


def _normalise(info: tarfile.TarInfo) -> None:
    """Whole-second mtimes (see the module text) and no local user names in the tar."""
    info.mtime = int(info.mtime)
    info.uname = info.gname = ""


def _inside(context: Path, dockerfile: str) -> bool:
    full = os.path.normpath(os.path.join(context, dockerfile))
    return not os.path.relpath(full, context).startswith("..")
