"""`release registry up/compose` without an engine: options, files, deployment, Compose text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.errors import UsageError
from pipeline.hosting import files
from pipeline.hosting.compose import render_compose
from pipeline.hosting.deploy import (
    READ_ONLY_ENV,
    Deployment,
    RegistryOptions,
    plan_deployment,
)

PASSWORD = "unit-pw-9f8e7d"


def _verify_with_htpasswd(path: Path, user: str, password: str) -> bool:
    proc = subprocess.run(["htpasswd", "-vi", str(path), user], input=password,
                          capture_output=True, text=True)
    return proc.returncode == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"user": "admin"}, "--password-env"),
    ({"password_env": "PW"}, "--password-env"),
    ({"user": "admin", "password_env": "my secret"}, "not an environment variable name"),
    ({"user": "a:b", "password_env": "PW", "htpasswd": None}, None),
    ({"tls": True, "cert": "/x", "key": "/y"}, "exclude each other"),
    ({"cert": __file__}, "go together"),
    ({"name": "bad name"}, "--name"),
    ({"mirror": "registry-1.docker.io"}, "--mirror"),
    ({"ui": True, "ui_port": 5000}, "--ui-port"),
    ({"bind": "localhost"}, "not an IP address"),
    ({"data": "bad volume!"}, "--data"),
])
def test_option_checks(kwargs, message):
    opts = RegistryOptions(**kwargs)
    if message is None:   # valid options, bad user name caught when the file is made
        opts.validate()
        with pytest.raises(UsageError, match="':'"):
            files.check_credentials("a:b", PASSWORD)
        return
    with pytest.raises(UsageError, match=message):
        opts.validate()


def test_htpasswd_cli_line_verifies_and_is_kept(tmp_path):
    path = tmp_path / "auth" / "htpasswd"
    assert files.write_htpasswd(path, "admin", PASSWORD) is True
    line = path.read_text()
    assert line.startswith("admin:$2") and PASSWORD not in line
    assert _verify_with_htpasswd(path, "admin", PASSWORD)
    assert files.write_htpasswd(path, "admin", PASSWORD) is False      # same password: kept
    assert path.read_text() == line
    assert files.write_htpasswd(path, "admin", "another-pw") is True    # changed: rewritten
    assert _verify_with_htpasswd(path, "admin", "another-pw")


def test_htpasswd_with_the_bcrypt_package(tmp_path):
    pytest.importorskip("bcrypt", reason="optional: pip install 'release-pipeline[hosting]'")
    line = files.htpasswd_line("admin", PASSWORD, prefer="bcrypt")
    path = tmp_path / "htpasswd"
    path.write_text(line + "\n")
    assert line.startswith("admin:$2b$")
    assert _verify_with_htpasswd(path, "admin", PASSWORD)       # Apache's checker agrees
    assert files.htpasswd_verifies(path, "admin", PASSWORD)
    assert not files.htpasswd_verifies(path, "admin", "nope")


def test_password_limits():
    with pytest.raises(UsageError, match="72 bytes"):
        files.check_credentials("admin", "x" * 73)
    with pytest.raises(UsageError, match="line break"):
        files.check_credentials("admin", "a\nb")


def _cert_checks(info):
    names = files.cert_names(info.cert)
    assert {"DNS:registry.example.com", "DNS:localhost", "IP:127.0.0.1"} <= set(names)
    assert info.key.stat().st_mode & 0o077 == 0
    proc = subprocess.run(["openssl", "verify", "-CAfile", str(info.cert), str(info.cert)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_self_signed_cert_with_openssl_kept_until_names_change(tmp_path):
    names = ["registry.example.com", "localhost", "127.0.0.1"]
    info = files.self_signed_cert(tmp_path / "certs", names)
    assert info.created
    _cert_checks(info)
    before = info.cert.read_bytes()
    again = files.self_signed_cert(tmp_path / "certs", names)
    assert not again.created and again.cert.read_bytes() == before
    other = files.self_signed_cert(tmp_path / "certs", names + ["reg.internal"])
    assert other.created and "DNS:reg.internal" in files.cert_names(other.cert)


def test_self_signed_cert_with_cryptography(tmp_path):
    pytest.importorskip("cryptography", reason="optional fallback when openssl is missing")
    info = files.self_signed_cert(tmp_path / "certs", ["registry.example.com", "localhost",
                                                       "127.0.0.1"], prefer="cryptography")
    _cert_checks(info)


def test_deployment_env_mounts_and_round_trip(tmp_path):
    opts = RegistryOptions(name="hub", port=5443, bind="0.0.0.0", hosts=("reg.example.com",),
                           user="admin", password_env="PW", tls=True, ui=True, delete=False,
                           mirror="https://registry-1.docker.io/")
    dep = plan_deployment(opts, config_dir=tmp_path / "cfg", password=PASSWORD)
    env = dep.registry.environment
    assert env["REGISTRY_AUTH"] == "htpasswd"
    assert env["REGISTRY_AUTH_HTPASSWD_PATH"] == "/auth/htpasswd"
    assert env["REGISTRY_HTTP_TLS_CERTIFICATE"] == "/certs/domain.crt"
    assert env["REGISTRY_HTTP_TLS_KEY"] == "/certs/domain.key"
    assert env["REGISTRY_PROXY_REMOTEURL"] == "https://registry-1.docker.io"
    assert env["REGISTRY_STORAGE_DELETE_ENABLED"] == "false"
    assert env["REGISTRY_HTTP_HEADERS_Access-Control-Allow-Origin"] == "[http://reg.example.com:8080]"
    assert dep.url == "https://reg.example.com:5443"
    assert {m.target for m in dep.registry.mounts} == {"/var/lib/registry", "/auth", "/certs"}
    assert dep.data.kind == "volume" and dep.data.source == "hub-data"
    assert dep.network == "hub-net" and dep.network_owned
    assert dep.ui.environment["NGINX_PROXY_PASS_URL"] == "https://hub:5000"
    assert dep.ui.environment["DELETE_IMAGES"] == "false"
    assert "DNS:reg.example.com" in dep.tls["names"]
    assert PASSWORD not in dep.to_json()
    assert Deployment.from_json(dep.to_json()) == dep
    ro = dep.with_read_only(True)
    assert ro.registry.environment[READ_ONLY_ENV] == '{"enabled": true}'
    assert READ_ONLY_ENV not in ro.with_read_only(False).registry.environment


def test_data_directory_and_user_files(tmp_path):
    htp = tmp_path / "my.htpasswd"
    htp.write_text("x:$2y$10$abc\n")
    dep = plan_deployment(RegistryOptions(data=str(tmp_path / "store"), htpasswd=str(htp)),
                          config_dir=tmp_path / "cfg")
    assert dep.data.kind == "bind" and dep.data.source == str(tmp_path / "store")
    mounts = {m.target: m for m in dep.registry.mounts}
    assert mounts["/auth/htpasswd"].source == str(htp) and mounts["/auth/htpasswd"].read_only
    assert dep.auth == {"user": None, "password_env": None, "htpasswd": str(htp),
                        "generated": False}


def test_compose_text_is_yaml_with_relative_paths(tmp_path):
    opts = RegistryOptions(name="hub", bind="127.0.0.1", user="admin", password_env="PW",
                           tls=True, ui=True, data="./data")
    import os
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        dep = plan_deployment(opts, config_dir=tmp_path, password=PASSWORD, registry_dns="registry")
    finally:
        os.chdir(cwd)
    text = render_compose(dep, base=tmp_path)
    assert PASSWORD not in text
    doc = yaml.safe_load(text)
    reg = doc["services"]["registry"]
    assert reg["restart"] == "always" and reg["image"] == "registry:2"
    assert reg["ports"] == ["127.0.0.1:5000:5000"]
    assert set(reg["volumes"]) == {"./data:/var/lib/registry", "./auth:/auth:ro", "./certs:/certs:ro"}
    assert doc["services"]["ui"]["environment"]["NGINX_PROXY_PASS_URL"] == "https://registry:5000"
    assert "volumes" not in doc                       # a directory, not a named volume
    assert "/etc/docker/certs.d/localhost:5000/ca.crt" in text
    named = render_compose(plan_deployment(RegistryOptions(name="hub"), config_dir=tmp_path),
                           base=tmp_path)
    assert yaml.safe_load(named)["volumes"] == {"data": {"name": "hub-data"}}


def test_cli_missing_password_env_is_a_usage_error_before_docker(tmp_path):
    result = CliRunner().invoke(cli, ["registry", "up", "--user", "admin", "--password-env",
                                      "NOPE_NOT_SET", "--config-dir", str(tmp_path)], env={})
    assert result.exit_code == 2
    assert "NOPE_NOT_SET is not set" in result.output


def test_cli_compose_to_stdout(tmp_path):
    result = CliRunner().invoke(cli, ["registry", "compose", "--name", "hub", "--dir", str(tmp_path),
                                      "--user", "admin", "--password-env", "UNIT_PW", "--tls"],
                                env={"UNIT_PW": PASSWORD})
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert "services:" in result.output
    assert (tmp_path / "auth" / "htpasswd").exists() and (tmp_path / "certs" / "domain.key").exists()


def test_release_help_does_not_import_docker_or_jinja():
    code = ("import sys, pipeline.cli.main; "
            "print(sorted(m for m in ('docker', 'jinja2', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_purge_removes_only_generated_files(tmp_path):
    from pipeline.hosting.engine import remove_generated, write_marker
    opts = RegistryOptions(name="hub", user="admin", password_env="PW", tls=True)
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "notes.txt").write_text("mine")
    dep = plan_deployment(opts, config_dir=cfg, password=PASSWORD)
    write_marker(dep)
    assert remove_generated(cfg) is True
    assert sorted(p.name for p in cfg.iterdir()) == ["notes.txt"]
    assert remove_generated(cfg) is False          # no marker: nothing is touched


def test_a_purge_after_down_finds_a_custom_config_dir_when_told(tmp_path):
    from types import SimpleNamespace

    from pipeline.hosting.engine import down, write_marker
    opts = RegistryOptions(name="hub", user="admin", password_env="PW", tls=True)
    cfg = tmp_path / "custom"
    cfg.mkdir()
    write_marker(plan_deployment(opts, config_dir=cfg, password=PASSWORD))
    gone = SimpleNamespace(list=lambda **kw: [], get=lambda *a, **kw: _missing())
    client = SimpleNamespace(containers=gone, networks=gone, volumes=gone)
    result = down(client, "hub", purge=True, config_dir=cfg)     # containers already removed
    assert any("generated htpasswd/certificate" in r for r in result.removed)
    assert not cfg.exists()                                   # emptied, so removed


def _missing():
    import docker.errors
    raise docker.errors.NotFound("no such container")


# -- secure defaults ---------------------------------------------------------------------------

def test_default_bind_is_public_only_with_auth_and_tls():
    from pipeline.hosting.deploy import default_bind
    assert default_bind(auth=False, tls=False) == "127.0.0.1"
    assert default_bind(auth=False, tls=True) == "127.0.0.1"
    assert default_bind(auth=True, tls=False) == "127.0.0.1"
    assert default_bind(auth=True, tls=True) == "0.0.0.0"
    assert RegistryOptions().bind == "127.0.0.1"


@pytest.mark.parametrize("bind", ["0.0.0.0", "192.168.1.20", "::"])
def test_auth_over_plain_http_on_the_network_is_refused(bind, tmp_path):
    htp = tmp_path / "htpasswd"
    htp.write_text("x:$2y$10$abc\n")
    for auth in ({"user": "admin", "password_env": "PW"}, {"htpasswd": str(htp)}):
        with pytest.raises(UsageError) as info:
            RegistryOptions(bind=bind, **auth).validate()
        text = str(info.value)
        assert "plain HTTP" in text and "clear text" in text
        assert "--tls" in text and "--cert FILE --key FILE" in text and "--bind 127.0.0.1" in text
        assert "insecure-registries" not in text
        RegistryOptions(bind=bind, tls=True, **auth).validate()                 # fixes
        RegistryOptions(bind=bind, cert=str(htp), key=str(htp), **auth).validate()
    for loopback in ("127.0.0.1", "127.0.0.2", "::1"):
        RegistryOptions(bind=loopback, user="admin", password_env="PW").validate()


def test_htpasswd_file_is_private(tmp_path):
    path = tmp_path / "auth" / "htpasswd"
    files.write_htpasswd(path, "admin", PASSWORD)
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)                           # as an earlier version wrote it
    assert files.write_htpasswd(path, "admin", PASSWORD) is False    # kept, same content
    assert path.stat().st_mode & 0o777 == 0o600


def _compose(tmp_path, *args, env=None):
    result = CliRunner().invoke(cli, ["registry", "compose", "--name", "hub", "--dir",
                                      str(tmp_path), *args], env=env or {})
    return result, (yaml.safe_load(result.stdout) if result.exit_code == 0 else None)


def test_cli_bind_defaults_and_the_warning(tmp_path):
    result, doc = _compose(tmp_path)
    assert result.exit_code == 0, result.output
    assert doc["services"]["registry"]["ports"] == ["127.0.0.1:5000:5000"]
    assert "warning" not in result.stderr

    result, doc = _compose(tmp_path, "--bind", "127.0.0.1")          # loopback: no warning
    assert result.exit_code == 0 and "warning" not in result.stderr

    result, doc = _compose(tmp_path, "--bind", "0.0.0.0")
    assert result.exit_code == 0, result.output
    assert doc["services"]["registry"]["ports"] == ["0.0.0.0:5000:5000"]
    assert "warning: no authentication on 0.0.0.0: anyone who can reach port 5000 can push " \
           "and pull" in result.stderr

    # With authentication and TLS the default is every interface, without a warning.
    result, doc = _compose(tmp_path, "--user", "admin", "--password-env", "UNIT_PW", "--tls",
                           env={"UNIT_PW": PASSWORD})
    assert result.exit_code == 0, result.output
    assert doc["services"]["registry"]["ports"] == ["0.0.0.0:5000:5000"]
    assert "warning" not in result.stderr and PASSWORD not in result.output

    # With authentication but no TLS it stays on this machine.
    result, doc = _compose(tmp_path, "--user", "admin", "--password-env", "UNIT_PW",
                           env={"UNIT_PW": PASSWORD})
    assert result.exit_code == 0, result.output
    assert doc["services"]["registry"]["ports"] == ["127.0.0.1:5000:5000"]


@pytest.mark.parametrize("command", ["up", "compose"])
def test_cli_auth_over_http_on_the_network_exits_2_before_docker(command, tmp_path, monkeypatch):
    import pipeline.hosting.engine as engine
    monkeypatch.setattr(engine, "docker_client", lambda: pytest.fail("docker was contacted"))
    where = ["--config-dir", str(tmp_path)] if command == "up" else ["--dir", str(tmp_path)]
    result = CliRunner().invoke(cli, ["registry", command, "--user", "admin", "--password-env",
                                      "UNIT_PW", "--bind", "0.0.0.0", *where],
                                env={"UNIT_PW": PASSWORD})
    assert result.exit_code == 2, result.output
    assert "--user over plain HTTP on 0.0.0.0" in result.output
    assert "--tls" in result.output and "--cert FILE --key FILE" in result.output
    assert "--bind 127.0.0.1" in result.output
    assert "insecure-registries" not in result.output and PASSWORD not in result.output
    assert not (tmp_path / "auth").exists()              # no htpasswd written either
