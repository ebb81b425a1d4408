"""Platforms: parsing, release.yml's image.platforms, the plan, QEMU detection, the CLI options."""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.cli.manifest import resolve_platform
from pipeline.engine.client import BuildFailed, Engine
from pipeline.errors import ConfigError, UsageError
from pipeline.model.config.loader import load_config
from pipeline.model.plan import format_plan, make_plan
from pipeline.model.platforms import (
    Platform,
    PlatformError,
    binfmt_handler,
    dockerfile_has_scratch,
    dockerfile_runs,
    emulation_problem,
    engine_is_local,
    from_engine,
    needs_emulation,
    parse_platform,
)

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")


# -- parsing ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("linux/amd64", Platform("linux", "amd64")),
    ("linux/arm64", Platform("linux", "arm64")),
    ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
    ("linux/arm/v7", Platform("linux", "arm", "v7")),
    ("linux/386", Platform("linux", "386")),
    ("windows/amd64", Platform("windows", "amd64")),
])
def test_platforms_parse(text, expected):
    assert parse_platform(text) == expected
    assert str(parse_platform(text)) == text


@pytest.mark.parametrize("text, message, hint", [
    ("linux/x86_64", "unknown architecture 'x86_64'", "linux/amd64"),
    ("linux/aarch64", "unknown architecture", "linux/arm64"),
    ("arm64", "not a platform", "linux/arm64"),
    ("linux/armhf", "unknown architecture", "linux/arm/v7"),
    ("darwin/arm64", "unknown operating system", "known: linux, windows"),
    ("linux/arm/v9", "unknown variant 'v9'", "v5, v6, v7, v8"),
    ("linux/386/v1", "unknown variant", "386 has no variants"),
    ("linux//v7", "not a platform", None),
    ("linux/amd64/v3/x", "not a platform", None),
])
def test_bad_platforms_say_what_was_meant(text, message, hint):
    with pytest.raises(PlatformError) as info:
        parse_platform(text)
    assert message in info.value.message
    if hint:
        assert hint in info.value.hint


def test_default_variants_match_and_slugs_name_local_tags():
    assert parse_platform("linux/arm64/v8").matches(ARM64)
    assert parse_platform("linux/arm/v7").matches(Platform("linux", "arm"))
    assert not parse_platform("linux/arm/v6").matches(Platform("linux", "arm"))
    assert not AMD64.matches(ARM64)
    assert parse_platform("linux/arm/v7").slug == "linux-arm-v7"
    assert parse_platform("linux/arm/v7").to_oci() == {"architecture": "arm", "os": "linux",
                                                       "variant": "v7"}
    assert ARM64.to_oci() == {"architecture": "arm64", "os": "linux"}


@pytest.mark.parametrize("info, expected", [
    ({"OSType": "linux", "Architecture": "x86_64"}, "linux/amd64"),
    ({"OSType": "linux", "Architecture": "aarch64"}, "linux/arm64"),
    ({"OSType": "linux", "Architecture": "armv7l"}, "linux/arm/v7"),
    ({"OSType": "linux", "Architecture": "s390x"}, "linux/s390x"),
])
def test_the_engine_platform_comes_from_docker_info(info, expected):
    assert str(from_engine(info)) == expected


def test_which_platforms_need_emulation():
    assert not needs_emulation(AMD64, AMD64)
    assert needs_emulation(ARM64, AMD64)
    assert not needs_emulation(Platform("linux", "386"), AMD64)
    assert not needs_emulation(Platform("linux", "arm", "v7"), ARM64)
    assert needs_emulation(AMD64, ARM64)


# -- QEMU / binfmt_misc ----------------------------------------------------------------------------

def binfmt(tmp_path, *entries, status="enabled"):
    root = tmp_path / "binfmt_misc"
    root.mkdir()
    if status is not None:
        (root / "status").write_text(status + "\n")
    (root / "register").write_text("")
    for name, state in entries:
        (root / name).write_text(f"{state}\ninterpreter /usr/bin/{name}\n")
    return root


