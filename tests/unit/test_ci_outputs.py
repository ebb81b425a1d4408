"""pipeline.ci.step and the CI reporter: step outputs, summary, dotenv, log sections, and
engine output that cannot run GitHub workflow commands."""

import io
import re
from types import SimpleNamespace

import pytest

from pipeline.app.report import RefResult, Report
from pipeline.ci import step
from pipeline.ui import redact
from pipeline.ui.progress import CIReporter, LiveReporter, PlainReporter, make_reporter

DIGEST = "sha256:" + "ab" * 32


def report(ok=True):
    plan = SimpleNamespace(version="1.2.3")
    results = [RefResult("local", "localhost:5000/t/app:1.2.3", "pushed", DIGEST, 0.5),
               RefResult("local", "localhost:5000/t/app:1.2", "already there", DIGEST, 0.1),
               RefResult("hub", "docker.io/t/app:1.2.3", "pushed" if ok else "failed",
                         DIGEST if ok else None, 1.0, None if ok else "denied: <b>no</b> | x\n::error::y")]
    return Report(plan=plan, results=results, digest=DIGEST,
                  errors=[] if ok else ["the immutable tag 1.2.3 did not reach: hub"])


def parse_github_output(text: str) -> dict:
    """The runner's parser: name<<DELIM, lines, DELIM (or name=value)."""
    values, lines, i = {}, text.split("\n"), 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line:
            name, delim = line.split("<<", 1)
            j = lines.index(delim, i + 1)
            values[name] = "\n".join(lines[i + 1:j])
            i = j + 1
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
            i += 1
        else:
            i += 1
    return values


def test_github_outputs_use_random_delimiters():
    text = step.github_output_text(step.output_values(report()))
    values = parse_github_output(text)
    assert values == {"version": "1.2.3", "digest": DIGEST,
                      "tags": "localhost:5000/t/app:1.2.3\nlocalhost:5000/t/app:1.2\ndocker.io/t/app:1.2.3"}
    delimiters = re.findall(r"<<(\S+)", text)
    assert len(set(delimiters)) == 3 and all(d.startswith("ghadelimiter_") for d in delimiters)
    assert step.github_output_text(step.output_values(report())) != text
    with pytest.raises(ValueError):
        step.github_output_text({"x": "a\nEOF\nb"}, delimiter="EOF")


def test_failed_refs_are_not_in_the_tags_output():
    values = step.output_values(report(ok=False))
    assert values["tags"] == ["localhost:5000/t/app:1.2.3", "localhost:5000/t/app:1.2"]


def test_step_summary_table():
    text = step.step_summary(report())
    assert "| Registry | Reference | Digest | Status |" in text
    assert f"| local | `localhost:5000/t/app:1.2.3` | `{DIGEST}` | pushed |" in text
    assert "| local | `localhost:5000/t/app:1.2` | " in text and "already there |" in text
    assert "Released **1.2.3**: 3 references" in text
    bad = step.step_summary(report(ok=False))
    assert "incomplete" in bad
    assert "<b>" not in bad and "&lt;b&gt;" in bad          # no HTML from a registry
    assert "\\| x ::error::y" in bad                        # one table-safe line
    assert "| hub | `docker.io/t/app:1.2.3` | - | failed |" in bad


def test_dotenv_report():
    assert step.dotenv_text(report()) == (
        "RELEASE_VERSION=1.2.3\n"
        f"RELEASE_DIGEST={DIGEST}\n"
        "RELEASE_TAGS=localhost:5000/t/app:1.2.3,localhost:5000/t/app:1.2,docker.io/t/app:1.2.3\n"
        "RELEASE_OK=true\n")
    assert "RELEASE_OK=false" in step.dotenv_text(report(ok=False))


def test_outputs_never_carry_a_registered_secret():
    redact.register("s3cr3t-token-value")
    try:
        r = report()
        r.results[0].ref = "localhost:5000/s3cr3t-token-value:1"
        for text in (step.github_output_text(step.output_values(r)), step.step_summary(r),
                     step.dotenv_text(r)):
            assert "s3cr3t-token-value" not in text
    finally:
        redact.clear()


def test_write_step_outputs(tmp_path):
    env = {"GITHUB_OUTPUT": str(tmp_path / "out"), "GITHUB_STEP_SUMMARY": str(tmp_path / "sum")}
    (tmp_path / "out").write_text("earlier=1\n")
    written = step.write_step_outputs(report(), env, str(tmp_path / "sub" / "release.env"))
    assert written == [env["GITHUB_OUTPUT"], env["GITHUB_STEP_SUMMARY"], str(tmp_path / "sub" / "release.env")]
    values = parse_github_output((tmp_path / "out").read_text())
    assert values["earlier"] == "1" and values["version"] == "1.2.3"  # appended, not replaced
    assert (tmp_path / "sub" / "release.env").read_text().startswith("RELEASE_VERSION=1.2.3\n")
    assert step.write_step_outputs(report(), {}, None) == []


