"""release.yml loading and validation: values, defaults, and FILE:LINE:COL errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import pipeline.model.tags as tags_module
from pipeline.errors import ConfigError, TagRuleError, UsageError
from pipeline.model.config import (
    Config,
    ImageConfig,
    RegistryConfig,
    RetryConfig,
    check_registry_host,
    load_config,
)

SECRET_HINT = "put the secret in an environment variable and name it with password_env"

# ------------------------------------------------------------------ pipeline.model.tags


@pytest.fixture
def tags_api():
    """The tag rules the loader uses (their defaults, their parse errors)."""
    return tags_module


# ------------------------------------------------------------------ helpers

MINIMAL = """\
image:
  name: myapp
registries:
  - name: local
    registry: localhost:5000
    repository: team/myapp
"""


def write(tmp_path: Path, text: str, *, dockerfile: bool = True, name: str = "release.yml"
          ) -> Path:
    if dockerfile:
        (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path: Path, text: str, **kwargs) -> ConfigError:
    path = write(tmp_path, text, **kwargs)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert str(err).startswith(f"{path}:{err.line}:{err.col}: "), str(err)
    return err


# ------------------------------------------------------------------ valid files

FULL = """\
version: 1
image:
  name: team/myapp
  context: app
  dockerfile: docker/Dockerfile.prod
  build_args: {GREETING: hi, VERSION: 1.10, DEBUG: true, COUNT: 3}
  target: runtime
  labels:
    team: core
tags:
  - type=semver,pattern={{version}}
  - type=sha
flavor:
  - latest=false
registries:
  - name: local
    registry: localhost:5000
    repository: team/myapp
    username_env: LOCAL_USER
    password_env: LOCAL_PASS
    ca_file: certs/ca.crt
  - name: hub
    type: dockerhub
    registry: docker.io
    repository: me/myapp
    insecure: true
retry:
  attempts: 3
  max_delay: 2.5
