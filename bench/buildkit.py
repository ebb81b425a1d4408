#!/usr/bin/env python3
"""BuildKit benchmark: `release ci build` against `DOCKER_BUILDKIT=1 docker build`, and cache_from.

    .venv/bin/python bench/buildkit.py                 # --runs 3, prints the table
    .venv/bin/python bench/buildkit.py --runs 5 --json bench/out/buildkit.json

Part 1, build time on the same Dockerfile and context. `release -c X ci build` (BuildKit
through the Engine API, the context tar written by release with .dockerignore applied)
against `DOCKER_BUILDKIT=1 docker build --build-arg BUILDKIT_INLINE_CACHE=1` (the docker
CLI's BuildKit session), in two scenarios:

    small   a few tens of MB of real files (copies of /usr/lib/python3*) under app/
    large   200 MB on disk, of which .dockerignore keeps 190 MB (data/) out: ~10 MB sent

and two states of the build cache:

    cold    before the build, the images built earlier and the build cache are removed
    warm    the same build again right after, nothing changed (every step cached)

The Dockerfile is multi-stage: a busybox base, a build stage that copies app/ and runs
`tar czf` + `sha256sum` over it with a `RUN --mount=type=cache`, and a final stage that copies
the result. `release --version` is timed too (its Python start-up is part of every release
figure).

Part 2, a CI runner that starts cold: a single-stage Dockerfile with a RUN step of
--work-seconds (sleep + tar czf), released once with `release build-push 1.0.0` to a fresh
local `docker-registry` (its images carry inline cache metadata). Then, per run: the local
images and build cache go (a fresh runner), a small file used only by the last step changes,
and `release ci build` is timed without, and with `--cache-from REGISTRY/bench/app:latest`.

Targets: release/docker <= 1.1 (each scenario, cold and warm); without/with cache_from >= 3.
Each figure is the median of --runs repetitions; the tool order alternates from one
repetition to the next. Every timed build must exit 0 and leave its tag, and its expensive
step must be CACHED exactly when it should be (warm) and not when it should not (cold);
otherwise the figure is INVALID.

"Removing the build cache" (cold): by default only the build-cache records this bench
created are pruned (it lists the engine's records before and after each of its builds; the
first layer of every bench image is a random file, so no older record can match). The
engine may be shared with other work, which a global prune would disturb; --prune-all runs
`docker builder prune -af` instead, as a fresh CI runner would.

Only the standard library plus bench/fanout.py's helpers. Exit codes: 0 the bench ran (each
target printed MET or NOT MET); 1 a figure is INVALID; 2 the bench could not run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fanout import (  # noqa: E402
    INVALID,
    REPO_ROOT,
    REPOSITORY,
    BenchError,
    Engine,
    Figure,
    Registry,
    log,
    ratio_entry,
    run,
    run_bench,
    start_registries,
    sync,
    tail,
)

STEP_TIMEOUT = 600
MB = 1024 * 1024
CI_VERSION = "1.0.0"

# Dockerfile of part 1. {cache_id} is unique to the bench run (a cache mount's id is global
# to the engine). The checks look at the RUN --mount step.
APP_DOCKERFILE = """\
# release bench/buildkit: multi-stage, nothing pulled (FROM scratch + a static busybox)
FROM scratch AS base
COPY bench-nonce.txt /etc/bench-nonce
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]

FROM base AS build
WORKDIR /src
COPY app/ ./
RUN --mount=type=cache,id={cache_id},target=/root/.cache \\
    mkdir -p /out && tar czf /out/app.tar.gz -C /src . && \\
    find . -type f -print0 | sort -z | xargs -0 sha256sum > /out/SHA256SUMS && \\
    cp /out/SHA256SUMS /root/.cache/last-sums

