#!/usr/bin/env python3
"""Fan-out benchmark: `release build-push` / `release promote` against the docker CLI and skopeo.

    python3 bench/fanout.py                      # --runs 3, prints the table
    python3 bench/fanout.py --runs 5 --json out.json

One image (FROM scratch, three COPY layers of --layer-mb MB of random data, built once),
3 registries x 4 tags (1.2.3, 1.2, 1, latest). Every repetition starts FRESH registries
(new storage directories, new ports: the daemon remembers per registry host which layers it
pushed), waits until they answer, and only then starts the clocks. Figures, in seconds:

    single         one `docker push` of one tag to one registry (compress + upload once)
    loop           `docker tag` + `docker push` for every registry and tag (12 pushes)
    loop-rerun     the same loop again right after, nothing left to do
    release        `release build-push 1.2.3 --no-build --quiet --json`, same 3 registries
    release-rerun  the same again right after, nothing left to do
    promote        `release promote 1.2.3 --from r1 --to r2x` into a fresh registry
    skopeo         `skopeo copy --all` of r1's 1.2.3 into another fresh registry

Each figure is the median over --runs repetitions. After every figure the registries are asked
(GET /v2/<repo>/manifests/<tag>, all four manifest media types accepted) what each reference
resolves to; a repetition where they do not all hold one digest marks the figure INVALID.
Ratios of medians are compared with their targets and printed PASS / FAIL.

Only the standard library; the product is driven through its `release` command line, run as
an installed package runs: with Python's bytecode cache (PYTHONDONTWRITEBYTECODE is dropped
from its environment, so the untimed first call compiles the sources once; pip compiles
them at install time).
Everything started here is stopped (registries, a dockerd if none was running, temp dirs);
local tags made by the loops and by `release`, and at the end the bench image, are removed.

Exit codes: 0 every target PASS; 1 a target FAIL, INVALID or not available; 2 the bench could
not run (missing tool, no engine, ...).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VERSION = "1.2.3"
TAGS = ("1.2.3", "1.2", "1", "latest")
REPOSITORY = "bench/app"
N_REGISTRIES = 3
N_LAYERS = 3

MANIFEST_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)

FIGURES = ("loop", "release", "single", "loop-rerun", "release-rerun", "promote", "skopeo")

# (name, numerator, denominator, operator, target)
RATIOS = (
    ("loop/release", "loop", "release", ">=", 2.5),
    ("release/single", "release", "single", "<=", 1.3),
    ("loop-rerun/release-rerun", "loop-rerun", "release-rerun", ">=", 4.0),
    ("promote/skopeo", "promote", "skopeo", "<=", 1.0),
)

OK, INVALID, NA = "ok", "INVALID", "n/a"
STEP_TIMEOUT = 300  # seconds; a timed command that hangs longer is killed and marked INVALID


class BenchError(RuntimeError):
    """The bench cannot go on (missing tool, engine down, registry would not start)."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tail(text: str | bytes | None, lines: int = 6) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return " | ".join((text or "").strip().splitlines()[-lines:])


def run(argv, *, check=True, env=None, timeout=600) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise BenchError(f"`{' '.join(map(str, argv))}` exited {proc.returncode}: "
                         f"{tail(proc.stderr or proc.stdout)}")
    return proc


def sync() -> None:
    """Flush dirty pages (earlier registry writes) so they do not land inside the next clock."""
    try:
        os.sync()
    except OSError:
        pass


# --- the Docker Engine ---------------------------------------------------------------------

