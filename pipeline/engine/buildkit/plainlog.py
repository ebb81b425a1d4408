"""The docker CLI's `--progress=plain` output, turned into BuildKit `StatusResponse` events.

Builds that need a session (secrets, SSH) run `DOCKER_BUILDKIT=1 docker build
--progress=plain` (or `docker buildx build --progress=plain`); its stderr is:

    #5 [2/3] RUN make                  first line of #5: the vertex name (started)
    #5 sha256:7d6c...                  the vertex digest (CLI 20.10; newer CLIs omit it)
    #5 0.320 compiling foo.c           a log line, 0.320 s after the vertex started
    #5 transferring context: 2B done   a status (progress counter)
    #5 DONE 0.2s | #5 CACHED | #5 ERROR: <message> | #5 CANCELED
    #5 ...                             the output switches to another vertex; the name
                                       lines are repeated when it comes back

Every vertex is identified by its `#N` (its `digest` in the events), because the number
comes first and is on every line; the sha256 digest, when printed, is kept in `digests`.
Plain output has no clock: times are `clock()` when the name line arrives, plus the
offsets it prints (`DONE 0.2s` -> completed = started + 0.2, `#5 0.320` -> timestamp =
started + 0.32), so durations come out as printed. Log lines carry stream 1 (the plain
format mixes stdout and stderr) and end with a newline, as the engine's logs do.

A vertex's start is reported with the first line that follows its name block (`#N name`,
`#N sha256:...`): `#N CACHED` or `#N DONE 0.0s` right after the name give one event with
the final state (so `StepTracker` prints one line, as for the engine's stream); a log or
status line gives the started vertex and that line; a line of any other vertex (the CLI
moved on: the step is running) reports the start on its own. `flush()` reports pending
starts: call it when the CLI has been quiet for a moment, so that a long step without
output shows its header while it runs.

`feed` returns None exactly for the lines that are not progress (not `#N ...`): blank
lines; the error box the CLI prints after a failure (`------`, ` > [3/3] RUN ...:`, the
last log lines, `------`), kept in `error_box`, whose `#N 0.1 text` lines are never taken
for log lines; any other line (the CLI's own error message, `1 warning found ...`), kept
in `unparsed`. A progress line returns a StatusResponse, empty when it changes nothing
(a name or digest line whose start is pending, `#N ...`).

Give it lines split on "\\n" only: Python's text mode ends lines at a lone "\\r" too
(progress bars), even with `newline=""`. Read bytes and split, or wrap the pipe in
`io.TextIOWrapper(pipe, encoding="utf-8", errors="replace", newline="\\n")`.
"""

from __future__ import annotations

import re
import time
from typing import Callable

from pipeline.engine.buildkit.trace import (
    StatusResponse,
    Vertex,
    VertexLog,
    VertexStatus,
)

_LINE = re.compile(r"^#(?P<n>\d+) ?(?P<rest>.*)$", re.DOTALL)
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_LOG = re.compile(r"^(?P<t>\d+\.\d+)(?: (?P<text>.*))?$", re.DOTALL)
_DONE = re.compile(r"^DONE (?P<s>\d+(?:\.\d+)?)s$")
_SIZE = r"\d+(?:\.\d+)?[kKMGTP]?i?B"
_STATUS = re.compile(rf"^(?P<id>.*?)(?: (?P<cur>{_SIZE})(?: ?/ ?(?P<tot>{_SIZE}))?)?"
                     r"(?: (?P<secs>\d+\.\d+)s)?(?P<done> done)?$", re.DOTALL)
BOX = "------"


def _bytes(size: str | None) -> int:
    """`1.98MB` -> 1980000 (BuildKit prints decimal units; `KiB`-style ones are binary)."""
    m = re.match(r"^(\d+(?:\.\d+)?)([kKMGTP]?)(i?)B$", size or "")
    if not m:
        return 0
    power = "kMGTP".index(m.group(2).replace("K", "k")) + 1 if m.group(2) else 0
    return int(float(m.group(1)) * (1024 if m.group(3) else 1000) ** power)