"""


def write_full(tmp_path: Path) -> Path:
    (tmp_path / "app" / "docker").mkdir(parents=True)
    (tmp_path / "app" / "docker" / "Dockerfile.prod").write_text("FROM scratch\n")
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    return write(tmp_path, FULL, dockerfile=False)


def test_full_config_loads_with_values_and_absolute_paths(tmp_path):
    path = write_full(tmp_path)
    config = load_config(path)

    assert isinstance(config, Config)
    assert config.path == path.resolve() and config.path.is_absolute()
    assert config.image == ImageConfig(
        name="team/myapp",
        context=tmp_path / "app",
        dockerfile="docker/Dockerfile.prod",
        build_args={"GREETING": "hi", "VERSION": "1.10", "DEBUG": "true", "COUNT": "3"},
        target="runtime",
        labels={"team": "core"},
    )
    assert config.image.context.is_absolute()
    assert config.tag_lines == ["type=semver,pattern={{version}}", "type=sha"]
    assert len(config.tags) == 2
    assert config.flavor_lines == ["latest=false"]
    assert config.flavor is not None
    assert config.registries == [
        RegistryConfig(name="local", type="generic", registry="localhost:5000",
                       repository="team/myapp", username_env="LOCAL_USER",
                       password_env="LOCAL_PASS", ca_file=tmp_path / "certs" / "ca.crt",
                       ca_file_text="certs/ca.crt",
                       insecure=False, line=16),
        RegistryConfig(name="hub", type="dockerhub", registry="docker.io",
                       repository="me/myapp", username_env=None, password_env=None,
                       ca_file=None, insecure=True, line=22),
    ]
    assert config.registries[0].ca_file.is_absolute()
    assert config.registries[0].image_ref == "localhost:5000/team/myapp"
    assert config.retry == RetryConfig(attempts=3, max_delay=2.5)
    assert isinstance(config.retry.max_delay, float)


def test_defaults(tmp_path, tags_api):
    config = load_config(write(tmp_path, MINIMAL))
    assert config.tag_lines == list(tags_api.DEFAULT_TAG_LINES)
    assert config.tag_lines is not tags_api.DEFAULT_TAG_LINES  # a copy, not the module's list
    assert len(config.tags) == len(tags_api.DEFAULT_TAG_LINES)
    assert config.flavor_lines == ["latest=auto"] == list(tags_api.DEFAULT_FLAVOR_LINES)
    assert config.retry == RetryConfig(attempts=5, max_delay=30.0)
    assert config.image.context == tmp_path
    assert config.image.dockerfile == "Dockerfile"
    assert config.image.build_args == {} and config.image.labels == {}
    assert config.image.target is None
    reg = config.registries[0]
    assert (reg.type, reg.insecure, reg.username_env, reg.password_env, reg.ca_file) == \
        ("generic", False, None, None, None)
    assert reg.line == 4
    # Defaults are not in the file: no location for them.
    assert config.location("tags", 0) is None


def test_paths_are_relative_to_the_config_file_not_the_cwd(tmp_path, monkeypatch):
    project = tmp_path / "proj"
    project.mkdir()
    write(project, MINIMAL)
    monkeypatch.chdir(tmp_path)
    config = load_config("proj/release.yml")
    assert config.image.context == project
    assert config.path == project / "release.yml"


def test_merge_keys_are_applied_and_are_not_duplicates(tmp_path):
    config = load_config(write(tmp_path, """\
        image:
          name: myapp
        registries:
          - &common
            name: a
            registry: localhost:5000
            repository: team/myapp
            username_env: U
            password_env: P
          - <<: *common
            name: b
            registry: localhost:5001
        """))
    b = config.registries[1]
    assert (b.name, b.registry, b.repository, b.username_env) == \
        ("b", "localhost:5001", "team/myapp", "U")


def test_locations_of_tag_and_flavor_items(tmp_path):
    config = load_config(write_full(tmp_path))
    assert config.location("tags", 0) == (11, 5)
    assert config.location("tags", 1) == (12, 5)
    assert config.location("flavor", 0) == (14, 5)
    assert config.location("tags", 2) is None
    err = config.rule_error(TagRuleError("produced an invalid tag", index=1, section="tags"))
    assert isinstance(err, ConfigError)
    assert (err.line, err.col) == (12, 5)
    assert "tags[1]: produced an invalid tag" in str(err)


@pytest.mark.parametrize("host", ["localhost:5000", "127.0.0.1:5000", "[::1]:5000",
                                  "registry.example.com", "my-registry.local:443", "[::1]"])
def test_valid_registry_hosts(host):
    assert check_registry_host(host) is None


# ------------------------------------------------------------------ selecting registries

THREE = MINIMAL + """\
  - name: b
    registry: localhost:5001
    repository: team/myapp
  - name: c
    registry: localhost:5002
    repository: team/myapp