class Engine:
    """The docker CLI; starts `dockerd` (default flags) only if no engine answers."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "dockerd.log"

    @staticmethod
    def answers() -> bool:
        try:
            return run(["docker", "version", "--format", "{{.Server.Version}}"],
                       check=False, timeout=20).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def ensure(self) -> None:
        if shutil.which("docker") is None:
            raise BenchError("the docker CLI is not installed (apt-get install -y docker.io)")
        if self.answers():
            return
        pidfile = Path("/var/run/docker.pid")
        if pidfile.exists():  # a system dockerd may be starting right now: give it a chance
            if self._wait(30):
                return
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        if not os.access(dockerd, os.X_OK):
            raise BenchError("no Docker Engine answers and dockerd is not installed")
        log("no Docker Engine answers: starting dockerd")
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen([dockerd], stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        if not self._wait(60):
            self.stop()
            raise BenchError(f"dockerd did not answer within 60s; log: {tail(self.log_path.read_bytes(), 15)}")

    def _wait(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.answers():
                return True
            if self.proc is not None and self.proc.poll() is not None:
                return False
            time.sleep(0.5)
        return False

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        log("stopping the dockerd this bench started")
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    @staticmethod
    def versions() -> dict:
        out = run(["docker", "version", "--format",
                   "{{.Client.Version}} {{.Server.Version}} {{.Server.APIVersion}}"], check=False)
        parts = out.stdout.split()
        return dict(zip(("client", "server", "api"), parts)) if len(parts) == 3 else {}


# --- local registries ----------------------------------------------------------------------

_used_ports: set[int] = set()


def free_port() -> int:
    """A free loopback port not used earlier in this process (new host for the daemon)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _used_ports:
            _used_ports.add(port)
            return port
    raise BenchError("no free loopback port")


@dataclass
class Registry:
    """One `docker-registry serve` (CNCF distribution v2.8) with its own storage and port."""
    name: str
    workdir: Path
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ref(self, tag: str) -> str:
        return f"{self.host}/{REPOSITORY}:{tag}"

    def spawn(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        storage = self.workdir / "storage"
        storage.mkdir(exist_ok=True)
        self.port = free_port()
        config = self.workdir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "OTEL_"))}
        with open(self.workdir / "registry.log", "ab") as out:
            self.proc = subprocess.Popen(["docker-registry", "serve", str(config)],
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self) -> str:
        path = self.workdir / "registry.log"
        return tail(path.read_bytes(), 8) if path.exists() else ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def manifest_digest(self, tag: str) -> str | None:
        """Docker-Content-Digest of /v2/REPO/manifests/TAG (checked against the body); None if 404."""
        req = urllib.request.Request(f"http://{self.host}/v2/{REPOSITORY}/manifests/{tag}",
                                     headers={"Accept": ", ".join(MANIFEST_MEDIA_TYPES)})
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                body = r.read()
                header = r.headers.get("Docker-Content-Digest")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        computed = "sha256:" + hashlib.sha256(body).hexdigest()
        if header and header != computed:
            return f"MISMATCH(header {header}, body {computed})"
        return header or computed


def start_registries(regs: list[Registry], timeout: float = 20.0) -> None:
    """Start them all at once, then wait until each answers /v2/ (retry a lost port race)."""
    for reg in regs:
        reg.spawn()
    pending = list(regs)
    deadline = time.monotonic() + timeout
    retries = 0
    while pending:
        for reg in list(pending):
            if reg.proc is not None and reg.proc.poll() is not None:
                if "address already in use" in reg.log_tail() and retries < 5:
                    retries += 1
                    reg.spawn()
                    continue
                raise BenchError(f"registry {reg.name} exited: {reg.log_tail()}")
            if reg.ready():
                pending.remove(reg)
        if pending and time.monotonic() > deadline:
            raise BenchError(f"registries did not answer within {timeout:.0f}s: "
                             + ", ".join(f"{r.name} ({r.log_tail()})" for r in pending))
        if pending:
            time.sleep(0.05)


def digests(regs: list[Registry], tags=TAGS) -> dict[str, str | None]:
    found = {}
    for reg in regs:
        for tag in tags:
            try:
                found[reg.ref(tag)] = reg.manifest_digest(tag)
            except (urllib.error.URLError, OSError) as exc:
                found[reg.ref(tag)] = f"ERROR({exc})"
    return found


