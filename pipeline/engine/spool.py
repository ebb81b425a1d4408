"""Temporary working directories that a killed run does not leave behind for ever.

Each is named `release-<what>-<pid>-<random>` in $TMPDIR. A run that ends normally, by
Ctrl-C, or by SIGTERM/SIGHUP (CI cancellation, `timeout`: see `terminate_like_interrupt`)
removes its own; one killed outright (SIGKILL, a lost machine) cannot, so every run first
removes the directories of runs whose process is gone.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
from pathlib import Path

_NAME = re.compile(r"^release-[a-z]+-(?P<pid>\d+)-")


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C (every `finally` runs), exit 128 + signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def terminate_like_interrupt() -> None:
    """SIGTERM and SIGHUP raise Terminated in the main thread, so cleanup runs as on Ctrl-C."""
    def handler(signum, frame):
        raise Terminated(signum)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def make_dir(what: str) -> Path:
    """A new working directory `release-<what>-<pid>-...` in $TMPDIR."""
    remove_orphans()
    return Path(tempfile.mkdtemp(prefix=f"release-{what}-{os.getpid()}-"))


def remove_orphans(root: str | os.PathLike | None = None) -> list[Path]:
    """Remove working directories left by runs whose process is gone; returns them."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _NAME.match(entry.name)
        if not m or not entry.is_dir() or _alive(int(m.group("pid"))):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True            # someone else's process
    return True
