#!/usr/bin/env python3
"""WAN benchmark: `release build-push` against the docker CLI, each registry behind its own slow link.

    .venv/bin/python bench/wan.py                         # 40 ms RTT, 100 Mbit/s, prints the table
    .venv/bin/python bench/wan.py --rate-mbit 20 --json bench/out/wan-20.json
    .venv/bin/python bench/wan.py --link-rtt-ms 3=120 --link-rate-mbit 3=10   # one far registry

One image of real files (FROM scratch + COPY of copies of /usr/lib trees: compressible, as
real images are), 3 registries x 4 tags. Each registry (`docker-registry serve` on loopback)
sits behind its own emulated link (bench/wanlink.py: a TCP proxy with a token bucket per
direction and a one-way delay of RTT/2), so the Docker daemon and release both reach the
registries through the same links. In one run, in seconds:

    loop            `docker tag` + `docker push` for every registry and tag, one after another
    parallel        three such per-registry loops at once (three `docker push` in parallel)
    release         `release build-push 1.2.3 --no-build --quiet --json`
    limit           the bytes release sent to one registry / that link's rate (the largest of
                    the three: the links run in parallel); computed, not timed

and the same four for an incremental release (`*-incr`): version 1.2.4, the same image with
one small file of the top layer changed, pushed to the registries that hold 1.2.3 (each
tool onto the registries it filled itself, so the daemon has its usual layer memory).

Every repetition starts fresh registries and fresh links (new ports: the daemon remembers
per registry host which layers it pushed) before any clock starts; after each figure every
reference is read back from the registries (not through the links) and must give one
digest. Ratios of medians are compared with the issue's targets (release <= 1.3 x limit,
loop >= 3 x release) and printed PASS / FAIL; the others are printed for information.

Only the standard library plus bench/fanout.py's and bench/buildkit.py's helpers and
bench/wanlink.py. Exit codes: 0 every target PASS; 1 a target FAIL or INVALID; 2 the bench
could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fanout  # noqa: E402
from buildkit import copy_real_files, tree_size  # noqa: E402
from fanout import (  # noqa: E402
    INVALID,
    REPO_ROOT,
    REPOSITORY,
    BenchError,
    Engine,
    Figure,
    Registry,
    digests,
    log,
    one_digest,
    ratio_entry,
    run,
    run_bench,
    start_registries,
    sync,
    tail,
)
from wanlink import Link, WanLinks, measure_link  # noqa: E402

MB = 1024 * 1024
N_REGISTRIES = 3
FULL, INCR = "1.2.3", "1.2.4"
TAGS = {FULL: ("1.2.3", "1.2", "1", "latest"), INCR: ("1.2.4", "1.2", "1", "latest")}
TOOLS = ("loop", "parallel", "release")
FIGURES = ("loop", "parallel", "release", "limit",
           "loop-incr", "parallel-incr", "release-incr", "limit-incr")
FIGURE_TEXT = {
    "loop": "loop (docker tag + push, 12x)",
    "parallel": "parallel (3 docker push at once)",
    "release": "release build-push",
    "limit": "limit (release bytes / rate)",
    "loop-incr": "loop, incremental",
    "parallel-incr": "parallel, incremental",
    "release-incr": "release, incremental",
    "limit-incr": "limit, incremental",
}
# (name, numerator, denominator, operator, target or None for information only)
RATIOS = (
    ("release/limit", "release", "limit", "<=", 1.3),
    ("loop/release", "loop", "release", ">=", 3.0),
    ("parallel/release", "parallel", "release", ">=", None),
    ("release-incr/limit-incr", "release-incr", "limit-incr", "<=", None),
    ("loop-incr/release-incr", "loop-incr", "release-incr", ">=", None),
    ("release-incr/parallel-incr", "release-incr", "parallel-incr", "<=", None),
    ("release-incr/release", "release-incr", "release", "<=", None),
)

# The image: FROM scratch, three big layers of real files, a small top layer ("the app")
# whose VERSION file is what changes for the incremental release. Fractions of --image-mb.
LAYERS = (
    ("libs", ("/usr/lib/x86_64-linux-gnu",), 0.5),
    ("python", ("/usr/lib/python3.11", "/usr/lib/python3"), 0.3),
    ("tools", ("/usr/lib/gcc", "/usr/lib/git-core", "/usr/lib/postgresql", "/usr/lib/x86_64-linux-gnu"),
     0.2),
)
APP_SOURCES = ("/usr/lib/python3/dist-packages",)


def cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine, from /proc/stat (None elsewhere)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]            # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_fraction(a, b) -> float | None:
    if a is None or b is None or b[1] <= a[1]:
        return None
    return round((b[0] - a[0]) / (b[1] - a[1]), 3)


@dataclass
class Site:
    """One registry and the link in front of it; clients push to link.host."""
    reg: Registry
    link: Link

    def ref(self, tag: str) -> str:
        return f"{self.link.host}/{REPOSITORY}:{tag}"


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="release-bench-wan-"))
        self.engine = Engine(self.tmp)
        self.links = WanLinks()
        self.release_bin = args.release
        self.image_name = f"release-bench-wan-{secrets.token_hex(4)}"
        self.image_ids: dict[str, str] = {}
        self.registries: list[Registry] = []
        self.sites: dict[str, list[Site]] = {}
        self.used_link_ports: set[int] = set()
        self.figures = {name: Figure(name) for name in FIGURES}
        self.reps: list[dict] = []
        self.notes: list[str] = []
        self.info: dict = {}
        self.docker_env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        self.release_env = {k: v for k, v in os.environ.items()
                            if k not in ("RELEASE_CONFIG", "PYTHONDONTWRITEBYTECODE")}
        self.load_start = os.getloadavg()
        self.load_end: tuple | None = None

    def local_ref(self, version: str) -> str:
        return f"{self.image_name}:{version}"

    # -- set-up ---------------------------------------------------------------------------------
    def preflight(self) -> None:
        if shutil.which("docker-registry") is None:
            raise BenchError("`docker-registry` is not installed (apt-get install -y docker-registry)")
        if not (os.access(self.release_bin, os.X_OK) or shutil.which(self.release_bin)):
            raise BenchError(f"release CLI not found at {self.release_bin} "
                             "(pip install -e . into .venv, or pass --release)")
        self.engine.ensure()
        proc = run([self.release_bin, "build-push", "--help"], check=False, env=self.release_env)
        if proc.returncode != 0:     # untimed: also compiles the bytecode once
            raise BenchError(f"`release build-push --help` fails: {tail(proc.stderr or proc.stdout, 2)}")
        head = run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], check=False).stdout.strip()
        dirty = run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "pipeline"],
                    check=False).stdout.strip()
        self.info["code"] = (head or "?") + (" + uncommitted changes in pipeline/" if dirty else "")
        self.links.start()
        # The link model on its own (an upload of 4 MiB through a fresh link): a broken proxy
        # would make every figure meaningless.
        rtt, rate = self.link_params(0)
        check = measure_link(rtt, rate, 4 * MB)
        self.info["link_check"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in check.items()}
        off = abs(check["seconds"] - check["expected"])
        if check["bytes"] != 4 * MB or off > 0.25 * check["expected"] + 0.05:
            raise BenchError(f"the link model is off: 4 MiB took {check['seconds']:.3f} s through a link, "
                             f"the model says {check['expected']:.3f} s ({check['bytes']} bytes arrived)")
        log(f"link check: 4 MiB in {check['seconds']:.3f} s (model {check['expected']:.3f} s)")

    def link_params(self, index: int) -> tuple[float, float]:
        """(rtt seconds, rate bytes/s) of the index-th registry's link (0-based)."""
        rtt_ms = self.args.link_rtt_ms.get(index + 1, self.args.rtt_ms)
        mbit = self.args.link_rate_mbit.get(index + 1, self.args.rate_mbit)
        return rtt_ms / 1000.0, mbit * 1e6 / 8

    def build_images(self) -> None:
        ctx = self.tmp / "context"
        ctx.mkdir()
        budget = self.args.image_mb * MB
        lines = ["FROM scratch"]
        sizes = {}
        for name, sources, share in LAYERS:
            size, files = copy_real_files(sources, ctx / name, int(budget * share))
            sizes[name] = {"bytes": size, "files": files}
            lines.append(f"COPY {name}/ /opt/{name}/")
        size, files = copy_real_files(APP_SOURCES, ctx / "app", self.args.app_kb * 1024)
        sizes["app"] = {"bytes": size, "files": files}
        lines.append("COPY app/ /opt/app/")
        (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
        (ctx / ".dockerignore").write_text("Dockerfile\n")
        self.info["layers"] = sizes
        total, nfiles = tree_size(ctx)
        log(f"building {self.local_ref(FULL)}: FROM scratch + {len(LAYERS) + 1} layers, "
            f"{total / MB:.0f} MB in {nfiles} real files ("
            + ", ".join(f"{n} {s['bytes'] / MB:.1f} MB" for n, s in sizes.items()) + ")")
        diff_ids = {}
        for version in (FULL, INCR):
            (ctx / "app" / "VERSION").write_text(f"{version}\n")    # the one file that changes
            run(["docker", "build", "-q", "--rm", "--force-rm", "-t", self.local_ref(version), str(ctx)],
                env=self.docker_env, timeout=1200)
            out = run(["docker", "image", "inspect", "--format", "{{.Id}} {{json .RootFS.Layers}}",
                       self.local_ref(version)]).stdout.strip()
            image_id, _, layers = out.partition(" ")
            self.image_ids[version] = image_id
            diff_ids[version] = json.loads(layers)
        a, b = diff_ids[FULL], diff_ids[INCR]
        if len(a) != len(b) or a[:-1] != b[:-1] or a[-1] == b[-1]:
            raise BenchError("the incremental image does not differ from the first in its top layer "
                             f"only (layers {a} vs {b}); was the build cache pruned meanwhile?")
        self.info["image_bytes"] = total
        self.info["image_files"] = nfiles
        self.info["diff_ids"] = diff_ids
        shutil.rmtree(ctx, ignore_errors=True)

    # -- registries and links ---------------------------------------------------------------------
    def add_link(self, name: str, reg: Registry, index: int) -> Link:
        """A link on a port never used before in this run (the daemon keys on host:port)."""
        rtt, rate = self.link_params(index)
        for _ in range(50):
            link = self.links.add(name, reg.port, rtt=rtt, rate=rate, burst=self.args.burst_kb * 1024)
            if link.port not in self.used_link_ports and link.port not in fanout._used_ports:
                self.used_link_ports.add(link.port)
                fanout._used_ports.add(link.port)
                return link
            self.links.remove(link)
        raise BenchError("no fresh loopback port for a link")

    def start_sites(self, workdir: Path) -> float:
        regs = {tool: [Registry(f"{tool[0]}{i}", workdir / f"{tool}{i}") for i in range(1, N_REGISTRIES + 1)]
                for tool in TOOLS}
        self.registries = [r for rs in regs.values() for r in rs]
        t0 = time.perf_counter()
        start_registries(self.registries)
        self.sites = {tool: [Site(reg, self.add_link(reg.name, reg, i)) for i, reg in enumerate(rs)]
                      for tool, rs in regs.items()}
        return time.perf_counter() - t0

    def stop_sites(self) -> None:
        for sites in self.sites.values():
            for site in sites:
                self.links.remove(site.link)
        self.sites = {}
        for reg in self.registries:
            reg.stop()
            shutil.rmtree(reg.workdir, ignore_errors=True)
        self.registries = []

    def drop_extra_refs(self) -> None:
        """Remove every tag / digest reference of the bench images except NAME:1.2.3 / :1.2.4."""
        keep = {self.local_ref(FULL), self.local_ref(INCR)}
        for image_id in self.image_ids.values():
            proc = run(["docker", "image", "inspect", "--format",
                        "{{json .RepoTags}}\t{{json .RepoDigests}}", image_id], check=False)
            if proc.returncode != 0:
                continue
            tags_json, digests_json = proc.stdout.strip().split("\t")
            refs = [r for r in (json.loads(tags_json) or []) + (json.loads(digests_json) or [])
                    if r not in keep]
            for i in range(0, len(refs), 50):
                run(["docker", "image", "rm", *refs[i:i + 50]], check=False)

    def cleanup(self) -> None:
        try:
            self.stop_sites()
            self.links.stop()
            self.drop_extra_refs()
            for version, image_id in list(self.image_ids.items()):
                if run(["docker", "image", "rm", self.local_ref(version)], check=False).returncode != 0:
                    run(["docker", "image", "rm", "-f", image_id], check=False)
            self.image_ids = {}
        except Exception as exc:  # noqa: BLE001 - clean up the rest all the same
            log(f"clean-up: {exc}")
        finally:
            self.engine.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def write_config(self, path: Path, sites: list[Site]) -> Path:
        lines = ["version: 1", "image:", f"  name: {self.image_name}", "  context: .",
                 "tags:", "  - type=semver,pattern={{version}}",
                 "  - type=semver,pattern={{major}}.{{minor}}", "  - type=semver,pattern={{major}}",
                 "flavor:", "  - latest=auto", "registries:"]
        for site in sites:
            lines += [f"  - name: {site.reg.name}", "    type: generic",
                      f"    registry: {site.link.host}", f"    repository: {REPOSITORY}"]
        path.write_text("\n".join(lines) + "\n")
        (path.parent / "Dockerfile").write_text("FROM scratch\n")   # must exist; never built
        return path

    # -- timed steps ----------------------------------------------------------------------------
    def _run(self, argv, env=None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  env=env, timeout=self.args.timeout)
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(argv, -1, exc.stdout or "",
                                               f"timed out after {self.args.timeout}s")

    def docker_chain(self, site: Site, version: str) -> str | None:
        """`docker tag` + `docker push` of every tag to one registry; the first problem."""
        for tag in TAGS[version]:
            for argv in (["docker", "tag", self.local_ref(version), site.ref(tag)],
                         ["docker", "push", site.ref(tag)]):
                proc = self._run(argv)
                if proc.returncode != 0:
                    return f"{' '.join(argv[:2])} {site.ref(tag)}: {tail(proc.stderr or proc.stdout, 2)}"
        return None

    def do_loop(self, sites: list[Site], version: str) -> tuple[float, str | None, dict]:
        sync()
        self.clock0, start = time.monotonic(), time.perf_counter()
        problems = [self.docker_chain(site, version) for site in sites]
        return time.perf_counter() - start, next((p for p in problems if p), None), {}

    def do_parallel(self, sites: list[Site], version: str) -> tuple[float, str | None, dict]:
        problems: list[str | None] = [None] * len(sites)

        def chain(i: int) -> None:
            problems[i] = self.docker_chain(sites[i], version)

        threads = [threading.Thread(target=chain, args=(i,), daemon=True) for i in range(len(sites))]
        sync()
        self.clock0, start = time.monotonic(), time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - start, next((p for p in problems if p), None), {}

    def do_release(self, sites: list[Site], version: str) -> tuple[float, str | None, dict]:
        argv = [self.release_bin, "-c", str(self.release_yml), "build-push", version,
                "--no-build", "--quiet", "--json"]
        sync()
        self.clock0, start = time.monotonic(), time.perf_counter()
        proc = self._run(argv, env=self.release_env)
        seconds = time.perf_counter() - start
        info: dict = {"exit": proc.returncode}
        try:
            report = json.loads(proc.stdout)
            statuses: dict[str, int] = {}
            for res in report.get("results", []):
                statuses[res.get("status")] = statuses.get(res.get("status"), 0) + 1
            info.update(statuses=statuses, digest=report.get("digest"), ok=report.get("ok"))
        except (json.JSONDecodeError, AttributeError):
            report = None
        problem = None
        if proc.returncode != 0:
            problem = f"exit {proc.returncode}: {tail(proc.stderr or proc.stdout, 3)}"
        elif report is None:
            problem = "no JSON report on stdout"
        return seconds, problem, info

    def figure(self, rep: int, tool: str, version: str, detail: dict) -> None:
        name = tool if version == FULL else f"{tool}-incr"
        sites = self.sites[tool]
        before = [s.link.snapshot() for s in sites]
        fn = {"loop": self.do_loop, "parallel": self.do_parallel, "release": self.do_release}[tool]
        cpu0 = cpu_times()
        seconds, problem, info = fn(sites, version)
        info["machine_busy"] = busy_fraction(cpu0, cpu_times())
        wire = [{k: after[k] - b[k] for k in after} for b, after in
                zip(before, (s.link.snapshot() for s in sites))]
        # When the blob bytes flowed: the first MB up and the last byte up, per link,
        # in seconds after the clock started (the 1st MB is after the GET /v2/, HEADs...).
        for w, b, site in zip(wire, before, sites):
            if w["bytes_up"] >= 2 * MB:
                first = site.link.when_up_reached(b["bytes_up"] + MB)
                last = site.link.when_up_reached(b["bytes_up"] + w["bytes_up"])
                w["first_mb_at"] = round(first - self.clock0, 3) if first else None
                w["last_byte_at"] = round(last - self.clock0, 3) if last else None
        # read back from the registries themselves (not through the links): one digest for all
        found = digests([s.reg for s in sites], TAGS[version])
        ok, note = one_digest(found)
        if not ok:
            problem = problem or note
        else:
            info["registry_digest"] = note
            earlier = detail.get(tool, {}).get("registry_digest")
            if version == INCR and earlier == note:
                problem = problem or f"{INCR} has the digest of {FULL} ({note})"
        info["wire"] = wire
        info["seconds"] = round(seconds, 4)
        detail[name] = info
        self.record(name, rep, seconds, problem)
        up = [w["bytes_up"] / MB for w in wire]
        log(f"      {' / '.join(f'{u:.1f}' for u in up)} MB up, "
            f"{sum(w['connections'] for w in wire)} connections")
        if tool == "release":
            limit = max(w["bytes_up"] / s.link.rate for w, s in zip(wire, sites))
            detail[f"limit{'' if version == FULL else '-incr'}"] = {"seconds": round(limit, 4)}
            self.record("limit" if version == FULL else "limit-incr", rep, limit,
                        problem and "release failed")

    def record(self, name: str, rep: int, seconds: float, problem: str | None) -> None:
        fig = self.figures[name]
        fig.seconds.append(round(seconds, 4))
        if problem:
            fig.invalid.append(f"run {rep + 1}: {problem}")
        log(f"  run {rep + 1} {name:<15} {seconds:7.2f} s" + (f"  INVALID: {problem}" if problem else ""))

    def repetition(self, rep: int) -> None:
        workdir = self.tmp / f"run{rep + 1}"
        workdir.mkdir()
        started = self.start_sites(workdir)
        self.release_yml = self.write_config(workdir / "release.yml", self.sites["release"])
        # release's cache directory (if it keeps one) starts empty in every repetition: the
        # full release is a first release; the incremental one may use what it recorded.
        self.release_env["XDG_CACHE_HOME"] = str(workdir / "xdg-cache")
        if rep == 0:
            got = run([self.release_bin, "-c", str(self.release_yml), "tags", FULL],
                      env=self.release_env).stdout.split()
            if tuple(got) != TAGS[FULL]:
                raise BenchError(f"release.yml gives tags {got}, the bench expects {list(TAGS[FULL])}")
        order = list(TOOLS[rep % 3:] + TOOLS[:rep % 3])
        detail: dict = {"run": rep + 1, "start_seconds": round(started, 3), "order": order,
                        "loadavg_before": os.getloadavg()}
        log(f"run {rep + 1}/{self.args.runs}: 9 fresh registries and links up in {started:.2f}s "
            f"(not timed); order {' -> '.join(order)}, then the same for {INCR}")
        for version in (FULL, INCR):
            for tool in order:
                self.figure(rep, tool, version, detail)
        detail["loadavg_after"] = os.getloadavg()
        self.reps.append(detail)
        self.stop_sites()
        self.drop_extra_refs()

    # -- results --------------------------------------------------------------------------------
    def ratios(self) -> list[dict]:
        return [ratio_entry(name, self.figures[num], self.figures[den], op, target)
                for name, num, den, op, target in RATIOS]

    def wire_median(self, name: str, key: str, how=max) -> float | None:
        values = []
        for d in self.reps:
            got = [w[key] for w in d.get(name, {}).get("wire", []) if w.get(key) is not None]
            if got:
                values.append(how(got))
        return statistics.median(values) if values else None

    def links_text(self) -> str:
        params = [self.link_params(i) for i in range(N_REGISTRIES)]
        if len(set(params)) == 1:
            rtt, rate = params[0]
            return f"each behind its own link of {rtt * 1000:g} ms RTT, {rate * 8 / 1e6:g} Mbit/s"
        return "links " + ", ".join(f"#{i + 1} {rtt * 1000:g} ms / {rate * 8 / 1e6:g} Mbit/s"
                                    for i, (rtt, rate) in enumerate(params))

    def table(self, ratios: list[dict], wall: float) -> str:
        layers = self.info.get("layers", {})
        lines = [f"release bench/wan: {N_REGISTRIES} registries x 4 tags, {self.links_text()} "
                 f"(token bucket {self.args.burst_kb} KB, one-way delay RTT/2), {self.args.runs} run(s); "
                 f"release at {self.info.get('code', '?')}",
                 f"  image: FROM scratch + {len(layers)} layers, "
                 f"{self.info.get('image_bytes', 0) / MB:.0f} MB "
                 f"in {self.info.get('image_files', 0)} real files ("
                 + ", ".join(f"{n} {s['bytes'] / MB:.1f}" for n, s in layers.items())
                 + f" MB); incremental: {INCR}, one file of the top layer changed",
                 "", f"{'figure':<34}{'median s':>9}  {'spread':>7}  {'MB up/reg':>9}  {'conns':>5}  "
                     f"{'upload s':>11}  {'busy':>4}  {'runs (s)':<24}status"]
        for name in FIGURES:
            fig = self.figures[name]
            med = fig.median
            spread = f"{(max(fig.seconds) - min(fig.seconds)) / med * 100:6.0f}%" if med else "-"
            src = name.replace("limit", "release")
            up = self.wire_median(src, "bytes_up")
            conns = self.wire_median(src, "connections", how=sum)
            up_s = f"{up / MB:9.1f}" if up is not None else f"{'-':>9}"
            conns_s = f"{conns:5.0f}" if conns is not None and not name.startswith("limit") else f"{'':>5}"
            runs = " ".join(f"{s:.2f}" for s in fig.seconds)
            first = self.wire_median(src, "first_mb_at", how=min)
            last = self.wire_median(src, "last_byte_at")
            span = (f"{first:4.1f}-{last:<5.1f}" if first is not None and last is not None
                    and not name.startswith("limit") else "")
            busy = [d[name]["machine_busy"] for d in self.reps
                    if d.get(name, {}).get("machine_busy") is not None]
            busy_s = f"{statistics.median(busy) * 100:3.0f}%" if busy else ""
            lines.append(f"{FIGURE_TEXT[name]:<34}{med if med is not None else float('nan'):>9.2f}  "
                         f"{spread:>7}  {up_s}  {conns_s}  {span:>11}  {busy_s:>4}  {runs:<24}"
                         f"{fig.status}")
        lines.append("  (MB up/reg: the most any one registry's link carried up, headers included; conns: "
                     "TCP connections over the 3 links; upload s: from the first MB up on the first link "
                     "to the last byte up on the last one, after the clock started; busy: all CPUs of "
                     "the machine, anyone's work; medians over the runs)")
        lines += ["", f"{'ratio (of medians)':<30}{'value':>7}  {'target':<9}result"]
        for r in ratios:
            value = f"{r['value']:.2f}" if r["value"] is not None else "-"
            target = f"{r['op']} {r['target']}" if r["target"] is not None else "-"
            lines.append(f"{r['name']:<30}{value:>7}  {target:<9}{r['result']}")
        problems = [f"  {FIGURE_TEXT[name]}: {p}" for name in FIGURES for p in self.figures[name].invalid]
        docker_d = [d.get("loop", {}).get("registry_digest") for d in self.reps]
        release_d = [d.get("release", {}).get("registry_digest") for d in self.reps]
        if any(a and b and a != b for a, b in zip(docker_d, release_d)):
            problems.append("  release's digest differs from docker push's (its own layer compression: "
                            "compare the MB up column)")
        problems += [f"  {n}" for n in self.notes]
        if problems:
            lines += ["", "notes:"] + problems
        lo_s, lo_e = self.load_start, self.load_end or os.getloadavg()
        lines += ["", f"load average (1/5/15 min): start {lo_s[0]:.2f} {lo_s[1]:.2f} {lo_s[2]:.2f}, "
                      f"end {lo_e[0]:.2f} {lo_e[1]:.2f} {lo_e[2]:.2f}; before each run: "
                      f"{', '.join('%.2f' % d['loadavg_before'][0] for d in self.reps)}",
                  f"total wall time {wall:.1f} s"]
        return "\n".join(lines)

    def to_json(self, ratios: list[dict], wall: float, started: str) -> dict:
        head = run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], check=False).stdout.strip()
        version = run([self.release_bin, "--version"], check=False, env=self.release_env).stdout.strip()
        return {
            "bench": "wan", "started": started, "wall_seconds": round(wall, 2), "runs": self.args.runs,
            "links": [{"rtt_ms": rtt * 1000, "rate_mbit": rate * 8 / 1e6, "burst_kb": self.args.burst_kb}
                      for rtt, rate in (self.link_params(i) for i in range(N_REGISTRIES))],
            "registries": N_REGISTRIES, "tags": {v: list(t) for v, t in TAGS.items()},
            "image_mb": self.args.image_mb, "app_kb": self.args.app_kb, **self.info,
            "env": {"release": version, "git_head": head, "docker": Engine.versions(),
                    "python": platform.python_version(), "cpus": os.cpu_count(),
                    "kernel": platform.release()},
            "loadavg_start": self.load_start, "loadavg_end": self.load_end,
            "figures": {name: fig.to_dict() for name, fig in self.figures.items()},
            "ratios": ratios, "notes": self.notes, "per_run": self.reps,
        }


