"""`--use-action` and `--use-component`: the reusable release a generated CI file points at.

`action_reference` checks OWNER/REPO@REF (GitHub's `uses:`), `component_reference`
HOST/GROUP/PROJECT/release@VERSION (GitLab's `include: component:`); both raise UsageError
with a hint naming the expected form. Pure: no I/O.
"""

from __future__ import annotations

import re

from pipeline.errors import UsageError

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