def one_digest(found: dict[str, str | None]) -> tuple[bool, str]:
    """(all references resolve to one digest, a note)."""
    values = set(found.values())
    missing = [ref for ref, d in found.items() if d is None]
    if missing:
        return False, f"not found: {', '.join(missing)}"
    if len(values) != 1 or not next(iter(values)).startswith("sha256:"):
        return False, "digests differ: " + ", ".join(f"{r}={d}" for r, d in found.items())
    return True, next(iter(values))


# --- the bench -----------------------------------------------------------------------------

@dataclass
class Figure:
    name: str
    seconds: list[float] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    unavailable: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.unavailable:
            return NA
        if self.invalid or not self.seconds:
            return INVALID
        return OK

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    def to_dict(self) -> dict:
        return {"status": self.status, "median": self.median, "seconds": self.seconds,
                **({"invalid": self.invalid} if self.invalid else {}),
                **({"unavailable": self.unavailable} if self.unavailable else {}),
                **({"notes": self.notes} if self.notes else {})}


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="release-bench-fanout-"))
        self.engine = Engine(self.tmp)
        self.release_bin = args.release
        self.image_name = f"release-bench-{secrets.token_hex(4)}"
        self.base_ref = f"{self.image_name}:{VERSION}"
        self.image_id: str | None = None
        self.registries: list[Registry] = []
        self.figures = {name: Figure(name) for name in FIGURES}
        self.reps: list[dict] = []
        self.promote_available = False
        self.promote_why = ""
        self.docker_env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        self.release_env = {k: v for k, v in os.environ.items()
                            if k not in ("RELEASE_CONFIG", "PYTHONDONTWRITEBYTECODE")}

    # -- set-up / tear-down -------------------------------------------------------------------
    def preflight(self) -> None:
        for tool, pkg in (("docker-registry", "docker-registry"), ("skopeo", "skopeo")):
            if shutil.which(tool) is None:
                raise BenchError(f"`{tool}` is not installed (apt-get install -y {pkg})")
        if not (os.access(self.release_bin, os.X_OK) or shutil.which(self.release_bin)):
            raise BenchError(f"release CLI not found at {self.release_bin} "
                             "(pip install -e . into .venv, or pass --release)")
        self.engine.ensure()
        proc = run([self.release_bin, "promote", "--help"], check=False, env=self.release_env)
        self.promote_available = proc.returncode == 0
        if not self.promote_available:
            self.promote_why = "`release promote` not available: " + tail(proc.stderr or proc.stdout, 1)
            self.figures["promote"].unavailable = self.promote_why
            log(self.promote_why)

    def build_image(self) -> None:
        ctx = self.tmp / "context"
        ctx.mkdir()
        size = self.args.layer_mb * 1024 * 1024
        lines = ["FROM scratch"]
        for i in range(1, N_LAYERS + 1):
            with open(ctx / f"layer{i}.bin", "wb") as out:
                left = size
                while left:
                    chunk = min(left, 4 * 1024 * 1024)
                    out.write(os.urandom(chunk))
                    left -= chunk
            lines.append(f"COPY layer{i}.bin /layer{i}.bin")
        (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
        log(f"building {self.base_ref}: FROM scratch + {N_LAYERS} x {self.args.layer_mb} MB random")
        run(["docker", "build", "-q", "--rm", "--force-rm", "-t", self.base_ref, str(ctx)],
            env=self.docker_env)
        self.image_id = run(["docker", "image", "inspect", "--format", "{{.Id}}",
                             self.base_ref]).stdout.strip()
        shutil.rmtree(ctx, ignore_errors=True)

    def drop_extra_refs(self) -> None:
        """Remove every tag / digest reference of the bench image except NAME:1.2.3."""
        if not self.image_id:
            return
        proc = run(["docker", "image", "inspect", "--format",
                    "{{json .RepoTags}}\t{{json .RepoDigests}}", self.image_id], check=False)
        if proc.returncode != 0:
            return
        tags_json, digests_json = proc.stdout.strip().split("\t")
        refs = [r for r in (json.loads(tags_json) or []) + (json.loads(digests_json) or [])
                if r != self.base_ref]
        for i in range(0, len(refs), 50):
            run(["docker", "image", "rm", *refs[i:i + 50]], check=False)

    def remove_image(self) -> None:
        if not self.image_id:
            return
        self.drop_extra_refs()
        proc = run(["docker", "image", "rm", self.base_ref], check=False)
        if proc.returncode != 0:
            run(["docker", "image", "rm", "-f", self.image_id], check=False)
        self.image_id = None

    def stop_registries(self) -> None:
        for reg in self.registries:
            reg.stop()
            shutil.rmtree(reg.workdir, ignore_errors=True)
        self.registries = []

    def cleanup(self) -> None:
        self.stop_registries()
        try:
            self.remove_image()
        finally:
            self.engine.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- configs ------------------------------------------------------------------------------
    def write_config(self, path: Path, regs: list[Registry]) -> Path:
        lines = ["version: 1", "image:", f"  name: {self.image_name}", "  context: .",
                 "tags:", "  - type=semver,pattern={{version}}",
                 "  - type=semver,pattern={{major}}.{{minor}}", "  - type=semver,pattern={{major}}",
                 "flavor:", "  - latest=auto", "registries:"]
        for reg in regs:
            lines += [f"  - name: {reg.name}", "    type: generic", f"    registry: {reg.host}",
                      f"    repository: {REPOSITORY}"]
        path.write_text("\n".join(lines) + "\n")
        # release.yml must name an existing Dockerfile even with --no-build (never built here).
        (path.parent / "Dockerfile").write_text("FROM scratch\n")
        return path

    # -- timed steps --------------------------------------------------------------------------
    def timed(self, argv, env=None) -> tuple[float, subprocess.CompletedProcess]:
        sync()
        start = time.perf_counter()
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  env=env, timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired as exc:  # killed: recorded as INVALID, the bench goes on
            proc = subprocess.CompletedProcess(argv, -1, exc.stdout or "",
                                               f"timed out after {STEP_TIMEOUT}s")
        return time.perf_counter() - start, proc

    def record(self, name: str, rep: int, seconds: float, problem: str | None) -> None:
        fig = self.figures[name]
        fig.seconds.append(round(seconds, 4))
        if problem:
            fig.invalid.append(f"run {rep + 1}: {problem}")
        log(f"  run {rep + 1} {name:<14} {seconds:7.2f} s" + (f"  INVALID: {problem}" if problem else ""))

    def docker_loop(self, regs: list[Registry]) -> tuple[float, str | None]:
        sync()
        start = time.perf_counter()
        problem = None
        for reg in regs:
            for tag in TAGS:
                t = subprocess.run(["docker", "tag", self.base_ref, reg.ref(tag)],
                                   stdin=subprocess.DEVNULL, capture_output=True, text=True)
                p = subprocess.run(["docker", "push", reg.ref(tag)], stdin=subprocess.DEVNULL,
                                   capture_output=True, text=True)
                for proc, what in ((t, "tag"), (p, "push")):
                    if proc.returncode != 0 and problem is None:
                        problem = f"docker {what} {reg.ref(tag)}: {tail(proc.stderr or proc.stdout, 2)}"
        return time.perf_counter() - start, problem

    def check_refs(self, regs: list[Registry]) -> tuple[str | None, str | None]:
        """(problem, digest): all 12 references must resolve to one digest."""
        ok, note = one_digest(digests(regs))
        return (None, note) if ok else (note, None)

    def run_release(self, config: Path, regs: list[Registry]) -> tuple[float, str | None, dict]:
        seconds, proc = self.timed([self.release_bin, "-c", str(config), "build-push", VERSION,
                                    "--no-build", "--quiet", "--json"], env=self.release_env)
        info: dict = {"exit": proc.returncode}
        problem = None
        try:
            report = json.loads(proc.stdout)
            statuses: dict[str, int] = {}
            for res in report.get("results", []):
                statuses[res.get("status")] = statuses.get(res.get("status"), 0) + 1
            info.update(statuses=statuses, digest=report.get("digest"), ok=report.get("ok"))
        except (json.JSONDecodeError, AttributeError):
            report = None
        if proc.returncode != 0:
            problem = f"exit {proc.returncode}: {tail(proc.stderr or proc.stdout, 3)}"
        elif report is None:
            problem = "no JSON report on stdout"
        refs_problem, digest = self.check_refs(regs)
        problem = problem or refs_problem
        info["registry_digest"] = digest
        return seconds, problem, info

    def copy_check(self, src: Registry, dst: Registry) -> str | None:
        try:
            want, got = src.manifest_digest(VERSION), dst.manifest_digest(VERSION)
        except (urllib.error.URLError, OSError) as exc:
            return f"could not ask the registries: {exc}"
        if want is None:
            return f"{src.ref(VERSION)} (the source) not found"
        if got is None:
            return f"{dst.ref(VERSION)} not found after the copy"
        if got != want:
            return f"{dst.ref(VERSION)} is {got}, source {want}"
        return None

    # -- one repetition -----------------------------------------------------------------------
    def repetition(self, rep: int) -> None:
        workdir = self.tmp / f"run{rep + 1}"
        loop_regs = [Registry(f"l{i}", workdir / f"l{i}") for i in range(1, N_REGISTRIES + 1)]
        rel_regs = [Registry(f"r{i}", workdir / f"r{i}") for i in range(1, N_REGISTRIES + 1)]
        single = Registry("s1", workdir / "s1")
        promote_dst = Registry("r2x", workdir / "r2x")
        skopeo_dst = Registry("r3x", workdir / "r3x")
        self.registries = loop_regs + rel_regs + [single, promote_dst, skopeo_dst]
        t0 = time.perf_counter()
        start_registries(self.registries)
        reg_start = time.perf_counter() - t0
        release_yml = self.write_config(workdir / "release.yml", rel_regs)
        promote_yml = self.write_config(workdir / "promote.yml", rel_regs + [promote_dst])
        # Untimed: the tag the single push uses, and a check that release.yml gives our 4 tags.
        run(["docker", "tag", self.base_ref, single.ref(VERSION)])
        if rep == 0:
            got = run([self.release_bin, "-c", str(release_yml), "tags", VERSION],
                      env=self.release_env).stdout.split()
            if tuple(got) != TAGS:
                raise BenchError(f"release.yml gives tags {got}, the bench expects {list(TAGS)}")

        detail: dict = {"run": rep + 1, "registry_start_seconds": round(reg_start, 3),
                        "loadavg_before": os.getloadavg()}

        def do_single():
            seconds, proc = self.timed(["docker", "push", single.ref(VERSION)])
            problem = None if proc.returncode == 0 else f"docker push: {tail(proc.stderr, 2)}"
            if problem is None and digests([single], (VERSION,))[single.ref(VERSION)] is None:
                problem = f"{single.ref(VERSION)} not found after the push"
            self.record("single", rep, seconds, problem)

        def do_loop():
            for name in ("loop", "loop-rerun"):
                seconds, problem = self.docker_loop(loop_regs)
                refs_problem, digest = self.check_refs(loop_regs)
                detail[f"{name}_digest"] = digest
                self.record(name, rep, seconds, problem or refs_problem)

        def do_release():
            for name in ("release", "release-rerun"):
                seconds, problem, info = self.run_release(release_yml, rel_regs)
                detail[name] = info
                self.record(name, rep, seconds, problem)

        def do_promote():
            if not self.promote_available:
                return
            seconds, proc = self.timed([self.release_bin, "-c", str(promote_yml), "promote", VERSION,
                                        "--from", "r1", "--to", "r2x"], env=self.release_env)
            problem = (f"exit {proc.returncode}: {tail(proc.stderr or proc.stdout, 3)}"
                       if proc.returncode != 0 else self.copy_check(rel_regs[0], promote_dst))
            detail["promote_tags"] = {ref.rsplit(":", 1)[1]: d
                                      for ref, d in digests([promote_dst]).items()}
            self.record("promote", rep, seconds, problem)

        def do_skopeo():
            seconds, proc = self.timed(["skopeo", "copy", "--all", "--src-tls-verify=false",
                                        "--dest-tls-verify=false",
                                        f"docker://{rel_regs[0].ref(VERSION)}",
                                        f"docker://{skopeo_dst.ref(VERSION)}"])
            problem = (f"exit {proc.returncode}: {tail(proc.stderr or proc.stdout, 3)}"
                       if proc.returncode != 0 else self.copy_check(rel_regs[0], skopeo_dst))
            self.record("skopeo", rep, seconds, problem)

        # Rotate the three push blocks across repetitions so that no figure always goes first
        # (cold caches) or last (dirty pages, growing daemon metadata); the copies need r1 full.
        blocks = [("single", do_single), ("loop", do_loop), ("release", do_release)]
        k = rep % len(blocks)
        blocks = blocks[k:] + blocks[:k]
        copies = [("promote", do_promote), ("skopeo", do_skopeo)]
        if rep % 2:
            copies.reverse()
        if not self.promote_available:
            copies = [c for c in copies if c[0] != "promote"]
        detail["order"] = [name for name, _ in blocks + copies]
        log(f"run {rep + 1}/{self.args.runs}: 9 fresh registries up in {reg_start:.2f}s (not timed); "
            f"order {' -> '.join(detail['order'])}")
        for _, fn in blocks + copies:
            fn()
        detail["loadavg_after"] = os.getloadavg()
        self.reps.append(detail)
        self.stop_registries()
        self.drop_extra_refs()

    # -- results ------------------------------------------------------------------------------
    def ratios(self) -> list[dict]:
        return [ratio_entry(name, self.figures[num], self.figures[den], op, target)
                for name, num, den, op, target in RATIOS]

    def table(self, ratios: list[dict], wall: float) -> str:
        lines = [f"release bench/fanout: {N_REGISTRIES} registries x {len(TAGS)} tags, image "
                 f"{N_LAYERS} x {self.args.layer_mb} MB random layers, {self.args.runs} runs, "
                 f"fresh registries per run",
                 "", f"{'figure':<15}{'median s':>10}  {'spread':>7}  {'runs (s)':<28}status"]
        for name in FIGURES:
            fig = self.figures[name]
            if fig.status == NA:
                lines.append(f"{name:<15}{'-':>10}  {'-':>7}  {'-':<28}not available")
                continue
            med = fig.median
            spread = (f"{(max(fig.seconds) - min(fig.seconds)) / med * 100:6.0f}%"
                      if med else "-")
            runs = " ".join(f"{s:.2f}" for s in fig.seconds)
            lines.append(f"{name:<15}{med if med is not None else float('nan'):>10.2f}  {spread:>7}  "
                         f"{runs:<28}{fig.status}")
        lines += ["", f"{'ratio':<27}{'value':>7}  {'target':<9}result"]
        for r in ratios:
            value = f"{r['value']:.2f}" if r["value"] is not None else "-"
            result = "not available" if r["result"] == NA else r["result"]
            lines.append(f"{r['name']:<27}{value:>7}  {r['op'] + ' ' + str(r['target']):<9}{result}")
        problems = [f"  {name}: {p}" for name in FIGURES for p in self.figures[name].invalid]
        differ = [d["run"] for d in self.reps if d.get("loop_digest") and d.get("release", {}).get(
            "registry_digest") and d["loop_digest"] != d["release"]["registry_digest"]]
        if differ:
            problems.append(f"  release pushed another digest than `docker push` of the same image "
                            f"(runs {', '.join(map(str, differ))}): different layer compression")
        if self.promote_why:
            problems.append(f"  promote: {self.promote_why}")
        if problems:
            lines += ["", "notes:"] + problems
        starts = [d["registry_start_seconds"] for d in self.reps]
        if starts:
            lines += ["", f"registry start-up (9 per run, excluded from every figure): "
                          f"{', '.join(f'{s:.2f}' for s in starts)} s; "
                          f"load average before each run: "
                          f"{', '.join('%.2f' % d['loadavg_before'][0] for d in self.reps)}"]
        lines.append(f"total wall time {wall:.1f} s")
        return "\n".join(lines)

    def to_json(self, ratios: list[dict], wall: float, started: str) -> dict:
        head = run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], check=False).stdout.strip()
        version = run([self.release_bin, "--version"], check=False, env=self.release_env).stdout.strip()
        return {
            "bench": "fanout", "started": started, "wall_seconds": round(wall, 2),
            "runs": self.args.runs, "layers": N_LAYERS, "layer_mb": self.args.layer_mb,
            "registries": N_REGISTRIES, "tags": list(TAGS), "version": VERSION,
            "promote_available": self.promote_available,
            "env": {"release": version, "git_head": head, "docker": Engine.versions(),
                    "python": platform.python_version(), "cpus": os.cpu_count(),
                    "kernel": platform.release()},
            "figures": {name: fig.to_dict() for name, fig in self.figures.items()},
            "ratios": ratios, "per_run": self.reps,
        }


