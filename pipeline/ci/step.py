"""`release` as a CI step: step outputs, job summary, dotenv report, log sections.

GitHub Actions: `$GITHUB_OUTPUT` gets `version`, `digest` and `tags` (one full reference per
line, in a heredoc with a random delimiter), `$GITHUB_STEP_SUMMARY` a Markdown table. Log
sections are `::group::` / `::endgroup::`; text that did not come from release itself (engine
output, registry errors) is neutralised so it cannot start a workflow command.
GitLab CI: a dotenv report (`--dotenv PATH`) and collapsible `section_start` / `section_end`.

Nothing here writes a secret: every value passes through `redact` first.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path
from typing import Mapping

from pipeline.errors import UsageError
from pipeline.model.status import HELD
from pipeline.ui.redact import redact
from pipeline.ui.summary import describe_sent

SUMMARY_LIMIT = 900_000                # GitHub rejects a step summary over 1 MiB


def ci_system(env: Mapping[str, str]) -> str | None:
    """github | gitlab | None, from the variables each runner sets."""
    if env.get("GITHUB_ACTIONS") == "true":
        return "github"
    if env.get("GITLAB_CI") == "true":
        return "gitlab"
    return None


# ---------------------------------------------------------------------------- untrusted text

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def neutralise(text: str) -> str:
    """Text that cannot carry a GitHub workflow command, split into lines the runner sees.

    The runner runs `::cmd::` at the start of a line (after leading spaces) and the legacy
    `##[cmd]` anywhere in a line; it splits lines at \\r too. Such lines get a visible
    prefix, and `##[` becomes `## [`.
    """
    lines = []
    for line in _LINE_BREAK.split(text):
        line = line.replace("##[", "## [")
        if line.lstrip().startswith("::"):
            line = "| " + line
        lines.append(line)
    return "\n".join(lines)


def neutralise_json(text: str) -> str:
    """JSON with the same data that no runner reads a command from: `##[` only occurs inside
    strings, where `\\u0023` is the same `#`; lines of indented JSON never start with `::`."""
    return text.replace("##[", "\\u0023#[")


def github_group(title: str) -> str:
    return f"::group::{neutralise(title).replace(chr(10), ' ')}"


def github_endgroup() -> str:
    return "::endgroup::"


def gitlab_section_start(name: str, title: str, *, collapsed: bool = False, now: float | None = None) -> str:
    stamp = int(time.time() if now is None else now)
    options = "[collapsed=true]" if collapsed else ""
    title = _LINE_BREAK.sub(" ", title)
    return f"\x1b[0Ksection_start:{stamp}:{name}{options}\r\x1b[0K{title}"


def gitlab_section_end(name: str, *, now: float | None = None) -> str:
    stamp = int(time.time() if now is None else now)
    return f"\x1b[0Ksection_end:{stamp}:{name}\r\x1b[0K"


# ---------------------------------------------------------------------------- outputs


def held_refs(report) -> list[str]:
    """Full references that hold the released image, in push order."""
    return [r.ref for r in report.results if r.status in HELD]


def output_values(report) -> dict[str, str | list[str]]:
    return {"version": report.plan.version, "digest": report.digest or "", "tags": held_refs(report)}


def github_output_text(values: Mapping[str, str | list[str]], delimiter: str | None = None) -> str:
    """`name<<DELIM ... DELIM` blocks for $GITHUB_OUTPUT (a fresh random delimiter per value)."""
    out = []
    for name, value in values.items():
        text = "\n".join(value) if isinstance(value, list) else str(value)
        text = redact(text)
        delim = delimiter or f"ghadelimiter_{uuid.uuid4().hex}"
        if delim in text:
            raise ValueError(f"the output delimiter occurs in the value of {name}")
        out.append(f"{name}<<{delim}\n{text}\n{delim}\n")
    return "".join(out)


def _cell(text: str) -> str:
    text = redact(str(text)).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _LINE_BREAK.sub(" ", text).replace("|", "\\|")


def step_summary(report) -> str:
    """Markdown for $GITHUB_STEP_SUMMARY: one row per reference, then the outcome."""
    version = _cell(report.plan.version)
    lines = [f"### release {version}", "", "| Registry | Reference | Digest | Status |",
             "| --- | --- | --- | --- |"]
    for r in report.results:
        digest = f"`{_cell(r.digest)}`" if r.digest else "-"
        lines.append(f"| {_cell(r.registry)} | `{_cell(r.ref)}` | {digest} | {_cell(r.status)} |")
    lines.append("")
    sent = report.sent() if hasattr(report, "sent") else {}
    if sent:
        lines.append("Sent (blob bytes, manifests not counted):")
        lines += [f"- {_cell(name)}: {_cell(describe_sent(counts))}" for name, counts in sent.items()]
        lines.append("")
    if report.ok:
        lines.append(f"Released **{version}**: {len(report.results)} references, "
                     f"digest `{_cell(report.digest or '-')}`.")
    else:
        lines.append(f"**Release of {version} incomplete**; re-run the job to finish it once the cause is fixed.")
        lines.append("")
        problems = [f"{r.registry}: {r.ref}: {r.error}" for r in report.results if r.error]
        lines += [f"- {_cell(p)}" for p in [*problems, *report.errors]]
    for note in getattr(report, "notes", []):
        lines.append(f"- note: {_cell(note)}")
    text = "\n".join(lines) + "\n\n"
    if len(text.encode()) > SUMMARY_LIMIT:
        text = text.encode()[:SUMMARY_LIMIT].decode(errors="ignore") + "\n\n(summary truncated)\n\n"
    return text


_DOTENV_VALUE = re.compile(r"\s")


def dotenv_text(report) -> str:
    """A GitLab dotenv report: KEY=value lines, no quotes, no spaces, no secrets."""
    values = {
        "RELEASE_VERSION": report.plan.version,
        "RELEASE_DIGEST": report.digest or "",
        "RELEASE_TAGS": ",".join(held_refs(report)),
        "RELEASE_OK": "true" if report.ok else "false",
    }
    return "".join(f"{k}={_DOTENV_VALUE.sub('', redact(v))}\n" for k, v in values.items())


def check_output_paths(env: Mapping[str, str], dotenv: str | None = None) -> None:
    """Before any work: every file the step will write can be written (else exit 2, not a
    pushed release followed by a crash)."""

    paths = [(name, env.get(name)) for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY")]
    paths.append(("--dotenv", dotenv))
    for name, value in paths:
        if not value:
            continue
        path = Path(value)
        parent = path.parent if str(path.parent) else Path(".")
        if path.is_dir():
            raise UsageError(f"{name} {value} is a directory", hint="give a file path")
        if name != "--dotenv" and not parent.is_dir():
            raise UsageError(f"{name} {value}: directory {parent} does not exist")
        probe = path if path.exists() else parent
        if probe.exists() and not os.access(probe, os.W_OK):
            raise UsageError(f"{name} {value} is not writable")


def write_step_outputs(report, env: Mapping[str, str], dotenv: str | None = None) -> list[str]:
    """Write whatever this CI asks for; returns the paths written."""
    written = []
    if env.get("GITHUB_OUTPUT"):
        with open(env["GITHUB_OUTPUT"], "a", encoding="utf-8") as fh:
            fh.write(github_output_text(output_values(report)))
        written.append(env["GITHUB_OUTPUT"])
    if env.get("GITHUB_STEP_SUMMARY"):
        with open(env["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as fh:
            fh.write(step_summary(report))
        written.append(env["GITHUB_STEP_SUMMARY"])
    if dotenv:
        path = Path(dotenv)
        if path.parent != Path(""):
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dotenv_text(report), encoding="utf-8")
        written.append(dotenv)
    return written
