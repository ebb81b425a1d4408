"""Working directories of killed runs are removed by the next run; SIGTERM unwinds like Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from pipeline.engine import spool


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_the_directories_of_dead_runs_go(tmp_path):
    dead = tmp_path / f"release-push-{_dead_pid()}-abc"
    alive = tmp_path / f"release-push-{os.getpid()}-def"
    parent = tmp_path / f"release-build-{os.getppid()}-ghi"
    other = tmp_path / "release-push-xyz"          # an older name without a pid: not ours to judge
    stranger = tmp_path / "something-else-1-2"
    for d in (dead, alive, parent, other, stranger):
        d.mkdir()
        (d / "layer.gz").write_bytes(b"x" * 10)
    removed = spool.remove_orphans(tmp_path)
    assert removed == [dead]
    assert not dead.exists()
    assert alive.exists() and parent.exists() and other.exists() and stranger.exists()


def test_make_dir_names_the_process_and_cleans_up_first(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(spool.tempfile, "tempdir", None)      # re-read TMPDIR
    dead = tmp_path / f"release-platforms-{_dead_pid()}-x"
    dead.mkdir()
    made = spool.make_dir("push")
    assert made.parent == tmp_path and made.name.startswith(f"release-push-{os.getpid()}-")
    assert not dead.exists()


def test_sigterm_and_sighup_raise_terminated_and_say_which():
    code = ("import os, signal, time\n"
            "from pipeline.engine import spool\n"
            "spool.terminate_like_interrupt()\n"
            "try:\n"
            "    os.kill(os.getpid(), signal.SIG%s)\n"
            "    time.sleep(5)\n"
            "except spool.Terminated as exc:\n"
            "    print('cleaned up after', exc, exc.signum)\n")
    for name in ("TERM", "HUP"):
        out = subprocess.run([sys.executable, "-c", code % name], capture_output=True, text=True,
                             timeout=20, cwd=os.path.dirname(os.path.dirname(os.path.dirname(spool.__file__))))
        assert out.stdout.strip() == f"cleaned up after SIG{name} {getattr(signal, 'SIG' + name)}"
        assert isinstance(spool.Terminated(signal.SIGTERM), KeyboardInterrupt)