def parse_args(argv=None):
    default_release = REPO_ROOT / ".venv" / "bin" / "release"
    beside = Path(sys.executable).parent / "release"
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="repetitions per figure (>= 3; default 3)")
    p.add_argument("--json", dest="json_file", metavar="FILE", help="write the raw numbers here")
    p.add_argument("--layer-mb", type=int, default=20, help="MB of random data per layer (default 20)")
    p.add_argument("--release", default=str(beside if beside.exists() else default_release),
                   help=f"the release CLI (default: beside this python, else {default_release})")
    args = p.parse_args(argv)
    if args.runs < 3:
        p.error("--runs must be at least 3 (each figure is a median)")
    if args.layer_mb < 1:
        p.error("--layer-mb must be at least 1")
    return args


def ratio_entry(name: str, a: "Figure", b: "Figure", op: str, target: float | None,
                words: tuple[str, str] = ("PASS", "FAIL")) -> dict:
    """One ratio of two figures' medians, judged against its target (shared by the benches):
    `words` for met / missed, INVALID when a figure is, "info" without a target."""
    entry = {"name": name, "op": op, "target": target, "value": None}
    if NA in (a.status, b.status):
        entry["result"] = NA
    elif a.median is None or b.median is None or b.median <= 0:
        entry["result"] = INVALID
    else:
        value = a.median / b.median
        entry["value"] = round(value, 3)
        if not OK == a.status == b.status:
            entry["result"] = INVALID
        elif target is None:
            entry["result"] = "info"
        else:
            met = value >= target if op == ">=" else value <= target
            entry["result"] = words[0] if met else words[1]
    return entry


