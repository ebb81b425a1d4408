"""Issue 12, items 4 and 5: secrets typed into `*_env` keys, the size limit of release.yml,
every problem reported at once, retry bounds, catastrophic regexes, typos of `*_env` keys."""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import pipeline.model.config.loader as config_module
from pipeline.auth import envvars
from pipeline.auth.cache import TokenCache
from pipeline.auth.lookup import credentials_for
from pipeline.cli.main import cli
from pipeline.errors import ConfigError, UsageError, format_errors
from pipeline.model.config import (
    MAX_ATTEMPTS,
    MAX_CONFIG_BYTES,
    MAX_MAX_DELAY,
    RetryConfig,
    env_name_is_plausible,
    load_config,
)
from pipeline.model.tags.jsregex import (
    JsRegexError,
    backtracking_problem,
    compile_js_regex,
)

BASE = """\
image:
  name: myapp
registries:
  - name: local
    registry: localhost:5000
    repository: team/myapp
"""

SECRETS = [
    "hunter2Xq9TzLw0rdS3cret",                   # the issue's password: a valid identifier
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",  # a GitHub token
    "AKIAIOSFODNN7EXAMPLE",                      # an AWS access key id: upper case and digits
    "da39a3ee5e6b4b0d3255bfef95601890afd80709",  # a hex digest
    "hunter2!",                                  # not an identifier at all
    "p4ss word",
    "9abcdef",                                   # starts with a digit
]


def write(tmp_path: Path, text: str, name: str = "release.yml") -> Path:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


def every_text(err: ConfigError) -> str:
    return "\n".join(str(e) for e in err.errors) + "\n" + format_errors(err)


def validate(path: Path, env: dict | None = None):
    return CliRunner().invoke(cli, ["-c", str(path), "validate"], env=env or {})


@pytest.fixture(autouse=True)
def no_secret_named_vars(monkeypatch):
    for name in SECRETS:
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            monkeypatch.delenv(name, raising=False)


# ------------------------------------------------------------------ secrets in *_env keys


@pytest.mark.parametrize("secret", SECRETS)
def test_password_env_holding_a_secret_is_refused_without_echoing_it(tmp_path, secret):
    err = error_of(tmp_path, BASE + f"    username_env: LOCAL_USER\n    password_env: '{secret}'\n")
    assert (err.line, err.col) == (8, 19)
    assert err.message == ("registries[0].password_env must name an environment variable; "
                           "the value looks like a secret (not shown)")
    assert err.exit_code == 2
    assert secret not in every_text(err)
    assert secret not in repr(err.errors)


def test_the_issue_example_gives_the_exact_message(tmp_path):
    text = ("image:\n  name: myapp\nregistries:\n  - name: local\n    registry: localhost:5000\n"
            "    repository: team/myapp\n    # credentials\n    username_env: LOCAL_USER\n"
            "    password_env: hunter2Xq9TzLw0rdS3cret\n")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).splitlines()[0] == (
        f"{path}:9:19: registries[0].password_env must name an environment variable; the "
        f"value looks like a secret (not shown)")


@pytest.mark.parametrize("snippet, line, col, where", [
    ("    username_env: '{s}'\n    password_env: LOCAL_PASS\n", 7, 19, "registries[0].username_env"),
    ("    type: ghcr\n    token_env: '{s}'\n", 8, 16, "registries[0].token_env"),
])
@pytest.mark.parametrize("secret", ["hunter2Xq9TzLw0rdS3cret", "hunter2!"])
def test_every_env_key_of_a_registry_is_checked(tmp_path, snippet, line, col, where, secret):
    text = BASE.replace("    registry: localhost:5000\n", "    registry: ghcr.io\n") \
        if "ghcr" in snippet else BASE
    err = error_of(tmp_path, text + snippet.format(s=secret))
    assert (err.line, err.col) == (line, col)
    assert err.message.startswith(f"{where} must name an environment variable; the value "
                                  f"looks like a secret (not shown)")
    assert secret not in every_text(err)


def test_build_secret_env_uses_the_same_check(tmp_path):
    text = BASE.replace("  name: myapp\n", "  name: myapp\n  secrets:\n"
                                             "    - {id: npmrc, env: hunter2Xq9TzLw0rdS3cret}\n")
    err = error_of(tmp_path, text)
    assert (err.line, err.col) == (4, 24)
    assert "image.secrets[0].env must name an environment variable" in err.message
    assert "hunter2Xq9TzLw0rdS3cret" not in every_text(err)


