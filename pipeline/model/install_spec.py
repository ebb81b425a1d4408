"""What `ci.install` (or `release ci generate --install`) may say: one pip install spec, parsed
and checked without the repository (pure). pipeline/ci/install.py checks the rest (paths under the
repository) and finds the default.

A spec is one of: a requirement (NAME, NAME==VERSION, NAME>=1,<2 and markers), NAME @ URL, a VCS
URL (git+https://HOST/OWNER/REPO.git@TAG), a wheel or sdist URL, or a path inside the repository
(refused: absolute paths and paths that lead out of it; a runner has neither). Requirements are
checked with packaging.requirements.Requirement.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from pipeline import __version__
from pipeline.errors import ValueProblem

PACKAGE = "release-pipeline"
VCS = ("git", "hg", "svn", "bzr")
ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip", ".tar")
EXAMPLE_VCS = "git+https://github.com/OWNER/release.git@v{version}"
EXAMPLE_WHEEL = "vendor/release_pipeline-{version}-py3-none-any.whl"

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
NAME_AT = re.compile(rf"^({_NAME})\s*(\[[^\]]*\])?\s*@")        # `name @ URL`, `name[x]@URL`
SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EXTRAS_SUFFIX = re.compile(r"\[[^\]]*\]$")


@dataclass(frozen=True)
class Spec:
    """One install spec, as written (stripped) and what it is."""
    text: str
    kind: str          # name | direct (NAME @ URL) | vcs | archive | path
    url: str | None = None       # direct / vcs / archive
    name: str | None = None      # name / direct


# ---------------------------------------------------------------------------- explicit specs


def package_version() -> str:
    return __version__


def forms_hint() -> str:
    v = package_version()
    return (f"e.g. {EXAMPLE_VCS.format(version=v)} (a VCS URL pinned to a tag), "
            f"https://HOST/release_pipeline-{v}-py3-none-any.whl, or a path in this repository "
            f"such as {EXAMPLE_WHEEL.format(version=v)}")


def requirement_parts(text: str) -> tuple[str, str | None]:
    """(name, url or None) of a PEP 508 requirement, or ValueProblem."""
    # lazy: only an explicit ci.install needs it
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid"
        raise ValueProblem(f"'{text}' is not a requirement pip understands ({first})",
                           hint=forms_hint()) from None
    return req.name, req.url


def has_credentials(url: str) -> bool:
    """user:SECRET@ anywhere, or any user@ of an http(s) URL (TOKEN@github.com); ssh's git@ is
    a user name, not a secret."""
    m = SCHEME.match(url)
    inner = url.split("+", 1)[1] if m and "+" in m.group(1) else url
    try:
        parts = urlsplit(inner)
        password, username = parts.password, parts.username
    except ValueError:
        return False
    return password is not None or (username is not None and parts.scheme in ("http", "https"))


def _check_url(url: str) -> str:
    """The kind of a URL (vcs | archive), or ValueProblem."""
    m = SCHEME.match(url)
    if not m:
        raise ValueProblem(f"'{url}' is not a URL (https://..., git+https://..., file://...)",
                           hint=forms_hint())
    if has_credentials(url):
        raise ValueProblem("the URL holds credentials (user:SECRET@ or TOKEN@ before the host): "
                           "the generated CI file would publish them (value not shown)",
                           hint="give the runners access another way (a deploy key, git "
                                "credentials or a .netrc on the runner) and write the URL "
                                "without the secret")
    scheme = m.group(1).lower()
    vcs, plus, _ = scheme.partition("+")
    if plus and vcs in VCS:
        return "vcs"
    if scheme in ("http", "https", "file"):
        path = urlsplit(url).path.lower()
        if path.endswith(ARCHIVE_SUFFIXES):
            return "archive"
        raise ValueProblem(f"'{url}' is neither a VCS URL nor a wheel or sdist "
                           f"({', '.join(ARCHIVE_SUFFIXES[:3])}, ...): pip cannot install it",
                           hint=forms_hint())
    raise ValueProblem(f"'{url}': pip installs from http(s), file and VCS URLs "
                       f"({', '.join(v + '+https' for v in VCS)}), not {scheme}:",
                       hint=forms_hint())


def path_part(text: str) -> str:
    """A local path without its extras, with '/' separators."""
    return _EXTRAS_SUFFIX.sub("", text).replace("\\", "/")


def parse_spec(text: str) -> Spec:
    """What `text` is (see the module docstring), or ValueProblem saying what is wrong. Checks
    what does not need the repository root; in_repository() checks the rest."""
    if not isinstance(text, str):
        raise ValueProblem(f"must be a string, got {type(text).__name__}", hint=forms_hint())
    text = text.strip()
    if not text:
        raise ValueProblem("must not be empty", hint="leave it out to use the default, or "
                                                     "write what pip installs: " + forms_hint())
    if _CONTROL.search(text):
        raise ValueProblem("must be one line, without control characters", hint=forms_hint())
    if text.startswith("-"):
        raise ValueProblem(f"'{text.split()[0]}' is a pip option: this names one thing to "
                           f"install", hint="an index goes in the runners' pip configuration "
                                            "(PIP_INDEX_URL); " + forms_hint())
    m = NAME_AT.match(text)
    if m:                                                  # NAME @ URL
        name, url = requirement_parts(text)
        if url is None:  # pragma: no cover - `@` after a name is always a URL to packaging
            raise ValueProblem(f"'{text}' has no URL after '@'", hint=forms_hint())
        _check_url(url)
        return Spec(text=text, kind="direct", url=url, name=name)
    if text.startswith(("/", "\\", "~")) or _DRIVE.match(text):
        raise ValueProblem(f"'{text}' is an absolute path: a CI runner has no such path",
                           hint="write a path relative to the repository root (the runner "
                                "checks the repository out there), or a URL: " + forms_hint())
    if "://" in text:
        kind = _check_url(text)
        requirement_parts(f"{PACKAGE} @ {text}")
        return Spec(text=text, kind=kind, url=text)
    path = path_part(text)
    if text.startswith(".") or "/" in path or path.lower().endswith(ARCHIVE_SUFFIXES):
        normal = os.path.normpath(path).replace("\\", "/")
        if normal == ".." or normal.startswith("../"):
            raise ValueProblem(f"'{text}' leads out of the repository: a CI runner has only "
                               f"the repository's checkout",
                               hint="put release (a wheel, or a checkout as a git submodule) "
                                    "inside the repository, or use a URL: " + forms_hint())
        return Spec(text=text, kind="path")
    name, url = requirement_parts(text)
    return Spec(text=text, kind="name", name=name)
