"""Render the CI templates (Jinja2) with the context from `context.py`.

Delimiters are `[= =]`, `[% %]` and `[# #]`: they cannot clash with GitHub's `${{ }}`,
GitLab's `$[[ ]]`, metadata-action's `{{version}}` or YAML's `<<:` merge keys.
StrictUndefined turns a misspelt name into an error instead of an empty string.
Scalars go through `yq`, which quotes anything YAML could read as something else.
"""

from __future__ import annotations

import json
import re
import shlex
import traceback
from pathlib import Path

import jinja2
import yaml

from pipeline.ci.registries import Setting
from pipeline.errors import UsageError

TARGETS = {"github": "github.yml.j2", "gitlab": "gitlab.yml.j2"}
DEFAULT_OUTPUTS = {"github": ".github/workflows/release.yml", "gitlab": ".gitlab-ci.yml"}
VERSIONS_FILE = "versions.yml"

_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./@:+-]*$")


def builtin_templates() -> Path:
    """ci-templates/: inside the wheel as pipeline/ci_templates, in a checkout at the top level."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "ci_templates", package.parent / "ci-templates"):
        if (candidate / TARGETS["github"]).is_file():
            return candidate
    raise UsageError("the built-in CI templates are missing from this installation",
                     hint="reinstall release, or pass --templates DIR")


def yaml_scalar(value) -> str:
    """A YAML scalar for `value`: plain when YAML reads it back as the same string, else JSON."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return json.dumps(value)
    text = str(value)
    if _PLAIN.match(text):
        try:
            if yaml.safe_load(text) == text:
                return text
        except yaml.YAMLError:
            pass
    return json.dumps(text, ensure_ascii=False)


def yaml_text(value) -> str:
    """A command line or a name as a YAML scalar: plain when YAML reads it back unchanged as a
    mapping value or list item (the usual case, and what people write), else double-quoted:
    a path from release.yml with ` #` or `: ` in it would otherwise cut the line short."""
    text = str(value)
    if text and "\n" not in text and text == text.strip():
        try:
            if yaml.safe_load(f"k: {text}") == {"k": text} and yaml.safe_load(f"- {text}") == [text]:
                return text
        except yaml.YAMLError:
            pass
    return json.dumps(text, ensure_ascii=False)


def single_quoted(value) -> str:
    """A YAML single-quoted scalar: backslashes stay as they are (regexes read well)."""
    text = str(value)
    if any(c in text for c in "\n\r\t"):
        return json.dumps(text, ensure_ascii=False)
    return "'" + text.replace("'", "''") + "'"


def github_value(setting: Setting) -> str:
    """A release.yml value as it is, or the repository variable that holds it."""
    return setting.value if setting.is_literal else "${{ vars.%s }}" % setting.var


def gitlab_shell(setting: Setting) -> str:
    """A shell word for a GitLab script: the value quoted, or the CI/CD variable."""
    return shlex.quote(setting.value) if setting.is_literal else f'"${setting.var}"'


def load_versions(templates: Path | None) -> dict:
    """versions.yml: the built-in file, with what --templates DIR's versions.yml sets on top
    (key by key inside github: and gitlab:, so a key added to the built-in file later is there
    even when your own file predates it)."""
    merged: dict = {}
    for base in [builtin_templates()] + ([templates] if templates else []):
        path = base / VERSIONS_FILE
        if not path.is_file():
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise UsageError(f"{where}: not valid YAML: {problem}",
                             hint=f"fix {path.name}: it maps github: and gitlab: to the action and "
                                  f"image versions the templates pin (see the built-in "
                                  f"{builtin_templates() / VERSIONS_FILE})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: cannot be read: {exc}") from None
        if not isinstance(data, dict):
            raise UsageError(f"{path} must be a mapping (github:, gitlab:)",
                             hint=f"see the built-in {builtin_templates() / VERSIONS_FILE}")
        for key, value in data.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    if not merged:  # pragma: no cover - the built-in one exists
        raise UsageError(f"{VERSIONS_FILE} not found")
    return merged


def environment(templates: Path | None = None):

    paths = ([str(templates)] if templates else []) + [str(builtin_templates())]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(paths),
        variable_start_string="[=", variable_end_string="=]",
        block_start_string="[%", block_end_string="%]",
        comment_start_string="[#", comment_end_string="#]",
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters.update(yq=yaml_scalar, yt=yaml_text, sq=single_quoted, sh=shlex.quote, gh=github_value, gl=gitlab_shell,
                       json=lambda v: json.dumps(v, ensure_ascii=False))
    return env


def _template_line(exc: BaseException, fallback: str) -> str:
    """`FILE:LINE` of the template line that raised `exc`: Jinja2 rewrites the traceback so that
    template code shows as frames of the .j2 file at its own line numbers; the innermost wins
    (an included or imported template, not the one that included it)."""

    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f.filename.endswith((".j2", ".jinja", ".jinja2", ".yml", ".yaml"))]
    if frames:
        return f"{frames[-1].filename}:{frames[-1].lineno}"
    return fallback


def render(target: str, context: dict, templates: Path | None = None) -> str:
    """The file for `target` (github | gitlab). Raises UsageError on a template problem, naming
    the template file and line, never "internal error"."""

    env = environment(templates)
    name = TARGETS[target]
    hint_names = "the names a template can use are in pipeline/ci/context.py"
    try:
        template = env.get_template(name)
        text = template.render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise UsageError(f"{exc.filename or exc.name or name}:{exc.lineno}: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        # a missing include/import names the template that is missing, and the line asking for it
        searched = ", ".join(env.loader.searchpath) if isinstance(env.loader, jinja2.FileSystemLoader) else ""
        missing = ", ".join(getattr(exc, "templates", None) or [exc.name or name])
        where = _template_line(exc, name)
        raise UsageError(f"{where}: template {missing} not found" + (f" (looked in {searched})" if searched else ""),
                         hint="add the file to --templates DIR, or fix the name in the include") from None
    except jinja2.UndefinedError as exc:
        raise UsageError(f"{_template_line(exc, name)}: {exc.message}", hint=hint_names) from None
    except Exception as exc:  # noqa: BLE001 - a runtime error in someone's template, located
        raise UsageError(f"{_template_line(exc, name)}: the template failed: {type(exc).__name__}: {exc}",
                         hint="fix the expression on that line of the template") from None
    text = re.sub(r"[ \t]+\n", "\n", text).rstrip("\n") + "\n"
    try:
        yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"template {name} rendered invalid YAML: {exc}") from None
    return text