def dockerfile(tmp_path, text, name="Dockerfile"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_binfmt_handlers_are_found_only_when_enabled(tmp_path):
    root = binfmt(tmp_path, ("qemu-aarch64", "enabled"), ("qemu-arm", "disabled"),
                  ("qemu-s390x-static", "enabled"))
    assert binfmt_handler(ARM64, root) == "qemu-aarch64"
    assert binfmt_handler(Platform("linux", "arm", "v7"), root) is None
    assert binfmt_handler(Platform("linux", "s390x"), root) == "qemu-s390x-static"
    assert binfmt_handler(Platform("linux", "riscv64"), root) is None
    (root / "status").write_text("disabled\n")
    assert binfmt_handler(ARM64, root) is None


def test_dockerfile_runs_follow_stages_continuations_and_the_target(tmp_path):
    path = dockerfile(tmp_path, """\
        # syntax=docker/dockerfile:1
        FROM --platform=$BUILDPLATFORM golang:1 AS build
        RUN go build \\
            -o /app .
        FROM scratch AS base
        COPY --from=build /app /app
        FROM base AS test
        # a comment
        run ["/app", "--self-test"]
        FROM base AS final
        RUN <<EOF
        FROM this is heredoc text
        EOF
        """)
    runs = dockerfile_runs(path)
    assert [(r.line, r.stage, r.native) for r in runs] == [(3, "build", True), (9, "test", False),
                                                           (11, "final", False)]
    assert [r.stage for r in dockerfile_runs(path, target="base")] == ["build"]
    assert [r.stage for r in dockerfile_runs(path, target="test")] == ["build", "test"]


def test_escape_directive_changes_the_continuation_character(tmp_path):
    path = dockerfile(tmp_path, "# escape=`\nFROM scratch\nRUN echo `\n  RUN-not-an-instruction\n")
    assert [r.line for r in dockerfile_runs(path)] == [3]


def test_from_scratch_is_found_up_to_the_target(tmp_path):
    assert dockerfile_has_scratch(dockerfile(tmp_path, "FROM scratch\nCOPY a /a\n"))
    multi = dockerfile(tmp_path, "FROM alpine AS a\nRUN true\nFROM scratch AS b\n", "Multi")
    assert dockerfile_has_scratch(multi)
    assert not dockerfile_has_scratch(multi, target="a")
    assert not dockerfile_has_scratch(dockerfile(tmp_path, "FROM debian\n", "Debian"))
    assert not dockerfile_has_scratch(tmp_path / "missing")


def test_a_foreign_run_without_qemu_is_reported_before_the_build(tmp_path):
    run = dockerfile(tmp_path, "FROM scratch\nCOPY app /app\nRUN [\"/app\"]\n")
    copy_only = dockerfile(tmp_path, "FROM scratch\nCOPY app /app\n", "Copy")
    native_run = dockerfile(tmp_path, "FROM --platform=$BUILDPLATFORM x AS b\nRUN make\n"
                                      "FROM scratch\nCOPY --from=b /app /app\n", "Native")
    none = binfmt(tmp_path)
    problem = emulation_problem([AMD64, ARM64], AMD64, run, root=none)
    assert problem is not None
    message, hint = problem
    assert "linux/arm64" in message and "line 3 (RUN)" in message and "qemu-aarch64" in message
    assert "tonistiigi/binfmt --install arm64" in hint
    assert "--platform linux/arm64 --push-by-digest" in hint
    assert emulation_problem([AMD64, ARM64], AMD64, copy_only, root=none) is None
    assert emulation_problem([AMD64, ARM64], AMD64, native_run, root=none) is None
    assert emulation_problem([AMD64], AMD64, run, root=none) is None


def test_qemu_present_or_invisible_is_no_problem(tmp_path):
    run = dockerfile(tmp_path, "FROM scratch\nRUN [\"/app\"]\n")
    with_qemu = binfmt(tmp_path, ("qemu-aarch64", "enabled"))
    assert emulation_problem([ARM64], AMD64, run, root=with_qemu) is None
    # Not mounted here (a container talking to the host's engine): cannot tell, do not block.
    invisible = tmp_path / "empty"
    invisible.mkdir()
    assert emulation_problem([ARM64], AMD64, run, root=invisible) is None


def test_the_check_runs_only_for_a_local_engine():
    assert engine_is_local({})
    assert engine_is_local({"DOCKER_HOST": "unix:///run/docker.sock"})
    assert not engine_is_local({"DOCKER_HOST": "tcp://10.0.0.2:2376"})
    assert not engine_is_local({"DOCKER_HOST": "ssh://builder"})


class FakeAPI:
    def __init__(self, chunks, arch="x86_64"):
        self.chunks = chunks
        self.arch = arch
        self.kwargs = None

    def build(self, **kwargs):
        self.kwargs = kwargs
        return iter(self.chunks)

    def info(self):
        return {"OSType": "linux", "Architecture": self.arch}


def fake_engine(chunks, arch="x86_64"):
    engine = Engine.__new__(Engine)
    engine.api = FakeAPI(chunks, arch)
    engine.client = SimpleNamespace(api=engine.api)
    return engine


EXEC_FORMAT = [{"stream": "Step 3/3 : RUN [\"/app\"]"}, {"stream": "exec /app: exec format error\n"},
               {"errorDetail": {"message": "The command '/app' returned a non-zero code: 1"}}]


def build(engine, **kw):
    return engine.build(context=Path("."), dockerfile="Dockerfile", tag="x:1", build_args={},
                        target=None, labels={}, **kw)


def test_exec_format_error_of_a_foreign_platform_points_at_qemu():
    with pytest.raises(BuildFailed) as info:
        build(fake_engine(EXEC_FORMAT), platform="linux/arm64")
    assert "cannot run linux/arm64 binaries; no QEMU binfmt handler" in info.value.message
    assert "Step 3/3" in info.value.message
    assert "tonistiigi/binfmt --install arm64" in info.value.hint


def test_exec_format_error_on_the_native_platform_is_a_wrong_binary():
    with pytest.raises(BuildFailed) as info:
        build(fake_engine(EXEC_FORMAT), platform="linux/amd64")
    assert "not built for linux/amd64" in info.value.message
    assert "QEMU" not in str(info.value)


def test_build_passes_platform_and_cache_options_only_when_asked():
    done = [{"aux": {"ID": "sha256:" + "a" * 64}}]
    engine = fake_engine(done)
    build(engine)
    assert "cache_from" not in engine.api.kwargs and "nocache" not in engine.api.kwargs
    assert engine.api.kwargs["platform"] is None
    build(engine, platform="linux/arm64", cache_from=["x:1-linux-arm64"])
    assert engine.api.kwargs["cache_from"] == ["x:1-linux-arm64"]
    assert engine.api.kwargs["platform"] == "linux/arm64"
    build(engine, platform="linux/arm64", nocache=True)
    assert engine.api.kwargs["nocache"] is True


# -- release.yml -------------------------------------------------------------------------------

def write(tmp_path, image_extra: str) -> Path:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    path = tmp_path / "release.yml"
    path.write_text("image:\n  name: myapp\n" + textwrap.indent(textwrap.dedent(image_extra), "  ")
                    + "registries:\n  - {name: local, registry: 'localhost:5000', repository: a/b}\n")
    return path


def test_platforms_and_index_format_load(tmp_path):
    config = load_config(write(tmp_path, "platforms: [linux/amd64, linux/arm64/v8, linux/arm/v7]\n"
                                         "index_format: docker\n"))
    assert config.image.platforms == ("linux/amd64", "linux/arm64/v8", "linux/arm/v7")
    assert config.image.index_format == "docker"
    default = load_config(write(tmp_path, ""))
    assert default.image.platforms == () and default.image.index_format == "oci"


@pytest.mark.parametrize("extra, message, hint", [
    ("platforms: linux/amd64\n", "must be a non-empty list", "platforms: [linux/amd64"),
    ("platforms: []\n", "must be a non-empty list", None),
    ("platforms: [linux/x86_64]\n", "unknown architecture 'x86_64'", "did you mean 'linux/amd64'?"),
    ("platforms: [linux/arm64, linux/arm64/v8]\n", "lists linux/arm64/v8 twice", "remove one"),
    ("platforms: [1]\n", "must be a string", None),
    ("index_format: OCI\n", "must be one of oci, docker", "did you mean 'oci'?"),
    ("platform: [linux/amd64]\n", "unknown key 'platform'", "did you mean 'platforms'?"),
])
def test_bad_platform_config_is_located(tmp_path, extra, message, hint):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, extra))
    assert message in info.value.message
    assert info.value.line == 3
    if hint:
        assert hint in info.value.hint


