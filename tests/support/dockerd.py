"""Get a working Docker Engine for the tests: use the one that answers, or start `dockerd`.

    handle = ensure_engine()        # raises EngineUnavailable with the daemon's log tail
    handle.client                   # docker.DockerClient
    handle.started_by_us            # True if this session started dockerd
    handle.stop()                   # leave; stops dockerd if a test session started it and
                                    # no other test session still uses it

A dockerd that was running before the tests is never stopped. Concurrent pytest sessions on
one machine share the engine (see support/locks.py): the last one to finish stops a dockerd
that a test session started, so one session's teardown never pulls the engine out from
under another.

Respects DOCKER_HOST: if it names a unix socket that does not answer, `dockerd --host` is
started on that socket; a tcp:// or ssh:// DOCKER_HOST that does not answer is an error
(we never start a daemon for a remote host).

Measured on Debian 12 (docker.io 20.10.24, kernel 6.x, root, no systemd): plain `dockerd`
comes up with the overlay2 driver in ~0.5 s; `--storage-driver vfs` works too (slower builds).

Tuning through the environment (all optional):
    RELEASE_TEST_DOCKERD_TIMEOUT   seconds to wait for a started daemon (default 60)
    RELEASE_TEST_STORAGE_DRIVER    e.g. "vfs"; default: dockerd's choice (overlay2 here),
                                   with one retry on vfs if the default does not come up
    RELEASE_TEST_DOCKERD_ARGS      extra dockerd flags (shell-split), e.g. "--iptables=false"
"""

from __future__ import annotations

import atexit
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import requests.exceptions

from .locks import SharedUse, pid_alive, pid_cmdline

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
SYSTEM_PIDFILE = Path("/var/run/docker.pid")
CLIENT_TIMEOUT = 300


class EngineUnavailable(RuntimeError):
    """No Docker Engine answers and none could be started. The message says why."""


