"""The context tar that goes to the engine: what is in it, and how it is written."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from pipeline.engine.buildkit import context as ctx_mod
from pipeline.engine.buildkit.context import OUTSIDE_DOCKERFILE, prepare_context
from pipeline.errors import UsageError


def members(context) -> dict[str, tarfile.TarInfo]:
    data = b"".join(context.tar(chunk=1000))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


@pytest.fixture
def app(tmp_path):
    root = tmp_path / "app"
    (root / "src").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (root / "src" / "main.c").write_text("int main;\n")
    (root / "big.bin").write_bytes(b"x" * 3000)
    return root


def test_ignored_files_stay_out_and_the_dockerfile_always_goes_in(app):
    (app / ".dockerignore").write_text("# comment\nbig.bin\nDockerfile\n")
    context = prepare_context(app, "Dockerfile")
    names = members(context)
    assert set(names) == {".dockerignore", "Dockerfile", "src", "src/main.c"}
    assert context.ignore_file == ".dockerignore" and context.dockerfile == "Dockerfile"


def test_a_dockerfile_specific_ignore_file_wins(app):
    (app / ".dockerignore").write_text("src\n")
    (app / "Dockerfile.dockerignore").write_text("big.bin\n")
    context = prepare_context(app, "Dockerfile")
    assert context.ignore_file == "Dockerfile.dockerignore"
    assert "src/main.c" in members(context) and "big.bin" not in members(context)


def test_a_dockerfile_outside_the_context_is_added_under_its_own_name(tmp_path, app):
    (tmp_path / "build.Dockerfile").write_text("FROM scratch\n")
    context = prepare_context(app, "../build.Dockerfile")
    names = members(context)
    assert context.dockerfile == OUTSIDE_DOCKERFILE and OUTSIDE_DOCKERFILE in names
    data = b"".join(context.tar())
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.extractfile(OUTSIDE_DOCKERFILE).read() == b"FROM scratch\n"


def test_the_tar_is_what_the_engine_accepts(app):
    """GNU headers with whole-second mtimes: the first 512 bytes are a plain tar header (a PAX
    header there makes the engine read the body as a Dockerfile)."""
    os.utime(app / "Dockerfile", (1_700_000_000.75, 1_700_000_000.75))
    data = b"".join(prepare_context(app, "Dockerfile").tar())
    first = tarfile.TarInfo.frombuf(data[:512], "utf-8", "surrogateescape")
    assert first.type != tarfile.XHDTYPE and first.name in ("Dockerfile", "big.bin")
    assert len(data) % 512 == 0 and data.endswith(b"\0" * 1024)
    names = members(prepare_context(app, "Dockerfile"))
    assert names["Dockerfile"].mtime == 1_700_000_000
    assert names["big.bin"].size == 3000 and names["big.bin"].uname == ""


def test_links_and_fifos_go_as_such_and_sockets_stay_out(app):
    """As the docker CLI does: a link is not followed, a fifo is an entry (never opened, so
    the tar does not hang on it), a socket is skipped."""
    import socket
    os.symlink("src/main.c", app / "link.c")
    os.mkfifo(app / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(app / "sock"))
    try:
        names = members(prepare_context(app, "Dockerfile"))
    finally:
        sock.close()
    assert names["link.c"].issym() and names["link.c"].linkname == "src/main.c"
    assert names["pipe"].isfifo() and "sock" not in names


def test_chunks_are_gathered(app):
    pieces = list(prepare_context(app, "Dockerfile").tar(chunk=1 << 16))
    assert len(pieces) == 1                  # a small context is one chunk, not one per header


def test_a_file_that_shrinks_while_sent_keeps_the_tar_valid(app):
    """Listed (and its header sent) at 3000 bytes, then cut to 10: the entry is padded to
    the size its header promised, so the archive stays readable."""
    pieces = []
    for piece in prepare_context(app, "Dockerfile").tar(chunk=1):
        pieces.append(piece)
        if piece[:8] == b"big.bin\0":
            (app / "big.bin").write_bytes(b"y" * 10)
    with tarfile.open(fileobj=io.BytesIO(b"".join(pieces))) as tar:
        assert tar.extractfile("big.bin").read() == b"y" * 10 + b"\0" * 2990
        assert tar.extractfile("src/main.c").read() == b"int main;\n"


def test_an_unreadable_file_is_a_usage_error_naming_it(app, monkeypatch):
    real = os.access
    monkeypatch.setattr(ctx_mod.os, "access",
                        lambda p, mode: False if str(p).endswith("main.c") else real(p, mode))
    with pytest.raises(UsageError) as err:
        prepare_context(app, "Dockerfile")
    assert err.value.exit_code == 2
    assert "has src/main.c, which release cannot read" in err.value.message
    assert "list it in .dockerignore: src/main.c" in err.value.hint


def test_an_unreadable_directory_is_a_usage_error_naming_it(app, monkeypatch):
    def refuse(root, patterns, dockerfile=None):
        raise PermissionError(13, "Permission denied", str(app / "src"))
    monkeypatch.setattr("docker.utils.build.exclude_paths", refuse)
    with pytest.raises(UsageError, match="has src, which release cannot read"):
        prepare_context(app, "Dockerfile")