def run_bench(bench, args, measure, failed) -> int:
    """The frame every bench script shares: SIGTERM ends it like Ctrl-C, `measure(started,
    wall0)` returns (ratios, JSON data), the bench cleans up whatever happens, then the table
    and `--json`. Exit 2 for a bench error, 130 when interrupted, 1 when `failed(ratios)`."""
    wall0 = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    try:
        ratios, data = measure(started, wall0)
    except BenchError as exc:
        print(f"bench error: {exc}", file=sys.stderr)
        bench.cleanup()
        return 2
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
        bench.cleanup()
        return 130
    except BaseException:
        bench.cleanup()
        raise
    bench.cleanup()
    wall = time.perf_counter() - wall0
    data["wall_seconds"] = round(wall, 2)
    print(bench.table(ratios, wall))
    if args.json_file:
        Path(args.json_file).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_file).write_text(json.dumps(data, indent=2) + "\n")
        log(f"raw numbers written to {args.json_file}")
    return 1 if failed(ratios) else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    bench = Bench(args)

    def measure(started, wall0):
        bench.preflight()
        bench.build_image()
        for rep in range(args.runs):
            bench.repetition(rep)
        ratios = bench.ratios()
        # before cleanup: to_json asks the engine its version
        return ratios, bench.to_json(ratios, time.perf_counter() - wall0, started)

    return run_bench(bench, args, measure, lambda ratios: any(r["result"] != "PASS" for r in ratios))


if __name__ == "__main__":
    sys.exit(main())
