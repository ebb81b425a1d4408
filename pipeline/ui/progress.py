"""What the user sees while a release runs: build output and each registry's push.

`LiveReporter` draws one progress bar per registry (rich) on a terminal;
`PlainReporter` writes one line per event, for pipes and `--quiet`; `CIReporter` is the
plain one with collapsible log sections (GitHub `::group::`, GitLab `section_start`) and,
on GitHub, text that cannot inject workflow commands.
All write to stderr so that stdout stays clean for tables and JSON. Every line
passes through `redact` first.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Mapping, TextIO

from pipeline.ci import step
from pipeline.ci.step import ci_system, neutralise
from pipeline.model.status import Status
from pipeline.ui.redact import redact


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

    def close(self) -> None:
        """End whatever the reporter has open (CI log sections); called before errors print."""

    def message(self, text: str) -> None:
        if not self.quiet:
            self._write(text)

    def build_line(self, line: str) -> None:
        if not self.quiet:
            self._write(f"  | {line}")

    def push_started(self, registry: str, ref: str) -> None:
        if not self.quiet:
            self._write(f"[{registry}] pushing {ref}")

    def push_progress(self, registry: str, event) -> None:
        pass

    def push_done(self, registry: str, ref: str, status: Status, digest: str | None) -> None:
        if self.quiet and status != Status.FAILED:
            return
        self._write(f"[{registry}] {ref}: {status}{f' ({digest[:19]})' if digest else ''}")

    def retrying(self, registry: str, ref: str, attempt: int, error: str, delay: float) -> None:
        if self.quiet:      # the summary says what finally failed
            return
        self._write(f"[{registry}] {ref}: attempt {attempt} failed ({error}); retrying in {delay:.1f}s")


class LiveReporter(PlainReporter):
    """A rich progress view: one line per registry with bytes pushed for the current tag."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__(stream)
        # lazy: progress bars only on a terminal
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

    def push_done(self, registry: str, ref: str, status: Status, digest: str | None) -> None:
        task = self._tasks[registry]
        total = self.progress.tasks[task].total or 1
        self.progress.update(task, description=f"{redact(ref)} {status}", completed=total, total=total)


class CIReporter(PlainReporter):
    """Plain lines in collapsible sections: `build` (engine output) and `push`.

    On GitHub every line that did not come from release itself is neutralised (see
    `pipeline.ci.step.neutralise`), so engine output cannot run `::cmd::` or `##[cmd]`
    workflow commands; only the section markers below are written as commands.
    """

    def __init__(self, system: str, stream: TextIO | None = None, quiet: bool = False):
        super().__init__(stream, quiet=quiet)
        self.system = system            # github | gitlab
        self.section: str | None = None

    def _write(self, text: str) -> None:
        text = redact(text)
        if self.system == "github":
            text = neutralise(text)
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def _command(self, line: str) -> None:
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def open_section(self, name: str, title: str, *, collapsed: bool = True) -> None:
        self.close_section()
        title = redact(title)
        if self.system == "github":
            self._command(step.github_group(title))
        else:
            self._command(step.gitlab_section_start(f"release_{name}", title, collapsed=collapsed))
        self.section = name

    def close_section(self) -> None:
        if self.section is None:
            return
        if self.system == "github":
            self._command(step.github_endgroup())
        else:
            self._command(step.gitlab_section_end(f"release_{self.section}"))
        self.section = None

    def close(self) -> None:
        """End any open section (before an error is printed, so it is not folded away)."""
        self.close_section()

    def build_line(self, line: str) -> None:
        if self.quiet:
            return
        if self.section != "build":
            self.open_section("build", "build output")
        super().build_line(line)

    def start(self, targets) -> None:
        names = ", ".join(dict.fromkeys(t.registry for t in targets))
        self.open_section("push", f"push to {names}", collapsed=False)

    def stop(self) -> None:
        self.close_section()


def make_reporter(quiet: bool, stream: TextIO | None = None, env: Mapping[str, str] | None = None):
    stream = stream or sys.stderr
    system = ci_system(os.environ if env is None else env)
    if system:
        return CIReporter(system, stream, quiet=quiet)
    if quiet or not stream.isatty():
        return PlainReporter(stream, quiet=quiet)
    return LiveReporter(stream)
