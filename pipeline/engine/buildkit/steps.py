"""BuildKit progress as lines of text, and the step that failed.

`StepTracker` takes the `StatusResponse` events of a build (from `trace.decode_aux` for
the Engine API, or `plainlog.PlainLogParser` for the CLI's `--progress=plain`) and
renders them through `on_line`, one call per line, no trailing newline.

Vertices are keyed by digest: BuildKit resends a vertex each time it changes (started,
completed, cached, error), and a vertex that two stages share is one vertex (it keeps the
name the engine gave it first). Each change is rendered at most once.

Rendering rules:

* Steps are the Dockerfile's instructions, named `[<stage> <n>/<total>] INSTR ...`; their
  names are shown with whitespace runs collapsed and cut to `name_width` characters.
* A step's header (its name) is printed when it starts, or when it logs before its start
  was seen. A step whose first news is its end (cached, or started and finished in the
  same message) prints only its end line.
* The end line: `<name>: DONE 1.2s`, `<name>: CACHED`, `<name>: ERROR <reason>` (for
  `executor failed running [...]: exit code: 2` the reason is `exit code 2`) or
  `<name>: CANCELED` (errors that are a cancellation: a parallel step stopped because
  another one failed, or Ctrl-C).
* Log lines are decoded as UTF-8 (bad bytes replaced), split on newlines; carriage-return
  progress keeps only its last state (`10%\\r55%\\r100%` -> `100%`), blank lines are
  dropped. A line is held until its newline arrives (or its vertex ends, or `flush()`).
* Parallel steps: a log line is printed as `  > text` when the line printed just before it
  belongs to the same step (its header or its log); otherwise it is prefixed with its
  step's label, `[tools 3/3] > text`, so that interleaved output stays attributable.
* Other vertices (`[internal] load ...`, `copy /context /`, `exporting to image`,
  `[auth] ...`) are hidden: only their end line is printed, and only when they fail or took
  at least `internal_after` seconds (`[internal] load build context: DONE 4.2s`). Their
  logs are kept for `failure()` but not printed.
* Warnings: `WARNING: <short>`, then each detail line and the URL indented by two spaces;
  each distinct warning once.
* Statuses (layer downloads, "writing image", "naming to ...") are not rendered: they are
  progress counters, not lines.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from pipeline.engine.buildkit.trace import StatusResponse, Vertex

STEP_NAME = re.compile(r"^\[[^\]]*\d+/\d+\]\s")
_LABEL = re.compile(r"^\[[^\]]*\]")
_FAILED_RUN = re.compile(r"^(?:executor failed running \[.*\]|process \".*\" did not complete "
                         r"successfully): (?P<rest>.*)$", re.DOTALL)


@dataclass(frozen=True)
class StepFailure:
    name: str                      # the vertex name, as the engine sent it
    error: str                     # the vertex error, in full
    log_tail: tuple[str, ...]      # its last log lines (cleaned as the rendered ones)


@dataclass(frozen=True)
class StepSummary:
    name: str
    cached: bool
    seconds: float | None          # completed - started; None while unfinished
    error: str = ""


def is_canceled(error: str) -> bool:
    return error.rstrip().endswith(("context canceled", "canceled"))


def short_error(error: str) -> str:
    """The reason of a vertex error, without the command it repeats."""
    m = _FAILED_RUN.match(error)
    text = m.group("rest") if m else error
    text = re.sub(r"^exit code: (\d+)", r"exit code \1", text.strip())
    first = text.splitlines()[0] if text else ""
    return first if len(first) <= 200 else first[:197] + "..."


def clean_log(raw: bytes) -> str:
    """One log line: decoded, carriage-return progress collapsed, trailing space stripped."""
    text = raw.decode("utf-8", "replace").rstrip("\r")
    return text.rsplit("\r", 1)[-1].rstrip()


@dataclass
class _Vertex:
    digest: str
    name: str
    order: int
    cached: bool = False
    started: float | None = None
    completed: float | None = None
    error: str = ""
    error_order: int = 0
    header: bool = False
    ended: str = ""                # "", "done", "cached", "error", "canceled"
    pending: bytes = b""
    tail: deque = field(default_factory=deque)

    @property
    def step(self) -> bool:
        return bool(STEP_NAME.match(self.name))

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.completed is None:
            return None
        return max(0.0, self.completed - self.started)


class StepTracker:
    def __init__(self, on_line: Callable[[str], None], *, tail: int = 10,
                 internal_after: float = 1.0, name_width: int = 100):
        self._on_line = on_line
        self._tail = tail
        self._internal_after = internal_after
        self._name_width = name_width
        self._vertices: dict[str, _Vertex] = {}
        self._warnings: set = set()
        self._last: str | None = None          # digest of the step of the last line printed
        self._errors = 0

    # -- input -----------------------------------------------------------------------------

    def feed(self, status: StatusResponse) -> None:
        for vertex in status.vertexes:
            self._vertex(vertex)
        for log in status.logs:
            v = self._get(log.vertex)
            v.pending += log.msg
            *lines, v.pending = v.pending.split(b"\n")
            for raw in lines:
                self._log(v, raw)
        for warning in status.warnings:
            key = (warning.vertex, warning.short, warning.detail, warning.url)
            if key in self._warnings:
                continue
            self._warnings.add(key)
            self._emit(None, "WARNING: " + warning.short.decode("utf-8", "replace").strip())
            for detail in warning.detail:
                for line in detail.decode("utf-8", "replace").splitlines():
                    if line.strip():
                        self._emit(None, "  " + line.rstrip())
            if warning.url:
                self._emit(None, "  " + warning.url)

    def flush(self) -> None:
        """Print the log lines still waiting for their newline (call at the end of a build)."""
        for v in self._vertices.values():
            self._flush(v)

    # -- results ---------------------------------------------------------------------------

    def failure(self) -> StepFailure | None:
        """The first vertex that failed; a cancellation only when nothing else failed."""
        failed = sorted((v for v in self._vertices.values() if v.error),
                        key=lambda v: (is_canceled(v.error), v.error_order))
        if not failed:
            return None
        v = failed[0]
        lines = list(v.tail)
        if v.pending and clean_log(v.pending):
            lines = (lines + [clean_log(v.pending)])[-self._tail:] if self._tail else []
        return StepFailure(v.name, v.error, tuple(lines))

    @property
    def steps(self) -> tuple[StepSummary, ...]:
        """The Dockerfile steps seen, in the order the engine first sent them."""
        return tuple(StepSummary(v.name, v.cached, v.seconds, v.error)
                     for v in sorted(self._vertices.values(), key=lambda v: v.order) if v.step)

    def summary(self) -> str:
        """One line for the end of a build: `12 steps, 9 cached, 3.4 s of work`."""
        steps = self.steps
        cached = sum(1 for st in steps if st.cached)
        work = sum(st.seconds or 0.0 for st in steps if not st.cached)
        return f"built: {len(steps)} steps, {cached} cached, {work:.1f}s of work in the steps"

    # -- internals -------------------------------------------------------------------------

    def _get(self, digest: str, name: str = "") -> _Vertex:
        v = self._vertices.get(digest)
        if v is None:
            v = self._vertices[digest] = _Vertex(digest, name, len(self._vertices))
        elif name and not v.name:
            v.name = name
        return v

    def _display(self, v: _Vertex) -> str:
        name = " ".join(v.name.split()) or v.digest
        width = self._name_width
        return name if len(name) <= width else name[:max(width - 3, 1)] + "..."

    def _label(self, v: _Vertex) -> str:
        m = _LABEL.match(v.name) if v.step else None
        return m.group(0) if m else f"[{self._display(v)}]"

    def _emit(self, digest: str | None, line: str) -> None:
        self._last = digest
        self._on_line(line)

    def _vertex(self, vertex: Vertex) -> None:
        v = self._get(vertex.digest, vertex.name)
        v.cached = v.cached or vertex.cached
        if vertex.started is not None:
            v.started = vertex.started
        if vertex.completed is not None:
            v.completed = vertex.completed
        if vertex.error and not v.error:
            self._errors += 1
            v.error, v.error_order = vertex.error, self._errors
        if v.error:
            end = "canceled" if is_canceled(v.error) else "error"
        elif v.cached:
            end = "cached"
        elif v.completed is not None:
            end = "done"
        else:
            end = ""
        if not end:
            if v.started is not None and v.step and not v.header:
                v.header = True
                self._emit(v.digest, self._display(v))
            return
        if end == v.ended:
            return
        self._flush(v)
        v.ended = end
        if not v.step and end in ("done", "cached") and (v.seconds or 0) < self._internal_after:
            return
        if end == "cached":
            text = "CACHED"
        elif end == "done":
            text = f"DONE {v.seconds or 0:.1f}s"
        elif end == "canceled":
            text = "CANCELED"
        else:
            text = "ERROR " + short_error(v.error)
        self._emit(v.digest, f"{self._display(v)}: {text}")

    def _flush(self, v: _Vertex) -> None:
        if v.pending:
            raw, v.pending = v.pending, b""
            self._log(v, raw)

    def _log(self, v: _Vertex, raw: bytes) -> None:
        line = clean_log(raw)
        if not line:
            return
        if self._tail > 0:
            v.tail.append(line)
            while len(v.tail) > self._tail:
                v.tail.popleft()
        if not v.step:
            return
        if not v.header:
            v.header = True
            self._emit(v.digest, self._display(v))
        if self._last == v.digest:
            self._emit(v.digest, "  > " + line)
        else:
            self._emit(v.digest, f"{self._label(v)} > {line}")
