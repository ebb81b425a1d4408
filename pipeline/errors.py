"""Errors that the CLI turns into exit codes.

Exit code 1: a build or push failed. Exit code 2: bad configuration or usage.
Messages never contain secrets: callers pass only names of env vars, never values.
"""

from __future__ import annotations


class ReleaseError(Exception):
    """A failure while doing the work (build, push, verify). Exit code 1."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(ReleaseError):
    """Bad input from the user (arguments, version string). Exit code 2."""

    exit_code = 2


class ConfigError(UsageError):
    """A problem in release.yml, located as FILE:LINE:COL like a compiler error."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 col: int | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.file = file
        self.line = line
        self.col = col

    @property
    def location(self) -> str:
        parts = [self.file or "release.yml"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class TagRuleError(UsageError):
    """A tag or flavor line that does not parse, or a rule that produced an invalid tag.

    `index` is the position of the rule in the `tags:` (or `flavor:`) list so that the
    config loader can turn it into a FILE:LINE:COL error.
    """

    def __init__(self, message: str, *, index: int | None = None, section: str = "tags",
                 hint: str | None = None):
        super().__init__(message, hint=hint)
        self.index = index
        self.section = section


class ValueProblem(ValueError):
    """A value that does not parse, raised by pure modules (platforms, build options); the
    caller places it (ConfigError at its line, UsageError for a flag). `hint` says the fix."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


MAX_REPORTED_ERRORS = 20


def all_errors(exc: ReleaseError) -> list[ReleaseError]:
    """The problems `exc` stands for: a ConfigError from the loader carries every problem of
    the file on `errors` (in file order, itself first); anything else is just itself."""
    errors = getattr(exc, "errors", None)
    if isinstance(errors, list) and errors and all(isinstance(e, ReleaseError) for e in errors):
        return errors
    return [exc]


def format_errors(exc: ReleaseError, *, prefix: str = "error: ",
                  limit: int = MAX_REPORTED_ERRORS) -> str:
    """`prefix` + each problem (FILE:LINE:COL: message, hint), up to `limit`, then
    "... and N more"."""
    errors = all_errors(exc)
    lines = [f"{prefix}{e}" for e in errors[:limit]]
    if len(errors) > limit:
        more = len(errors) - limit
        lines.append(f"{prefix}... and {more} more problem{'s' if more != 1 else ''} "
                     f"({len(errors)} in all)")
    return "\n".join(lines)
