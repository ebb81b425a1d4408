"""What the generated CI pip-installs to get release, right by construction.

In order: `release ci generate --install SPEC`; else release.yml's `ci.install`; else `.` inside
release's own repository (the CI checks that repository out); else where the running release
came from, read from its PEP 610 record (`direct_url.json` of the installed distribution):

    vcs_info      -> git+URL@COMMIT_ID        (the commit, never the branch that was asked for)
    archive_info  -> release-pipeline @ URL   (#sha256=... kept when the record has a hash)
    dir_info, an editable checkout, or no record (installed from a package index) -> UsageError,
                     exit 2: a runner has no such directory, and nothing here says that the
                     runners' index serves release-pipeline (PyPI does not; anyone could
                     register the name). The message says what to set: ci.install or --install.

The default never names an unpublished package (`release-pipeline==...`). A `file://` origin is
used, with a warning: only a runner on this machine has that path.

An explicit spec is parsed by pipeline/model/install_spec.py; here it is checked against the
repository (a path must be inside it) and the cloud extras ([aws], [gcp], [azure]) go where pip
takes them for each form (context.with_extras).

Pure: every decision is made from the values passed in (the flag, the ci.install value, the
record's text, the repository root and what lies under it). read_direct_url() is the one
function that looks at the environment.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import re
import tomllib
from pathlib import Path
from typing import Callable, NoReturn
from urllib.parse import unquote, urlsplit

import pipeline
from pipeline.ci.context import with_extras
from pipeline.errors import ConfigError, UsageError, ValueProblem
from pipeline.model.install_spec import (
    EXAMPLE_VCS,
    EXAMPLE_WHEEL,
    NAME_AT,
    PACKAGE,
    SCHEME,
    VCS,
    Spec,
    forms_hint,
    has_credentials,
    package_version,
    parse_spec,
    path_part,
    requirement_parts,
)


def _project_name(directory: Path) -> str | None:
    try:
        with open(directory / "pyproject.toml", "rb") as stream:
            name = tomllib.load(stream).get("project", {}).get("name")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def is_release_repository(root: Path) -> bool:
    """Is `root` release's own repository (pyproject.toml names the project release-pipeline)?"""
    name = _project_name(root)
    return name is not None and _canonical(name) == PACKAGE


def in_repository(spec: Spec, root: Path) -> list[str]:
    """For a path spec: ValueProblem if it leads out of `root` (through a symlink too); notes
    when the runner's checkout may not have it or it is not release."""
    if spec.kind != "path":
        return []
    path = path_part(spec.text)
    target = root / path
    try:
        resolved = target.resolve()
        base = root.resolve()
    except (OSError, RuntimeError):
        return []
    if resolved != base and base not in resolved.parents:
        raise ValueProblem(f"'{spec.text}' leads out of the repository (to {resolved}): a CI "
                           f"runner has only the repository's checkout",
                           hint="put release inside the repository, or use a URL: " + forms_hint())
    if not target.exists():
        return [f"'{spec.text}' is not in the repository here: the runner's checkout must have "
                f"it (commit it, or build it in an earlier step)"]
    if target.is_dir():
        name = _project_name(target)
        if name is None and not (target / "setup.py").is_file():
            return [f"'{spec.text}' holds no pyproject.toml or setup.py: pip cannot install it"]
        if name is not None and _canonical(name) != PACKAGE:
            return [f"'{spec.text}' is the project {name}, not {PACKAGE}: the CI would not get "
                    f"the release command from it"]
    return []


def notes(spec: Spec) -> list[str]:
    """What works but may not be meant: a path on this machine, an unpinned VCS URL, the
    unpublished name from a package index."""
    out = []
    url = spec.url or ""
    if url.lower().startswith(("file:", "git+file:", "hg+file:", "svn+file:", "bzr+file:")):
        out.append(f"{url} is a path on this machine: only a runner on this machine (self-hosted) "
                   f"can install it")
    if spec.kind in ("vcs", "direct") and SCHEME.match(url) and "+" in SCHEME.match(url).group(1):
        rest = urlsplit(url.split("+", 1)[1])
        if "@" not in rest.path:
            out.append(f"{url.split('#')[0]} is not pinned: every CI run installs whatever its "
                       f"default branch holds then; add @TAG or @COMMIT")
    if spec.kind == "name" and spec.name and _canonical(spec.name) == PACKAGE:
        out.append(f"{PACKAGE} is not published on PyPI, and anyone may register the name: this "
                   f"works only when the runners' package index (PIP_INDEX_URL) serves release, "
                   f"and installs whatever that index serves under the name; a VCS URL pinned "
                   f"to a tag does not depend on it")
    return out