"""


def test_select_keeps_file_order_and_empty_means_all(tmp_path):
    config = load_config(write(tmp_path, THREE))
    assert [r.name for r in config.select([])] == ["local", "b", "c"]
    assert [r.name for r in config.select(["c", "local", "c"])] == ["local", "c"]
    assert config.registry("b").registry == "localhost:5001"


def test_select_unknown_registry_is_a_usage_error(tmp_path):
    config = load_config(write(tmp_path, THREE))
    with pytest.raises(UsageError) as info:
        config.select(["local", "nope"])
    assert info.value.exit_code == 2
    assert "no registry named nope in" in info.value.message
    assert "known: local, b, c" in info.value.message
    with pytest.raises(UsageError) as info:
        config.registry("lcoal")
    assert "no registry named lcoal" in info.value.message
    assert info.value.hint == "did you mean 'local'?"


# ------------------------------------------------------------------ file-level errors


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yml")
    assert info.value.message == f"release.yml not found at {tmp_path / 'nope.yml'}"
    assert info.value.hint == "create one (see README: release.yml reference) or pass -c PATH"


def test_error_names_the_file_as_given(tmp_path, monkeypatch):
    (tmp_path / "ci").mkdir()
    write(tmp_path / "ci", "image: [\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config("./ci/release.yml")
    assert str(info.value).startswith("./ci/release.yml:2:1: invalid YAML")


def test_yaml_syntax_error_has_line_and_col(tmp_path):
    err = error_of(tmp_path, """\
        image:
          name: myapp
        registries:
          - name: "local
        """)
    assert err.line == 5 and err.col == 1
    assert "invalid YAML" in err.message


def test_tabs_get_a_hint(tmp_path):
    err = error_of(tmp_path, "image:\n\tname: myapp\n")
    assert err.line == 2
    assert "tabs" in err.hint


@pytest.mark.parametrize("text, got", [("- a\n- b\n", "a list"), ("just text\n", "a string")])
def test_top_level_not_a_mapping(tmp_path, text, got):
    err = error_of(tmp_path, text)
    assert (err.line, err.col) == (1, 1)
    assert "must be a mapping" in err.message and got in err.message


def test_empty_file(tmp_path):
    err = error_of(tmp_path, "# nothing yet\n")
    assert err.line == 1 and "empty" in err.message


def test_not_utf8(tmp_path):
    (tmp_path / "release.yml").write_bytes(b"image:\n  name: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "release.yml")
    assert info.value.line == 2 and "UTF-8" in info.value.message


# ------------------------------------------------------------------ unknown keys


@pytest.mark.parametrize("text, line, col, key, hint", [
    ("image:\n  name: myapp\n  dockerfil: Dockerfile\n" + MINIMAL.split("\n", 2)[2],
     3, 3, "dockerfil", "did you mean 'dockerfile'?"),
    ("image:\n  name: myapp\n  Dockerfile: x\n" + MINIMAL.split("\n", 2)[2],
     3, 3, "Dockerfile", "did you mean 'dockerfile'?"),
    (MINIMAL + "    insecur: true\n", 7, 5, "insecur", "did you mean 'insecure'?"),
    (MINIMAL + "    host: x\n", 7, 5, "host", "did you mean 'registry'?"),
    (MINIMAL + "retry:\n  atempts: 3\n", 8, 3, "atempts", "did you mean 'attempts'?"),
    (MINIMAL.replace("registries:", "registres:"), 3, 1, "registres",
     "did you mean 'registries'?"),
    (MINIMAL + "registry: x\n", 7, 1, "registry",
     "'registry' belongs under an entry of registries:"),
    (MINIMAL + "target: x\n", 7, 1, "target", "'target' belongs under image:"),
    (MINIMAL + "zzz: 1\n", 7, 1, "zzz", "known keys: version, image, tags"),
])
def test_unknown_keys_with_did_you_mean(tmp_path, text, line, col, key, hint):
    err = error_of(tmp_path, text)
    assert (err.line, err.col) == (line, col)
    assert f"unknown key '{key}'" in err.message
    assert hint in err.hint


# ------------------------------------------------------------------ wrong types


@pytest.mark.parametrize("text, line, col, phrase", [
    (MINIMAL.replace("  name: myapp\n", "  name: myapp\n  build_args: [A, B]\n"), 3, 15,
     "image.build_args must be a mapping of strings, got a list"),
    (MINIMAL.replace("  name: myapp\n", "  name: myapp\n  labels:\n    a: {b: c}\n"), 4, 8,
     "image.labels.a is a mapping"),
    (MINIMAL.replace("  name: myapp\n", "  name: myapp\n  build_args:\n    A:\n"), 4, 7,
     "image.build_args.A is null"),
    (MINIMAL.replace("  name: myapp\n", "  name: 42\n"), 2, 9,
     "image.name must be a string, got an integer"),
    ("image: myapp\n" + MINIMAL.split("\n", 2)[2], 1, 8, "image must be a mapping, got a string"),
    (MINIMAL + "    insecure: 'false'\n", 7, 15, "insecure must be true or false, got a string"),
    (MINIMAL + "retry:\n  attempts: '3'\n", 8, 13, "retry.attempts must be an integer"),
    (MINIMAL + "retry:\n  attempts: 2.5\n", 8, 13, "retry.attempts must be an integer"),
    (MINIMAL + "retry:\n  max_delay: soon\n", 8, 14, "retry.max_delay must be a number"),
    (MINIMAL + "tags: {a: b}\n", 7, 7, "tags must be a list of strings, got a mapping"),
    (MINIMAL + "tags:\n  - 1.5\n", 8, 5, "tags[0] must be a string, got a number"),
    (MINIMAL + "tags: |\n  type=sha\n", 7, 7, "tags must be a list of strings, got a string"),
    (MINIMAL + "flavor: latest=auto\n", 7, 9, "flavor must be a list of strings"),
    ("image:\n  name: myapp\nregistries:\n  name: local\n", 4, 3,
     "registries must be a list of registries, got a mapping"),
    ("image:\n  name: myapp\nregistries:\n  - local\n", 4, 5,
     "registries[0] must be a mapping, got a string"),
])
def test_wrong_types(tmp_path, text, line, col, phrase):
    err = error_of(tmp_path, text)
    assert (err.line, err.col) == (line, col), str(err)
    assert phrase in err.message


@pytest.mark.parametrize("text, line, phrase", [
    (MINIMAL + "tags: []\n", 7, "tags must not be empty"),
    ("image:\n  name: myapp\nregistries: []\n", 3, "registries must list at least one"),
    (MINIMAL + "retry:\n  attempts: 0\n", 8, "retry.attempts must be at least 1"),
    (MINIMAL + "retry:\n  max_delay: 0\n", 8, "retry.max_delay must be a number of seconds > 0"),
    (MINIMAL + "retry:\n  max_delay: .inf\n", 8, "retry.max_delay must be a number"),
    ("version: 2\n" + MINIMAL, 1, "unsupported release.yml version 2"),
    ("version: '1'\n" + MINIMAL, 1, "version must be the integer 1, got a string"),
    (MINIMAL.replace("name: local", "name: Local"), 4, "registries[0].name 'Local' is not a valid"),
    (MINIMAL + "    type: quay\n", 7, "registries[0].type 'quay' is not a registry type"),
    (MINIMAL.replace("name: myapp", "name: MyApp"), 2, "image.name 'MyApp' is not a valid"),
    (MINIMAL.replace("name: myapp", "name: 'myapp:1.0'"), 2, "contains a tag or digest"),
    (MINIMAL.replace("  name: myapp\n", "  name: myapp\n  target: ''\n"), 3,
     "image.target must not be empty"),
    (MINIMAL.replace("  name: myapp\n", "  name: myapp\n  build_args: {'A B': x}\n"), 3,
     "build arg name 'A B' must not contain"),
])
def test_bad_values(tmp_path, text, line, phrase):
    err = error_of(tmp_path, text)
    assert err.line == line, str(err)
    assert phrase in err.message


def test_registry_type_did_you_mean(tmp_path):
    err = error_of(tmp_path, MINIMAL + "    type: GHCR\n")
    assert err.hint == "did you mean 'ghcr'?"


# ------------------------------------------------------------------ missing required keys


@pytest.mark.parametrize("text, line, col, phrase", [
    ("image:\n  context: .\nregistries:\n  - name: a\n    registry: r.io\n    repository: x\n",
     1, 1, "image.name is required"),
    (MINIMAL.replace("    repository: team/myapp\n", ""), 4, 5,
     "registries[0].repository is required"),
    (MINIMAL.replace("  - name: local\n", "  - type: generic\n"), 4, 5,
     "registries[0].name is required"),
    ("# my release\nimage:\n  name: myapp\n", 2, 1, "registries is required"),
    ("registries:\n  - name: a\n    registry: r.io\n    repository: x\n", 1, 1,
     "image is required"),
])
def test_missing_required_keys_point_at_the_parent(tmp_path, text, line, col, phrase):
    err = error_of(tmp_path, text)
    assert (err.line, err.col) == (line, col), str(err)
    assert phrase in err.message
    assert err.hint


# ------------------------------------------------------------------ registry host and repository


@pytest.mark.parametrize("host, problem, hint", [
    ("https://localhost:5000", "has a scheme", "registry: localhost:5000"),
    ("http://localhost:5000", "has a scheme", "insecure: true"),
    ("localhost:5000/path", "has a path", "repository"),
    ("'bad host'", "contains spaces", "host[:port]"),
    ("localhost:70000", "port 70000 is out of range", "localhost:5000"),
    ("localhost:0", "port 0 is out of range", "localhost:5000"),
    ("localhost:http", "port 'http' is not a number", "host:port"),
    ("::1:5000", "too many ':'", "[::1]:5000"),
    ("'[::zz]:5000'", "is not an IPv6 address", "[::1]"),
    ("300.1.1.1:5000", "is not an IPv4 address", "host[:port]"),
    ("under_score.example.com", "is not a valid hostname", "letters, digits"),
    ("-bad.example.com", "is not a valid hostname", "letters, digits"),
])
def test_bad_registry_host(tmp_path, host, problem, hint):
    err = error_of(tmp_path, MINIMAL.replace("registry: localhost:5000", f"registry: {host}"))
    assert (err.line, err.col) == (5, 15)
    assert "is not a valid registry host" in err.message and problem in err.message
    assert hint in err.hint


def test_repository_with_upper_case(tmp_path):
    err = error_of(tmp_path, MINIMAL.replace("repository: team/myapp", "repository: Team/MyApp"))
    assert (err.line, err.col) == (6, 17)
    assert "registries[0].repository 'Team/MyApp' is not a valid repository name" in err.message
    assert "repository names must be lower-case" in err.hint
    assert "team/myapp" in err.hint


@pytest.mark.parametrize("repo, problem", [
    ("team//myapp", "empty path component"),
    ("/team/myapp", "empty path component"),
    ("team/my_-app", "each path component"),
    ("team/-myapp", "each path component"),
    ("'team/myapp:1.0'", "contains a tag or digest"),
    ("localhost:5000/team/myapp", "starts with a registry host"),
    ("ghcr.io/me/myapp", "starts with a registry host"),
    ("a" * 256, "longer than 255"),
])
def test_bad_repository(tmp_path, repo, problem):
    err = error_of(tmp_path, MINIMAL.replace("repository: team/myapp", f"repository: {repo}"))
    assert err.line == 6
    assert problem in err.message


@pytest.mark.parametrize("repo", ["a", "team/my-app", "a.b/c__d/e---f", "x" * 255])
def test_valid_repository_names(tmp_path, repo):
    config = load_config(write(tmp_path, MINIMAL.replace("team/myapp", repo)))
    assert config.registries[0].repository == repo


# ------------------------------------------------------------------ duplicates


def test_duplicate_registry_names_point_at_the_second(tmp_path):
    err = error_of(tmp_path, MINIMAL + """\
  - name: local
    registry: localhost:5001
    repository: team/myapp