def test_schema_accepts_what_the_loader_accepts():
    import re

    from pipeline.model.config.schema import json_schema
    image = json_schema()["properties"]["image"]["properties"]
    pattern = re.compile(image["platforms"]["items"]["pattern"])
    assert all(pattern.match(p) for p in ("linux/amd64", "linux/arm/v7", "windows/amd64"))
    assert not any(pattern.match(p) for p in ("linux/x86_64", "arm64", "linux/arm64/"))
    assert image["index_format"]["enum"] == ["oci", "docker"]


# -- the plan ----------------------------------------------------------------------------------

def plan_for(platforms, fmt="oci", build=True):
    image = SimpleNamespace(name="myapp", context=Path("/src"), dockerfile="Dockerfile", target=None,
                            build_args={}, platforms=platforms, index_format=fmt)
    result = SimpleNamespace(version="1.2.3", tags=["1.2.3", "1.2", "latest"], latest=True)
    regs = [SimpleNamespace(name="a", type="generic", registry="localhost:5000", repository="t/app")]
    return make_plan(SimpleNamespace(image=image), result, regs, build=build)


def test_a_multi_platform_plan_builds_each_then_one_index():
    plan = plan_for(("linux/amd64", "linux/arm/v7"))
    assert plan.multi_platform and plan.platform is None
    steps = plan.steps()
    assert [(s["step"], s.get("platform"), s.get("image")) for s in steps[:2]] == [
        ("build", "linux/amd64", "myapp:1.2.3-linux-amd64"),
        ("build", "linux/arm/v7", "myapp:1.2.3-linux-arm-v7")]
    assert steps[2]["step"] == "index" and steps[2]["format"] == "oci"
    assert [s["phase"] for s in steps if s["step"] == "push"] == ["immutable", "floating", "floating"]
    text = format_plan(plan)
    assert "build 2 platforms" in text and "by digest (no tag)" in text and "OCI image index" in text
    data = plan.to_dict()
    assert data["platforms"] == ["linux/amd64", "linux/arm/v7"]
    assert data["local_images"]["linux/arm/v7"] == "myapp:1.2.3-linux-arm-v7"
    assert "Docker manifest list" in format_plan(plan_for(("linux/amd64", "linux/arm64"), "docker"))
    assert "--no-build" in format_plan(plan_for(("linux/amd64", "linux/arm64"), build=False))