@pytest.mark.parametrize("name", ["LOCAL_PASS", "local_pass", "MyToken", "REGISTRY2_PASSWORD",
                                  "_X", "CI_REGISTRY_PASSWORD", "AWS_SECRET_ACCESS_KEY",
                                  "DOCKERHUB_TOKEN_2024"])
def test_plausible_names_load(tmp_path, name):
    config = load_config(write(tmp_path, BASE + f"    username_env: U\n    password_env: {name}\n"))
    assert config.registries[0].password_env == name
    assert env_name_is_plausible(name, {})


def test_a_mixed_case_name_with_digits_is_accepted_when_that_variable_is_set(tmp_path,
                                                                              monkeypatch):
    path = write(tmp_path, BASE + "    username_env: U\n    password_env: myToken2\n")
    with pytest.raises(ConfigError, match="looks like a secret"):
        load_config(path)
    monkeypatch.setenv("myToken2", "s3cret-value")
    assert load_config(path).registries[0].password_env == "myToken2"


@pytest.mark.parametrize("name, plausible", [
    ("NPM_TOKEN", True), ("npm_token", True), ("Path", True), ("A1", True),
    ("hunter2Xq9TzLw0rdS3cret", False), ("AKIAIOSFODNN7EXAMPLE", False),
    ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", True),       # 26 letters, no digit: a (long) name
    ("ABCDEFGHIJKLMNOPQRS1", False),            # 20 in a row with a digit
    ("ABCDEFGHIJKLMNOPQR1", True),              # 19: still a name
    ("1ABC", False), ("A-B", False), ("A B", False), ("", False), ("A\n", False),
])
def test_env_name_is_plausible(name, plausible):
    assert env_name_is_plausible(name, {}) is plausible


def test_validate_never_prints_the_secret_even_in_github_actions(tmp_path):
    secret = "hunter2Xq9TzLw0rdS3cret"
    path = write(tmp_path, BASE + f"    username_env: LOCAL_USER\n    password_env: {secret}\n")
    for env in ({}, {"GITHUB_ACTIONS": "true"}):
        result = validate(path, env)
        assert result.exit_code == 2
        assert f"{path}:8:19: registries[0].password_env must name an environment variable" \
            in result.output
        assert secret not in result.output
        assert "add-mask" not in result.output


@pytest.mark.parametrize("command", [["login"], ["build-push", "1.0.0"], ["tags", "1.0.0"]])
def test_commands_stop_at_the_config_error_before_any_credential_lookup(tmp_path, command):
    secret = "hunter2Xq9TzLw0rdS3cret"
    path = write(tmp_path, BASE + f"    username_env: LOCAL_USER\n    password_env: {secret}\n")
    result = CliRunner().invoke(cli, ["-c", str(path), *command],
                                env={"GITHUB_ACTIONS": "true", "LOCAL_USER": "u",
                                     "DOCKER_HOST": "unix:///nonexistent.sock"})
    assert result.exit_code == 2, result.output
    assert "looks like a secret (not shown)" in result.output
    assert secret not in result.output
    assert "is not set" not in result.output


# ------------------------------------------------------------------ unset variables


def test_unset_variables_name_the_key_and_where_it_is(tmp_path):
    path = write(tmp_path, BASE + "    username_env: LOCAL_USER\n    password_env: LOCAL_PASS\n")
    registry = load_config(path).registries[0]
    assert registry.key_locations == {"username_env": f"{path}:7:19",
                                      "password_env": f"{path}:8:19"}
    with pytest.raises(UsageError) as info:
        credentials_for(registry, {"LOCAL_USER": "alice"}, cache=TokenCache())
    assert info.value.message == (f"registry 'local': environment variable LOCAL_PASS is not "
                                  f"set (named by password_env at {path}:8:19)")
    assert info.value.hint.startswith("export LOCAL_PASS=... before running")
    with pytest.raises(UsageError) as info:
        credentials_for(registry, {}, cache=TokenCache())
    assert info.value.message == (f"registry 'local': environment variables LOCAL_USER and "
                                  f"LOCAL_PASS are not set (named by username_env at "
                                  f"{path}:7:19 and password_env at {path}:8:19)")


def test_unset_token_env_names_the_key_and_where_it_is(tmp_path):
    path = write(tmp_path, BASE.replace("registry: localhost:5000", "type: ghcr")
                 + "    token_env: CR_PAT\n")
    registry = load_config(path).registries[0]
    with pytest.raises(UsageError) as info:
        credentials_for(registry, {}, cache=TokenCache())
    assert info.value.message == (f"registry 'local': environment variable CR_PAT is not set "
                                  f"(named by token_env at {path}:7:16)")


