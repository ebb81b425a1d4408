"""Cross-process sharing of machine-wide test resources (the Docker Engine, a loopback alias).

Several pytest sessions may run at once on one machine (engineers working in parallel in
the same repo). Whoever sets a resource up must not tear it down while another session
still uses it. Protocol, with flock(2) so that a killed process releases its locks:

    NAME.mutex   exclusive lock around every "set up?" / "tear down?" decision
    NAME.users   every user holds a shared lock (one per open file, even in one process)
    NAME.json    state written by the session that set the resource up (e.g. dockerd's pid)

The last user to leave (it gets the exclusive lock on NAME.users) tears the resource down if
NAME.json says a test session set it up. A session killed with -9 leaves NAME.json behind;
the next session then adopts the resource and its last user tears it down.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from pathlib import Path

LOCK_DIR = Path(os.environ.get("RELEASE_TEST_LOCK_DIR")
                or Path(tempfile.gettempdir()) / "release-tests-locks")


class SharedUse:
    def __init__(self, name: str):
        self.name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        self.mutex_path = LOCK_DIR / f"{self.name}.mutex"
        self.users_path = LOCK_DIR / f"{self.name}.users"
        self.state_path = LOCK_DIR / f"{self.name}.json"
        self._users_fd: int | None = None

    @contextlib.contextmanager
    def mutex(self):
        fd = os.open(self.mutex_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def joined(self) -> bool:
        return self._users_fd is not None

    def join(self) -> None:
        """Register as a user (call inside mutex())."""
        if self._users_fd is None:
            fd = os.open(self.users_path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_SH)
            self._users_fd = fd

    def leave(self) -> bool:
        """Unregister (call inside mutex()); True if no other user remains."""
        fd, self._users_fd = self._users_fd, None
        if fd is None:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
        finally:
            os.close(fd)

    def read_state(self) -> dict | None:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None

    def write_state(self, state: dict) -> None:
        self.state_path.write_text(json.dumps(state))

    def clear_state(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()


def pid_alive(pid: int) -> bool:
    """True if `pid` runs and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def pid_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