def test_one_platform_keeps_the_single_manifest_plan():
    default = plan_for(())
    assert not default.multi_platform and default.platform is None
    assert "platforms" not in default.to_dict()
    assert default.steps()[0] == {"step": "build", "image": "myapp:1.2.3", "context": "/src",
                                  "dockerfile": "Dockerfile", "target": None, "build_args": [],
                                  "builder": "auto"}
    one = plan_for(("linux/arm64",))
    assert not one.multi_platform and one.platform == "linux/arm64"
    assert one.steps()[0]["platform"] == "linux/arm64"
    assert "build myapp:1.2.3 for linux/arm64" in format_plan(one)


# -- CLI options -------------------------------------------------------------------------------

def cfg(platforms):
    return SimpleNamespace(image=SimpleNamespace(platforms=tuple(platforms)), display_path="release.yml")


def test_push_by_digest_platform_choice():
    assert resolve_platform(cfg(["linux/amd64", "linux/arm64"]), "linux/arm64/v8") == "linux/arm64"
    assert resolve_platform(cfg(["linux/arm64"]), None) == "linux/arm64"
    assert resolve_platform(cfg([]), None, ARM64) == "linux/arm64"
    assert resolve_platform(cfg([]), "linux/s390x") == "linux/s390x"
    with pytest.raises(UsageError, match="name it with --platform"):
        resolve_platform(cfg(["linux/amd64", "linux/arm64"]), None)
    with pytest.raises(UsageError, match="not in image.platforms"):
        resolve_platform(cfg(["linux/amd64", "linux/arm64"]), "linux/s390x")
    with pytest.raises(UsageError, match="did you mean 'linux/arm64'"):
        resolve_platform(cfg([]), "linux/aarch64")


@pytest.fixture
def project(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "release.yml").write_text(
        "image:\n  name: myapp\n  context: app\n  platforms: [linux/amd64, linux/arm64]\n"
        "registries:\n  - {name: local, registry: 'localhost:5000', repository: team/myapp}\n")
    return tmp_path


def run(project, *args):
    return CliRunner().invoke(cli, ["-c", str(project / "release.yml"), *args], env={})


def test_platform_options_need_push_by_digest(project):
    result = run(project, "build-push", "1.0.0", "--platform", "linux/arm64")
    assert result.exit_code == 2 and "--push-by-digest" in result.output
    result = run(project, "build-push", "1.0.0", "--metadata-file", "x.json")
    assert result.exit_code == 2