@pytest.mark.parametrize("line", ["::error::pwned", "  ::set-output name=x::y", "a\r::warning::b",
                                  "ok\n::add-mask::x", "x ##[error]legacy", "##[stop-commands]tok"])
def test_neutralise_leaves_no_workflow_command(line):
    out = step.neutralise(line)
    for physical in re.split(r"\r\n|\r|\n", out):
        assert not physical.lstrip().startswith("::")
        assert "##[" not in physical


def test_neutralise_json_keeps_the_data():
    import json
    data = {"error": "##[stop-commands]x", "n": "::error::y"}
    text = step.neutralise_json(json.dumps(data, indent=2))
    assert "##[" not in text and json.loads(text) == data


def test_sections():
    assert step.github_group("push to a\nb") == "::group::push to a b"
    assert step.gitlab_section_start("release_build", "build", collapsed=True, now=100) == \
        "\x1b[0Ksection_start:100:release_build[collapsed=true]\r\x1b[0Kbuild"
    assert step.gitlab_section_end("release_build", now=101) == "\x1b[0Ksection_end:101:release_build\r\x1b[0K"


def targets(*names):
    return [SimpleNamespace(registry=n) for n in names]


def test_github_reporter_groups_build_and_push_and_neutralises_engine_output():
    out = io.StringIO()
    r = CIReporter("github", out)
    r.message("building app:1.2.3 from /src")
    r.build_line("Step 1/2 : FROM scratch")
    r.build_line("::error file=x::injected")
    r.build_line("##[set-output name=digest;]sha256:evil")
    r.start(targets("local", "hub", "local"))
    r.push_done("hub", "docker.io/t/app:1.2.3", "failed", None)
    r.retrying("hub", "ref", 1, "boom\n::error::again", 0.5)
    r.stop()
    r.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "building app:1.2.3 from /src"
    assert lines[1] == "::group::build output"
    assert lines.count("::endgroup::") == 2
    assert "::group::push to local, hub" in lines
    commands = [line for line in lines if line.lstrip().startswith("::")]
    assert commands == ["::group::build output", "::endgroup::", "::group::push to local, hub", "::endgroup::"]
    assert not any("##[" in line for line in lines)
    assert "  | ::error file=x::injected" in lines          # shown, but not at a line start
    assert "  | ## [set-output name=digest;]sha256:evil" in lines
    assert "| ::error::again); retrying in 0.5s" in lines  # a line break inside an error


def test_github_reporter_closes_the_group_before_an_error():
    out = io.StringIO()
    r = CIReporter("github", out)
    r.build_line("Step 1/2 : RUN false")
    r.close()
    r.close()  # idempotent
    assert out.getvalue().splitlines()[-1] == "::endgroup::"
    assert out.getvalue().count("::endgroup::") == 1


def test_gitlab_reporter_sections():
    out = io.StringIO()
    r = CIReporter("gitlab", out)
    r.build_line("Step 1/2 : FROM scratch")
    r.start(targets("local"))
    r.stop()
    text = out.getvalue()
    assert re.search(r"\x1b\[0Ksection_start:\d+:release_build\[collapsed=true\]\r\x1b\[0Kbuild output", text)
    assert re.search(r"\x1b\[0Ksection_end:\d+:release_build\r\x1b\[0K", text)
    assert re.search(r"section_start:\d+:release_push\r\x1b\[0Kpush to local", text)
    assert re.search(r"section_end:\d+:release_push\r", text)


def test_quiet_ci_reporter_prints_no_build_output():
    out = io.StringIO()
    r = CIReporter("github", out, quiet=True)
    r.build_line("Step 1/2")
    assert out.getvalue() == ""


def test_make_reporter_picks_the_ci_reporter():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert isinstance(make_reporter(False, io.StringIO(), env={"GITHUB_ACTIONS": "true"}), CIReporter)
    assert make_reporter(False, io.StringIO(), env={"GITLAB_CI": "true"}).system == "gitlab"
    assert type(make_reporter(False, io.StringIO(), env={})) is PlainReporter
    assert isinstance(make_reporter(False, Tty(), env={}), LiveReporter)
    assert step.ci_system({"GITHUB_ACTIONS": "false"}) is None