def with_cloud_extras(spec: Spec, extras: list[str]) -> str:
    """The spec as the CI installs it, with `extras` where pip takes them for its kind
    (context.with_extras; extras written in the spec are kept as written). What comes out as
    a requirement is checked to be one."""
    text = spec.text
    if spec.kind == "direct":             # `name@URL`, `name [x] @URL` -> `name[x] @ URL`
        m = NAME_AT.match(text)
        assert m is not None
        text = f"{m.group(1)}{(m.group(2) or '').replace(' ', '')} @ {text[m.end():].strip()}"
    out = with_extras(text, list(extras))
    if spec.kind == "path":               # `./vendor/release[aws]`: pip's own path syntax
        return out
    check = f"{PACKAGE} @ {out}" if out == text and spec.kind in ("vcs", "archive") else out
    try:
        requirement_parts(check)
    except ValueProblem as exc:
        raise ValueProblem(f"'{out}' (with the extras {', '.join(extras)}) is not a requirement "
                           f"pip understands", hint=exc.hint) from None
    return out


# ---------------------------------------------------------------------------- the origin


def _unusable(reason: str) -> UsageError:
    v = package_version()
    return UsageError(
        f"cannot tell what the generated CI should install to get release: {reason}",
        hint=("say it in release.yml:\n"
              "      ci:\n"
              f"        install: {EXAMPLE_VCS.format(version=v)}\n"
              f"    or with --install SPEC, e.g. --install '{EXAMPLE_VCS.format(version=v)}' "
              f"(a VCS URL pinned to a tag or commit), a wheel URL (https://HOST/"
              f"release_pipeline-{v}-py3-none-any.whl), or a path in this repository "
              f"({EXAMPLE_WHEEL.format(version=v)})"))


def origin_spec(record: str | None) -> tuple[str, list[str]]:
    """(spec, warnings) from the text of release-pipeline's direct_url.json (None: there is
    none), or UsageError saying what to set instead."""
    if record is None:
        return _fail("release was installed from a package index (its install has no PEP 610 "
                     "direct_url.json), and nothing here says that your runners' index serves "
                     f"{PACKAGE} (PyPI does not publish it)")
    try:
        data = json.loads(record)
    except ValueError as exc:
        return _fail(f"the record of where release was installed from (direct_url.json) is not "
                     f"valid JSON ({exc})")
    url = data.get("url") if isinstance(data, dict) else None
    if not isinstance(url, str) or not SCHEME.match(url):
        return _fail("the record of where release was installed from (direct_url.json) has no "
                     "URL")
    subdirectory = data.get("subdirectory")
    fragment = f"subdirectory={subdirectory}" if isinstance(subdirectory, str) and subdirectory \
        else ""
    if has_credentials(url):
        return _fail("the URL release was installed from holds credentials (not shown)")
    vcs_info, archive_info, dir_info = (data.get(k) for k in ("vcs_info", "archive_info",
                                                              "dir_info"))
    if isinstance(vcs_info, dict):
        vcs, commit = vcs_info.get("vcs"), vcs_info.get("commit_id")
        if vcs not in VCS:
            return _fail(f"release was installed from {url} with an unknown VCS ({vcs!r})")
        if not isinstance(commit, str) or not re.fullmatch(r"[0-9A-Za-z._-]+", commit):
            return _fail(f"the record of release's install from {url} names no commit")
        prefix = "" if url.lower().startswith(f"{vcs}+") else f"{vcs}+"   # PEP 610: no prefix
        spec = f"{prefix}{url}@{commit}" + (f"#{fragment}" if fragment else "")
    elif isinstance(archive_info, dict):
        digest = _archive_hash(archive_info)
        parts = [p for p in (fragment, digest) if p]
        spec = f"{PACKAGE} @ {url}" + ("" if "#" in url or not parts else "#" + "&".join(parts))
    elif isinstance(dir_info, dict):
        where = _local(url)
        if dir_info.get("editable"):
            return _fail(f"release runs from an editable checkout ({where}), which a CI runner "
                         f"does not have")
        return _fail(f"release was installed from the directory {where}, which a CI runner "
                     f"does not have")
    else:
        return _fail("the record of where release was installed from (direct_url.json) has "
                     "neither vcs_info, archive_info nor dir_info")
    warnings = []
    if url.lower().startswith("file:"):
        warnings.append(f"the generated CI installs release from {spec}, where this release was "
                        f"installed from: a path on this machine, which only a runner on this "
                        f"machine (self-hosted) has; set ci.install in release.yml, or "
                        f"--install, to a URL your runners reach")
    return spec, warnings


