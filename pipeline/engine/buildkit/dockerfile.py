"""Which Dockerfile line a BuildKit step name points at.

BuildKit names a Dockerfile step `[<stage> <n>/<total>] <INSTRUCTION text>`. Rules
measured on Docker Engine 20.10.24 (its built-in Dockerfile frontend, through the API
with `version=2` and through `DOCKER_BUILDKIT=1 docker build`); the recordings are in
tests/data/buildkit/numbering/:

* Steps are the FROM of a stage whose base is an image, then the stage's RUN, COPY, ADD
  and WORKDIR instructions, numbered from 1 within the stage; `<total>` counts them. ARG,
  ENV, LABEL, USER, EXPOSE, SHELL, VOLUME, CMD, ENTRYPOINT, HEALTHCHECK, STOPSIGNAL and
  ONBUILD are not steps.
* `FROM scratch` and `FROM <earlier stage>` are not steps: `[1/3]` is the first
  instruction after them. `FROM image` is step 1, named with the normalised reference and
  ARGs expanded: `FROM --platform=$BUILDPLATFORM ${BASE} AS first` ->
  `[first 1/2] FROM docker.io/library/bkrec-base:1`.
* The stage part is present only when the Dockerfile has more than one stage (whether or
  not a target is built): the stage name lowercased (`AS Builder` -> `builder`), or
  `stage-<index>` (0-based, over all FROMs of the file) for an unnamed stage, the last one
  included. A single-stage Dockerfile has no stage part, named or not.
* With 10 or more steps, the number is padded: `[ 1/11]`.
* Text: the keyword is upper-cased, continuation lines are joined (the escape character
  and newline removed, the next line's indentation kept, comment lines dropped), and
  variables are expanded (`RUN echo "$GREETING v6"` -> `RUN echo "hello v6"`).
* A vertex shared by two stages (same base image) is one vertex, named after whichever
  stage the engine reached first: `[slow 1/2] FROM x` may stand for another stage's FROM.
* ONBUILD triggers of the base image run as extra steps after FROM, numbered past the
  total (`[3/2] RUN ...` is the Dockerfile's second step); they are not in this file.

`locate_step` picks the instruction by its number, then checks the text (whitespace
ignored, `$VAR`/`${VAR...}` matching anything, image references normalised for FROM).
When the text disagrees it looks for the instruction of the stage whose text does
match (the nearest one to the numbered position); None when nothing matches (an ONBUILD
trigger, a name of another Dockerfile), or the name is not a step's. Whether a FROM is a
step is decided with the defaults of the global ARGs (`ARG BASE=scratch` / `FROM ${BASE}`:
not a step); `--build-arg` overrides are not known here. Names cut short by a progress
display (`...` at the end) match by prefix; a heredoc RUN matches on its first line. Not
measured (no such build on this engine): a platform prefix (`[linux/arm64 builder 2/5]`,
multi-platform builds) is accepted and ignored, and a name without a stage part in a
multi-stage file is looked up in the last stage first, then the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.model.platforms import _instructions

STEP_KINDS = ("RUN", "COPY", "ADD", "WORKDIR")
_NAME = re.compile(r"^\[\s*(?:(?P<platform>[^\s\]]+/[^\s\]]+)\s+)?(?:(?P<stage>[^\s\]]+)\s+)?"
                   r"(?P<index>\d+)/(?P<total>\d+)\]\s*(?P<text>.*)$", re.DOTALL)
_VAR = re.compile(r"\$(?:\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class StepLocation:
    line: int            # 1-based line of the instruction's first line
    instruction: str     # its text, continuation lines joined
    stage: str           # the stage's name, or stage-<index> when it has none


@dataclass(frozen=True)
class StepName:
    stage: str | None    # None when the name has no stage part (single-stage Dockerfile)
    index: int
    total: int
    text: str
    platform: str | None = None


@dataclass
class _Stage:
    index: int
    name: str | None
    base: str
    steps: list           # [(line, instruction text)], FROM first when it is a step

    @property
    def label(self) -> str:
        return self.name or f"stage-{self.index}"


def parse_step_name(vertex_name: str) -> StepName | None:
    """`[builder 2/5] RUN make` -> StepName('builder', 2, 5, 'RUN make'); None if not a step."""
    m = _NAME.match(vertex_name.strip())
    if not m:
        return None
    return StepName(m.group("stage"), int(m.group("index")), int(m.group("total")),
                    m.group("text"), m.group("platform"))


def base_images(dockerfile: Path, build_args: dict[str, str] | None = None) -> list[str]:
    """The images the stages start FROM, ARGs expanded with `build_args` over the defaults:
    not scratch, not an earlier stage, nothing left unexpanded. In file order, once each."""
    try:
        text = Path(dockerfile).read_text(errors="replace")
    except OSError:
        return []
    stages = _stages(text, build_args or {})
    earlier: set[str] = set()
    found: list[str] = []
    for stage in stages:
        base = stage.base
        if base and base.lower() != "scratch" and base.lower() not in earlier \
                and not _VAR.search(base) and base not in found:
            found.append(base)
        if stage.name:
            earlier.add(stage.name)
    return found


def _stages(text: str, overrides: dict[str, str] | None = None) -> list[_Stage]:
    stages: list[_Stage] = []
    global_args: dict[str, str] = {}
    for number, instruction in _instructions(text):
        word, _, rest = instruction.partition(" ")
        word = word.upper()
        if word == "ARG" and not stages:
            for arg in rest.split():
                key, _, value = arg.partition("=")
                global_args[key] = (overrides or {}).get(key, value.strip("\"'"))
        elif word == "FROM":
            args = [a for a in rest.split() if not a.startswith("--")]
            base = _expand(args[0], global_args) if args else ""
            name = args[2].lower() if len(args) >= 3 and args[1].upper() == "AS" else None
            stage = _Stage(len(stages), name, base, [])
            earlier = {s.name for s in stages if s.name}
            if base.lower() != "scratch" and base.lower() not in earlier:
                stage.steps.append((number, instruction))
            stages.append(stage)
        elif word in STEP_KINDS and stages:
            stages[-1].steps.append((number, instruction))
    return stages


def _expand(text: str, args: dict[str, str]) -> str:
    def value(m: re.Match) -> str:
        body = m.group(0)[1:].strip("{}")
        key = re.split(r":?[-+]", body, maxsplit=1)[0]
        default = body[len(key):].lstrip(":")
        if args.get(key):
            return args[key]
        return default[1:] if default.startswith("-") else m.group(0)
    return _VAR.sub(value, text)


def _image(ref: str) -> str:
    """docker.io/library/alpine:latest, alpine and alpine:latest compare equal."""
    ref = ref.strip()
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix):]
            break
    if ref.startswith("library/"):
        ref = ref[len("library/"):]
    last = ref.rsplit("/", 1)[-1]
    if "@" not in ref and ":" not in last and not _VAR.search(last):
        ref += ":latest"
    return ref


def _pattern(text: str) -> re.Pattern:
    """The instruction as a regex: whitespace ignored, variables match anything."""
    parts = (re.sub(r"\s+", "", part) for part in _VAR.split(text))
    return re.compile(".*".join(re.escape(p) for p in parts), re.DOTALL)


def _matches(instruction: str, text: str) -> bool:
    word, _, rest = instruction.partition(" ")
    vword, _, vrest = text.strip().partition(" ")
    if word.upper() != vword.upper():
        return False
    if word.upper() == "FROM":
        args = [a for a in rest.split() if not a.startswith("--")]
        return bool(args) and bool(_pattern(_image(args[0])).fullmatch(_image(vrest)))
    flat = re.sub(r"\s+", "", vrest)
    if flat.endswith("..."):                     # a name the progress output shortened
        prefix, literal = flat[:-3], re.sub(r"\s+", "", _VAR.split(rest)[0])
        return literal.startswith(prefix) if len(prefix) <= len(literal) \
            else prefix.startswith(literal)
    if re.search(r"<<-?[\"']?[A-Za-z_]", rest):    # heredoc: the name also has the body
        return bool(_pattern(rest).match(flat))
    return bool(_pattern(rest).fullmatch(flat))


def _find_stage(stages: list[_Stage], label: str | None) -> list[_Stage]:
    if label is None:
        # No stage part: a single-stage Dockerfile (measured). Other frontends may drop
        # the name of the last, unnamed stage: try that one, then the others.
        return [stages[-1]] + stages[:-1][::-1]
    label = label.lower()
    named = [s for s in stages if s.name == label]
    if named:
        return named
    m = re.fullmatch(r"stage-(\d+)", label)
    if m and int(m.group(1)) < len(stages):
        return [stages[int(m.group(1))]]
    return []


def locate_step(dockerfile: Path, vertex_name: str) -> StepLocation | None:
    """The Dockerfile line of the step BuildKit calls `vertex_name`, or None."""
    step = parse_step_name(vertex_name)
    if step is None or step.index < 1:
        return None
    try:
        text = Path(dockerfile).read_text(errors="replace")
    except OSError:
        return None
    stages = _stages(text)
    if not stages:
        return None
    for stage in _find_stage(stages, step.stage):
        position = step.index - 1
        if position < len(stage.steps) and _matches(stage.steps[position][1], step.text):
            line, instruction = stage.steps[position]
            return StepLocation(line, instruction, stage.label)
        found = [(abs(i - position), i) for i, (_, ins) in enumerate(stage.steps)
                 if _matches(ins, step.text)]
        if found:
            line, instruction = stage.steps[min(found)[1]]
            return StepLocation(line, instruction, stage.label)
    return None