@dataclass
class EngineHandle:
    client: docker.DockerClient
    base_url: str
    shared: SharedUse | None = None
    started_by_us: bool = False
    process: subprocess.Popen | None = None
    workdir: Path | None = None
    log_path: Path | None = None
    pidfile: Path | None = None
    argv: list[str] = field(default_factory=list)
    startup_seconds: float = 0.0
    _stopped: bool = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def info(self) -> dict:
        return self.client.info()

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines) if self.log_path else ""

    def stop(self, timeout: float = 30.0) -> None:
        """Close the client and leave; the last test session stops a test-started dockerd."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self.client.close()
        except Exception:
            pass
        if self.shared is None:
            return
        with self.shared.mutex():
            if not self.shared.leave():
                return  # another test session still uses the engine
            state = self.shared.read_state()
            if not state:
                return  # the engine was not started by a test session: leave it alone
            pid = int(state.get("pid", 0))
            if self.process is not None and self.process.pid == pid:
                _terminate(self.process, timeout)
                ok = self.process.returncode == 0
            else:
                ok = _terminate_pid(pid, timeout)
            self.shared.clear_state()
            workdir = state.get("workdir")
            if ok and workdir:  # keep the log if the shutdown went wrong
                shutil.rmtree(workdir, ignore_errors=True)


def _tail(path: Path | None, lines: int = 40) -> str:
    if not path or not Path(path).exists():
        return "(no log)"
    text = Path(path).read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _terminate(proc: subprocess.Popen, timeout: float) -> None:
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def _terminate_pid(pid: int, timeout: float) -> bool:
    """Stop a dockerd that is not our child (started by another, finished, session)."""
    if not pid or not pid_alive(pid) or "dockerd" not in pid_cmdline(pid):
        return True
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return True
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    return False


def _ping(base_url: str | None = None) -> docker.DockerClient | None:
    """A client that answers ping, or None. base_url None means docker.from_env()."""
    try:
        client = docker.from_env(timeout=10) if base_url is None else docker.DockerClient(
            base_url=base_url, timeout=10)
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
        return None
    try:
        ok = client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
        ok = False
    client.close()
    if not ok:
        return None
    # The probe used a short timeout; hand out a client with a generous one for builds/pushes.
    if base_url is None:
        return docker.from_env(timeout=CLIENT_TIMEOUT)
    return docker.DockerClient(base_url=base_url, timeout=CLIENT_TIMEOUT)


def _pid_from(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def _wait_for(base_url: str, deadline: float, proc: subprocess.Popen | None = None):
    while time.monotonic() < deadline:
        client = _ping(base_url)
        if client is not None:
            return client
        if proc is not None and proc.poll() is not None:
            return None
        time.sleep(0.25)
    return None


def _dockerd_binary() -> str:
    for candidate in (shutil.which("dockerd"), "/usr/sbin/dockerd", "/usr/bin/dockerd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise EngineUnavailable(
        "No Docker Engine answers and `dockerd` is not installed "
        "(apt-get install -y docker.io; .ci/run and scripts/dev-setup.sh do it)")


def ensure_engine(timeout: float | None = None) -> EngineHandle:
    """Return a handle on a Docker Engine that answers ping, starting dockerd if needed."""
    timeout = float(timeout or os.environ.get("RELEASE_TEST_DOCKERD_TIMEOUT", 60))
    docker_host = os.environ.get("DOCKER_HOST") or ""
    base_url = docker_host or DEFAULT_SOCKET
    shared = SharedUse(f"engine-{base_url}")
    with shared.mutex():
        shared.join()
        try:
            return _ensure_locked(shared, base_url, docker_host, timeout)
        except BaseException:
            shared.leave()
            raise


def _ensure_locked(shared: SharedUse, base_url: str, docker_host: str,
                   timeout: float) -> EngineHandle:
    state = shared.read_state()
    if state and not pid_alive(int(state.get("pid", 0))):
        shared.clear_state()  # a test-started dockerd that died or was stopped by hand

    client = _ping(None)  # honours DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH
    if client is not None:
        return EngineHandle(client=client, base_url=base_url, shared=shared)

    if not base_url.startswith("unix://"):
        raise EngineUnavailable(
            f"DOCKER_HOST={docker_host} does not answer; the tests start a daemon only on a "
            "local unix socket. Unset DOCKER_HOST or start that engine.")

    # A system dockerd may be starting right now (e.g. launched by the package's init script).
    if base_url == DEFAULT_SOCKET and (pid := _pid_from(SYSTEM_PIDFILE)):
        client = _wait_for(base_url, time.monotonic() + timeout)
        if client is not None:
            return EngineHandle(client=client, base_url=base_url, shared=shared)
        raise EngineUnavailable(
            f"dockerd (pid {pid} from {SYSTEM_PIDFILE}) is running but {base_url} did not "
            f"answer within {timeout:.0f}s; stop it or fix it")

    if os.geteuid() != 0:
        raise EngineUnavailable(
            f"No Docker Engine answers on {base_url} and starting dockerd needs root")

    binary = _dockerd_binary()
    extra = shlex.split(os.environ.get("RELEASE_TEST_DOCKERD_ARGS", ""))
    forced_driver = os.environ.get("RELEASE_TEST_STORAGE_DRIVER")
    attempts = ([["--storage-driver", forced_driver]] if forced_driver
                else [[], ["--storage-driver", "vfs"]])

    failures = []
    for attempt, driver_args in enumerate(attempts, 1):
        workdir = Path(tempfile.mkdtemp(prefix="release-dockerd-"))
        log_path = workdir / "dockerd.log"
        pidfile = workdir / "dockerd.pid"
        argv = [binary, "--host", base_url, "--pidfile", str(pidfile), *driver_args, *extra]
        started = time.monotonic()
        with open(log_path, "wb") as log:
            # New session: a Ctrl-C in pytest must not kill the daemon mid-test; teardown does.
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        client = _wait_for(base_url, started + timeout, proc)
        if client is not None:
            shared.write_state({"pid": proc.pid, "base_url": base_url, "workdir": str(workdir),
                                "log": str(log_path), "argv": argv})
            handle = EngineHandle(client=client, base_url=base_url, shared=shared,
                                  started_by_us=True, process=proc, workdir=workdir,
                                  log_path=log_path, pidfile=pidfile, argv=argv,
                                  startup_seconds=time.monotonic() - started)
            atexit.register(handle.stop)  # safety net if the session teardown never runs
            return handle
        state = (f"exited with code {proc.returncode}" if proc.poll() is not None
                 else f"did not answer within {timeout:.0f}s")
        _terminate(proc, 20)
        failures.append(f"attempt {attempt}: `{shlex.join(argv)}` {state}; log {log_path}, "
                        f"last lines:\n{_tail(log_path, 25)}")

    raise EngineUnavailable("Could not start a Docker Engine.\n" + "\n\n".join(failures))
