"""`release ci generate` names what cannot work on a hosted runner (pipeline/ci/reachability.py):
loopback and private registries are warnings (exit 2 with --strict, nothing written), a ca_file
a runner cannot have is always refused (exit 2, nothing written)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.ci.reachability import findings, host_kind
from pipeline.cli.main import cli
from pipeline.model.config.loader import load_config

INSTALL = "git+https://example.com/release.git@v1"


@pytest.mark.parametrize("registry, kind", [
    ("localhost:5000", "loopback"), ("127.0.0.1:5443", "loopback"), ("[::1]:5000", "loopback"),
    ("registry.localhost", "loopback"),
    ("10.1.2.3:5000", "private"), ("192.168.1.20", "private"), ("172.16.0.9:443", "private"),
    ("registry:5000", "private"), ("registry.corp.internal:5000", "private"), ("nas.local", "private"),
    ("[fd00::1]:5000", "private"), ("build.home.arpa", "private"),
    ("ghcr.io", "public"), ("registry.example.com:5000", "public"), ("8.8.8.8:5000", "public"),
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "public"),
])
def test_host_kind(registry, kind):
    assert host_kind(registry) == kind


def project(tmp_path: Path, registries: str) -> Path:
    (tmp_path / "app").mkdir(parents=True, exist_ok=True)
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "release.yml").write_text(
        f"image:\n  name: app\n  context: app\nregistries:\n{registries}")
    return tmp_path


def ca(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    return path


def generate(root: Path, *args: str):
    cwd = os.getcwd()
    os.chdir(root)
    try:
        return CliRunner().invoke(cli, ["ci", "generate", "all", "--install", INSTALL, *args])
    finally:
        os.chdir(cwd)


def written(root: Path) -> list[str]:
    return [p for p in (".github/workflows/release.yml", ".gitlab-ci.yml") if (root / p).exists()]


def test_public_registries_give_no_finding(tmp_path):
    root = project(tmp_path, "  - {name: hub, type: dockerhub, repository: acme/app}\n"
                             "  - {name: corp, registry: registry.example.com, repository: app}\n")
    assert findings(load_config(root / "release.yml", build=False), root) == []
    result = generate(root, "--strict")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr and len(written(root)) == 2


def test_the_quick_start_loopback_registry_is_a_warning_naming_the_throwaway_service(tmp_path):
    root = project(tmp_path, "  - {name: local, registry: 'localhost:5000', repository: team/app}\n")
    result = generate(root)
    assert result.exit_code == 0
    assert "release.yml:5: warning: registry 'local'" in result.stderr
    assert "throwaway registry:2 service on port 5000" in result.stderr
    assert len(written(root)) == 2


def test_strict_turns_warnings_into_exit_2_and_writes_nothing(tmp_path):
    root = project(tmp_path, "  - {name: local, registry: 'localhost:5000', repository: team/app}\n"
                             "  - {name: corp, registry: 'registry.corp.internal:5000', repository: app}\n")
    result = generate(root, "--strict")
    assert result.exit_code == 2
    assert "registry 'local'" in result.stderr and "registry 'corp'" in result.stderr
    assert "cannot reach it" in result.stderr
    assert "2 warnings above: nothing written" in result.stderr
    assert written(root) == []


def test_a_tls_registry_from_registry_up_is_named_not_dropped(tmp_path):
    """The README's path: `release registry up --tls` prints an entry with its CA under
    ~/.config (absolute). The generator names the registry, says it cannot stand in for it,
    and refuses the absolute ca_file."""
    cert = ca(tmp_path / "home" / ".config" / "release" / "registries" / "registry" / "ca.crt")
    root = project(tmp_path / "repo",
                   "  - {name: local, registry: 'localhost:5000', repository: team/app}\n"
                   f"  - {{name: secure, registry: '127.0.0.1:5443', repository: team/app, ca_file: '{cert}',"
                   " username_env: REG_USER, password_env: REG_PW}\n")
    result = generate(root)
    assert result.exit_code == 2
    err = result.stderr
    assert "registry 'secure': 127.0.0.1:5443 is this machine's loopback and needs TLS and a login" in err
    assert f"error: registry 'secure': ca_file {cert} is an absolute path" in err
    assert "commit it" in err and "secrets.REGISTRY_CA" in err
    assert "1 error above: nothing written" in err
    assert written(root) == []


def test_a_ca_file_outside_the_repository_is_refused(tmp_path):
    ca(tmp_path / "shared" / "ca.crt")
    root = project(tmp_path / "repo",
                   "  - {name: corp, registry: registry.example.com, repository: app, "
                   "ca_file: ../shared/ca.crt}\n")
    result = generate(root)
    assert result.exit_code == 2
    assert "ca_file ../shared/ca.crt is outside the repository" in result.stderr
    assert written(root) == []


def test_a_ca_file_committed_in_the_repository_is_fine(tmp_path):
    ca(tmp_path / "certs" / "registry-ca.crt")
    root = project(tmp_path, "  - {name: corp, registry: registry.example.com, repository: app, "
                             "ca_file: certs/registry-ca.crt}\n")
    result = generate(root, "--strict")
    assert result.exit_code == 0, result.output
    assert result.stderr == "" and len(written(root)) == 2


def test_check_reports_findings_too(tmp_path):
    root = project(tmp_path, "  - {name: local, registry: 'localhost:5000', repository: team/app}\n")
    assert generate(root).exit_code == 0
    result = generate(root, "--check", "--strict")
    assert result.exit_code == 2 and "registry 'local'" in result.stderr


def test_a_tls_loopback_registry_gets_no_plain_http_service(tmp_path):
    """A committed CA (allowed) on a loopback registry: no registry:2 service (it would speak
    HTTP where release expects TLS with that CA); the warning says it is left as it is."""
    ca(tmp_path / "certs" / "ca.crt")
    root = project(tmp_path, "  - {name: local, registry: 'localhost:5443', repository: team/app, "
                             "ca_file: certs/ca.crt}\n")
    result = generate(root)
    assert result.exit_code == 0, result.output
    assert "needs TLS: no CI service can stand in for it" in result.stderr
    github = (root / ".github/workflows/release.yml").read_text()
    gitlab = (root / ".gitlab-ci.yml").read_text()
    assert "services:" not in github and "registry_5443" not in github
    assert "registry-5443" not in gitlab