FROM base
COPY --from=build /out /app
CMD ["/bin/sh"]
"""
APP_MARKER = "RUN --mount=type=cache"

# Dockerfile of part 2: single stage, so that the inline cache (the final image's layers)
# covers the expensive step; app/last.txt is used by the last step only.
CI_DOCKERFILE = """\
# release bench/buildkit, CI scenario: an expensive step, then a step that changes every run
FROM scratch
COPY bench-nonce.txt /etc/bench-nonce
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY app/lib /src/lib
RUN sleep {work} && mkdir -p /opt && tar czf /opt/lib.tar.gz -C /src lib
COPY app/last.txt /app/last.txt
RUN cat /app/last.txt /etc/bench-nonce > /app/stamp
"""
CI_MARKER = "RUN sleep"

SMALL_SOURCES = ("/usr/lib/python3.11", "/usr/lib/python3/dist-packages")
KEPT_SOURCES = ("/usr/lib/python3/dist-packages", "/usr/lib/python3.11")
DATA_SOURCES = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/gcc", "/usr/lib/jvm", "/usr/lib/python3.11")
MAX_FILE = 16 * MB          # skip single huge files (libLLVM...): a context of many real files

SCENARIOS = ("small", "large")
FIGURES = ("startup", "imports",
           "small-docker-cold", "small-release-cold", "small-docker-warm", "small-release-warm",
           "large-docker-cold", "large-release-cold", "large-docker-warm", "large-release-warm",
           "ci-no-cache", "ci-cache-from")
FIGURE_TEXT = {
    "startup": "release --version",
    "imports": "python + imports of ci build",
    "ci-no-cache": "release ci build, cold runner",
    "ci-cache-from": "  same, --cache-from REGISTRY:latest",
}
# (name, numerator, denominator, operator, target, subtract start-up for the info column)
RATIOS = (
    ("small cold release/docker", "small-release-cold", "small-docker-cold", "<=", 1.1, True),
    ("small warm release/docker", "small-release-warm", "small-docker-warm", "<=", 1.1, True),
    ("large cold release/docker", "large-release-cold", "large-docker-cold", "<=", 1.1, True),
    ("large warm release/docker", "large-release-warm", "large-docker-warm", "<=", 1.1, True),
    ("ci no-cache/cache-from", "ci-no-cache", "ci-cache-from", ">=", 3.0, False),
)


# --- the engine's build cache, over the Engine API ----------------------------------------

class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


class BuildCache:
    """The build-cache records this bench created, and their removal.

    The engine lists its records (GET /system/df); what appears during one of our builds is
    ours. `reset()` prunes exactly those (POST /build/prune with an id filter, a regular
    expression), or with prune_all everything unused, as `docker builder prune -af` does."""

    def __init__(self, docker: str, prune_all: bool):
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        if not host.startswith("unix://"):
            raise BenchError(f"DOCKER_HOST={host}: this bench needs the engine's Unix socket")
        self.socket = host[len("unix://"):]
        self.docker = docker
        self.prune_all = prune_all
        self.mine: set[str] = set()

    def _call(self, method: str, path: str) -> dict:
        conn = _UnixHTTPConnection(self.socket, timeout=300)
        try:
            conn.request(method, "/v1.41" + path)
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise BenchError(f"{method} {path}: HTTP {resp.status} {tail(body, 2)}")
        return json.loads(body or b"{}")

    def ids(self) -> set[str]:
        return {r["ID"] for r in self._call("GET", "/system/df").get("BuildCache") or []}

    def claim(self, before: set[str]) -> int:
        new = self.ids() - before
        self.mine |= new
        return len(new)

    def prune_mine(self) -> int:
        present = self.mine & self.ids()
        self.mine = set(present)
        deleted: set[str] = set()
        todo = sorted(present)
        for i in range(0, len(todo), 40):
            chunk = todo[i:i + 40]
            filters = json.dumps({"id": ["^(" + "|".join(chunk) + ")$"]})
            out = self._call("POST", "/build/prune?all=1&filters=" + urllib.parse.quote(filters))
            deleted |= set(out.get("CachesDeleted") or [])
        self.mine -= deleted
        return len(deleted)

    def reset(self) -> None:
        if self.prune_all:
            run([self.docker, "builder", "prune", "-af"])
            self.mine &= self.ids()
        else:
            self.prune_mine()


# --- the bench -----------------------------------------------------------------------------

def copy_real_files(sources, dest: Path, budget: int) -> tuple[int, int]:
    """Copy regular files from `sources` (sorted walk, in rounds if needed) until about
    `budget` bytes (a file that would overshoot is skipped); (bytes, files)."""
    total = files = 0
    for round_no in range(1, 100):
        progress = False
        for src in map(Path, sources):
            if not src.is_dir():
                continue
            base = dest / (f"{src.name}" if round_no == 1 else f"{src.name}.{round_no}")
            for root, dirs, names in os.walk(src):
                dirs.sort()
                for name in sorted(names):
                    path = os.path.join(root, name)
                    try:
                        if os.path.islink(path) or not os.path.isfile(path):
                            continue
                        size = os.path.getsize(path)
                        if size > MAX_FILE or total + size > budget or not os.access(path, os.R_OK):
                            continue
                        target = base / os.path.relpath(path, src)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(path, target)
                    except OSError:
                        continue
                    total += size
                    files += 1
                    progress = True
                    if budget - total < 64 * 1024:
                        return total, files
        if not progress:
            break
    if total < budget * 0.95:
        raise BenchError(f"found only {total / MB:.0f} MB of files to copy under {', '.join(sources)}")
    return total, files


def tree_size(path: Path) -> tuple[int, int]:
    total = files = 0
    for root, _, names in os.walk(path):
        for name in names:
            p = os.path.join(root, name)
            if os.path.isfile(p) and not os.path.islink(p):
                total += os.path.getsize(p)
                files += 1
    return total, files


def step_cached(output: str, marker: str, tool: str) -> bool | None:
    """Was the step whose title contains `marker` CACHED? None if the step is not in the output."""
    lines = output.splitlines()
    if tool == "docker":                     # plain progress: "#8 [build 2/2] RUN ..." / "#8 CACHED"
        ids = {ln.split(" ", 1)[0] for ln in lines if ln.startswith("#") and marker in ln}
        if not ids:
            return None
        return any(f"{i} CACHED" == ln.strip() for i in ids for ln in lines)
    mine = [ln for ln in lines if marker in ln]  # release: "  | [build 2/2] RUN ...: CACHED"
    if not mine:
        return None
    return any(ln.rstrip().endswith(": CACHED") for ln in mine)


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="release-bench-buildkit-"))
        self.engine = Engine(self.tmp)
        self.prefix = f"release-bench-bk-{secrets.token_hex(4)}"
        self.cache = BuildCache(args.docker, args.prune_all)
        self.figures = {name: Figure(name) for name in FIGURES}
        self.registry: Registry | None = None
        self.tags: set[str] = set()
        self.image_ids: set[str] = set()
        self.reps: list[dict] = []
        self.notes: list[str] = []
        self.info: dict = {}
        self.release_bin = args.release
        self.docker_env = {**os.environ, "DOCKER_BUILDKIT": "1"}
        self.release_env = {k: v for k, v in os.environ.items()
                            if k not in ("RELEASE_CONFIG", "PYTHONDONTWRITEBYTECODE")}
        self.load_start = os.getloadavg()
        self.load_end: tuple | None = None

    # -- set-up ---------------------------------------------------------------------------------
    def preflight(self) -> None:
        if shutil.which("docker-registry") is None:
            raise BenchError("`docker-registry` is not installed (apt-get install -y docker-registry)")
        if not os.access(self.args.docker, os.X_OK):
            raise BenchError(f"docker CLI not found at {self.args.docker} (--docker PATH)")
        if not (os.access(self.release_bin, os.X_OK) or shutil.which(self.release_bin)):
            raise BenchError(f"release CLI not found at {self.release_bin} "
                             "(pip install -e . into .venv, or pass --release)")
        busybox = shutil.which("busybox") or "/bin/busybox"
        if not os.access(busybox, os.X_OK):
            raise BenchError("a static busybox is needed (apt-get install -y busybox-static)")
        self.busybox = busybox
        self.engine.ensure()
        for cmd in (["ci", "build", "--help"], ["--version"]):   # untimed: compiles bytecode too
            proc = run([self.release_bin, *cmd], check=False, env=self.release_env)
            if proc.returncode != 0:
                raise BenchError(f"`release {' '.join(cmd)}` fails: {tail(proc.stderr or proc.stdout, 2)}")
        proc = run([self.args.docker, "version", "--format", "{{.Client.Version}}"], check=False)
        self.info["docker_cli"] = proc.stdout.strip()
        # the code measured: HEAD, and whether pipeline/ differs from it
        head = run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], check=False).stdout.strip()
        dirty = run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "pipeline"],
                    check=False).stdout.strip()
        self.info["code"] = (head or "?") + (" + uncommitted changes in pipeline/" if dirty else "")

    def _base_context(self, ctx: Path) -> None:
        ctx.mkdir(parents=True)
        shutil.copyfile(self.busybox, ctx / "busybox")
        os.chmod(ctx / "busybox", 0o755)
        (ctx / "bench-nonce.txt").write_text(self.nonce + "\n")

    def make_contexts(self) -> None:
        self.nonce = secrets.token_hex(16)
        dockerfile = APP_DOCKERFILE.format(cache_id=f"{self.prefix}-cache")
        # small: a few tens of MB of real files, all sent
        small = self.tmp / "small"
        self._base_context(small)
        size, files = copy_real_files(SMALL_SOURCES, small / "app" / "lib", self.args.small_mb * MB)
        (small / "Dockerfile").write_text(dockerfile)
        (small / ".dockerignore").write_text(".git\n**/*.log\n")
        # large: data/ (190 MB) ignored, ~10 MB kept
        large = self.tmp / "large"
        self._base_context(large)
        kept_budget = max(1 * MB, self.args.kept_mb * MB - (large / "busybox").stat().st_size)
        copy_real_files(KEPT_SOURCES, large / "app" / "lib", kept_budget)
        copy_real_files(DATA_SOURCES, large / "data", self.args.ignored_mb * MB)
        (large / "Dockerfile").write_text(dockerfile)
        (large / ".dockerignore").write_text("# local data sets and logs stay out of the image\n"
                                             "data/\n.git\n**/*.log\n")
        # ci: the expensive step, then the step that changes every run
        ci = self.tmp / "ci"
        self._base_context(ci)
        copy_real_files(KEPT_SOURCES, ci / "app" / "lib", 8 * MB)
        (ci / "app" / "last.txt").write_text("run 0\n")
        (ci / "Dockerfile").write_text(CI_DOCKERFILE.format(work=self.args.work_seconds))
        (ci / ".dockerignore").write_text(".git\n")

        total_small = tree_size(small)
        total_large = tree_size(large)
        data = tree_size(large / "data")
        self.info["contexts"] = {
            "small": {"bytes": total_small[0], "files": total_small[1], "sent_bytes": total_small[0]},
            "large": {"bytes": total_large[0], "files": total_large[1],
                      "ignored_bytes": data[0], "ignored_files": data[1],
                      "sent_bytes": total_large[0] - data[0], "sent_files": total_large[1] - data[1]},
        }
        log(f"contexts: small {total_small[0] / MB:.0f} MB ({total_small[1]} files); large "
            f"{total_large[0] / MB:.0f} MB ({total_large[1]} files), .dockerignore keeps "
            f"{data[0] / MB:.0f} MB out, {(total_large[0] - data[0]) / MB:.1f} MB sent")

        cfg = self.tmp / "cfg"
        cfg.mkdir()
        for name in SCENARIOS:
            (cfg / f"{name}.yml").write_text(
                f"version: 1\nimage:\n  name: {self.prefix}-{name}\n  context: ../{name}\n"
                f"  builder: buildkit\n"
                # ci build pushes nothing; release.yml needs a registry all the same
                f"registries:\n  - name: unused\n    type: generic\n"
                f"    registry: 127.0.0.1:9\n    repository: bench/unused\n")

    def start_registry(self) -> None:
        self.registry = Registry("ci", self.tmp / "registry")
        t0 = time.perf_counter()
        start_registries([self.registry])
        self.info["registry_start_seconds"] = round(time.perf_counter() - t0, 3)
        (self.tmp / "cfg" / "ci.yml").write_text(
            f"version: 1\nimage:\n  name: {self.prefix}-ci\n  context: ../ci\n  builder: buildkit\n"
            f"registries:\n  - name: local\n    type: generic\n"
            f"    registry: {self.registry.host}\n    repository: {REPOSITORY}\n")
        self.cache_ref = self.registry.ref("latest")

    def publish_ci_image(self) -> None:
        """Untimed: `release build-push 1.0.0` once; its :latest is the cache source."""
        before = self.cache.ids()
        proc = run([self.release_bin, "-c", str(self.tmp / "cfg" / "ci.yml"), "build-push",
                    CI_VERSION, "--quiet"], check=False, env=self.release_env, timeout=STEP_TIMEOUT)
        self.cache.claim(before)
        self.note_image(f"{self.prefix}-ci:{CI_VERSION}")
        if proc.returncode != 0:
            raise BenchError(f"release build-push {CI_VERSION} failed: {tail(proc.stderr or proc.stdout)}")
        digest = self.registry.manifest_digest("latest")
        if digest is None:
            raise BenchError(f"{self.cache_ref} not found after release build-push")
        self.info["cache_image"] = {"ref": self.cache_ref, "digest": digest,
                                    "inline_cache": self.has_inline_cache("latest")}
        if self.info["cache_image"]["inline_cache"] is False:
            self.notes.append(f"{self.cache_ref}: its config has no inline cache metadata "
                              "(moby.buildkit.cache.v0)")
        log(f"published {self.cache_ref} ({digest[:19]}), inline cache: "
            f"{self.info['cache_image']['inline_cache']}")

    def has_inline_cache(self, tag: str) -> bool | None:
        base = f"http://{self.registry.host}/v2/{REPOSITORY}"
        try:
            req = urllib.request.Request(f"{base}/manifests/{tag}", headers={"Accept": ", ".join((
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.oci.image.manifest.v1+json"))})
            with urllib.request.urlopen(req, timeout=15) as r:
                manifest = json.load(r)
            with urllib.request.urlopen(f"{base}/blobs/{manifest['config']['digest']}", timeout=15) as r:
                config = json.load(r)
        except (urllib.error.URLError, OSError, KeyError, ValueError):
            return None
        return "moby.buildkit.cache.v0" in config

    # -- images ---------------------------------------------------------------------------------
    def note_image(self, tag: str) -> str | None:
        self.tags.add(tag)
        proc = run([self.args.docker, "image", "inspect", "--format", "{{.Id}}", tag], check=False)
        if proc.returncode != 0:
            return None
        self.image_ids.add(proc.stdout.strip())
        return proc.stdout.strip()

    def remove_images(self) -> None:
        """Every tag this bench made (and whatever else carries its name prefix or registry),
        then every image id it saw (release's rebuilds leave the earlier ones dangling)."""
        proc = run([self.args.docker, "image", "ls", "-a", "--format",
                    "{{.Repository}}:{{.Tag}}\t{{.ID}}"], check=False)
        refs = set(self.tags)
        for line in proc.stdout.splitlines():
            ref, _, _ = line.partition("\t")
            if ref.startswith(self.prefix) or (self.registry and ref.startswith(self.registry.host + "/")):
                refs.add(ref)
        existing = [r for r in refs if not r.endswith(":<none>")]
        for i in range(0, len(existing), 50):
            run([self.args.docker, "image", "rm", *existing[i:i + 50]], check=False)
        ids = sorted(self.image_ids)
        for i in range(0, len(ids), 50):
            run([self.args.docker, "image", "rm", *ids[i:i + 50]], check=False)
        still = [i for i in ids if run([self.args.docker, "image", "inspect", i], check=False).returncode == 0]
        self.image_ids = set(still)

    def reset(self) -> None:
        """A fresh runner: no images of ours, no build cache of ours (or none at all)."""
        self.remove_images()
        self.cache.reset()

    # -- timed steps ----------------------------------------------------------------------------
    def timed(self, argv, env) -> tuple[float, subprocess.CompletedProcess]:
        sync()
        start = time.perf_counter()
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  env=env, timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            proc = subprocess.CompletedProcess(argv, -1, exc.stdout or "", f"timed out after {STEP_TIMEOUT}s")
        return time.perf_counter() - start, proc

    def record(self, name: str, rep: int, seconds: float, problem: str | None) -> None:
        fig = self.figures[name]
        fig.seconds.append(round(seconds, 4))
        if problem:
            fig.invalid.append(f"run {rep + 1}: {problem}")
        log(f"  run {rep + 1} {name:<20} {seconds:7.2f} s" + (f"  INVALID: {problem}" if problem else ""))

    def build(self, tool: str, scenario: str, extra=()) -> tuple[float, subprocess.CompletedProcess, str]:
        if tool == "docker":
            tag = f"{self.prefix}-{scenario}-docker:bench"
            argv = [self.args.docker, "build", "--progress=plain", "--build-arg",
                    "BUILDKIT_INLINE_CACHE=1", "-t", tag, str(self.tmp / scenario)]
            env = self.docker_env
        else:
            tag = f"{self.prefix}-{scenario}:ci"
            argv = [self.release_bin, "-c", str(self.tmp / "cfg" / f"{scenario}.yml"), "ci", "build",
                    *extra]
            env = self.release_env
        before = self.cache.ids()
        seconds, proc = self.timed(argv, env)
        self.cache.claim(before)
        self.tags.add(tag)
        return seconds, proc, tag

    def check(self, proc, tool: str, tag: str, marker: str, want_cached: bool | None) -> str | None:
        if proc.returncode != 0:
            return f"exit {proc.returncode}: {tail(proc.stderr or proc.stdout, 3)}"
        if self.note_image(tag) is None:
            return f"{tag} does not exist after the build"
        if want_cached is None:
            return None
        cached = step_cached(proc.stdout + "\n" + proc.stderr, marker, tool)
        if cached is None:
            return f"step {marker!r} not found in the build output"
        if cached != want_cached:
            return f"step {marker!r} was {'CACHED' if cached else 'run'}, expected it " \
                   f"{'CACHED' if want_cached else 'to run'}"
        return None

    def warm_up(self) -> None:
        """Untimed: one `release ci build` under `python -X importtime`, which compiles the
        bytecode, warms the page cache and tells which modules the build path imports (the
        "imports" figure imports just those: interpreter start-up plus imports)."""
        python = Path(self.release_bin).read_text(errors="replace").splitlines()[0][2:].strip()
        if not python or not os.access(python.split()[0], os.X_OK):
            python = sys.executable
        before = self.cache.ids()
        proc = run([*python.split(), "-X", "importtime", self.release_bin, "-c",
                    str(self.tmp / "cfg" / "small.yml"), "ci", "build", "-q"], check=False,
                   env=self.release_env, timeout=STEP_TIMEOUT)
        self.cache.claim(before)
        self.note_image(f"{self.prefix}-small:ci")
        if proc.returncode != 0:
            raise BenchError(f"release ci build (warm-up) failed: {tail(proc.stderr)}")
        modules = []
        for line in proc.stderr.splitlines():
            if line.startswith("import time:") and line.count("|") == 2:
                name = line.rsplit("|", 1)[1]
                if (name.startswith(" ") and not name.startswith("  ") and name.strip() != "__main__"
                        and all(part.isidentifier() for part in name.strip().split("."))):
                    modules.append(name.strip())
        self.import_argv = [*python.split(), "-c", "import " + ", ".join(modules)] if modules else None
        self.info["imports_of_ci_build"] = len(modules)
        if self.import_argv and run(self.import_argv, check=False, env=self.release_env).returncode:
            self.import_argv = None
        if self.import_argv is None:
            self.figures["imports"].unavailable = "could not list the modules `ci build` imports"

    def startup(self, rep: int, count: int = 3) -> None:
        for name, argv in (("startup", [self.release_bin, "--version"]), ("imports", self.import_argv)):
            if argv is None:
                continue
            fig = self.figures[name]
            for _ in range(count):
                seconds, proc = self.timed(argv, self.release_env)
                fig.seconds.append(round(seconds, 4))
                if proc.returncode != 0:
                    fig.invalid.append(f"run {rep + 1}: exit {proc.returncode} {tail(proc.stderr, 2)}")
            log(f"  run {rep + 1} {name} x{count}: "
                + " ".join(f"{s:.3f}" for s in fig.seconds[-count:]) + " s")

    def scenario_block(self, rep: int, scenario: str, detail: dict) -> None:
        tools = ["release", "docker"] if rep % 2 == 0 else ["docker", "release"]
        for tool in tools:
            self.reset()
            for state in ("cold", "warm"):
                seconds, proc, tag = self.build(tool, scenario)
                problem = self.check(proc, tool, tag, APP_MARKER, want_cached=(state == "warm"))
                self.record(f"{scenario}-{tool}-{state}", rep, seconds, problem)
        detail.setdefault("order", []).append(f"{scenario}:{'>'.join(tools)}")

    def ci_block(self, rep: int, detail: dict) -> None:
        variants = ["no-cache", "cache-from"] if rep % 2 == 0 else ["cache-from", "no-cache"]
        for variant in variants:
            self.reset()
            (self.tmp / "ci" / "app" / "last.txt").write_text(f"run {rep + 1} {variant} {time.time()}\n")
            extra = ("--cache-from", self.cache_ref) if variant == "cache-from" else ()
            seconds, proc, tag = self.build("release", "ci", extra)
            want = False if variant == "no-cache" else None
            problem = self.check(proc, "release", tag, CI_MARKER, want_cached=want)
            if variant == "cache-from" and not problem:
                cached = step_cached(proc.stdout + "\n" + proc.stderr, CI_MARKER, "release")
                if not cached:   # a product result, not a bench failure: the figure stands
                    self.notes.append(f"run {rep + 1}: with --cache-from the {CI_MARKER!r} step was "
                                      f"{'not found' if cached is None else 'run'}, not CACHED: "
                                      f"{tail(proc.stderr, 3)}")
            self.record(f"ci-{variant}", rep, seconds, problem)
        detail.setdefault("order", []).append(f"ci:{'>'.join(variants)}")

    def repetition(self, rep: int) -> None:
        detail = {"run": rep + 1, "loadavg_before": os.getloadavg()}
        log(f"run {rep + 1}/{self.args.runs}")
        self.startup(rep)
        blocks = [lambda: self.scenario_block(rep, "small", detail),
                  lambda: self.scenario_block(rep, "large", detail),
                  lambda: self.ci_block(rep, detail)]
        k = rep % len(blocks)
        for fn in blocks[k:] + blocks[:k]:
            fn()
        detail["loadavg_after"] = os.getloadavg()
        self.reps.append(detail)

    # -- tear-down ------------------------------------------------------------------------------
    def cleanup(self) -> None:
        try:
            if self.registry is not None:
                self.registry.stop()
            self.remove_images()
            left = self.cache.prune_mine()
            if self.cache.mine:
                log(f"{len(self.cache.mine)} build-cache records of this bench could not be pruned")
            log(f"removed the bench's images and {left} build-cache records")
        except Exception as exc:  # noqa: BLE001 - clean up the rest all the same
            log(f"clean-up: {exc}")
        finally:
            self.engine.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- results --------------------------------------------------------------------------------
    def ratios(self) -> list[dict]:
        floor = self.figures["imports"] if self.figures["imports"].median else self.figures["startup"]
        start = floor.median or 0.0
        out = []
        for name, num, den, op, target, minus_startup in RATIOS:
            a, b = self.figures[num], self.figures[den]
            entry = ratio_entry(name, a, b, op, target, words=("MET", "NOT MET"))
            entry["excl_startup"] = (round((a.median - start) / b.median, 3)
                                     if minus_startup and entry["value"] is not None else None)
            out.append(entry)
        return out

    def table(self, ratios: list[dict], wall: float) -> str:
        ctx = self.info["contexts"]
        lines = [f"release bench/buildkit: release ci build (Engine API) vs DOCKER_BUILDKIT=1 "
                 f"docker build ({self.info.get('docker_cli', '?')}), {self.args.runs} runs; "
                 f"release at {self.info.get('code', '?')}",
                 f"  small context: {ctx['small']['bytes'] / MB:.0f} MB, {ctx['small']['files']} "
                 f"files, all sent",
                 f"  large context: {ctx['large']['bytes'] / MB:.0f} MB, {ctx['large']['files']} files; "
                 f".dockerignore keeps {ctx['large']['ignored_bytes'] / MB:.0f} MB out, "
                 f"{ctx['large']['sent_bytes'] / MB:.1f} MB ({ctx['large']['sent_files']} files) sent",
                 f"  ci: RUN of ~{self.args.work_seconds} s; cache source {self.info.get('cache_image', {}).get('ref')}"
                 f" (inline cache: {self.info.get('cache_image', {}).get('inline_cache')})",
                 f"  cold = images and build cache removed first "
                 f"({'docker builder prune -af' if self.args.prune_all else 'the records this bench created'}); "
                 f"warm = the same build again",
                 "", f"{'figure':<37}{'median s':>9}  {'spread':>7}  {'runs (s)':<30}status"]
        for name in FIGURES:
            fig = self.figures[name]
            med = fig.median
            spread = f"{(max(fig.seconds) - min(fig.seconds)) / med * 100:6.0f}%" if med else "-"
            shown = fig.seconds if name not in ("startup", "imports") else []
            runs = " ".join(f"{s:.2f}" for s in shown) if shown else f"{len(fig.seconds)} calls"
            label = FIGURE_TEXT.get(name, name)
            lines.append(f"{label:<37}{med if med is not None else float('nan'):>9.3f}  {spread:>7}  "
                         f"{runs:<30}{fig.status}")
        lines += ["", f"{'ratio (of medians)':<28}{'value':>7}  {'w/o start-up':>12}  {'target':<9}result"]
        floor = "imports" if self.figures["imports"].median else "startup"
        for r in ratios:
            value = f"{r['value']:.2f}" if r["value"] is not None else "-"
            excl = f"{r['excl_startup']:.2f}" if r["excl_startup"] is not None else "-"
            lines.append(f"{r['name']:<28}{value:>7}  {excl:>12}  {r['op'] + ' ' + str(r['target']):<9}"
                         f"{r['result']}")
        lines.append(f"  (w/o start-up: (release - median {FIGURE_TEXT[floor]}) / docker, for reading only)")
        problems = [f"  {name}: {p}" for name in FIGURES for p in self.figures[name].invalid]
        problems += [f"  {n}" for n in self.notes]
        if problems:
            lines += ["", "notes:"] + problems
        lo_s, lo_e = self.load_start, self.load_end or os.getloadavg()
        lines += ["", f"load average (1/5/15 min): start {lo_s[0]:.2f} {lo_s[1]:.2f} {lo_s[2]:.2f}, "
                      f"end {lo_e[0]:.2f} {lo_e[1]:.2f} {lo_e[2]:.2f}; "
                      f"before each run: {', '.join('%.2f' % d['loadavg_before'][0] for d in self.reps)}",
                  f"total wall time {wall:.1f} s"]
        return "\n".join(lines)

    def to_json(self, ratios, wall, started) -> dict:
        head = run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], check=False).stdout.strip()
        version = run([self.release_bin, "--version"], check=False, env=self.release_env).stdout.strip()
        return {"bench": "buildkit", "started": started, "wall_seconds": round(wall, 2),
                "runs": self.args.runs, "work_seconds": self.args.work_seconds,
                "prune_all": self.args.prune_all, **self.info,
                "env": {"release": version, "git_head": head, "docker": Engine.versions(),
                        "python": platform.python_version(), "cpus": os.cpu_count(),
                        "kernel": platform.release()},
                "loadavg_start": self.load_start, "loadavg_end": self.load_end,
                "figures": {n: f.to_dict() for n, f in self.figures.items()},
                "ratios": ratios, "notes": self.notes, "per_run": self.reps}