def _fail(reason: str) -> NoReturn:
    raise _unusable(reason)


def _archive_hash(info: dict) -> str | None:
    hashes = info.get("hashes")
    if isinstance(hashes, dict):
        for algorithm in ("sha256", "sha384", "sha512", "sha224"):
            value = hashes.get(algorithm)
            if isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]+", value):
                return f"{algorithm}={value}"
    legacy = info.get("hash")  # "sha256=HEX", deprecated by PEP 610's `hashes`
    if isinstance(legacy, str):
        m = re.fullmatch(r"(sha256|sha384|sha512|sha224)=([0-9a-fA-F]+)", legacy)
        if m:
            return legacy
    return None


def _local(url: str) -> str:
    if url.startswith("file://"):
        return unquote(urlsplit(url).path) or url
    return url


def read_direct_url(package: str = PACKAGE) -> str | None:
    """The text of `package`'s direct_url.json (PEP 610) in the environment release runs in;
    None when it has none, or release is not installed at all.

    Several records of the package can be on sys.path (an editable install's dist-info and the
    .egg-info setuptools leaves in the checkout, which `python -m` puts first): the dist-info
    whose directory holds the running `pipeline` package wins, else the first dist-info."""
    try:
        found = list(metadata.distributions(name=package))
    except Exception:  # a broken record elsewhere on sys.path
        return None
    modern = [d for d in found if not str(getattr(d, "_path", "")).endswith(".egg-info")] or found
    if not modern:
        return None
    here = Path(pipeline.__file__).resolve().parent.parent

    def location(d) -> Path | None:
        try:
            return Path(str(d.locate_file(""))).resolve()
        except (OSError, RuntimeError, TypeError):
            return None

    chosen = next((d for d in modern if location(d) == here), modern[0])
    try:
        return chosen.read_text("direct_url.json")
    except (OSError, UnicodeDecodeError):
        return ""  # unreadable: reported like a broken record


# ---------------------------------------------------------------------------- all together


def resolve(*, flag: str | None, configured: str | None, root: Path, extras: list[str] = (),
            origin: str | None | Callable[[], str | None] = None,
            configured_at: tuple[str, int | None, int | None] | None = None
            ) -> tuple[str, list[str]]:
    """(what the CI pip-installs, with `extras`; warnings to print) from `--install` (`flag`),
    release.yml's ci.install (`configured`, at (file, line, col) `configured_at`), release's
    own repository at `root`, or the origin record (its text, or a function that reads it
    when it is needed). UsageError (exit 2) for a bad flag, ConfigError at ci.install's line
    for a bad ci.install, UsageError naming what to set when the origin is of no use."""
    extras = list(extras)
    if flag is not None or configured is not None:
        value = flag if flag is not None else configured
        try:
            spec = parse_spec(value)
            warnings = in_repository(spec, root) + notes(spec)
            out = with_cloud_extras(spec, extras)
        except ValueProblem as exc:
            if flag is not None:
                raise UsageError(f"--install: {exc.message}", hint=exc.hint) from None
            file, line, col = configured_at or (None, None, None)
            raise ConfigError(f"ci.install: {exc.message}", file=file, line=line, col=col,
                              hint=exc.hint) from None
        if flag is not None:
            where = "--install"
        else:
            file, line, _ = configured_at or (None, None, None)
            where = f"ci.install ({file or 'release.yml'}{f':{line}' if line else ''})"
        return out, [f"{where}: {w}" for w in warnings]
    if is_release_repository(root):
        return with_cloud_extras(Spec(text=".", kind="path"), extras), []
    record = origin() if callable(origin) else origin
    spec_text, warnings = origin_spec(record)
    kind = "vcs" if not spec_text.startswith(PACKAGE) else "direct"
    spec = Spec(text=spec_text, kind=kind, url=spec_text.split(" @ ", 1)[-1],
                name=PACKAGE if kind == "direct" else None)
    return with_cloud_extras(spec, extras), warnings