def test_push_by_digest_dry_run_touches_nothing(project):
    result = run(project, "build-push", "1.0.0", "--platform", "linux/arm64", "--push-by-digest",
                 "--metadata-file", "meta/arm64.json", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "build myapp:1.0.0-linux-arm64" in result.output
    assert "by digest (no tag) to [local] localhost:5000/team/myapp" in result.output
    assert not (project / "meta").exists()


def test_merge_dry_run_checks_the_records(project):
    import json
    meta = project / "meta"
    meta.mkdir()
    for i, p in enumerate(("linux/arm64", "linux/amd64")):
        (meta / f"{i}.json").write_text(json.dumps({
            "kind": "release.platform-image", "record_version": 1, "version": "1.0.0",
            "platform": p, "digest": "sha256:" + str(i) * 64, "size": 500,
            "media_type": "application/vnd.oci.image.manifest.v1+json", "index_format": "oci",
            "registry": "local", "host": "localhost:5000", "repository": "team/myapp"}))
    result = run(project, "manifest", "merge", "1.0.0", "--from-metadata", str(meta), "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split()[0] == "linux/amd64" and lines[2].split()[0] == "linux/arm64"
    wrong = run(project, "manifest", "merge", "2.0.0", "--from-metadata", str(meta), "--dry-run")
    assert wrong.exit_code == 2 and "is for version 1.0.0, not 2.0.0" in wrong.output


# -- building one platform (Releaser.build_image) ----------------------------------------------

class FakeEngine:
    """Builds "succeed"; the architecture of each result comes from `results` in order."""

    def __init__(self, results, existing=()):
        self.results = list(results)
        self.builds: list[dict] = []
        self.images = {ref: "amd64" for ref in existing}

    def build(self, **kw):
        self.builds.append(kw)
        arch = self.results.pop(0)
        image_id = f"sha256:{len(self.builds):064d}"
        self.images[kw["tag"]] = self.images[image_id] = arch
        return image_id

    def inspect(self, ref):
        arch = self.images.get(ref)
        return {"Os": "linux", "Architecture": arch, "Config": {"Labels": {}}} if arch else None

    def image_id(self, ref):
        return "sha256:x" if ref in self.images else None


def releaser(tmp_path, engine, dockerfile_text="FROM scratch\nCOPY a /a\n"):
    from pipeline.app.release import Releaser
    from pipeline.ui.progress import PlainReporter

    (tmp_path / "Dockerfile").write_text(dockerfile_text)
    image = SimpleNamespace(name="myapp", context=tmp_path, dockerfile="Dockerfile", target=None,
                            build_args={}, labels={}, platforms=("linux/amd64", "linux/arm64"),
                            index_format="oci", builder="classic", secrets=(), cache_from=(),
                            cache_to=())
    config = SimpleNamespace(image=image, path=tmp_path / "release.yml", registries=[])
    plan = plan_for(("linux/amd64", "linux/arm64"))
    return Releaser(config, plan, PlainReporter(stream=open(tmp_path / "log", "w"), quiet=True),
                    engine=engine, env={"GITHUB_SHA": "abc"})


def test_a_from_scratch_platform_build_uses_only_its_own_cache(tmp_path):
    engine = FakeEngine(["arm64"])
    releaser(tmp_path, engine).build_image("myapp:1.2.3-linux-arm64", "linux/arm64")
    assert engine.builds[0]["nocache"] is True and engine.builds[0]["platform"] == "linux/arm64"
    engine.results = ["arm64"]
    releaser(tmp_path, engine).build_image("myapp:1.2.3-linux-arm64", "linux/arm64")
    assert engine.builds[1]["cache_from"] == ["myapp:1.2.3-linux-arm64"]
    assert "nocache" not in engine.builds[1]


def test_an_image_for_the_wrong_platform_is_rebuilt_without_cache(tmp_path):
    engine = FakeEngine(["amd64", "arm64"])
    r = releaser(tmp_path, engine, "FROM debian\nCOPY a /a\n")     # no scratch: normal cache
    r.build_image("myapp:1.2.3-linux-arm64", "linux/arm64")
    assert "nocache" not in engine.builds[0] and "cache_from" not in engine.builds[0]
    assert engine.builds[1]["nocache"] is True
    engine.results = ["amd64", "amd64"]
    with pytest.raises(BuildFailed, match="for linux/amd64, not linux/arm64"):
        r.build_image("myapp:1.2.3-linux-arm64", "linux/arm64")


def test_the_engine_platform_build_is_unchanged(tmp_path):
    engine = FakeEngine(["amd64"])
    releaser(tmp_path, engine).build_image("myapp:1.2.3")
    assert "platform" not in engine.builds[0] and "nocache" not in engine.builds[0]