def parse_args(argv=None):
    default_release = REPO_ROOT / ".venv" / "bin" / "release"
    beside = Path(sys.executable).parent / "release"
    default_docker = "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else (shutil.which("docker") or "docker")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="repetitions per figure (>= 3; default 3)")
    p.add_argument("--json", dest="json_file", metavar="FILE", help="write the raw numbers here")
    p.add_argument("--small-mb", type=int, default=40, help="MB of files in the small context (default 40)")
    p.add_argument("--kept-mb", type=int, default=10, help="MB the large context sends (default 10)")
    p.add_argument("--ignored-mb", type=int, default=190,
                   help="MB of data/ the large context's .dockerignore keeps out (default 190)")
    p.add_argument("--work-seconds", type=int, default=5, help="sleep in the CI step (default 5)")
    p.add_argument("--prune-all", action="store_true",
                   help="cold = `docker builder prune -af` (every unused record on the engine), "
                        "not only this bench's records")
    p.add_argument("--docker", default=default_docker,
                   help=f"the docker CLI that builds with BuildKit (default {default_docker})")
    p.add_argument("--release", default=str(beside if beside.exists() else default_release),
                   help=f"the release CLI (default: beside this python, else {default_release})")
    args = p.parse_args(argv)
    if args.runs < 3:
        p.error("--runs must be at least 3 (each figure is a median)")
    if min(args.small_mb, args.kept_mb, args.ignored_mb) < 1 or args.work_seconds < 1:
        p.error("sizes and --work-seconds must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    bench = Bench(args)

    def measure(started, wall0):
        bench.preflight()
        bench.make_contexts()
        bench.start_registry()
        bench.warm_up()
        bench.publish_ci_image()
        for rep in range(args.runs):
            bench.repetition(rep)
        bench.load_end = os.getloadavg()
        ratios = bench.ratios()
        return ratios, bench.to_json(ratios, time.perf_counter() - wall0, started)

    return run_bench(bench, args, measure, lambda ratios: any(r["result"] == INVALID for r in ratios))


if __name__ == "__main__":
    sys.exit(main())