@pytest.mark.parametrize("secret", ["hunter2Xq9TzLw0rdS3cret", "AKIAIOSFODNN7EXAMPLE",
                                    "hunter2!"])
def test_an_unset_variable_is_not_named_when_the_name_looks_like_a_secret(secret):
    """A RegistryConfig made without the loader (or a name the loader let through because it
    was set, then emptied): the message still never shows it."""
    with pytest.raises(UsageError) as info:
        envvars.from_env("local", "U", secret, {"U": "alice"},
                         locations={"password_env": "release.yml:8:19"})
    text = str(info.value)
    assert secret not in text
    assert info.value.message == ("registry 'local': the environment variable named by "
                                  "password_env at release.yml:8:19 is not set (its name is "
                                  "not shown: it looks like a secret, not a variable name)")
    assert info.value.exit_code == 2


def test_unset_message_without_locations_still_names_the_key():
    with pytest.raises(UsageError) as info:
        envvars.from_env("local", "U", "P", {"U": "alice"})
    assert info.value.message == ("registry 'local': environment variable P is not set "
                                  "(named by password_env)")


# ------------------------------------------------------------------ typos of *_env keys


def test_a_typo_of_password_env_is_an_unknown_key_not_an_unset_variable(tmp_path):
    path = write(tmp_path, BASE + "    username_env: LOCAL_USER\n    pasword_env: LOCAL_PASS\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert [(e.line, e.col, e.message, e.hint) for e in err.errors] == [
        (8, 5, "unknown key 'pasword_env' in registries[0]", "did you mean 'password_env'?")]
    result = validate(path, {"LOCAL_USER": "alice"})
    assert result.exit_code == 2
    assert "did you mean 'password_env'?" in result.output
    assert "not set" not in result.output and "is not" not in result.output


def test_a_typo_of_username_env_is_reported_once(tmp_path):
    err = error_of(tmp_path, BASE + "    usernme_env: LOCAL_USER\n    password_env: LOCAL_PASS\n")
    assert [(e.line, e.message) for e in err.errors] == [
        (7, "unknown key 'usernme_env' in registries[0]")]
    assert err.hint == "did you mean 'username_env'?"


# ------------------------------------------------------------------ the size limit


def test_a_50_mb_file_is_refused_at_once_without_parsing_it(tmp_path, monkeypatch):
    path = tmp_path / "release.yml"
    padding = b"# " + b"x" * 1021 + b"\n"
    with path.open("wb") as out:
        out.write(BASE.encode())
        out.write(padding * (50 * 1024))        # 50 MB of valid YAML comments
    monkeypatch.setattr(config_module, "compose",
                        lambda text: pytest.fail("YAML was parsed"))
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert time.monotonic() - started < 1.0
    size = path.stat().st_size
    assert info.value.message == (f"release.yml is too large ({size:,} bytes); the limit is "
                                  f"1 MB (1,048,576 bytes)")
    assert info.value.line is None and info.value.exit_code == 2
    assert str(info.value).startswith(f"{path}: release.yml is too large")


def test_the_limit_is_exactly_one_mebibyte(tmp_path):
    assert MAX_CONFIG_BYTES == 1_048_576
    path = write(tmp_path, BASE)
    fill = MAX_CONFIG_BYTES - len(BASE.encode()) - 1
    path.write_text(BASE + "#" * fill + "\n")
    assert path.stat().st_size == MAX_CONFIG_BYTES
    assert load_config(path).image.name == "myapp"
    path.write_text(BASE + "#" * (fill + 1) + "\n")
    with pytest.raises(ConfigError, match="too large"):
        load_config(path)


