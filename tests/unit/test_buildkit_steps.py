"""StepTracker (rendering, failure, summary) and PlainLogParser, on the recordings of Engine 20.10."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.engine.buildkit.plainlog import PlainLogParser
from pipeline.engine.buildkit.steps import (
    StepFailure,
    StepTracker,
    clean_log,
    short_error,
)
from pipeline.engine.buildkit.trace import (
    StatusResponse,
    Vertex,
    VertexLog,
    VertexWarning,
    status_from_message,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "buildkit"

FAIL_RUN_API = ('[stage-1 4/5] RUN echo "configuring for x86_64"; printf \'downloading '
                '10%%\\rdownloading 55%%\\rdown...')
FAIL_RUN_CLI = ('[stage-1 4/5] RUN --mount=type=secret,id=token echo "configuring with a '
                '$(wc -c < /run/secrets/to...')
BUILDER_3 = ('[builder 3/3] RUN mkdir /out && for i in 1 2 3; do echo "builder: compiling part '
             '$i"; sleep 0.4; ...')
TOOLS_3 = ('[tools 3/3] RUN for i in 1 2 3; do echo "tools: fetching $i"; sleep 0.4; done; echo '
           'tool > /t/tool')
CLI_BUILDER = ('[builder 2/2] RUN --mount=type=secret,id=token echo "token is $(wc -c < '
               '/run/secrets/token) bytes...')
CLI_TOOLS = ('[tools 3/3] RUN for i in 1 2 3; do echo "cli tools line $i"; sleep 0.4; done; echo '
             'tool > /t/tool')


def run_api(name: str, **kwargs) -> tuple[StepTracker, list[str]]:
    lines: list[str] = []
    tracker = StepTracker(lines.append, **kwargs)
    for text in (DATA / name).read_text().splitlines():
        status = status_from_message(json.loads(text))
        if status:
            tracker.feed(status)
    tracker.flush()
    return tracker, lines


def run_cli(name: str, **kwargs) -> tuple[StepTracker, list[str], PlainLogParser]:
    lines: list[str] = []
    tracker = StepTracker(lines.append, **kwargs)
    parser = PlainLogParser(clock=lambda: 1000.0)
    for raw in (DATA / name).read_bytes().split(b"\n"):
        status = parser.feed(raw.decode())
        if status:
            tracker.feed(status)
    last = parser.flush()
    if last:
        tracker.feed(last)
    tracker.flush()
    return tracker, lines, parser


# -- the engine's stream -------------------------------------------------------------------------

def test_steps_render_multistage_recording():
    tracker, lines = run_api("api-multistage.jsonl")
    assert lines == [
        "[tools 1/3] FROM docker.io/library/bkrec-base:1",
        "[tools 1/3] FROM docker.io/library/bkrec-base:1: DONE 0.0s",
        "[builder 1/3] COPY busybox /bin/busybox: CACHED",
        '[builder 2/3] RUN ["/bin/busybox", "--install", "-s", "/bin"]: CACHED',
        BUILDER_3,
        "[tools 2/3] WORKDIR /t",
        "[tools 2/3] WORKDIR /t: DONE 0.0s",
        TOOLS_3,
        # the two RUN steps log in parallel: every line names its step
        "[builder 3/3] > builder: compiling part 1",
        "[tools 3/3] > tools: fetching 1",
        "[builder 3/3] > builder: compiling part 2",
        "[tools 3/3] > tools: fetching 2",
        "[builder 3/3] > builder: compiling part 3",
        "[tools 3/3] > tools: fetching 3",
        BUILDER_3 + ": DONE 1.4s",
        "[stage-2 1/2] COPY --from=builder /out/app /app",
        TOOLS_3 + ": DONE 1.4s",
        "[stage-2 1/2] COPY --from=builder /out/app /app: DONE 0.0s",
        "[stage-2 2/2] COPY --from=tools /t/tool /tool",
        "[stage-2 2/2] COPY --from=tools /t/tool /tool: DONE 0.0s",
    ]
    assert tracker.failure() is None


def test_steps_summary_multistage_recording():
    tracker, _ = run_api("api-multistage.jsonl")
    summary = [(s.name.split("]")[0] + "]", s.cached, round(s.seconds, 1), s.error)
               for s in tracker.steps]
    assert summary == [
        ("[builder 1/3]", True, 0.0, ""), ("[builder 2/3]", True, 0.0, ""),
        ("[builder 3/3]", False, 1.4, ""), ("[stage-2 1/2]", False, 0.0, ""),
        ("[tools 1/3]", False, 0.0, ""), ("[tools 2/3]", False, 0.0, ""),
        ("[tools 3/3]", False, 1.4, ""), ("[stage-2 2/2]", False, 0.0, ""),
    ]
    # the full engine name is kept (the lead maps it to a Dockerfile line)
    assert tracker.steps[2].name.startswith("[builder 3/3] RUN mkdir /out &&     for i in")


def test_steps_render_cached_recording():
    tracker, lines = run_api("api-cached.jsonl")
    assert lines == [
        "[tools 1/3] FROM docker.io/library/bkrec-base:1: DONE 0.0s",
        "[builder 1/3] COPY busybox /bin/busybox: CACHED",
        '[builder 2/3] RUN ["/bin/busybox", "--install", "-s", "/bin"]: CACHED',
        BUILDER_3 + ": CACHED",
        "[stage-2 1/2] COPY --from=builder /out/app /app: CACHED",
        "[tools 2/3] WORKDIR /t: CACHED",
        TOOLS_3 + ": CACHED",
        "[stage-2 2/2] COPY --from=tools /t/tool /tool: CACHED",
    ]
    assert [s.cached for s in tracker.steps].count(True) == 7


def test_steps_render_failing_recording():
    tracker, lines = run_api("api-fail.jsonl")
    assert lines == [
        "[stage-1 1/5] FROM docker.io/library/bkrec-base:1: CACHED",
        "[stage-1 2/5] WORKDIR /src",
        '[slow 2/2] RUN echo "slow: start"; sleep 3; echo "slow: done"',
        "[stage-1 2/5] WORKDIR /src: DONE 0.0s",
        "[stage-1 3/5] COPY Dockerfile .",
        "[stage-1 3/5] COPY Dockerfile .: DONE 0.0s",
        FAIL_RUN_API,
        "  > configuring for x86_64",
        "  > downloading 100%",                            # \r progress: the last state
        *[f"  > compiling unit {i}" for i in range(1, 13)],  # the blank line is dropped
        "  > ld: error: undefined reference to 'main'",
        "[slow 2/2] > slow: start",
        FAIL_RUN_API + ": ERROR exit code 2",
        '[slow 2/2] RUN echo "slow: start"; sleep 3; echo "slow: done": CANCELED',
    ]


def test_steps_failure_of_failing_recording():
    tracker, _ = run_api("api-fail.jsonl")
    failure = tracker.failure()
    assert isinstance(failure, StepFailure)
    assert failure.name.startswith('[stage-1 4/5] RUN echo "configuring for x86_64";     printf')
    assert failure.error.startswith("executor failed running [/bin/sh -c echo")
    assert failure.error.endswith("exit 2]: exit code: 2")
    assert failure.log_tail == (*[f"compiling unit {i}" for i in range(4, 13)],
                                "ld: error: undefined reference to 'main'")
    short, _ = run_api("api-fail.jsonl", tail=3)
    assert short.failure().log_tail == ("compiling unit 11", "compiling unit 12",
                                        "ld: error: undefined reference to 'main'")
    assert [s.error != "" for s in tracker.steps] == [False, False, False, True, True, False]
    assert tracker.steps[-1].seconds is None               # never started


# -- the CLI's plain progress --------------------------------------------------------------------

def test_steps_render_cli_success():
    tracker, lines, parser = run_cli("cli-ok.txt")
    assert lines == [
        "[tools 2/3] WORKDIR /t: CACHED",
        "[tools 1/3] FROM docker.io/library/bkrec-base:1: CACHED",
        CLI_BUILDER,
        "  > token is 12 bytes",
        "  > cli builder line 1",
        "  > cli builder line 2",
        "  > cli builder line 3",
        CLI_TOOLS,
        "  > cli tools line 1",
        "  > cli tools line 2",
        "  > cli tools line 3",
        CLI_TOOLS + ": DONE 1.4s",
        CLI_BUILDER + ": DONE 1.5s",
        "[stage-2 1/3] COPY busybox /bin/busybox: CACHED",
        "[stage-2 2/3] COPY --from=builder /bin/busybox /bb: CACHED",
        "[stage-2 3/3] COPY --from=tools /t/tool /tool: DONE 0.0s",
    ]
    assert tracker.failure() is None
    assert parser.error_box == [] and parser.unparsed == []
    assert parser.digests["#7"] == ("sha256:325ae1f9af4681931cd4a5c7b678b4b5013e0eb1e1d22af93528ee"
                                    "49fd4d9daf")
    assert [(s.cached, s.seconds) for s in tracker.steps] == [
        (True, 0.0), (True, 0.0), (False, 1.5), (False, pytest.approx(1.4)), (True, 0.0),
        (True, 0.0), (False, 0.0)]


def test_steps_render_cli_failure():
    tracker, lines, parser = run_cli("cli-fail.txt")
    assert lines == [
        "[slow 1/2] FROM docker.io/library/bkrec-base:1: CACHED",
        "[stage-1 2/5] WORKDIR /src: CACHED",
        "[stage-1 3/5] COPY Dockerfile .: DONE 0.0s",
        FAIL_RUN_CLI,
        "  > ld: error: undefined reference to 'main'",
        "  > configuring with a 12-byte token",
        "  > downloading 100%",
        *[f"  > compiling unit {i}" for i in range(1, 13)],
        FAIL_RUN_CLI + ": ERROR exit code 1",
        '[slow 2/2] RUN echo "slow: start (cli)"; sleep 3; echo "slow: done"',
        "  > slow: start (cli)",
        '[slow 2/2] RUN echo "slow: start (cli)"; sleep 3; echo "slow: done": CANCELED',
    ]
    failure = tracker.failure()
    assert failure.name.startswith("[stage-1 4/5] RUN --mount=type=secret,id=token     echo")
    assert failure.error.endswith("exit 1]: exit code: 1")
    assert failure.log_tail == tuple(f"compiling unit {i}" for i in range(3, 13))
    assert len(parser.error_box) == 1
    assert parser.error_box[0].startswith(" > [stage-1 4/5] RUN --mount=type=secret,id=token")
    assert parser.error_box[0].endswith("exit 1:")
    assert len(parser.unparsed) == 1
    assert parser.unparsed[0].startswith("executor failed running [/bin/sh -c echo")


# -- PlainLogParser, hand-made -------------------------------------------------------------------

def test_plain_parser_events():
    clock = iter([100.0, 200.0, 300.0, 400.0])
    parser = PlainLogParser(clock=lambda: next(clock))
    assert parser.feed("#5 [2/3] RUN make\n") == StatusResponse()      # start not known yet
    assert parser.feed("#5 sha256:" + "7d" * 32) == StatusResponse()
    event = parser.feed("#5 0.320 compiling foo.c")
    assert event.vertexes == (Vertex("#5", (), "[2/3] RUN make", False, 100.0, None, ""),)
    assert event.logs == (VertexLog("#5", pytest.approx(100.32), 1, b"compiling foo.c\n"),)
    (status,) = parser.feed("#5 transferring context: 1.98MB 0.5s done").statuses
    assert (status.id, status.vertex, status.current, status.completed) == (
        "transferring context:", "#5", 1_980_000, 100.5)
    (status,) = parser.feed("#5 sha256:abc 2.10MB / 3.5MiB 0.2s").statuses
    assert (status.id, status.current, status.total, status.completed) == (
        "sha256:abc", 2_100_000, 3_670_016, None)
    assert parser.feed("#5 ...") == StatusResponse()
    assert parser.feed("#5 [2/3] RUN make") == StatusResponse()        # repeated name block
    assert parser.feed("#5 0.900").logs[0].msg == b"\n"                 # an empty log line
    (done,) = parser.feed("#5 DONE 1.2s").vertexes
    assert done.completed == pytest.approx(101.2) and done.started == 100.0
    assert parser.digests == {"#5": "sha256:" + "7d" * 32}


def test_plain_parser_cached_error_canceled_and_box():
    parser = PlainLogParser(clock=lambda: 50.0)
    parser.feed("#1 [1/2] COPY a /a")
    (cached,) = parser.feed("#1 CACHED").vertexes
    assert cached.cached and cached.started == cached.completed == 50.0
    parser.feed("#2 [2/2] RUN false")
    (failed,) = parser.feed('#2 ERROR: process "/bin/sh -c false" did not complete '
                            'successfully: exit code: 1').vertexes
    assert failed.error == 'process "/bin/sh -c false" did not complete successfully: exit code: 1'
    parser.feed("#3 [other 1/1] RUN sleep 9")
    (canceled,) = parser.feed("#3 CANCELED").vertexes
    assert canceled.error == "context canceled"
    # inside the error box, "#N 0.1 text" lines are not logs
    for line in ["------", " > [2/2] RUN false:", "#2 0.102 last words", "------",
                 "ERROR: failed to solve: exit code: 1", ""]:
        assert parser.feed(line) is None
    assert parser.error_box == [" > [2/2] RUN false:", "#2 0.102 last words"]
    assert parser.unparsed == ["ERROR: failed to solve: exit code: 1"]


def test_plain_parser_reports_a_running_step_when_output_moves_on_or_on_flush():
    parser = PlainLogParser(clock=lambda: 7.0)
    assert parser.feed("#4 [1/2] RUN sleep 60") == StatusResponse()
    assert parser.flush().vertexes == (Vertex("#4", (), "[1/2] RUN sleep 60", False, 7.0),)
    assert parser.flush() is None
    parser.feed("#6 [b 1/1] RUN sleep 5")
    event = parser.feed("#8 [c 1/1] RUN true")            # #6 is running: the CLI moved on
    assert [v.digest for v in event.vertexes] == ["#6"]
    (done,) = parser.feed("#8 DONE 0.1s").vertexes         # #8: one event, start and end
    assert done.started == 7.0 and done.completed == pytest.approx(7.1)


# -- StepTracker, hand-made ----------------------------------------------------------------------

def vertex(digest="d1", name="[1/2] RUN make", **kw) -> StatusResponse:
    return StatusResponse(vertexes=(Vertex(digest, (), name, **kw),))


def log(digest: str, msg: bytes) -> StatusResponse:
    return StatusResponse(logs=(VertexLog(digest, 1.0, 1, msg),))


def test_steps_vertex_resent_is_rendered_once():
    lines: list[str] = []
    tracker = StepTracker(lines.append)
    for status in [vertex(), vertex(started=1.0), vertex(started=1.0),
                   vertex(started=1.0, completed=3.25), vertex(started=1.0, completed=3.25)]:
        tracker.feed(status)
    assert lines == ["[1/2] RUN make", "[1/2] RUN make: DONE 2.2s"]
    assert len(tracker.steps) == 1 and tracker.steps[0].seconds == 2.25


def test_steps_partial_lines_carriage_returns_and_utf8_split():
    lines: list[str] = []
    tracker = StepTracker(lines.append)
    tracker.feed(vertex(started=1.0))
    for chunk in [b"caf\xc3", b"\xa9 ok\nprogress 1%\r", b"progress 99%\rprogress 100%\r\n",
                  b"\n  \n\r\nbad \xff byte\nno newline yet"]:
        tracker.feed(log("d1", chunk))
    assert lines == ["[1/2] RUN make", "  > café ok", "  > progress 100%",
                     "  > bad \ufffd byte"]
    assert tracker.failure() is None
    tracker.feed(vertex(started=1.0, completed=2.0, error="exit code: 3"))
    assert lines[-2:] == ["  > no newline yet", "[1/2] RUN make: ERROR exit code 3"]
    assert tracker.failure().log_tail == ("café ok", "progress 100%", "bad \ufffd byte",
                                          "no newline yet")


def test_steps_flush_prints_a_pending_line():
    lines: list[str] = []
    tracker = StepTracker(lines.append)
    tracker.feed(log("d1", b"partial"))
    tracker.feed(vertex())
    assert lines == []
    tracker.flush()
    assert lines == ["[1/2] RUN make", "  > partial"]


def test_steps_interleaved_logs_are_prefixed_only_after_another_step_printed():
    lines: list[str] = []
    tracker = StepTracker(lines.append)
    tracker.feed(StatusResponse(vertexes=(
        Vertex("a", (), "[app 2/5] RUN make", started=1.0),
        Vertex("b", (), "[docs 1/1] RUN mkdocs build", started=1.0))))
    tracker.feed(log("a", b"cc foo.c\n"))
    tracker.feed(log("a", b"cc bar.c\n"))
    tracker.feed(log("b", b"INFO building\n"))
    tracker.feed(log("b", b"INFO done\n"))
    tracker.feed(log("a", b"ld app\n"))
    assert lines == ["[app 2/5] RUN make", "[docs 1/1] RUN mkdocs build",
                     "[app 2/5] > cc foo.c", "  > cc bar.c",
                     "[docs 1/1] > INFO building", "  > INFO done",
                     "[app 2/5] > ld app"]


def test_steps_internal_vertices_hidden_unless_slow_or_failed():
    lines: list[str] = []
    tracker = StepTracker(lines.append, internal_after=1.0)
    tracker.feed(vertex("i1", "[internal] load build definition from Dockerfile", started=1.0))
    tracker.feed(log("i1", b"internal chatter\n"))
    tracker.feed(vertex("i1", "[internal] load build definition from Dockerfile", started=1.0,
                        completed=1.2))
    tracker.feed(vertex("i2", "[internal] load build context", started=1.0, completed=5.0))
    tracker.feed(vertex("i3", "exporting to image", started=1.0, completed=1.5))
    tracker.feed(vertex("i4", "[internal] load metadata for docker.io/library/nope:1",
                        started=1.0, completed=1.1, error="pull access denied for nope"))
    assert lines == ["[internal] load build context: DONE 4.0s",
                     "[internal] load metadata for docker.io/library/nope:1: ERROR pull access "
                     "denied for nope"]
    assert tracker.steps == ()
    assert tracker.failure() == StepFailure("[internal] load metadata for docker.io/library/nope:1",
                                            "pull access denied for nope", ())


def test_steps_failure_prefers_a_real_error_over_cancellations():
    tracker = StepTracker(lambda line: None)
    tracker.feed(vertex("a", "[a 1/1] RUN sleep 9", started=1.0, completed=2.0,
                        error="executor failed running [sleep 9]: context canceled"))
    assert tracker.failure().name == "[a 1/1] RUN sleep 9"       # only a cancellation so far
    tracker.feed(vertex("b", "[b 1/1] RUN false", started=1.0, completed=2.0,
                        error="executor failed running [/bin/sh -c false]: exit code: 1"))
    tracker.feed(vertex("c", "[c 1/1] RUN false", started=1.0, completed=2.0, error="second"))
    assert tracker.failure().name == "[b 1/1] RUN false"
    assert StepTracker(print).failure() is None


def test_steps_warnings_rendered_once():
    lines: list[str] = []
    tracker = StepTracker(lines.append)
    warning = VertexWarning("d1", 1, b"FromAsCasing: 'as' and 'FROM' keywords' casing do not match",
                            (b"line one\nline two", b""), "https://docs.docker.com/go/x/")
    tracker.feed(StatusResponse(warnings=(warning,)))
    tracker.feed(StatusResponse(warnings=(warning,)))
    assert lines == ["WARNING: FromAsCasing: 'as' and 'FROM' keywords' casing do not match",
                     "  line one", "  line two", "  https://docs.docker.com/go/x/"]


def test_steps_names_collapsed_and_cut():
    lines: list[str] = []
    tracker = StepTracker(lines.append, name_width=20, tail=0)
    tracker.feed(vertex(name="[2/2] RUN a &&     b &&    c && d && e", started=1.0))
    tracker.feed(log("d1", b"x\n"))
    tracker.feed(vertex(name="[2/2] RUN a &&     b &&    c && d && e", started=1.0, completed=1.0,
                        cached=True))
    assert lines == ["[2/2] RUN a && b ...", "  > x", "[2/2] RUN a && b ...: CACHED"]


@pytest.mark.parametrize("error, short", [
    ("executor failed running [/bin/sh -c make]: exit code: 2", "exit code 2"),
    ('process "/bin/sh -c make ]: x" did not complete successfully: exit code: 1', "exit code 1"),
    ("failed to compute cache key: \"/missing\" not found: not found\nmore",
     'failed to compute cache key: "/missing" not found: not found'),
])
def test_steps_short_error(error, short):
    assert short_error(error) == short


def test_steps_clean_log():
    assert clean_log(b"a\rb\rc\r") == "c"
    assert clean_log(b"  indented  \r") == "  indented"
    assert clean_log(b"\xe2\x82") == "\ufffd"


def test_plain_parser_needs_lines_split_on_newline_only():
    import io

    def unparsed(stream) -> list[str]:
        parser = PlainLogParser(clock=lambda: 0.0)
        for line in stream:
            parser.feed(line)
        return parser.unparsed

    data = (DATA / "cli-fail.txt").read_bytes()
    wrapped = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace", newline="\n")
    assert len(unparsed(wrapped)) == 1                     # only the CLI's own error message
    # default text mode ends lines at "\r": the progress line falls apart
    default = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace")
    assert unparsed(default)[:2] == ["downloading 55%", "downloading 100%"]
