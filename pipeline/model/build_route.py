"""Which builder and which way in: the engine's BuildKit, the docker CLI, or the classic builder.

Pure: the engine's /version answer and the docker CLI found (cli_build.find_cli) come in as
arguments, so every rule here is unit-tested without an engine.

  * classic: docker-py's build (the legacy builder). No secrets, no buildx cache types.
  * BuildKit through the Engine API (`/build?version=2`, the context tar as the body): what
    every build uses when it can. It has no session, so no secrets.
  * BuildKit through the docker CLI, for what needs a session: build secrets, and buildx cache
    types (`type=gha|registry|local,...`). `docker buildx build --load` when buildx is there,
    else `DOCKER_BUILDKIT=1 docker build` on a CLI older than 23 (which has BuildKit built in).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import UsageError
from pipeline.model.build_options import parse_cache_entry

MIN_BUILDKIT_API = (1, 39)          # Engine 18.09: BuildKit behind /build?version=2
ENGINE, BUILDX, LEGACY_CLI, CLASSIC = "engine", "buildx", "cli", "classic"
WAYS = {
    ENGINE: "BuildKit via the Engine API",
    BUILDX: "BuildKit via docker buildx build --load",
    LEGACY_CLI: "BuildKit via DOCKER_BUILDKIT=1 docker build",
    CLASSIC: "the classic builder",
}
INSTALL_HINT = ("install the buildx plugin (Debian/Ubuntu: apt-get install docker-buildx; Docker's "
                "repository: docker-buildx-plugin), or put a docker CLI older than 23 on PATH "
                "(Debian 12's docker.io)")


@dataclass(frozen=True)
class DockerCli:
    """A docker CLI found on this machine."""
    path: str
    version: str                    # the client's version, e.g. "20.10.24+dfsg1"
    buildx: bool                    # `docker buildx` works

    @property
    def legacy_buildkit(self) -> bool:
        """Before 23, `DOCKER_BUILDKIT=1 docker build` runs BuildKit without the plugin."""
        return 0 < _major(self.version) < 23      # 0: unparsable, assume a new CLI


@dataclass(frozen=True)
class Route:
    way: str                        # ENGINE | BUILDX | LEGACY_CLI | CLASSIC
    cli: DockerCli | None = None
    note: str | None = None         # said once before the build (a fallback, a reason)

    @property
    def buildkit(self) -> bool:
        return self.way != CLASSIC

    def describe(self) -> str:
        return WAYS[self.way]


def engine_has_buildkit(version: dict) -> bool:
    """Linux engines with API 1.39+ build with BuildKit on request (Windows engines do not)."""
    os_name = str(version.get("Os") or "linux").lower()
    return os_name == "linux" and _api(version.get("ApiVersion")) >= MIN_BUILDKIT_API


def session_needs(*, secrets: bool, cache_entries) -> list[str]:
    """What in this build needs a BuildKit session (the docker CLI), in words."""
    needs = ["image.secrets"] if secrets else []
    needs += [f"cache {e.text}" for e in cache_entries if e.needs_buildx]
    return needs


def choose_route(builder: str, *, engine_version: dict, secrets: bool, cache_entries=(),
                 cli: DockerCli | None = None) -> Route:
    """The route for one build; UsageError (exit 2) when what release.yml asks cannot be done."""
    buildx_entries = [e for e in cache_entries if e.needs_buildx]
    needs = session_needs(secrets=secrets, cache_entries=cache_entries)
    if builder == "classic":
        if needs:
            raise UsageError(f"{' and '.join(needs)} need BuildKit, but image.builder is classic",
                             hint="remove image.builder (or set it to auto) to build with BuildKit")
        return Route(CLASSIC)
    if not engine_has_buildkit(engine_version):
        what = (f"{engine_version.get('Os') or '?'} engine, API "
                f"{engine_version.get('ApiVersion') or '?'}")
        if builder == "buildkit" or needs:
            why = "image.builder is buildkit" if builder == "buildkit" else " and ".join(needs)
            raise UsageError(f"this Docker Engine ({what}) cannot build with BuildKit, which "
                             f"{why} requires",
                             hint="use a Linux engine 18.09 or newer (API 1.39+), or set "
                                  "image.builder: classic without secrets and cache specs")
        return Route(CLASSIC, note=f"this Docker Engine ({what}) has no BuildKit: building "
                                   f"with the classic builder")
    if not needs:
        return Route(ENGINE)
    if cli is not None and cli.buildx:
        return Route(BUILDX, cli, note=f"{' and '.join(needs)}: building through docker buildx")
    if buildx_entries:
        raise UsageError(f"{' and '.join(e.text for e in buildx_entries)} needs docker buildx, "
                         f"which is not installed",
                         hint="install the buildx plugin, or use an image reference as "
                              "cache_from (inline cache, no buildx needed)")
    if cli is not None and cli.legacy_buildkit:
        return Route(LEGACY_CLI, cli, note=f"{' and '.join(needs)}: building through "
                                           f"{cli.path} {cli.version} (DOCKER_BUILDKIT=1)")
    found = f" (found {cli.path} {cli.version}, without buildx)" if cli else " (none found)"
    raise UsageError(f"{' and '.join(needs)} need a BuildKit session, which only the docker "
                     f"CLI provides here{found}", hint=INSTALL_HINT)


def describe_route(builder: str, *, secrets: bool, cache_from=(), cache_to=()) -> str:
    """One line for `release plan`, which does not ask the engine."""
    entries = [parse_cache_entry(t, sink=False) for t in cache_from]
    entries += [parse_cache_entry(t, sink=True) for t in cache_to]
    if builder == "classic":
        line = "builder: classic"
    else:
        needs = session_needs(secrets=secrets, cache_entries=entries)
        way = (f"the docker CLI ({'buildx' if any(e.needs_buildx for e in entries) else 'buildx or DOCKER_BUILDKIT=1'}) "
               f"for {' and '.join(needs)}" if needs else "the Engine API")
        line = f"builder: BuildKit via {way}"
        if builder == "auto" and not needs:     # with needs, no BuildKit is an error instead
            line += " (auto: classic if the engine has no BuildKit)"
    line += "; cache from: " + (", ".join(cache_from) if cache_from else "local build cache only")
    if cache_to:
        line += "; cache to: " + ", ".join(cache_to)
    if builder != "classic":
        line += " (+ inline cache in the image)"
    return line


def _api(text) -> tuple[int, int]:
    try:
        major, minor = str(text).split(".")[:2]
        return int(major), int(minor)
    except (TypeError, ValueError):
        return (0, 0)


def _major(version: str) -> int:
    try:
        return int(version.split(".", 1)[0])
    except ValueError:
        return 0
