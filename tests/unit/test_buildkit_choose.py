"""The builder choice, cache entries, secrets in release.yml, the CLI's argv and the plan line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pipeline.engine.buildkit.cli_build import build_argv
from pipeline.errors import ConfigError, UsageError
from pipeline.model.build_options import BuildSecret, OptionError, parse_cache_entry
from pipeline.model.build_route import (
    BUILDX,
    CLASSIC,
    ENGINE,
    LEGACY_CLI,
    DockerCli,
    choose_route,
    describe_route,
    engine_has_buildkit,
)
from pipeline.model.config.loader import load_config

MODERN = {"ApiVersion": "1.41", "Os": "linux"}
OLD = {"ApiVersion": "1.38", "Os": "linux"}
WINDOWS = {"ApiVersion": "1.41", "Os": "windows"}
BUILDX_CLI = DockerCli("/usr/local/bin/docker", "28.2.2", buildx=True)
LEGACY = DockerCli("/usr/bin/docker", "20.10.24+dfsg1", buildx=False)
NEW_NO_BUILDX = DockerCli("/usr/local/bin/docker", "28.2.2", buildx=False)
GHA = parse_cache_entry("type=gha", sink=False)
IMAGE = parse_cache_entry("registry.example.com/team/app:latest", sink=False)


# -- engine support ---------------------------------------------------------------------------

@pytest.mark.parametrize("version, expected", [
    (MODERN, True), ({"ApiVersion": "1.39", "Os": "linux"}, True), (OLD, False), (WINDOWS, False),
    ({"ApiVersion": "1.9", "Os": "linux"}, False), ({"ApiVersion": "1.100", "Os": "linux"}, True),
    ({"ApiVersion": "2.0"}, True), ({}, False), ({"ApiVersion": "garbage"}, False),
])
def test_engine_has_buildkit(version, expected):
    assert engine_has_buildkit(version) is expected


# -- routes -------------------------------------------------------------------------------------

def test_plain_builds_use_the_engine_api_and_need_no_cli():
    for builder in ("auto", "buildkit"):
        route = choose_route(builder, engine_version=MODERN, secrets=False, cache_entries=[IMAGE])
        assert route.way == ENGINE and route.cli is None and route.note is None
        assert route.buildkit


def test_auto_falls_back_to_classic_with_a_note():
    route = choose_route("auto", engine_version=OLD, secrets=False)
    assert route.way == CLASSIC and not route.buildkit
    assert route.note == ("this Docker Engine (linux engine, API 1.38) has no BuildKit: building "
                          "with the classic builder")


def test_forced_buildkit_without_engine_support_is_a_usage_error():
    with pytest.raises(UsageError) as err:
        choose_route("buildkit", engine_version=WINDOWS, secrets=False)
    assert err.value.exit_code == 2
    assert "windows engine, API 1.41" in err.value.message
    assert "image.builder is buildkit" in err.value.message


def test_auto_with_secrets_on_an_old_engine_is_an_error_not_a_silent_fallback():
    with pytest.raises(UsageError, match="image.secrets requires"):
        choose_route("auto", engine_version=OLD, secrets=True, cli=LEGACY)


def test_classic_refuses_what_needs_buildkit():
    with pytest.raises(UsageError, match="image.secrets need BuildKit, but image.builder is classic"):
        choose_route("classic", engine_version=MODERN, secrets=True)
    with pytest.raises(UsageError, match="cache type=gha need BuildKit"):
        choose_route("classic", engine_version=MODERN, secrets=False, cache_entries=[GHA])
    assert choose_route("classic", engine_version=MODERN, secrets=False,
                        cache_entries=[IMAGE]).way == CLASSIC


def test_secrets_prefer_buildx_then_a_legacy_cli():
    assert choose_route("auto", engine_version=MODERN, secrets=True, cli=BUILDX_CLI).way == BUILDX
    route = choose_route("auto", engine_version=MODERN, secrets=True, cli=LEGACY)
    assert route.way == LEGACY_CLI and route.cli is LEGACY
    assert route.note == ("image.secrets: building through /usr/bin/docker 20.10.24+dfsg1 "
                          "(DOCKER_BUILDKIT=1)")


def test_secrets_without_a_usable_cli_say_what_to_install():
    for cli, found in ((NEW_NO_BUILDX, "found /usr/local/bin/docker 28.2.2, without buildx"),
                       (None, "none found")):
        with pytest.raises(UsageError) as err:
            choose_route("auto", engine_version=MODERN, secrets=True, cli=cli)
        assert found in err.value.message
        assert "docker-buildx" in err.value.hint


def test_buildx_cache_types_need_buildx_itself():
    assert choose_route("auto", engine_version=MODERN, secrets=False, cache_entries=[GHA],
                        cli=BUILDX_CLI).way == BUILDX
    with pytest.raises(UsageError, match="type=gha needs docker buildx"):
        choose_route("auto", engine_version=MODERN, secrets=False, cache_entries=[GHA], cli=LEGACY)


def test_legacy_cli_is_below_23():
    assert DockerCli("x", "22.06.0-beta", False).legacy_buildkit
    assert not DockerCli("x", "23.0.0", False).legacy_buildkit
    assert not DockerCli("x", "unknown", False).legacy_buildkit    # unparsable: assume new


# -- cache entries ------------------------------------------------------------------------------

def test_cache_entries():
    assert IMAGE.type == "image" and IMAGE.ref == IMAGE.text and not IMAGE.needs_buildx
    reg = parse_cache_entry("type=registry,ref=r.example.com/a:cache,mode=max", sink=True)
    assert (reg.type, reg.ref, reg.needs_buildx) == ("registry", "r.example.com/a:cache", True)
    assert parse_cache_entry("type=inline", sink=True).needs_buildx is False
    assert parse_cache_entry(" type=local,src=/tmp/c ", sink=False).text == "type=local,src=/tmp/c"


@pytest.mark.parametrize("text, sink, message", [
    ("type=s4", False, "unknown cache type 's4'"),
    ("type=registry", False, "type=registry needs ref=IMAGE"),
    ("type=local", True, "type=local needs dest=DIRECTORY"),
    ("type=local,dest=/x", False, "type=local needs src=DIRECTORY"),
    ("mode=max,type", True, "'type' is not key=value"),
    ("mode=max", True, "has no type="),
    ("registry.example.com/app:latest", True, "is not a cache spec"),
    ("Bad Ref!", False, "cache_from entry:"),
    ("", False, "must not be empty"),
])
def test_bad_cache_entries(text, sink, message):
    with pytest.raises(OptionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_cache_entry(text, sink=sink)


@pytest.mark.parametrize("text", [
    "type=s3,region=eu-west-1,bucket=b,access_key_id=AKIAEXAMPLE,secret_access_key=SUPERSECRETKEY",
    "type=gha,token=ghs_SUPERSECRETKEY,mode=max",
    "type=azblob,account_url=https://a.blob.core.windows.net,Secret_Access_Key=SUPERSECRETKEY",
    "type=s3,session_token=SUPERSECRETKEY,broken",
])
def test_credentials_in_a_cache_spec_are_refused_and_never_echoed(text):
    for sink in (False, True):
        with pytest.raises(OptionError) as err:
            parse_cache_entry(text, sink=sink)
        assert "carries a credential" in err.value.message and "from the environment" in err.value.hint
        assert "SUPERSECRETKEY" not in err.value.message + err.value.hint


def test_a_credential_on_the_command_line_is_a_usage_error_without_the_value(tmp_path):
    from click.testing import CliRunner

    from pipeline.cli.main import cli
    config = write(tmp_path, "")
    result = CliRunner().invoke(cli, ["-c", str(config), "plan", "1.0.0", "--cache-to",
                                      "type=s3,bucket=b,secret_access_key=SUPERSECRETKEY"])
    assert result.exit_code == 2
    assert "carries a credential (secret_access_key=...)" in result.output
    assert "SUPERSECRETKEY" not in result.output


# -- release.yml --------------------------------------------------------------------------------

def write(tmp_path: Path, image_extra: str) -> Path:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    config = tmp_path / "release.yml"
    config.write_text("image:\n  name: app\n" + image_extra +
                      "registries:\n  - name: r\n    registry: localhost:5000\n    repository: app\n")
    return config


def test_build_options_load(tmp_path):
    (tmp_path / "key.pem").write_text("k")
    config = load_config(write(tmp_path, textwrap.indent(textwrap.dedent("""\
        builder: buildkit
        secrets:
          - {id: npmrc, env: NPM_TOKEN}
          - {id: key, file: key.pem}
        cache_from: [localhost:5000/app:latest, type=gha]
        cache_to: ["type=gha,mode=max"]
        """), "  ")))
    image = config.image
    assert image.builder == "buildkit"
    assert image.secrets == (BuildSecret("npmrc", env="NPM_TOKEN"),
                             BuildSecret("key", file=tmp_path / "key.pem"))
    assert [(e.type, e.text) for e in image.cache_from] == [("image", "localhost:5000/app:latest"),
                                                            ("gha", "type=gha")]
    assert [e.text for e in image.cache_to] == ["type=gha,mode=max"]


def test_local_cache_directories_are_relative_to_release_yml(tmp_path):
    image = load_config(write(tmp_path, "  cache_from: ['type=local,src=.cache/bk']\n"
                                        "  cache_to: ['type=local,dest=/abs/bk,mode=max']\n")).image
    assert image.cache_from[0].text == f"type=local,src={tmp_path}/.cache/bk"
    assert image.cache_to[0].text == "type=local,dest=/abs/bk,mode=max"


def test_defaults(tmp_path):
    image = load_config(write(tmp_path, "")).image
    assert (image.builder, image.secrets, image.cache_from, image.cache_to) == ("auto", (), (), ())


@pytest.mark.parametrize("extra, where, message", [
    ("  builder: buildkti\n", "3:12", "image.builder must be one of auto, buildkit, classic, got 'buildkti'"),
    ("  secrets: {id: a}\n", "3:12", "image.secrets must be a list"),
    ("  secrets:\n    - {id: a}\n", "4:7", "image.secrets[0] needs exactly one of env: or file:"),
    ("  secrets:\n    - {id: a, env: X, file: f}\n", "4:7", "needs exactly one of env: or file:"),
    ("  secrets:\n    - {id: 'a b', env: X}\n", "4:12", "secret id 'a b' may use only"),
    ("  secrets:\n    - {id: a, env: X}\n    - {id: a, env: Y}\n", "5:12", "secret id 'a' is listed twice (first on line 4)"),
    ("  secrets:\n    - {id: a, file: nothere}\n", "4:21", "image.secrets[0].file not found: nothere"),
    ("  secrets:\n    - {id: a, envv: X}\n", "4:15", "unknown key 'envv' in image.secrets[0]"),
    ("  cache_from: [type=nope]\n", "3:16", "unknown cache type 'nope'"),
    ("  cache_to: [localhost:5000/app:cache]\n", "3:14", "image.cache_to entry 'localhost:5000/app:cache' is not a cache spec"),
    ("  cache_from: localhost:5000/a\n", "3:15", "image.cache_from must be a list of strings"),
])
def test_bad_build_options_name_the_line(tmp_path, extra, where, message):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, extra))
    assert err.value.exit_code == 2
    assert f"{err.value.line}:{err.value.col}" == where, str(err.value)
    assert message in err.value.message


def test_a_secret_typed_where_the_variable_name_belongs_is_not_echoed(tmp_path):
    secret = "npm_Xq9TzLw0rdS3cret/+="
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, f"  secrets:\n    - {{id: npmrc, env: '{secret}'}}\n"))
    assert "must name an environment variable" in err.value.message
    assert secret not in str(err.value)


# -- the docker CLI's argv ----------------------------------------------------------------------

def argv_for(cli, way, **extra):
    return build_argv(cli, way, context=Path("/ctx"), dockerfile="Dockerfile", tag="app:1",
                      build_args={"A": "1"}, target="runtime", labels={"l": "v"},
                      platform="linux/arm64", iidfile="/tmp/iid", **extra)


def test_argv_names_secret_variables_never_values(monkeypatch):
    monkeypatch.setenv("NPM_TOKEN", "the-value-itself")
    argv = argv_for(LEGACY, LEGACY_CLI, secrets=[BuildSecret("npmrc", env="NPM_TOKEN"),
                                                 BuildSecret("key", file=Path("/s/key.pem"))],
                    cache_from=[IMAGE])
    assert argv[:2] == ["/usr/bin/docker", "build"]
    assert "--secret" in argv and "id=npmrc,env=NPM_TOKEN" in argv and "id=key,src=/s/key.pem" in argv
    assert not any("the-value-itself" in a for a in argv)
    assert argv[argv.index("--cache-from") + 1] == IMAGE.text    # the legacy CLI takes a ref
    assert "BUILDKIT_INLINE_CACHE=1" in argv and "A=1" in argv
    assert argv[argv.index("--platform") + 1] == "linux/arm64"
    assert argv[argv.index("--target") + 1] == "runtime"
    assert argv[argv.index("-f") + 1] == "/ctx/Dockerfile" and argv[-1] == "/ctx"
    assert "--progress=plain" in argv and argv[argv.index("--iidfile") + 1] == "/tmp/iid"


def test_argv_for_buildx_loads_the_image_and_passes_cache_specs():
    argv = argv_for(BUILDX_CLI, BUILDX, cache_from=[IMAGE, GHA],
                    cache_to=[parse_cache_entry("type=gha,mode=max", sink=True),
                              parse_cache_entry("type=inline", sink=True)])
    assert argv[:4] == ["/usr/local/bin/docker", "buildx", "build", "--load"]
    froms = [argv[i + 1] for i, a in enumerate(argv) if a == "--cache-from"]
    assert froms == [f"type=registry,ref={IMAGE.ref}", "type=gha,scope=linux-arm64"]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--cache-to"] == \
        ["type=gha,mode=max,scope=linux-arm64"]


# -- the plan's line ----------------------------------------------------------------------------

def test_plan_line_says_builder_and_cache():
    assert describe_route("auto", secrets=False) == (
        "builder: BuildKit via the Engine API (auto: classic if the engine has no BuildKit); "
        "cache from: local build cache only (+ inline cache in the image)")
    line = describe_route("buildkit", secrets=True, cache_from=["r.example.com/a:latest", "type=gha"],
                          cache_to=["type=gha,mode=max"])
    assert line == ("builder: BuildKit via the docker CLI (buildx) for image.secrets and cache "
                    "type=gha and cache type=gha,mode=max; cache from: r.example.com/a:latest, "
                    "type=gha; cache to: type=gha,mode=max (+ inline cache in the image)")
    assert describe_route("classic", secrets=False, cache_from=["a:1"]) == \
        "builder: classic; cache from: a:1"


def test_each_platform_gets_its_own_gha_scope_unless_one_is_named():
    argv = argv_for(BUILDX_CLI, BUILDX, cache_from=[GHA, parse_cache_entry("type=gha,scope=x", sink=False)],
                    cache_to=[parse_cache_entry("type=gha,mode=max,ignore-error=true", sink=True)])
    froms = [argv[i + 1] for i, a in enumerate(argv) if a == "--cache-from"]
    assert froms == ["type=gha,scope=linux-arm64", "type=gha,scope=x"]
    assert argv[argv.index("--cache-to") + 1] == "type=gha,mode=max,ignore-error=true,scope=linux-arm64"


def test_created_is_reused_only_for_the_same_version_and_commit():
    from pipeline.model.labels import PREFIX, reusable_created
    mine = {PREFIX + "version": "1.0.0", PREFIX + "revision": "abc", PREFIX + "created": "T1"}
    assert reusable_created([None, mine], version="1.0.0", revision="abc") == "T1"
    assert reusable_created([mine], version="1.0.1", revision="abc") is None
    assert reusable_created([mine], version="1.0.0", revision="abd") is None
    assert reusable_created([{**mine, PREFIX + "created": ""}], version="1.0.0", revision="abc") is None
    assert reusable_created([], version="1.0.0", revision=None) is None


class _Engine:
    """Images by id: inspect documents and histories; records tags and removals."""

    def __init__(self, images):
        self.images, self.tags, self.removed = images, {}, []

    def inspect(self, ref):
        return self.images.get(self.tags.get(ref, ref))

    def history(self, ref):
        return self.images[ref]["_history"]

    def tag(self, image, repository, tag):
        self.tags[f"{repository}:{tag}"] = image

    def remove_if_untagged(self, image_id):
        self.removed.append(image_id)


def _image(image_id, *, created="T", layers=("sha256:l1",), history=("RUN a",)):
    return {"Id": image_id, "Config": {"Labels": {}}, "Created": created,
            "RootFS": {"Layers": list(layers)}, "Os": "linux", "Architecture": "amd64",
            "_history": [{"Created": 1, "CreatedBy": h, "Comment": "", "Size": 0} for h in history]}


def test_a_rebuild_that_differs_only_in_inline_cache_order_keeps_the_earlier_image():
    from pipeline.engine.buildkit.builder import ImageBuilder
    engine = _Engine({"sha256:old": _image("sha256:old"), "sha256:new": _image("sha256:new")})
    builder = ImageBuilder.__new__(ImageBuilder)
    builder.engine = engine
    kept = builder._keep_earlier_if_equal("app:1.0.0", engine.images["sha256:old"], "sha256:new")
    assert kept == "sha256:old" and engine.tags["app:1.0.0"] == "sha256:old"
    assert engine.removed == ["sha256:new"]


@pytest.mark.parametrize("change", [dict(created="T2"), dict(layers=("sha256:l2",)),
                                    dict(history=("RUN b",))])
def test_a_rebuild_that_really_differs_is_the_new_image(change):
    from pipeline.engine.buildkit.builder import ImageBuilder
    engine = _Engine({"sha256:old": _image("sha256:old"), "sha256:new": _image("sha256:new", **change)})
    builder = ImageBuilder.__new__(ImageBuilder)
    builder.engine = engine
    assert builder._keep_earlier_if_equal("app:1", engine.images["sha256:old"], "sha256:new") == "sha256:new"
    assert engine.tags == {} and engine.removed == []
    assert builder._keep_earlier_if_equal("app:1", None, "sha256:new") == "sha256:new"