class PlainLogParser:
    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._names: dict[str, str] = {}
        self._started: dict[str, float] = {}
        self._state: dict[str, Vertex] = {}
        self._pending: list[str] = []            # named, start not reported yet
        self.digests: dict[str, str] = {}       # "#5" -> "sha256:..."
        self.error_box: list[str] = []
        self.unparsed: list[str] = []
        self._in_box = False

    def feed(self, line: str) -> StatusResponse | None:
        """The events of one line (with or without its "\\n"); None if it is not progress."""
        line = line[:-1] if line.endswith("\n") else line
        if line.strip() == BOX:
            self._in_box = not self._in_box
            return None
        if self._in_box:
            self.error_box.append(line)
            return None
        m = _LINE.match(line)
        if not m:
            if line.strip():
                self.unparsed.append(line)
            return None
        vid, rest = "#" + m.group("n"), m.group("rest")
        if vid in self._pending and (rest == self._names[vid] or _DIGEST.match(rest)
                                     or rest == "..."):
            released: tuple[Vertex, ...] = ()    # still the block that names the vertex
        else:                                    # another vertex: the pending ones run
            released = tuple(self._vertex(v) for v in self._pending if v != vid)
            self._pending = [v for v in self._pending if v == vid]
        out = self._progress(vid, rest)
        return StatusResponse(released + out.vertexes, out.statuses, out.logs, out.warnings)

    def flush(self) -> StatusResponse | None:
        """Report the vertices named but not heard of since (call when the output is idle)."""
        vertexes = tuple(self._vertex(v) for v in self._pending)
        self._pending = []
        return StatusResponse(vertexes=vertexes) if vertexes else None

    def _progress(self, vid: str, rest: str) -> StatusResponse:
        if vid not in self._names:                        # the first line names the vertex
            self._names[vid] = rest
            self._started[vid] = self._clock()
            self._pending.append(vid)
            return StatusResponse()
        started = self._started[vid]
        if rest == self._names[vid] or rest == "...":
            return StatusResponse()                      # repeated name / switching away
        if _DIGEST.match(rest):
            self.digests[vid] = rest
            return StatusResponse()
        was_pending = vid in self._pending
        if was_pending:
            self._pending.remove(vid)
        if rest == "CACHED":
            return self._report(vid, cached=True, completed=started)
        if rest == "CANCELED":
            return self._report(vid, error="context canceled", completed=self._clock())
        if rest.startswith("ERROR:") or rest == "ERROR":
            return self._report(vid, error=rest[6:].strip() or "error", completed=self._clock())
        done = _DONE.match(rest)
        if done:
            return self._report(vid, completed=started + float(done.group("s")))
        first = (self._vertex(vid),) if was_pending else ()
        log = _LOG.match(rest)
        if log:
            text = (log.group("text") or "") + "\n"
            return StatusResponse(first, logs=(VertexLog(
                vid, started + float(log.group("t")), 1, text.encode("utf-8", "surrogateescape")),))
        status = _STATUS.match(rest)
        assert status is not None                        # every group is optional
        completed = None
        if status.group("done"):
            completed = started + float(status.group("secs") or 0)
        return StatusResponse(first, statuses=(VertexStatus(
            id=status.group("id"), vertex=vid, name=status.group("id"),
            current=_bytes(status.group("cur")), total=_bytes(status.group("tot")),
            timestamp=self._clock(), started=started, completed=completed),))

    def _report(self, vid: str, **changes) -> StatusResponse:
        return StatusResponse(vertexes=(self._vertex(vid, **changes),))

    def _vertex(self, vid: str, **changes) -> Vertex:
        old = self._state.get(vid) or Vertex(digest=vid, name=self._names[vid],
                                            started=self._started[vid])
        new = Vertex(digest=vid, inputs=(), name=old.name,
                     cached=changes.get("cached", old.cached), started=old.started,
                     completed=changes.get("completed", old.completed),
                     error=changes.get("error", old.error))
        self._state[vid] = new
        return new
