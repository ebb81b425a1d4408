"""What the user sees while a release runs: build output and each registry's push.

`LiveReporter` draws one progress bar per registry (rich) on a terminal;
`PlainReporter` writes one line per event, for CI logs, pipes and `--quiet`.
Both write to stderr so that stdout stays clean for tables and JSON. Every line
passes through `redact` first.
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from .redact import redact


class PlainReporter:
    def __init__(self, stream: TextIO | None = None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self._lock = threading.Lock()

    def _write(self, text: str) -> None:
        with self._lock:
            self.stream.write(redact(text) + "\n")
            self.stream.flush()

    def start(self, targets) -> None:
        pass

    def stop(self) -> None:
        pass

    def message(self, text: str) -> None:
        self._write(text)

    def build_line(self, line: str) -> None:
        if not self.quiet:
            self._write(f"  | {line}")

    def push_started(self, registry: str, ref: str) -> None:
        if not self.quiet:
            self._write(f"[{registry}] pushing {ref}")

    def push_progress(self, registry: str, event) -> None:
        pass

    def push_done(self, registry: str, ref: str, status: str, digest: str | None) -> None:
        if self.quiet and status != "failed":
            return
        self._write(f"[{registry}] {ref}: {status}{f' ({digest[:19]})' if digest else ''}")

    def retrying(self, registry: str, ref: str, attempt: int, error: str, delay: float) -> None:
        self._write(f"[{registry}] {ref}: attempt {attempt} failed ({error}); retrying in {delay:.1f}s")


class LiveReporter(PlainReporter):
    """A rich progress view: one line per registry with bytes pushed for the current tag."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__(stream)
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        self.console = Console(file=self.stream)
        self.progress = Progress(TextColumn("[bold]{task.fields[registry]}"), TextColumn("{task.description}"),
                                 BarColumn(), DownloadColumn(), console=self.console, transient=False)
        self._tasks: dict[str, int] = {}
        self._layers: dict[str, dict[str, tuple[int, int]]] = {}

    def _write(self, text: str) -> None:
        self.console.print(redact(text), markup=False, highlight=False)

    def start(self, targets) -> None:
        for t in targets:
            self._tasks[t.registry] = self.progress.add_task("waiting", registry=t.registry, total=None)
            self._layers[t.registry] = {}
        self.progress.start()

    def stop(self) -> None:
        self.progress.stop()

    def push_started(self, registry: str, ref: str) -> None:
        self._layers[registry] = {}
        self.progress.update(self._tasks[registry], description=redact(ref), completed=0, total=None)

    def push_progress(self, registry: str, event) -> None:
        if event.layer and event.total:
            layers = self._layers[registry]
            layers[event.layer] = (event.current or 0, event.total)
            done = sum(c for c, _ in layers.values())
            total = sum(t for _, t in layers.values())
            self.progress.update(self._tasks[registry], completed=done, total=total)

    def push_done(self, registry: str, ref: str, status: str, digest: str | None) -> None:
        task = self._tasks[registry]
        total = self.progress.tasks[task].total or 1
        self.progress.update(task, description=f"{redact(ref)} {status}", completed=total, total=total)


def make_reporter(quiet: bool, stream: TextIO | None = None):
    stream = stream or sys.stderr
    if quiet or not stream.isatty():
        return PlainReporter(stream, quiet=quiet)
    return LiveReporter(stream)
