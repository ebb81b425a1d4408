"""Say where a BuildKit build failed: the Dockerfile, its line, the instruction, the last log lines."""

from __future__ import annotations

from pathlib import Path

from pipeline.engine.buildkit.dockerfile import locate_step
from pipeline.ui import redact


def describe_failure(dockerfile: Path, error: str, failure, shown: str | None = None) -> str:
    """`failure` is steps.StepFailure (or None when no step failed, e.g. a parse error);
    `shown` is how to name the Dockerfile (as the user wrote it)."""

    name = shown or Path(dockerfile).name
    error = redact.redact(" ".join(error.split()) if "\n" not in error.strip() else error.strip())
    if failure is None:
        return f"build failed ({name}): {error}"
    location = locate_step(Path(dockerfile), failure.name)
    if location is not None:
        head = f"build failed at {name} line {location.line}: {location.instruction}"
    else:
        head = f"build failed at {name}: {failure.name}"
    lines = [head, f"  {redact.redact(failure.error or error)}"]
    if failure.log_tail:
        lines.append("  last lines of its output:")
        lines += [f"    > {redact.redact(line)}" for line in failure.log_tail]
    return "\n".join(lines)
