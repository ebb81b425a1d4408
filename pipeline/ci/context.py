"""The data the CI templates render: a pure function of Config (no I/O, no Jinja).

Everything a template needs is decided here, so the templates stay plain YAML with a few
loops: which registries need which login, which permissions the release job gets, which
git tags trigger a release (derived from the tag rules), which secrets and variables the
repository must define. Lists keep release.yml's order, so the output is deterministic.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from pipeline.errors import UsageError

# Registry types the CI logs in to with OIDC (a short-lived identity, no stored secret); release's
# cloud adapters then read that identity (AWS chain, Google ADC, Azure login) themselves.
OIDC_TYPES = ("ecr", "gcr", "acr")

_SLASHED = re.compile(r"/(.+)/(.*)")  # `/source/flags`, read as pipeline.model.tags.jsregex reads it
_LOOPBACK = re.compile(r"^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::(\d+))?$")
_ECR_HOST = re.compile(r"^(\d{12})\.dkr[.-]ecr(?:-fips)?\.([a-z]{2,}(?:-[a-z]+)+-[0-9]+)\.")  # its region
_DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")

SEMVER_GLOBS = ("v[0-9]+.[0-9]+.[0-9]+*", "[0-9]+.[0-9]+.[0-9]+*")
SEMVER_REGEX = r"/^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/"
PEP440_GLOBS = ("v[0-9]*", "[0-9]*")
PEP440_REGEX = (r"/^v?(\d+!)?\d+(\.\d+)*([._-]?(a|b|c|rc|alpha|beta|pre|preview|post|rev|r|dev)"
                r"[._-]?\d*)*$/i")
ANY_TAG = "**"
NATIVE_ARCHES = ("amd64", "386")      # what the amd64 runners run without QEMU
GITLAB_COM_REGISTRY = "registry.gitlab.com"   # type gitlab without `registry:`, outside GitLab CI
# GitHub-hosted runners by architecture (keys of versions.yml's `github:`). A platform whose
# architecture is not here runs on the amd64 runner under QEMU.
GITHUB_RUNNERS = {"amd64": "runner", "386": "runner", "arm64": "runner_arm64"}


@dataclass(frozen=True)
class Setting:
    """A value the CI needs: written in release.yml (`value`), else a CI variable named `var`."""
    var: str
    value: str | None = None
    purpose: str = ""

    @property
    def is_literal(self) -> bool:
        return self.value is not None


@dataclass
class Registry:
    name: str
    type: str
    host: str
    repository: str
    prefix: str                   # for the names of its CI secrets and variables
    login: str                    # none | env | ghcr | dockerhub | basic | gitlab | ecr | gcr | acr
    loopback_port: int | None = None
    env: dict[str, str] = field(default_factory=dict)       # env var -> secret of the same name
    username_env: str | None = None
    password_env: str | None = None
    username: Setting | None = None                          # basic / dockerhub / gitlab / ghcr
    password_secret: str | None = None
    region: str | None = None                                # ecr
    role_arn: str | None = None                              # ecr: release assumes it itself
    # type gitlab without `registry:` in release.yml: `host` is registry.gitlab.com (what release
    # uses outside GitLab CI, e.g. on GitHub), and GitLab CI names it `$CI_REGISTRY` at run time,
    # whatever CI_REGISTRY was where the file was generated.
    ci_registry: bool = False

    @property
    def image(self) -> str:
        return f"{self.host}/{self.repository}"

    @property
    def gitlab_host(self) -> str:
        """The host as a shell word of a GitLab CI script: `"$CI_REGISTRY"` for a GitLab
        registry release.yml leaves to the job (expanded at run time), else the host quoted."""
        return '"$CI_REGISTRY"' if self.ci_registry else shlex.quote(self.host)

    @property
    def docker_hub(self) -> bool:
        return self.host in _DOCKER_HUB_HOSTS

    @property
    def oidc(self) -> bool:
        return self.login in OIDC_TYPES


@dataclass(frozen=True)
class PlatformJob:
    """One leg of the per-platform matrix (several image.platforms): `release build-push VERSION
    --platform P --push-by-digest --metadata-file release-metadata/SLUG.json`."""
    platform: str                 # as release.yml writes it: linux/arm/v7
    slug: str                     # linux-arm-v7: artifact and record file names
    runner: str                   # GitHub runs-on: a native runner, else the amd64 one
    github_qemu: str | None       # GitHub: setup-qemu-action platforms (no native runner)
    gitlab_qemu: str | None       # GitLab: binfmt --install on the default (amd64) runner


def env_prefix(name: str) -> str:
    """Registry name -> the prefix of its CI variables: `docker-hub` -> `DOCKER_HUB`."""
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def var_name(prefix: str, suffix: str) -> str:
    """`HUB` + `USERNAME` -> `HUB_USERNAME`; `DOCKERHUB` + `DOCKERHUB_TOKEN` -> `DOCKERHUB_TOKEN`."""
    return suffix if suffix.startswith(prefix + "_") else f"{prefix}_{suffix}"


def _ecr_region(reg) -> str | None:
    configured = getattr(reg, "region", None)
    if isinstance(configured, str) and configured:
        return configured
    if reg.registry in ("public.ecr.aws", "ecr-public.aws.com"):
        return "us-east-1"
    m = _ECR_HOST.match(reg.registry)
    return m.group(2) if m else None


def registry_context(reg) -> Registry:
    """How the CI gives release the credentials of one registry."""
    prefix = env_prefix(reg.name)
    # `registry:` left out of a gitlab entry: the loader took $CI_REGISTRY from the environment
    # that generates the file (else registry.gitlab.com). Neither may be baked in: GitLab CI reads
    # its own $CI_REGISTRY at run time, anything else (GitHub) registry.gitlab.com.
    ci_registry = reg.type == "gitlab" and getattr(reg, "host_defaulted", False) is True
    out = Registry(name=reg.name, type=reg.type,
                   host=GITLAB_COM_REGISTRY if ci_registry else reg.registry,
                   repository=reg.repository, prefix=prefix, login="none", ci_registry=ci_registry)
    if reg.username_env or reg.password_env:
        out.login = "env"
        out.env = {n: n for n in (reg.username_env, reg.password_env) if n}
        out.username_env, out.password_env = reg.username_env, reg.password_env
        return out
    loop = _LOOPBACK.match(reg.registry)
    if loop:
        # a plain registry:2 service stands in for it; not for a TLS one (ca_file): the service
        # speaks HTTP, and no CI service has its certificate (ci/reachability.py says so)
        if getattr(reg, "ca_file", None) is None:
            out.loopback_port = int(loop.group(1) or 80)
        return out
    if reg.type in OIDC_TYPES:
        out.login = reg.type
        if reg.type == "ecr":
            out.region = _ecr_region(reg)
            role = getattr(reg, "role_arn", None)
            out.role_arn = role if isinstance(role, str) and role else None
        return out
    if reg.type == "ghcr" or reg.registry == "ghcr.io":
        out.login = "ghcr"
    elif reg.type == "gitlab":
        out.login = "gitlab"
    elif reg.type == "dockerhub" or out.docker_hub:
        out.login = "dockerhub"
    else:
        out.login = "basic"
    out.username = Setting(var=var_name(prefix, "USERNAME"), purpose=f"user name for {reg.name}")
    out.password_secret = var_name(prefix, "TOKEN" if out.login == "dockerhub" else "PASSWORD")
    return out


def extras_for(config) -> list[str]:
    """The pip extras of release the CI needs: the SDK of each cloud it logs in to with OIDC
    (boto3 reads AWS web identity, google-auth an external-account file, azure-identity a
    federated token file)."""
    wanted = {"ecr": "aws", "gcr": "gcp", "acr": "azure"}
    logins = {registry_context(r).login for r in config.registries}
    return sorted(wanted[t] for t in logins if t in wanted)


def with_extras(spec: str, extras: list[str], package: str = "release-pipeline") -> str:
    """The install spec with the cloud extras, valid for pip in each form it can take:

    `.` -> `.[aws]`; `./vendor/release/` -> `./vendor/release[aws]`;
    `release-pipeline==1.0` -> `release-pipeline[aws]==1.0`;
    `release-pipeline @ https://x/r.whl` -> `release-pipeline[aws] @ https://x/r.whl`;
    `git+https://host/r.git@v1` -> `release-pipeline[aws] @ git+https://host/r.git@v1`
    (PEP 508: a URL gets its extras through a named direct reference)."""
    spec = spec.strip()
    if not extras:
        return spec
    extra = f"[{','.join(extras)}]"
    name, at, url = spec.partition(" @ ")
    if at:                                            # name @ URL
        if "[" in name:
            return spec
        return f"{name.strip()}{extra} @ {url.strip()}"
    if "://" in spec or spec.startswith(("git+", "hg+", "svn+", "bzr+")):   # a bare URL / VCS
        return f"{package}{extra} @ {spec}"
    if spec.startswith((".", "/", "~")) or "/" in spec or spec.endswith((".whl", ".tar.gz", ".zip")):
        if spec.endswith("]"):
            return spec
        return spec.rstrip("/") + extra                 # a local directory or archive
    if "[" in spec:
        return spec
    m = re.match(r"^([A-Za-z0-9._-]+)(.*)$", spec)
    if not m:
        return spec
    return f"{m.group(1)}{extra}{m.group(2)}"


# ---------------------------------------------------------------------------- tag triggers


def _regex_parts(pattern: str) -> tuple[str, str]:
    m = _SLASHED.fullmatch(pattern)
    return (m.group(1), m.group(2)) if m else (pattern, "")


_GLOB_LITERAL = re.compile(r"[A-Za-z0-9_./-]")


def _group_end(source: str, start: int) -> int | None:
    """Index of the `)` closing the group opened at `start`, or None."""
    depth, i, in_class = 0, start, False
    while i < len(source):
        c = source[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def glob_from_regex(pattern: str) -> str:
    """A GitHub filter pattern that matches at least every tag the JS regex matches.

    Anchored literal text and `\\d+`-style runs are kept (`^v(\\d+\\.\\d+)$` -> `v[0-9]+.[0-9]+`);
    at the first construct without a glob equivalent the rest becomes `**`. Unanchored -> `**`.
    """
    source, flags = _regex_parts(pattern)
    if not source.startswith("^") or "|" in source or "g" in flags:
        return ANY_TAG
    out: list[str] = []
    i, n = 1, len(source)
    anchored_end = False
    while i < n:
        c = source[i]
        nxt = source[i + 1] if i + 1 < n else ""
        if c == "$" and i == n - 1:
            anchored_end = True
            break
        if c == "(":
            close = _group_end(source, i)
            if close is None or (close + 1 < n and source[close + 1] in "?*+{"):
                break  # an optional or repeated group: the glob stops before it
            if source.startswith("(?:", i):
                i += 3
                continue
            if source.startswith(("(?<", "(?P<"), i) and not source.startswith(("(?<=", "(?<!"), i):
                end = source.find(">", i)
                if end < 0:
                    break
                i = end + 1
                continue
            if nxt == "?":
                break
            i += 1
            continue
        if c == ")":
            if nxt in ("?", "*", "+", "{"):
                break
            i += 1
            continue
        if c == "\\" and nxt == "d":
            q = source[i + 2] if i + 2 < n else ""
            if q == "+":
                out.append("[0-9]+")
                i += 3
            elif q == "{":
                end = source.find("}", i)
                if end < 0 or source.startswith("{0", i + 2):
                    break
                out.append("[0-9]+")
                i = end + 1
            elif q in ("*", "?"):
                break
            else:
                out.append("[0-9]")
                i += 2
            continue
        if c == "\\" and nxt in ".-_/":
            literal, width = nxt, 2
        elif _GLOB_LITERAL.match(c) and c != ".":
            literal, width = c, 1
        else:
            break
        if "i" in flags and literal.isalpha():
            break  # case-insensitive: a glob cannot say that
        quantifier = source[i + width] if i + width < n else ""
        if quantifier and quantifier in "?*+{":
            break  # a quantified literal: stop before it
        out.append(literal)
        i += width
    glob = "".join(out)
    if not anchored_end:
        glob += ANY_TAG  # `**` also matches '/', which `*` does not
    return glob


_RE2_UNSUPPORTED = re.compile(r"\(\?[=!]|\(\?<[=!]|\\[1-9]|\\k<")


def gitlab_regex(pattern: str) -> str | None:
    """The JS regex as a GitLab `=~` literal (RE2), or None if RE2 cannot express it."""
    source, flags = _regex_parts(pattern)
    if _RE2_UNSUPPORTED.search(source):
        return None
    source = re.sub(r"\(\?<(?=[A-Za-z_])", "(?P<", source)
    source = re.sub(r"(?<!\\)/", r"\/", source)
    kept = "".join(f for f in flags if f in "ims")
    return f"/{source}/{kept}"


@dataclass(frozen=True)
class TagTriggers:
    globs: tuple[str, ...]        # GitHub on.push.tags
    regexes: tuple[str, ...]      # GitLab `$CI_COMMIT_TAG =~ REGEX`; empty = any tag
    sources: tuple[str, ...]      # the rules they come from, for the header comment


def tag_triggers(rules) -> TagTriggers:
    """Which git tags start a release: the ones the (enabled) tag rules read a version from."""
    globs: list[str] = []
    regexes: list[str | None] = []
    sources: list[str] = []
    for rule in rules:
        if rule.get("enable", "true") == "false" or rule.get("value"):
            continue
        pattern = None
        if rule.type in ("semver", "pep440"):
            pattern = rule.get("match") or None
            if pattern is None:
                semver = rule.type == "semver"
                globs.extend(SEMVER_GLOBS if semver else PEP440_GLOBS)
                regexes.append(SEMVER_REGEX if semver else PEP440_REGEX)
                sources.append(rule.text)
                continue
        elif rule.type == "match":
            pattern = rule.get("pattern")
        elif rule.type == "ref" and rule.get("event") == "tag":
            globs.append(ANY_TAG)
            regexes.append(None)
            sources.append(rule.text)
            continue
        else:
            continue
        globs.append(glob_from_regex(pattern))
        regexes.append(gitlab_regex(pattern))
        sources.append(rule.text)
    if not globs:  # no rule reads a tag (raw/sha/edge only): any tag may start a release
        globs, regexes = [ANY_TAG], [None]
    if ANY_TAG in globs:
        globs = [ANY_TAG]
    if None in regexes:
        regexes = []
    return TagTriggers(tuple(dict.fromkeys(globs)), tuple(dict.fromkeys(r for r in regexes if r)),
                       tuple(dict.fromkeys(sources)))


# ---------------------------------------------------------------------------- jobs


def login_set(registries: list[Registry], aws, gcp, azure) -> dict:
    """What one job logs in to: its registries, the clouds those need, and the permissions that
    takes (packages: write for GHCR, id-token: write for an OIDC login; contents: read always)."""
    logins = {r.login for r in registries}
    oidc = any(r.oidc for r in registries)
    permissions = {"contents": "read"}
    if "ghcr" in logins:
        permissions["packages"] = "write"
    if oidc:
        permissions["id-token"] = "write"
    return {"registries": registries, "permissions": permissions, "oidc": oidc,
            "aws": aws if "ecr" in logins else None,
            "gcp": gcp if "gcr" in logins else None,
            "azure": azure if "acr" in logins else None}


def platform_jobs(platforms: list[str], versions: dict) -> list[PlatformJob]:
    """One matrix leg per platform, in release.yml's order: on GitHub a native runner where
    there is one (versions.yml: runner, runner_arm64), else the amd64 runner with QEMU; on
    GitLab the default runner (taken to be amd64), with binfmt for anything but amd64/386."""
    github = versions.get("github") if isinstance(versions, dict) else None
    github = github if isinstance(github, dict) else {}
    out = []
    for platform in platforms:
        parts = platform.split("/")
        arch = parts[1] if len(parts) > 1 else parts[0]
        key = GITHUB_RUNNERS.get(arch)
        native = key is not None and bool(github.get(key))
        out.append(PlatformJob(platform=platform, slug=platform.replace("/", "-"),
                               runner=github[key] if native else github.get("runner"),
                               github_qemu=None if native else arch,
                               gitlab_qemu=None if arch in NATIVE_ARCHES else arch))
    return out


def _arch(platform: str) -> str:
    parts = platform.split("/")
    return parts[1] if len(parts) > 1 else parts[0]


def emulated_arches(platforms: list[str]) -> list[str]:
    """The architectures of `platforms` an amd64 runner runs under QEMU, in order, once each."""
    arches = (p.split("/")[1] for p in platforms if len(p.split("/")) > 1)
    return list(dict.fromkeys(a for a in arches if a not in NATIVE_ARCHES))


def github_runner(platforms: list[str], versions: dict) -> tuple[str | None, list[str]]:
    """(runs-on, setup-qemu-action platforms) of a GitHub job that builds every platform itself:
    the build job, and the release job when there is no per-platform matrix.

    One platform with a native runner (linux/arm64 and versions.yml's runner_arm64) runs there,
    without QEMU: emulation is many times slower. Anything else runs on the amd64 runner, with
    QEMU for the foreign architectures."""
    if len(platforms) == 1:
        (job,) = platform_jobs(platforms, versions)
        return job.runner, [job.github_qemu] if job.github_qemu else []
    github = versions.get("github") if isinstance(versions, dict) else None
    return (github if isinstance(github, dict) else {}).get("runner"), emulated_arches(platforms)


# ---------------------------------------------------------------------------- reusable release

# OWNER/REPO@REF: GitHub's owner rules (letters, digits, single inner hyphens, <= 39), its
# repository-name characters, and a ref git would accept (`git check-ref-format`, roughly).
_ACTION_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
_ACTION_REPO = re.compile(r"[A-Za-z0-9._-]{1,100}")
_REF_CHARS = re.compile(r"[A-Za-z0-9._/+-]+")
_PATH_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# HOST of a component: $CI_SERVER_FQDN, or a host name with a dot (or a port): a bare first
# word is more likely a group, the host forgotten.
_HOST = re.compile(r"\$CI_SERVER_FQDN|\$\{CI_SERVER_FQDN\}|"
                   r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9-]*[A-Za-z0-9](?::\d{1,5})?|"
                   r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?:\d{1,5}")


def _ref_problem(ref: str) -> str | None:
    """Why `ref` is no git ref name / commit (None: it is one)."""
    if not ref:
        return "the part after @ is empty"
    if not _REF_CHARS.fullmatch(ref):
        bad = sorted({c for c in ref if not _REF_CHARS.fullmatch(c)})
        return f"the ref {ref!r} has characters a ref cannot have here: {' '.join(map(repr, bad))}"
    if ".." in ref or "//" in ref or ref.startswith(("/", ".", "-")) or ref.endswith(("/", ".", ".lock")):
        return f"the ref {ref!r} is not a valid git ref name"
    return None


def action_reference(value: str) -> str:
    """`OWNER/REPO@REF` of the release GitHub Action (its action.yml is at the repository's
    root), checked: what `uses:` gets in the generated workflow. Raises UsageError otherwise."""
    text = value.strip() if isinstance(value, str) else ""
    hint = ("write OWNER/REPO@REF, the repository holding release's action.yml and a tag, "
            "branch or commit of it: e.g. acme/release@v1, or acme/release@<40-hex commit> to pin it")
    path, at, ref = text.rpartition("@")
    problem = None
    if not at:
        problem = "no @REF"
    elif path.startswith("."):
        problem = "a local action (./PATH) is not supported: give the repository that holds action.yml"
    elif path.count("/") != 1:
        problem = ("OWNER/REPO/PATH: release's action.yml is at the repository's root, so OWNER/REPO"
                   if "/" in path else "not OWNER/REPO")
    else:
        owner, repo = path.split("/")
        if not _ACTION_OWNER.fullmatch(owner):
            problem = f"{owner!r} is not a GitHub user or organization name"
        elif not _ACTION_REPO.fullmatch(repo) or repo in (".", ".."):
            problem = f"{repo!r} is not a GitHub repository name"
        else:
            problem = _ref_problem(ref)
    if problem:
        raise UsageError(f"--use-action {value!r}: {problem}", hint=hint)
    return text


def component_reference(value: str) -> str:
    """`HOST/GROUP/PROJECT/release@VERSION` of the release GitLab CI/CD component, checked:
    what `include: component:` gets in the generated .gitlab-ci.yml. HOST is usually the
    literal `$CI_SERVER_FQDN`; subgroups may come between GROUP and PROJECT. Raises UsageError."""
    text = value.strip() if isinstance(value, str) else ""
    hint = ("write HOST/GROUP/PROJECT/release@VERSION, as in an `include: component:` line: e.g. "
            "'$CI_SERVER_FQDN/tools/release/release@1.0.0' (quote the $ in a shell), or @~latest, "
            "a branch or a commit")
    path, at, version = text.rpartition("@")
    parts = path.split("/")
    problem = None
    if not at:
        problem = "no @VERSION"
    elif len(parts) < 4:
        problem = ("not HOST/GROUP/PROJECT/COMPONENT: the component's name (release, for "
                   "templates/release.yml) and its project's full path are both needed")
    elif not _HOST.fullmatch(parts[0]):
        problem = f"{parts[0]!r} is not a host name (with a dot or a port) nor $CI_SERVER_FQDN"
    elif not all(_PATH_PART.fullmatch(p) for p in parts[1:]):
        bad = next(p for p in parts[1:] if not _PATH_PART.fullmatch(p))
        problem = f"{bad!r} is not a GitLab group, project or component name"
    elif version != "~latest":
        problem = _ref_problem(version)
    if problem:
        raise UsageError(f"--use-component {value!r}: {problem}", hint=hint)
    return text


# ---------------------------------------------------------------------------- build cache

GHA_CACHE_FROM = "type=gha"                # GitHub: the Actions cache, through buildx
GHA_CACHE_TO = "type=gha,mode=max,ignore-error=true"   # a cache service hiccup must not fail a release
CACHE_TAG = "latest"                       # GitLab: the image whose inline cache is imported


def gitlab_cache_ref(registries: list[Registry]) -> str | None:
    """The image the GitLab jobs import BuildKit inline cache from (`--cache-from "$CACHE_REF"`):
    the `latest` image of the first registry that outlives a job (a loopback registry:2 is a
    service that starts empty every time), or None. A GitLab registry is named through
    `$CI_REGISTRY`, its host in GitLab CI (release itself reads $CI_REGISTRY when release.yml
    leaves `registry:` out, so the host written here may be a stand-in)."""
    for r in registries:
        if r.loopback_port is not None:
            continue
        host = "$CI_REGISTRY" if r.type == "gitlab" else r.host
        return f"{host}/{r.repository}:{CACHE_TAG}"
    return None


def cache_context(registries: list[Registry], enabled: bool = True) -> dict:
    """What the templates need for the build cache (off: `release ci generate --no-cache`).

    GitHub: the jobs that build set up buildx and expose the Actions cache runtime, then pass
    `--cache-from type=gha --cache-to type=gha,mode=max` (per-platform jobs add `scope=SLUG`).
    GitLab: Docker-in-Docker, no buildx: `--cache-from "$CACHE_REF"`, a pushed image (every image
    release builds carries inline cache metadata), `gitlab_ref` below."""
    ref = gitlab_cache_ref(registries) if enabled else None
    return {"enabled": enabled, "gha_from": GHA_CACHE_FROM, "gha_to": GHA_CACHE_TO,
            "gitlab_ref": ref,
            "gitlab_source": next((r.name for r in registries if r.loopback_port is None), None)
            if ref else None}


# ---------------------------------------------------------------------------- the whole context


def build_context(config, *, config_path: str, versions: dict, install: str,
                  default_branch: str = "main", command: str = "release ci generate",
                  cache: bool = True, use_action: str | None = None,
                  use_component: str | None = None) -> dict:
    """Template context for `config`. `config_path` is release.yml relative to the repository
    root (where the CI runs); `install` is what `pip install` gets to install release; `cache`
    False leaves the build cache out of the generated files.

    `use_action` (OWNER/REPO@REF): the GitHub release jobs run release through that GitHub
    Action (action.yml) instead of installing it themselves. `use_component`
    (HOST/GROUP/PROJECT/release@VERSION): the GitLab release job comes from that CI/CD
    component (templates/release.yml). Both are checked here (UsageError with a hint)."""
    action = action_reference(use_action) if use_action is not None else None
    component = component_reference(use_component) if use_component is not None else None
    registries = [registry_context(r) for r in config.registries]
    logins = sorted({r.login for r in registries})
    triggers = tag_triggers(config.tags)
    ghcr = "ghcr" in logins

    # One identity per cloud and job: the SDKs read one AWS chain, one Google ADC file, one
    # Azure login. A registry in another account: role_arn (ECR) or grant that identity access.
    ecr = [r for r in registries if r.login == "ecr"]
    aws_region = next((r.region for r in ecr if r.region), None)
    aws = None
    if ecr:
        aws = {"role": Setting(var="AWS_ROLE_ARN", purpose="IAM role the job assumes with OIDC"),
               "region": Setting(var="AWS_REGION", value=aws_region, purpose="AWS region for STS")}
    gcp = {"provider": Setting(var="GCP_WORKLOAD_IDENTITY_PROVIDER",
                               purpose="workload identity provider, projects/NUMBER/locations/global/"
                                       "workloadIdentityPools/POOL/providers/PROVIDER"),
           "service_account": Setting(var="GCP_SERVICE_ACCOUNT",
                                      purpose="service account the job impersonates")} \
        if "gcr" in logins else None
    azure = {"client_id": Setting(var="AZURE_CLIENT_ID",
                                  purpose="client id of the app registration with a federated credential"),
             "tenant_id": Setting(var="AZURE_TENANT_ID", purpose="Microsoft Entra tenant id"),
             "subscription_id": Setting(var="AZURE_SUBSCRIPTION_ID", purpose="Azure subscription id")} \
        if "acr" in logins else None

    gh_secrets: list[tuple[str, str]] = []
    gh_vars: list[tuple[str, str]] = []
    gl_vars: list[tuple[str, str]] = []
    for r in registries:
        for name in r.env.values():
            gh_secrets.append((name, f"named in release.yml for {r.name}"))
            if r.type != "gitlab":  # on GitLab these come from CI_REGISTRY_USER / _PASSWORD
                gl_vars.append((name, f"named in release.yml for {r.name} (masked)"))
        if r.login in ("dockerhub", "basic", "gitlab"):
            gh_vars.append((r.username.var, r.username.purpose))
            gh_secrets.append((r.password_secret, f"password or access token for {r.name}"))
        if r.login in ("dockerhub", "basic", "ghcr"):
            gl_vars.append((r.username.var, r.username.purpose))
            gl_vars.append((r.password_secret, f"password or access token for {r.name} (masked)"))
    for cloud, gitlab_keys in ((aws, ("role",)), (gcp, ("provider", "service_account")),
                               (azure, ("client_id", "tenant_id"))):
        for key, setting in (cloud or {}).items():
            if not setting.is_literal:
                gh_vars.append((setting.var, setting.purpose))
                if key in gitlab_keys:
                    gl_vars.append((setting.var, setting.purpose))

    platforms = [str(p) for p in (getattr(config.image, "platforms", ()) or ())]
    emulated = emulated_arches(platforms)
    runner, github_qemu = github_runner(platforms, versions)
    release_job = login_set(registries, aws, gcp, azure)
    # Several platforms: one job per platform pushes it by digest to the first registry (logged
    # in there only), a merge job assembles the index and releases it everywhere. Not when the
    # first registry is a loopback service: each job would get its own empty registry:2.
    loopback_first = bool(registries) and registries[0].loopback_port is not None
    matrix = len(platforms) > 1 and bool(registries) and not loopback_first
    release_cmd = "release" if config_path == "release.yml" else f"release -c {shlex.quote(config_path)}"
    loopback_ports = sorted({r.loopback_port for r in registries if r.loopback_port is not None})
    return {
        "command": command,
        "config_path": config_path,
        "release": release_cmd,
        "install": install,
        "image": config.image.name,
        "default_branch": default_branch,
        "registries": registries,
        "logins": logins,
        "tag_globs": list(triggers.globs),
        "tag_regexes": list(triggers.regexes),
        "tag_sources": list(triggers.sources),
        "platforms": platforms,
        "emulated_arches": emulated,          # need QEMU on an amd64 runner
        "matrix": matrix,                     # per-platform jobs + a merge job
        "matrix_blocked": len(platforms) > 1 and loopback_first,
        "platform_jobs": platform_jobs(platforms, versions) if matrix else [],
        "first": registries[0] if registries else None,
        "platform_job": login_set(registries[:1], aws, gcp, azure),   # first registry only
        "release_job": release_job,                                   # release / merge: all
        "permissions": release_job["permissions"],
        "oidc": release_job["oidc"],
        "ghcr": ghcr,
        "aws": aws,
        "gcp": gcp,
        "azure": azure,
        "role_arns": [r for r in ecr if r.role_arn],
        "loopback_ports": loopback_ports,
        "cache": cache_context(registries, cache),
        "github_secrets": list(dict.fromkeys(gh_secrets)),
        "github_variables": list(dict.fromkeys(gh_vars)),
        "gitlab_variables": list(dict.fromkeys(gl_vars)),
        "v": versions,
        # GitHub jobs that build every platform themselves (build; release without the matrix):
        # a single platform with a native runner (linux/arm64) runs there, without QEMU.
        "runner": runner,
        "github_emulated": github_qemu,
        "native_platform": platforms[0] if len(platforms) == 1 and not github_qemu
        and GITHUB_RUNNERS.get(_arch(platforms[0]), "runner") != "runner" else None,
        "gitlab_ci_registries": [r for r in registries if r.ci_registry],
        "extras": extras_for(config),                 # the action's / component's `extras` input
        "action": action,                             # uses: OWNER/REPO@REF, or None
        "component": component,                       # include: component: ..., or None
    }
