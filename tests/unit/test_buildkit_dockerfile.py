"""locate_step: BuildKit step names -> Dockerfile lines, checked on names Engine 20.10 produced."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from pipeline.engine.buildkit.dockerfile import (
    StepLocation,
    StepName,
    locate_step,
    parse_step_name,
)
from pipeline.engine.buildkit.plainlog import PlainLogParser
from pipeline.engine.buildkit.trace import status_from_message

DATA = Path(__file__).resolve().parents[1] / "data" / "buildkit"
NUMBERING = DATA / "numbering"

# (Dockerfile, name the engine gave) -> (line, stage) or None. Every name in names.json is here.
EXPECTED = {
    "v1.Dockerfile": {                      # single named stage, FROM image, non-steps between
        "[1/8] FROM docker.io/library/bkrec-base:1": (1, "only"),
        "[2/8] WORKDIR /w": (5, "only"),
        "[3/8] RUN echo v1-1": (6, "only"),           # ARG X expanded in the name
        "[4/8] COPY Dockerfile /d": (8, "only"),
        "[5/8] ADD Dockerfile /e": (9, "only"),
        "[6/8] RUN echo again": (11, "only"),
        "[7/8] RUN echo third": (18, "only"),         # after CMD, VOLUME, ONBUILD...
        "[8/8] WORKDIR /x": (19, "only"),
    },
    "v2.Dockerfile": {                      # 11 steps: padded numbers
        "[ 1/11] FROM docker.io/library/bkrec-base:1": (1, "stage-0"),
        **{f"[{i + 1:2d}/11] RUN echo step{i}": (i + 1, "stage-0") for i in range(1, 11)},
    },
    "v3.Dockerfile": {                      # unnamed, unused, FROM <stage>, target
        "[stage-0 1/1] COPY busybox /bin/busybox": (3, "stage-0"),
        "[mid 1/3] FROM docker.io/library/bkrec-base:1": (8, "mid"),
        "[mid 2/3] COPY --from=0 /bin/busybox /bb": (9, "mid"),
        "[mid 3/3] RUN echo mid-v3": (10, "mid"),
        "[child 1/2] RUN echo child-v3": (13, "child"),   # FROM mid: not a step
        "[child 2/2] WORKDIR /c": (14, "child"),
        "[final 1/1] COPY --from=child /bb /bb": (17, "final"),
    },
    "v4.Dockerfile": {                      # FROM --platform=... ${BASE} AS first
        "[first 1/2] FROM docker.io/library/bkrec-base:1": (2, "first"),
        "[first 2/2] RUN echo v4-first": (3, "first"),
        "[stage-1 1/1] COPY --from=first /bin/busybox /bb": (6, "stage-1"),   # last, unnamed
    },
    "v5.Dockerfile": {
        "[stage-0 1/1] COPY busybox /bb": (2, "stage-0"),
        "[stage-1 1/1] COPY --from=0 /bb /bb2": (4, "stage-1"),
    },
    "v6.Dockerfile": {                      # AS Builder, ENV expansion, comment in continuation
        "[builder 1/3] FROM docker.io/library/bkrec-base:1": (1, "builder"),
        '[builder 2/3] RUN echo "hello v6"     && echo   spaced    out': (3, "builder"),
        "[builder 3/3] COPY --chown=1:1 Dockerfile /d": (6, "builder"),
        '[stage-1 1/1] RUN ["echo", "json form"]': (9, "stage-1"),
    },
    "v7.Dockerfile": {                      # the base image has ONBUILD RUN true
        "[1/2] FROM docker.io/library/bkrec-v1:n": (1, "stage-0"),
        "[2/2] RUN true": None,                       # the trigger: not in this file
        "[3/2] RUN echo after-onbuild": (2, "stage-0"),
    },
    "v8.Dockerfile": {                      # lower-case keywords, JSON without spaces
        "[1/4] FROM docker.io/library/bkrec-base:1": (1, "stage-0"),
        '[2/4] RUN ["echo","no-spaces-json"]': (2, "stage-0"),
        "[3/4] COPY   Dockerfile    /d": (3, "stage-0"),
        "[4/4] RUN echo   mixed-case": (4, "stage-0"),
    },
    "base.Dockerfile": {                    # single unnamed FROM scratch stage
        "[1/2] COPY busybox /bin/busybox": (2, "stage-0"),
        '[2/2] RUN ["/bin/busybox", "--install", "-s", "/bin"]': (3, "stage-0"),
    },
}


def recorded_names() -> list[tuple[str, str]]:
    out = []
    for case in json.loads((NUMBERING / "names.json").read_text()):
        out += [(case["dockerfile"], name) for name in case["names"]]
    return out


def test_dockerfile_every_recorded_name_has_an_expectation():
    recorded = set(recorded_names())
    expected = {(df, name) for df, names in EXPECTED.items() for name in names}
    assert recorded == expected


@pytest.mark.parametrize("dockerfile, name", sorted(set(recorded_names())))
def test_dockerfile_recorded_names(dockerfile, name):
    location = locate_step(NUMBERING / dockerfile, name)
    expected = EXPECTED[dockerfile][name]
    if expected is None:
        assert location is None
        return
    line, stage = expected
    assert (location.line, location.stage) == (line, stage)
    source = (NUMBERING / dockerfile).read_text().splitlines()[line - 1]
    assert source.split()[0].upper() == parse_step_name(name).text.split()[0]
    assert location.instruction.split()[0].upper() == source.split()[0].upper()


def names_of_api(recording: str) -> list[str]:
    names: list[str] = []
    for line in (DATA / recording).read_text().splitlines():
        status = status_from_message(json.loads(line))
        for vertex in status.vertexes if status else ():
            if vertex.name not in names:
                names.append(vertex.name)
    return names


def names_of_cli(recording: str) -> list[str]:
    parser, names = PlainLogParser(), []
    for raw in (DATA / recording).read_bytes().split(b"\n"):
        status = parser.feed(raw.decode())
        for vertex in status.vertexes if status else ():
            if vertex.name not in names:
                names.append(vertex.name)
    return names


@pytest.mark.parametrize("recording, dockerfile, expected", [
    ("api-multistage.jsonl", "api-multistage.Dockerfile",
     {"[builder 1/3]": 3, "[builder 2/3]": 4, "[builder 3/3]": 5, "[tools 1/3]": 9,
      "[tools 2/3]": 10, "[tools 3/3]": 11, "[stage-2 1/2]": 14, "[stage-2 2/2]": 15}),
    ("api-cached.jsonl", "api-multistage.Dockerfile",
     {"[builder 1/3]": 3, "[builder 2/3]": 4, "[builder 3/3]": 5, "[tools 1/3]": 9,
      "[tools 2/3]": 10, "[tools 3/3]": 11, "[stage-2 1/2]": 14, "[stage-2 2/2]": 15}),
    ("api-fail.jsonl", "api-fail.Dockerfile",
     {"[stage-1 1/5]": 4, "[stage-1 2/5]": 5, "[stage-1 3/5]": 6, "[stage-1 4/5]": 7,
      "[slow 2/2]": 2, "[stage-1 5/5]": 13}),
    ("cli-ok.txt", "cli-ok.Dockerfile",
     {"[tools 2/3]": 7, "[tools 1/3]": 6, "[builder 2/2]": 2, "[tools 3/3]": 8,
      "[stage-2 1/3]": 11, "[stage-2 2/3]": 12, "[stage-2 3/3]": 13}),
    ("cli-fail.txt", "cli-fail.Dockerfile",
     {"[slow 1/2]": 1, "[stage-1 2/5]": 5, "[stage-1 3/5]": 6, "[stage-1 4/5]": 7,
      "[slow 2/2]": 2}),
])
def test_dockerfile_recordings_map_to_their_lines(recording, dockerfile, expected):
    names = names_of_api(recording) if recording.endswith(".jsonl") else names_of_cli(recording)
    found = {}
    for name in names:
        location = locate_step(DATA / dockerfile, name)
        step = parse_step_name(name)
        assert (location is None) == (step is None), name
        if location:
            found[name.split("]")[0] + "]"] = location.line
    assert found == expected


def test_dockerfile_the_failing_step_of_a_recording():
    name = next(n for n in names_of_api("api-fail.jsonl") if n.startswith("[stage-1 4/5]"))
    location = locate_step(DATA / "api-fail.Dockerfile", name)
    assert location == StepLocation(
        7, 'RUN echo "configuring for x86_64";  printf \'downloading 10%%\\rdownloading 55%%'
           '\\rdownloading 100%%\\n\';  for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo "compiling '
           'unit $i"; done;  echo "";  echo "ld: error: undefined reference to \'main\'" >&2;  '
           'exit 2', "stage-1")


@pytest.mark.parametrize("name, parsed", [
    ("[builder 2/5] RUN make", StepName("builder", 2, 5, "RUN make")),
    ("[ 1/11] FROM docker.io/library/x:1", StepName(None, 1, 11, "FROM docker.io/library/x:1")),
    ("[stage-1 10/12] COPY . /src", StepName("stage-1", 10, 12, "COPY . /src")),
    ("[linux/arm64 builder 2/5] RUN make", StepName("builder", 2, 5, "RUN make", "linux/arm64")),
    ("[linux/arm/v7 3/4] RUN x", StepName(None, 3, 4, "RUN x", "linux/arm/v7")),
    ("[internal] load build context", None),
    ("exporting to image", None),
    ("[auth] library/alpine:pull token for registry-1.docker.io", None),
])
def test_dockerfile_parse_step_name(name, parsed):
    assert parse_step_name(name) == parsed


# -- hand-made Dockerfiles -----------------------------------------------------------------------

def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_dockerfile_edited_since_the_build_found_by_text(tmp_path):
    path = write(tmp_path, """
        FROM alpine:3.20 AS app
        RUN apk add --no-cache make
        RUN echo inserted after the build
        COPY . /src
        RUN make -C /src
    """)
    # the engine numbered `RUN make -C /src` 4/4 before a line was inserted
    assert locate_step(path, "[app 4/4] RUN make -C /src") == StepLocation(
        5, "RUN make -C /src", "app")
    assert locate_step(path, "[app 3/4] COPY . /src").line == 4
    assert locate_step(path, "[app 2/4] RUN gone from the file") is None


def test_dockerfile_from_image_forms(tmp_path):
    path = write(tmp_path, """
        ARG BASE=scratch
        ARG TAG=3.20
        FROM ${BASE} AS empty
        COPY a /a
        FROM alpine AS plain
        RUN true
        FROM registry.example:5000/team/img:${TAG} AS pinned
        RUN true
    """)
    # a global ARG default of scratch: the FROM is not a step
    assert locate_step(path, "[empty 1/1] COPY a /a").line == 4
    assert locate_step(path, "[plain 1/2] FROM docker.io/library/alpine:latest").line == 5
    assert locate_step(path, "[pinned 1/2] FROM registry.example:5000/team/img:3.20").line == 7
    assert locate_step(path, "[pinned 1/2] FROM docker.io/library/debian:12") is None
    assert locate_step(path, "[pinned 2/2] RUN true").line == 8


def test_dockerfile_continuations_escape_and_heredoc(tmp_path):
    path = write(tmp_path, """
        # escape=`
        FROM scratch
        COPY a `
             b /dst/
        RUN <<EOF
        echo from a heredoc
        EOF
        WORKDIR /w
    """)
    assert locate_step(path, "[1/3] COPY a      b /dst/") == StepLocation(3, "COPY a  b /dst/",
                                                                         "stage-0")
    assert locate_step(path, "[2/3] RUN <<EOF\necho from a heredoc\nEOF").line == 5
    assert locate_step(path, "[3/3] WORKDIR /w").line == 8


def test_dockerfile_shortened_names_match_by_prefix(tmp_path):
    path = write(tmp_path, """
        FROM scratch
        RUN ["/bin/busybox", "sh", "-c", "echo a very long command line that a progress display cuts"]
    """)
    assert locate_step(path, '[1/1] RUN ["/bin/busybox", "sh", "-c", "echo a very ...').line == 2
    assert locate_step(path, '[1/1] RUN ["/bin/busybox", "sh", "-c", "echo other...') is None


def test_dockerfile_stage_without_name_in_a_multi_stage_file(tmp_path):
    # Not what Engine 20.10 does (it names every stage of a multi-stage file), but other
    # frontends drop the name of the unnamed last stage: the last stage is tried first.
    path = write(tmp_path, """
        FROM alpine AS build
        RUN make
        FROM scratch
        COPY --from=build /out /out
        RUN make
    """)
    assert locate_step(path, "[1/2] COPY --from=build /out /out") == StepLocation(
        4, "COPY --from=build /out /out", "stage-1")
    assert locate_step(path, "[2/2] RUN make").line == 5
    assert locate_step(path, "[2/2] FROM docker.io/library/alpine:latest").line == 1


def test_dockerfile_unknown_stage_missing_file_and_non_steps(tmp_path):
    path = write(tmp_path, "FROM scratch\nCOPY a /a\n")
    assert locate_step(path, "[1/1] COPY a /a").stage == "stage-0"
    assert locate_step(path, "[nope 1/1] COPY a /a") is None
    assert locate_step(path, "[stage-3 1/1] COPY a /a") is None
    assert locate_step(path, "[internal] load build context") is None
    assert locate_step(path, "[0/1] COPY a /a") is None
    assert locate_step(tmp_path / "missing", "[1/1] COPY a /a") is None
    assert locate_step(write(tmp_path, "# only a comment\n"), "[1/1] COPY a /a") is None