def test_validate_refuses_a_large_file_with_exit_2(tmp_path):
    path = write(tmp_path, BASE + "#" * (2 * MAX_CONFIG_BYTES) + "\n")
    result = validate(path)
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {path}: release.yml is too large (")
    assert "hint: release.yml holds settings only" in result.output


# ------------------------------------------------------------------ every problem at once


def unknown_keys(n: int) -> str:
    return "image:\n  name: myapp\n" + "".join(f"  extra{i:02d}: x\n" for i in range(n)) + \
        "registries:\n  - {name: local, registry: 'localhost:5000', repository: team/myapp}\n"


def test_25_problems_print_the_first_20_and_a_count(tmp_path):
    path = write(tmp_path, unknown_keys(25))
    err = error_of(tmp_path, unknown_keys(25))
    assert len(err.errors) == 25
    result = validate(path)
    assert result.exit_code == 2
    lines = result.output.splitlines()
    located = [line for line in lines if line.startswith(f"error: {path}:")]
    assert located == [f"error: {path}:{3 + i}:3: unknown key 'extra{i:02d}' in image"
                       for i in range(20)]
    assert lines[-1] == "error: ... and 5 more problems (25 in all)"
    assert "extra20" not in result.output
    assert sum(1 for line in lines if line.strip().startswith("hint:")) == 20


def test_exactly_20_problems_print_no_count(tmp_path):
    path = write(tmp_path, unknown_keys(20))
    result = validate(path)
    assert result.exit_code == 2
    assert result.output.count("unknown key") == 20
    assert "more problem" not in result.output


def test_problems_of_every_kind_are_printed_in_file_order_with_their_hints(tmp_path):
    path = write(tmp_path, """\
        image:
          name: MyApp
        tags:
          - type=match,pattern=^(a+)+$
        registries:
          - name: local
            registry: https://localhost:5000
            repository: team/myapp
            username_env: U
            password_env: hunter2Xq9TzLw0rdS3cret
        retry:
          attempts: 99
          max_delay: 0
        """)
    result = validate(path)
    assert result.exit_code == 2
    located = re.findall(rf"^error: {re.escape(str(path))}:(\d+):(\d+): (.*)$", result.output,
                         re.MULTILINE)
    assert [(int(line), int(col)) for line, col, _ in located] == [
        (2, 9), (4, 5), (7, 15), (10, 19), (12, 13), (13, 14)]
    assert [m.split()[0] for _, _, m in located] == [
        "image.name", "tags[0]:", "registries[0].registry", "registries[0].password_env",
        "retry.attempts", "retry.max_delay"]
    assert result.output.count("\n  hint: ") == 6
    assert "hunter2Xq9TzLw0rdS3cret" not in result.output


def test_a_single_problem_prints_as_before(tmp_path):
    path = write(tmp_path, BASE + "    insecure: maybe\n")
    result = validate(path)
    assert result.exit_code == 2
    assert result.output == (f"error: {path}:7:15: registries[0].insecure must be true or "
                             f"false, got a string\n  hint: write true or false without quotes\n")


def test_format_errors_of_an_error_without_a_list_is_just_the_error():
    exc = UsageError("bad", hint="fix it")
    assert format_errors(exc) == "error: bad\n  hint: fix it"


# ------------------------------------------------------------------ retry bounds


@pytest.mark.parametrize("retry, expected", [
    ("{attempts: 1}", RetryConfig(1, 30.0)),
    ("{attempts: 20}", RetryConfig(20, 30.0)),
    ("{max_delay: 600}", RetryConfig(5, 600.0)),
    ("{max_delay: 600.0}", RetryConfig(5, 600.0)),
    ("{max_delay: 0.001}", RetryConfig(5, 0.001)),
])
def test_retry_values_within_bounds(tmp_path, retry, expected):
    assert (MAX_ATTEMPTS, MAX_MAX_DELAY) == (20, 600.0)
    assert load_config(write(tmp_path, BASE + f"retry: {retry}\n")).retry == expected


@pytest.mark.parametrize("retry, col, message", [
    ("retry:\n  attempts: 21\n", 13, "retry.attempts must be at least 1 and at most 20, got 21"),
    ("retry:\n  attempts: 1000000\n", 13, "retry.attempts must be at least 1 and at most 20, "
                                          "got 1000000"),
    ("retry:\n  attempts: 0\n", 13, "retry.attempts must be at least 1 and at most 20, got 0"),
    ("retry:\n  attempts: -3\n", 13, "retry.attempts must be at least 1 and at most 20, got -3"),
    ("retry:\n  max_delay: 600.5\n", 14, "retry.max_delay must be a number of seconds > 0 and "
                                         "<= 600, got 600.5"),
    ("retry:\n  max_delay: 86400\n", 14, "retry.max_delay must be a number of seconds > 0 and "
                                         "<= 600, got 86400"),
    ("retry:\n  max_delay: 0\n", 14, "retry.max_delay must be a number of seconds > 0 and "
                                     "<= 600, got 0"),
    ("retry:\n  max_delay: -1\n", 14, "retry.max_delay must be a number of seconds > 0 and "
                                      "<= 600, got -1"),
    ("retry:\n  max_delay: .nan\n", 14, "retry.max_delay must be a number of seconds > 0 and "
                                        "<= 600, got .nan"),
])
def test_retry_values_out_of_bounds(tmp_path, retry, col, message):
    err = error_of(tmp_path, BASE + retry)
    assert (err.line, err.col) == (8, col)
    assert err.message == message


# ------------------------------------------------------------------ catastrophic regexes

CATASTROPHIC = [r"^(a+)+$", r"(a|a)*b", r"(.*)*", r"(a*)*", r"^(\w+\s?)+$", r"(\d+\.\d+)+$",
                r"^(x+x+)+y$", r"^([a-z]+-?)+$", r"/^(A+)+$/i", r"(?:a|b|ab)*c",
                r"^((a+a+)\.)+$", r"^((a+)?a*b)+$", r"^(?<v>\d+)*$", r"(a+){2,}",
                r"^(a+|b)+$", r"^((a|bc)b*)+$"]
SAFE = [r"^v(\d+)\.(\d+)$", r"^v?(\d+(\.\d+)*)$", r"(\d+\.)+", r"^(\w+\s)+$", r"(-[a-z]+)*",
        r"^(foo|bar)*$", r"^(\d+\.){3}\d+$", r"(ab|a)*c", r"^(?<major>\d+)\.(?<minor>\d+)",
        r"v(.*)", r"^\d{1,3}$", r"/^V(\d+)$/i", r"^refs/tags/v(.*)$", r"^(.+)-(alpine|slim)$",
        r"^(\d+)\.(\d+)\.(\d+)(?:-(\w+(?:\.\w+)*))?$", r"(?:[a-z0-9]+[._-])*[a-z0-9]+",
        r"^(a|bc)+$", r"^(-(rc|beta|alpha))*$", r"^(\.(a|b(c|d(e|f)))+)*$", r"^(a|ab)+$"]


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_catastrophic_regexes_are_refused_at_load_naming_the_rule_line(tmp_path, pattern):
    text = BASE.replace("registries:", f"tags:\n  - type=semver,pattern={{{{version}}}}\n"
                                       f"  - 'type=match,\"pattern={pattern}\",group=0'\n"
                                       f"registries:")
    err = error_of(tmp_path, text)
    assert (err.line, err.col) == (5, 5)
    assert err.message.startswith("tags[1]: regular expression ")
    assert "can backtrack catastrophically" in err.message
    assert "nested quantifiers" in err.hint or "quantifier" in err.hint


@pytest.mark.parametrize("pattern", SAFE)
def test_ordinary_regexes_are_accepted(tmp_path, pattern):
    text = BASE.replace("registries:", f"tags:\n  - 'type=match,\"pattern={pattern}\"'\n"
                                       f"registries:")
    config = load_config(write(tmp_path, text))
    assert len(config.tags) == 1


def test_a_semver_match_regex_is_checked_too(tmp_path):
    text = BASE.replace("registries:", "tags:\n  - 'type=semver,pattern={{version}},"
                                       "\"match=^v((\\d+)+)$\"'\nregistries:")
    err = error_of(tmp_path, text)
    assert (err.line, err.col) == (4, 5)
    assert "can backtrack catastrophically" in err.message


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_compile_js_regex_refuses_them_where_tags_are_derived(pattern):
    with pytest.raises(JsRegexError, match="can backtrack catastrophically"):
        compile_js_regex(pattern)


@pytest.mark.parametrize("pattern", SAFE)
def test_accepted_regexes_run_fast_on_hostile_input(pattern):
    regex = compile_js_regex(pattern)
    started = time.monotonic()
    for text in ("a" * 40 + "!", "1" * 40 + "!", "1.1" * 14 + "!", "a-" * 20 + "!",
                 "v" + "1." * 20 + "x", "a " * 20 + "!"):
        regex.match(text)
    assert time.monotonic() - started < 0.5


def test_a_refused_regex_really_is_slow():
    """The check is about something real: the first refused pattern backtracks
    exponentially (2**n steps), measured on short inputs."""
    slow = re.compile(r"^(a+)+$")
    started = time.monotonic()
    slow.match("a" * 18 + "!")
    small = time.monotonic() - started
    started = time.monotonic()
    slow.match("a" * 21 + "!")
    assert time.monotonic() - started > 3 * small
    assert backtracking_problem(r"^(a+)+$") is not None
    assert backtracking_problem(r"^a+$") is None
