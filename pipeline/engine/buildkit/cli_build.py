"""BuildKit through the docker CLI, for builds that need a session: secrets, buildx cache types.

`docker buildx build --load` where the buildx plugin is installed; otherwise
`DOCKER_BUILDKIT=1 docker build` on a CLI older than 23, which has BuildKit built in (newer
CLIs hand `docker build` to buildx and fail without the plugin). The CLI talks to the same
engine (DOCKER_HOST and DOCKER_CONFIG pass through), reads `.dockerignore` itself, and
opens the session that serves secrets and registry credentials to BuildKit.

A secret's value never reaches argv: `--secret id=ID,env=NAME` names the variable, and the
CLI, which inherits our environment, reads it. Progress comes as `--progress=plain` text on
stderr, turned into the same step lines as the Engine API's trace (plainlog.py).
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Callable, Mapping

from pipeline.engine.buildkit.engine_build import BuildKitFailed
from pipeline.engine.buildkit.failure import describe_failure
from pipeline.engine.buildkit.plainlog import PlainLogParser
from pipeline.engine.buildkit.steps import StepTracker
from pipeline.errors import ReleaseError
from pipeline.model.build_route import BUILDX, DockerCli
from pipeline.ui import redact

CANDIDATES = ("/usr/bin/docker", "/usr/local/bin/docker")
DEFAULT_HOST = "unix:///var/run/docker.sock"      # docker-py's default, as Engine() uses
PROBE_TIMEOUT = 20


def find_cli(env: Mapping[str, str] | None = None) -> DockerCli | None:
    """The docker CLI to build with: the first one with buildx, else the first older than 23
    (BuildKit built in), else the first found (which can do neither; choose.py says so)."""
    env = dict(os.environ if env is None else env)
    seen, found = set(), []
    for path in (shutil.which("docker", path=env.get("PATH")), *CANDIDATES):
        if not path or not os.access(path, os.X_OK):
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        version = _run([path, "version", "--format", "{{.Client.Version}}"], env)
        if version is None:
            continue
        buildx = _run([path, "buildx", "version"], env) is not None
        found.append(DockerCli(path, version.strip(), buildx))
    for cli in found:
        if cli.buildx:
            return cli
    for cli in found:
        if cli.legacy_buildkit:
            return cli
    return found[0] if found else None


def _run(argv: list[str], env: dict) -> str | None:
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=PROBE_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    # `docker version` exits 1 when the daemon does not answer, but prints the client part
    return done.stdout if done.stdout.strip() and (done.returncode == 0 or "version" in argv[1:2]) \
        else None


def build_argv(cli: DockerCli, way: str, *, context: Path, dockerfile: str, tag: str,
               build_args: dict[str, str], target: str | None, labels: dict[str, str],
               platform: str | None, secrets=(), cache_from=(), cache_to=(), nocache: bool = False,
               iidfile: str) -> list[str]:
    """The command line. Pure, so tests can check that no secret value is in it."""
    argv = [cli.path, "buildx", "build", "--load"] if way == BUILDX else [cli.path, "build"]
    argv += ["--progress=plain", "--iidfile", iidfile, "-t", tag,
             "-f", str(Path(context, dockerfile))]
    for key, value in {**build_args, "BUILDKIT_INLINE_CACHE": "1"}.items():
        argv += ["--build-arg", f"{key}={value}"]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    if target:
        argv += ["--target", target]
    if platform:
        argv += ["--platform", platform]
    if nocache:
        argv.append("--no-cache")
    for secret in secrets:
        source = f"env={secret.env}" if secret.env else f"src={secret.file}"
        argv += ["--secret", f"id={secret.id},{source}"]
    for entry in cache_from:
        text = entry.text
        if entry.type == "image":     # the reference, pinned to a digest once pulled
            text = f"type=registry,ref={entry.ref}" if way == BUILDX else entry.ref
        argv += ["--cache-from", _scoped(text, entry, platform)]
    for entry in cache_to:
        if entry.type != "inline":
            argv += ["--cache-to", _scoped(entry.text, entry, platform)]
    argv.append(str(context))
    return argv


def _scoped(text: str, entry, platform: str | None) -> str:
    """One platform of several gets its own GitHub Actions cache scope (unless the spec names
    one), so that the platforms' builds do not overwrite each other's cache."""
    if entry.type == "gha" and platform and "scope=" not in text:
        return f"{text},scope={platform.replace('/', '-')}"
    return text


def build_via_cli(cli: DockerCli, way: str, *, context: Path, dockerfile: str, tag: str,
                  build_args: dict[str, str], target: str | None, labels: dict[str, str],
                  platform: str | None = None, secrets=(), cache_from=(), cache_to=(),
                  nocache: bool = False, on_line: Callable[[str], None] = lambda line: None,
                  env: Mapping[str, str] | None = None, dockerfile_shown: str | None = None) -> str:

    run_env = cli_env(os.environ if env is None else env)
    with tempfile.TemporaryDirectory(prefix=f"release-build-{os.getpid()}-") as tmp:
        iidfile = os.path.join(tmp, "iid")
        argv = build_argv(cli, way, context=context, dockerfile=dockerfile, tag=tag,
                          build_args=build_args, target=target, labels=labels, platform=platform,
                          secrets=secrets, cache_from=cache_from, cache_to=cache_to,
                          nocache=nocache, iidfile=iidfile)
        tracker, parser = StepTracker(on_line), PlainLogParser()
        with _stop_child_on_termination():
            try:
                # bytes, split on "\n" only: text mode would also split on the "\r" of
                # progress bars
                proc = subprocess.Popen(argv, env=run_env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            except OSError as exc:
                raise ReleaseError(f"cannot run {cli.path}: {exc}") from None
            try:
                for line in _lines(proc, quiet=lambda: _feed(tracker, parser.flush())):
                    _feed(tracker, parser.feed(line))     # the rest: parser.unparsed
                code = proc.wait()
                _feed(tracker, parser.flush())
                tracker.flush()
            except BaseException:
                _stop(proc)
                raise
        if code != 0:
            failure = tracker.failure()
            error = _cli_error([redact.redact(line) for line in parser.unparsed]) \
                or f"{Path(cli.path).name} exited with {code}"
            raise BuildKitFailed(describe_failure(Path(context, dockerfile), error, failure,
                                                  dockerfile_shown))
        on_line(tracker.summary())
        try:
            return Path(iidfile).read_text().strip()
        except OSError:
            raise ReleaseError(f"{cli.path} built the image but wrote no image id") from None


def cli_env(env: Mapping[str, str]) -> dict[str, str]:
    """The CLI's environment: the engine docker-py talks to (DOCKER_HOST, or its default
    socket), never a docker context that points elsewhere; BuildKit on."""
    run_env = dict(env)
    run_env.pop("DOCKER_CONTEXT", None)
    if not run_env.get("DOCKER_HOST"):
        run_env["DOCKER_HOST"] = DEFAULT_HOST
    run_env["DOCKER_BUILDKIT"] = "1"
    return run_env


def _feed(tracker, status) -> None:
    if status is not None:
        tracker.feed(status)


def _lines(proc: subprocess.Popen, *, quiet: Callable[[], None], every: float = 1.0):
    """The child's output lines; `quiet()` is called each `every` seconds without one, so a
    long silent step still shows that it started."""
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.put(raw)
        lines.put(None)

    threading.Thread(target=pump, name="docker-cli-output", daemon=True).start()
    while True:
        try:
            raw = lines.get(timeout=every)
        except queue.Empty:
            quiet()
            continue
        if raw is None:
            return
        yield raw.decode("utf-8", errors="replace").rstrip("\n")


def _stop(proc: subprocess.Popen) -> None:
    """End the CLI (its build stops with it) and wait for it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _stop_child_on_termination():
    """SIGTERM/SIGHUP (CI cancellation, `timeout`) while the CLI builds: raise, so that the
    child is stopped and the temporary directory goes, as on Ctrl-C. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _cli_error(lines: list[str]) -> str | None:
    """The CLI's own error text (`error: failed to solve: ...`), last one first."""
    for line in reversed(lines):
        low = line.lower()
        if low.startswith(("error", "failed")) or "error:" in low:
            return line.split(":", 1)[1].strip() if low.startswith("error:") else line
    return lines[-1] if lines else None