""")
    assert (err.line, err.col) == (7, 11)
    assert "duplicate registry name 'local'" in err.message
    assert "line 4" in err.message


@pytest.mark.parametrize("text, line, col, key, first", [
    ("image:\n  name: myapp\n  name: other\n" + MINIMAL.split("\n", 2)[2], 3, 3, "name", 2),
    (MINIMAL + "image:\n  name: again\n", 7, 1, "image", 1),
    (MINIMAL.replace("  name: myapp\n", "  name: myapp\n  labels: {a: x, a: y}\n"), 3, 18, "a", 3),
])
def test_duplicate_yaml_keys(tmp_path, text, line, col, key, first):
    err = error_of(tmp_path, text)
    assert (err.line, err.col) == (line, col), str(err)
    assert f"duplicate key '{key}'" in err.message
    assert f"first defined on line {first}" in err.message
    assert "keeps only the last" in err.hint


# ------------------------------------------------------------------ tag and flavor rules


def test_tag_rule_that_does_not_parse(tmp_path, tags_api):
    with pytest.raises(TagRuleError) as direct:
        tags_api.parse_tag_rule("type=bogus,value=x", 1)
    err = error_of(tmp_path, MINIMAL + "tags:\n  - type=sha\n  - type=bogus,value=x\n")
    assert (err.line, err.col) == (9, 5)
    assert err.message == f"tags[1]: {direct.value.message}"
    assert err.hint == direct.value.hint


def test_flavor_rule_that_does_not_parse(tmp_path, tags_api):
    with pytest.raises(TagRuleError) as direct:
        tags_api.parse_flavor(["prefix=v", "latest=sometimes"])
    assert direct.value.index == 1
    err = error_of(tmp_path, MINIMAL + "flavor:\n  - prefix=v\n  - latest=sometimes\n")
    assert (err.line, err.col) == (9, 5)
    assert err.message == f"flavor[1]: {direct.value.message}"


# ------------------------------------------------------------------ credentials and secrets


@pytest.mark.parametrize("present, missing", [("username_env", "password_env"),
                                              ("password_env", "username_env")])
def test_username_env_and_password_env_go_together(tmp_path, present, missing):
    err = error_of(tmp_path, MINIMAL + f"    {present}: SOME_VAR\n")
    assert (err.line, err.col) == (7, 5)
    assert f"{present} is set but {missing} is not" in err.message
    assert missing in err.hint


@pytest.mark.parametrize("text, line, key", [
    (MINIMAL + "    password: hunter2\n", 7, "registries[0].password"),
    (MINIMAL + "    token: hunter2\n", 7, "registries[0].token"),
    (MINIMAL.replace("  name: myapp\n", "  name: myapp\n  api_token: hunter2\n"), 3,
     "image.api_token"),
    (MINIMAL + "client_secret: hunter2\n", 7, "client_secret"),
])
def test_literal_secrets_are_rejected_without_echoing_them(tmp_path, text, line, key):
    err = error_of(tmp_path, text)
    assert err.line == line
    assert f"'{key}' looks like a secret" in err.message
    assert err.hint == SECRET_HINT
    assert "hunter2" not in str(err)


def test_secret_in_password_env_is_not_echoed(tmp_path):
    err = error_of(tmp_path, MINIMAL + "    username_env: U\n    password_env: 'hunter2!'\n")
    assert (err.line, err.col) == (8, 19)
    assert "password_env must name an environment variable" in err.message
    assert err.hint.startswith(SECRET_HINT)
    assert "hunter2" not in str(err)


# ------------------------------------------------------------------ files on disk


def test_ca_file_missing(tmp_path):
    err = error_of(tmp_path, MINIMAL + "    ca_file: certs/ca.crt\n")
    assert (err.line, err.col) == (7, 14)
    assert "registries[0].ca_file not found: certs/ca.crt" in err.message
    assert "relative to the directory of release.yml" in err.hint


def test_context_dir_missing(tmp_path):
    err = error_of(tmp_path, MINIMAL.replace("  name: myapp\n", "  name: myapp\n  context: app\n"))
    assert (err.line, err.col) == (3, 12)
    assert "image.context directory not found: app" in err.message


def test_context_is_a_file(tmp_path):
    err = error_of(tmp_path, MINIMAL.replace("  name: myapp\n",
                                             "  name: myapp\n  context: Dockerfile\n"))
    assert err.line == 3 and "image.context is not a directory" in err.message


def test_dockerfile_missing_in_context(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "Dockerfile.prod").write_text("FROM scratch\n")  # not in the context
    err = error_of(tmp_path, MINIMAL.replace(
        "  name: myapp\n", "  name: myapp\n  context: app\n  dockerfile: Dockerfile.prod\n"))
    assert (err.line, err.col) == (4, 15)
    assert "image.dockerfile not found: Dockerfile.prod" in err.message
    assert "relative to image.context" in err.hint


def test_default_dockerfile_missing(tmp_path):
    err = error_of(tmp_path, MINIMAL, dockerfile=False)
    assert (err.line, err.col) == (1, 1)  # the image: key
    assert "image.dockerfile not found: Dockerfile" in err.message


# ------------------------------------------------------------------ several problems


def test_first_problem_in_file_order_is_raised_and_all_are_kept(tmp_path):
    err = error_of(tmp_path, """\
        image:
          name: myapp
          dockerfil: x
        registries:
          - name: local
            registry: https://localhost:5000
            repository: team/myapp
        retry:
          attempts: 0
        """)
    assert err.line == 3 and "unknown key 'dockerfil'" in err.message
    assert [e.line for e in err.errors] == [3, 6, 9]


def test_file_level_errors_also_carry_errors(tmp_path):
    err = error_of(tmp_path, "image: [\n")
    assert err.errors == [err]


def test_image_name_with_a_registry_host(tmp_path):
    err = error_of(tmp_path, MINIMAL.replace("name: myapp", "name: localhost:5000/myapp"))
    assert (err.line, err.col) == (2, 9)
    assert "starts with a registry host" in err.message
    assert "registries:" in err.hint


def test_rule_error_for_a_default_rule_has_no_line(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    err = config.rule_error(TagRuleError("bad", index=0, section="tags"))
    assert err.line is None
    assert str(err) == f"{tmp_path / 'release.yml'}: default tags[0]: bad"
