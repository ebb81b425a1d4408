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
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from docker.utils.build import exclude_paths

OUTSIDE_DOCKERFILE = ".release.Dockerfile"   # where a Dockerfile from outside the context goes


@dataclass
class ContextTar:
    file: BinaryIO                  # positioned at 0, for the request body
    size: int                       # bytes of tar
    dockerfile: str                 # the Dockerfile's path inside the tar
    files: int                      # members written
    ignore_file: str | None         # which ignore file applied, relative to the context

    def close(self) -> None:
        self.file.close()


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


def included_paths(context: Path, dockerfile: str) -> tuple[list[str], str | None]:
    """Paths (files and directories, relative, sorted) the context tar holds."""
    patterns, source = ignore_patterns(context, dockerfile)
    inside = _inside(context, dockerfile)
    # the Dockerfile always goes in, even when a pattern matches it (as with the CLI)
    paths = exclude_paths(str(context), patterns, dockerfile=dockerfile if inside else None)
    return sorted(paths), source


def make_context_tar(context: Path, dockerfile: str) -> ContextTar:
    """Write the context tar to an anonymous temporary file and return it, rewound."""
    context = Path(context)
    paths, source = included_paths(context, dockerfile)
    inside = _inside(context, dockerfile)
    spool = tempfile.TemporaryFile(prefix="release-context-")
    count = 0
    try:
        with tarfile.open(fileobj=spool, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for rel in paths:
                full = os.path.join(context, rel)
                try:
                    info = tar.gettarinfo(full, arcname=rel.replace(os.sep, "/"))
                except OSError:
                    continue                 # vanished or unreadable: docker skips it too
                if info is None:              # sockets and the like
                    continue
                _normalise(info)
                if info.isfile():
                    with open(full, "rb") as handle:
                        tar.addfile(info, handle)
                else:
                    tar.addfile(info)
                count += 1
            name = dockerfile
            if not inside:
                data = Path(context, dockerfile).read_bytes()
                info = tarfile.TarInfo(OUTSIDE_DOCKERFILE)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
                name, count = OUTSIDE_DOCKERFILE, count + 1
        size = spool.tell()
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return ContextTar(spool, size, name.replace(os.sep, "/"), count, source)


def _normalise(info: tarfile.TarInfo) -> None:
    """Whole-second mtimes (see the module text) and no local user names in the tar."""
    info.mtime = int(info.mtime)
    info.uname = info.gname = ""


def _inside(context: Path, dockerfile: str) -> bool:
    full = os.path.normpath(os.path.join(context, dockerfile))
    return not os.path.relpath(full, context).startswith("..")