def _overrides(p: argparse.ArgumentParser, items: list[str], flag: str) -> dict[int, float]:
    out = {}
    for item in items:
        index, _, value = item.partition("=")
        try:
            i, v = int(index), float(value)
        except ValueError:
            p.error(f"{flag} {item}: expected N=VALUE, N the registry number (1-{N_REGISTRIES})")
        if not 1 <= i <= N_REGISTRIES or v < 0:
            p.error(f"{flag} {item}: registry number 1-{N_REGISTRIES}, value >= 0")
        out[i] = v
    return out


def parse_args(argv=None):
    default_release = REPO_ROOT / ".venv" / "bin" / "release"
    beside = Path(sys.executable).parent / "release"
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="repetitions per figure (>= 1; default 3)")
    p.add_argument("--json", dest="json_file", metavar="FILE", help="write the raw numbers here")
    p.add_argument("--rtt-ms", type=float, default=40.0, help="round-trip time of every link (default 40)")
    p.add_argument("--rate-mbit", type=float, default=100.0,
                   help="rate of every link, each direction, Mbit/s (default 100)")
    p.add_argument("--link-rtt-ms", action="append", default=[], metavar="N=MS",
                   help="RTT of registry N's link (1-3), overrides --rtt-ms; repeatable")
    p.add_argument("--link-rate-mbit", action="append", default=[], metavar="N=MBIT",
                   help="rate of registry N's link (1-3), overrides --rate-mbit; repeatable")
    p.add_argument("--burst-kb", type=int, default=64, help="token bucket depth, KB (default 64)")
    p.add_argument("--image-mb", type=int, default=150,
                   help="MB of real files in the three lower layers (default 150)")
    p.add_argument("--app-kb", type=int, default=512, help="KB of real files in the top layer (default 512)")
    p.add_argument("--timeout", type=int, default=1200, help="seconds before a timed command is killed")
    p.add_argument("--release", default=str(beside if beside.exists() else default_release),
                   help=f"the release CLI (default: beside this python, else {default_release})")
    args = p.parse_args(argv)
    args.link_rtt_ms = _overrides(p, args.link_rtt_ms, "--link-rtt-ms")
    args.link_rate_mbit = _overrides(p, args.link_rate_mbit, "--link-rate-mbit")
    if args.runs < 1:
        p.error("--runs must be at least 1")
    if args.rtt_ms < 0 or args.rate_mbit <= 0 or min(args.link_rate_mbit.values(), default=1) <= 0:
        p.error("RTT must be >= 0 and rates > 0")
    if args.image_mb < 10 or args.app_kb < 16 or args.burst_kb < 1:
        p.error("--image-mb >= 10, --app-kb >= 16, --burst-kb >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    bench = Bench(args)

    def measure(started, wall0):
        bench.preflight()
        bench.build_images()
        for rep in range(args.runs):
            bench.repetition(rep)
        bench.load_end = os.getloadavg()
        ratios = bench.ratios()
        return ratios, bench.to_json(ratios, time.perf_counter() - wall0, started)

    return run_bench(bench, args, measure,
                     lambda ratios: any(r["result"] in ("FAIL", INVALID) for r in ratios
                                        if r["target"] is not None))


if __name__ == "__main__":
    sys.exit(main())
