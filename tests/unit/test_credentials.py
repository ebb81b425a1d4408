import base64
import json
import os
import stat

import pytest

from pipeline.auth import lookup as credentials
from pipeline.errors import UsageError
from pipeline.ui import redact


@pytest.fixture(autouse=True)
def _clean():
    redact.clear()
    yield
    redact.clear()


def test_env_credentials_are_used_and_registered_for_redaction():
    c = credentials.resolve("local", "localhost:5000", "U", "P", env={"U": "alice", "P": "s3cret-pass"})
    assert (c.username, c.password, c.source) == ("alice", "s3cret-pass", "env U/P")
    assert c.auth_config("localhost:5000") == {"serveraddress": "localhost:5000", "username": "alice",
                                               "password": "s3cret-pass"}
    assert "s3cret-pass" not in repr(c)
    assert redact.redact("x s3cret-pass y") == "x *** y"
    assert "s3cret-pass" not in c.describe()


def test_missing_env_var_is_a_usage_error_naming_the_variable():
    with pytest.raises(UsageError) as err:
        credentials.resolve("local", "localhost:5000", "U", "P", env={"U": "alice"})
    assert "P is not set" in str(err.value)
    assert err.value.exit_code == 2


def test_docker_auth_config_env(tmp_path):
    auth = base64.b64encode(b"bob:hunter22").decode()
    env = {"DOCKER_AUTH_CONFIG": json.dumps({"auths": {"reg.example:5000": {"auth": auth}}}),
           "DOCKER_CONFIG": str(tmp_path)}
    c = credentials.resolve("r", "reg.example:5000", None, None, env=env)
    assert (c.username, c.password, c.source) == ("bob", "hunter22", "DOCKER_AUTH_CONFIG")


def test_docker_config_file_and_anonymous_fallback(tmp_path, monkeypatch):
    auth = base64.b64encode(b"carol:pw-in-config").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"reg.example": {"auth": auth}}}))
    env = {"DOCKER_CONFIG": str(tmp_path)}
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    c = credentials.resolve("r", "reg.example", None, None, env=env)
    assert (c.username, c.password) == ("carol", "pw-in-config")
    other = credentials.resolve("r", "other.example", None, None, env=env)
    assert other.anonymous and other.auth_config("other.example") is None


def test_credential_helper_is_run(tmp_path, monkeypatch):
    helper = tmp_path / "bin" / "docker-credential-fake"
    helper.parent.mkdir()
    helper.write_text('#!/bin/sh\nread server\necho \'{"ServerURL":"\'$server\'","Username":"<token>","Secret":"idtok-9999"}\'\n')
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "config.json").write_text(json.dumps({"credHelpers": {"reg.example": "fake"}}))
    monkeypatch.setenv("PATH", f"{helper.parent}:{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    c = credentials.resolve("r", "reg.example", None, None, env={"DOCKER_CONFIG": str(tmp_path)})
    assert c.identity_token == "idtok-9999"
    assert c.username is None
    assert "docker-credential-fake" in c.source
    assert c.auth_config("reg.example")["identitytoken"] == "idtok-9999"


def test_multiline_secrets_are_masked_line_by_line_on_github(monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nbWFza2VkLWxpbmUtdHdv\n-----END PRIVATE KEY-----\n"
    redact.register(key)
    err = capsys.readouterr().err
    masks = [line for line in err.splitlines() if line.startswith("::add-mask::")]
    assert err.splitlines() == masks                       # nothing but mask commands
    for line in key.strip().splitlines():
        assert f"::add-mask::{line}" in masks              # every line of the key is masked
    assert redact.redact("x MIIEvQIBADANBgkqhkiG9w0BAQEFAASC y") == "x *** y"


@pytest.mark.parametrize("raw", ['{"auths": []}', '{"auths": {"reg.example": "abc"}}', "not json"])
def test_malformed_docker_auth_config_is_a_usage_error(raw, tmp_path):
    with pytest.raises(UsageError, match="DOCKER_AUTH_CONFIG"):
        credentials.resolve("r", "reg.example", None, None,
                            env={"DOCKER_AUTH_CONFIG": raw, "DOCKER_CONFIG": str(tmp_path)})


@pytest.mark.parametrize("auths, expected", [
    ({"http://localhost:5000": {}, "localhost:5000": {"auth": "B"}}, "B"),     # empty entry skipped
    ({"https://localhost:5000": {"auth": "A"}, "localhost:5000": {"auth": "B"}}, "B"),  # exact first
    ({"https://localhost:5000/v1/": {"auth": "A"}}, "A"),                       # same host
])
def test_auths_are_resolved_like_docker_py(tmp_path, auths, expected):
    def encode(tag):
        return base64.b64encode(f"user:pw-{tag}".encode()).decode()
    config = {"auths": {k: ({"auth": encode(v["auth"])} if v else {}) for k, v in auths.items()}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    c = credentials.resolve("r", "localhost:5000", None, None, env={"DOCKER_CONFIG": str(tmp_path)})
    assert c.password == f"pw-{expected}"


def test_the_legacy_layout_is_read_when_auths_is_empty(tmp_path):
    auth = base64.b64encode(b"old:pw-legacy").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {}, "reg.example": {"auth": auth}}))
    c = credentials.resolve("r", "reg.example", None, None, env={"DOCKER_CONFIG": str(tmp_path)})
    assert (c.username, c.password) == ("old", "pw-legacy")
