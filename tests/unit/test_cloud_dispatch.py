"""The per-type dispatcher (env types, Docker config fallback, anonymous), the token cache,
GitHub Actions masking, release.yml's per-type keys, and `release --help` staying light."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone

import pytest

from pipeline.auth.cache import TokenCache
from pipeline.auth.cloud.common import quiet_logs
from pipeline.auth.credentials import Credentials
from pipeline.auth.lookup import credentials_for
from pipeline.errors import ConfigError, UsageError
from pipeline.model.config import RegistryConfig, load_config
from pipeline.ui import redact


@pytest.fixture(autouse=True)
def _clean(monkeypatch, tmp_path):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("CI_REGISTRY", raising=False)
    redact.clear()
    yield
    redact.clear()


def reg(rtype, host, **kw) -> RegistryConfig:
    return RegistryConfig(name=kw.pop("name", rtype), type=rtype, registry=host,
                          repository=kw.pop("repository", "team/app"), **kw)


def env(tmp_path, **values) -> dict:
    return {"DOCKER_CONFIG": str(tmp_path / "docker"), "PATH": "/nonexistent", **values}


# -- env-based types ------------------------------------------------------------------------

def test_explicit_env_names_win_for_every_type(tmp_path):
    for rtype, host in (("ecr", "123456789012.dkr.ecr.us-east-1.amazonaws.com"),
                        ("gcr", "gcr.io"), ("acr", "x.azurecr.io"), ("ghcr", "ghcr.io"),
                        ("dockerhub", "docker.io"), ("gitlab", "registry.gitlab.com")):
        creds = credentials_for(reg(rtype, host, username_env="U", password_env="P"),
                                env(tmp_path, U="me", P="pw-0000"), cache=TokenCache())
        assert (creds.username, creds.password, creds.method) == ("me", "pw-0000", "env U/P")


def test_dockerhub_default_env_and_half_set(tmp_path):
    creds = credentials_for(reg("dockerhub", "docker.io"),
                            env(tmp_path, DOCKERHUB_USERNAME="me", DOCKERHUB_TOKEN="dckr_pat_0000"))
    assert (creds.username, creds.password) == ("me", "dckr_pat_0000")
    assert redact.redact("dckr_pat_0000") == "***"
    with pytest.raises(UsageError, match="DOCKERHUB_USERNAME is set but DOCKERHUB_TOKEN is not"):
        credentials_for(reg("dockerhub", "docker.io"), env(tmp_path, DOCKERHUB_USERNAME="me"))


def test_dockerhub_without_anything_is_anonymous_with_a_reason(tmp_path):
    creds = credentials_for(reg("dockerhub", "docker.io"), env(tmp_path))
    assert creds.anonymous
    assert "DOCKERHUB_USERNAME/DOCKERHUB_TOKEN are not set" in creds.describe()


def test_ghcr(tmp_path):
    creds = credentials_for(reg("ghcr", "ghcr.io"),
                            env(tmp_path, GITHUB_TOKEN="ghs_token0000", GITHUB_ACTOR="octo"))
    assert (creds.username, creds.password, creds.method) == ("octo", "ghs_token0000",
                                                              "env GITHUB_TOKEN")
    named = credentials_for(reg("ghcr", "ghcr.io", token_env="CR_PAT"),
                            env(tmp_path, CR_PAT="ghp_pat0000", GITHUB_ACTOR="octo",
                                GITHUB_TOKEN="ghs_other"))
    assert named.password == "ghp_pat0000"
    with pytest.raises(UsageError, match="CR_PAT is not set"):
        credentials_for(reg("ghcr", "ghcr.io", token_env="CR_PAT"), env(tmp_path))
    with pytest.raises(UsageError, match="GITHUB_ACTOR"):
        credentials_for(reg("ghcr", "ghcr.io"), env(tmp_path, GH_TOKEN="gho_0000"))
    assert credentials_for(reg("ghcr", "ghcr.io"), env(tmp_path)).anonymous


def _auths(host: str, user: str, password: str) -> dict:
    return {"auths": {host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}


def test_ghcr_an_explicit_docker_login_wins_over_gh_token(tmp_path):
    gh = dict(GH_TOKEN="gho_cli_token_0000", GITHUB_ACTOR="octo")
    # DOCKER_AUTH_CONFIG
    e = env(tmp_path, **gh,
            DOCKER_AUTH_CONFIG=json.dumps(_auths("ghcr.io", "octo", "ghp_pat_0000")))
    creds = credentials_for(reg("ghcr", "ghcr.io"), e, cache=TokenCache())
    assert (creds.password, creds.source) == ("ghp_pat_0000", "DOCKER_AUTH_CONFIG")
    # the Docker config file (`docker login ghcr.io`)
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(json.dumps(_auths("ghcr.io", "octo",
                                                                       "ghp_login_0000")))
    creds = credentials_for(reg("ghcr", "ghcr.io"), env(tmp_path, **gh), cache=TokenCache())
    assert (creds.password, creds.source) == ("ghp_login_0000", "Docker config")
    # GITHUB_TOKEN (Actions) and token_env keep their precedence over the Docker login
    creds = credentials_for(reg("ghcr", "ghcr.io"),
                            env(tmp_path, **gh, GITHUB_TOKEN="ghs_actions_0000"))
    assert creds.password == "ghs_actions_0000"
    creds = credentials_for(reg("ghcr", "ghcr.io", token_env="CR_PAT"),
                            env(tmp_path, **gh, CR_PAT="ghp_named_0000"))
    assert creds.password == "ghp_named_0000"
    # without a Docker login for ghcr.io, GH_TOKEN is used
    (tmp_path / "docker" / "config.json").write_text(json.dumps(_auths("other.io", "x", "y")))
    creds = credentials_for(reg("ghcr", "ghcr.io"), env(tmp_path, **gh))
    assert (creds.password, creds.method) == ("gho_cli_token_0000", "env GH_TOKEN")


def test_ghcr_precedence_is_documented():
    from pipeline.auth.cloud import ghcr

    doc = ghcr.__doc__
    assert doc.index("token_env") < doc.index("GITHUB_TOKEN") < doc.index("docker login") \
        < doc.index("GH_TOKEN")


def test_gitlab_job_credentials(tmp_path):
    job = dict(CI_REGISTRY="registry.example.com:5050", CI_REGISTRY_USER="gitlab-ci-token")
    r = reg("gitlab", "registry.example.com:5050")
    creds = credentials_for(r, env(tmp_path, **job, CI_REGISTRY_PASSWORD="glcr-0000",
                                   CI_JOB_TOKEN="job-0000"))
    assert (creds.username, creds.password) == ("gitlab-ci-token", "glcr-0000")
    creds = credentials_for(r, env(tmp_path, CI_REGISTRY=job["CI_REGISTRY"], CI_JOB_TOKEN="job-0000"))
    assert (creds.username, creds.password, creds.method) == ("gitlab-ci-token", "job-0000",
                                                              "env CI_JOB_TOKEN")
    other = credentials_for(reg("gitlab", "registry.gitlab.com"),
                            env(tmp_path, **job, CI_REGISTRY_PASSWORD="glcr-0000"))
    assert other.anonymous and "CI_REGISTRY is registry.example.com:5050" in other.note


def test_generic_keeps_the_foundation_order(tmp_path):
    auth = base64.b64encode(b"bob:from-auth-config").decode()
    e = env(tmp_path, DOCKER_AUTH_CONFIG=json.dumps({"auths": {"reg.example": {"auth": auth}}}))
    creds = credentials_for(reg("generic", "reg.example"), e)
    assert (creds.username, creds.password, creds.source) == ("bob", "from-auth-config",
                                                              "DOCKER_AUTH_CONFIG")
    assert credentials_for(reg("generic", "other.example"), e).anonymous


def test_cloud_types_fall_back_to_docker_auth_config(tmp_path, monkeypatch):
    from pipeline.auth.cloud import ecr
    monkeypatch.setattr(ecr, "_boto3", lambda: None)            # no SDK, no CLI
    host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    auth = base64.b64encode(b"AWS:from-gitlab-variable").decode()
    e = env(tmp_path, DOCKER_AUTH_CONFIG=json.dumps({"auths": {host: {"auth": auth}}}))
    creds = credentials_for(reg("ecr", host), e, cache=TokenCache())
    assert (creds.username, creds.password) == ("AWS", "from-gitlab-variable")


# -- the cache ------------------------------------------------------------------------------

def test_cache_rules():
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])
    at = lambda s: datetime.fromtimestamp(now[0] + s, timezone.utc)  # noqa: E731
    cache.put("half", Credentials("x", "u", "p", expires_at=at(1000)), half_life=True)
    cache.put("margin", Credentials("x", "u", "p", expires_at=at(1000)))
    cache.put("unknown", Credentials("x", "u", "p"))
    cache.put("stale", Credentials("x", "u", "p", expires_at=at(100)))       # < margin: not kept
    assert cache.refresh_at("half") == 1500 and cache.refresh_at("margin") == 1700
    assert cache.refresh_at("unknown") == 1300 and cache.get("stale") is None
    now[0] = 1600
    assert cache.get("half") is None and cache.get("margin") is not None


# -- redaction and GitHub Actions masks -------------------------------------------------------

def test_github_actions_masks_every_secret_as_soon_as_it_is_read(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    credentials_for(reg("ghcr", "ghcr.io"), env(tmp_path, GITHUB_TOKEN="ghs_masked0000",
                                                 GITHUB_ACTOR="octo"))
    err = capsys.readouterr()
    assert "::add-mask::ghs_masked0000" in err.err.splitlines()
    assert err.out == ""                            # stdout stays clean for --json
    basic = base64.b64encode(b"octo:ghs_masked0000").decode()
    assert f"::add-mask::{basic}" in err.err.splitlines()


def test_quiet_logs_nests_and_restores():
    logging.disable(logging.NOTSET)
    with quiet_logs():
        with quiet_logs():
            assert logging.root.manager.disable == logging.DEBUG
        assert logging.root.manager.disable == logging.DEBUG
    assert logging.root.manager.disable == logging.NOTSET


# -- release login's pieces -------------------------------------------------------------------

@pytest.fixture
def basic_registry():
    """A /v2/ endpoint that takes Basic AWS:pw-0000 (and counts the requests)."""
    import http.server
    import threading

    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            good = "Basic " + base64.b64encode(b"AWS:pw-0000").decode()
            status = 200 if self.headers.get("Authorization") == good else 401
            self.send_response(status)
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="test"')
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_a_token_past_expiry_by_clock_skew_is_tried_before_being_refused(basic_registry):
    from pipeline.auth.prove import prove

    host, seen = basic_registry
    skewed = datetime.now(timezone.utc) - timedelta(minutes=3)
    r = reg("ecr", host, region="us-east-1", insecure=True)
    proof = prove(r, Credentials("ECR", "AWS", "pw-0000", method="boto3", expires_at=skewed))
    assert proof.ok, proof.detail
    assert "credentials accepted" in proof.detail and "check the clock" in proof.detail
    assert any(seen)                                    # it was really sent

    refused = prove(r, Credentials("ECR", "AWS", "old-0000", method="boto3", expires_at=skewed))
    assert not refused.ok
    assert "refused the credentials" in refused.detail and "the token expired at" in refused.detail
    assert "clock" in refused.hint


def test_docker_config_store_auths_helpers_and_docker_hub_key(tmp_path):
    from pipeline.auth import dockerconfig
    from tests.support.cloudstubs import CliStub

    e = env(tmp_path, PATH=str(tmp_path / "bin"))
    creds = Credentials("env", "me", "stored-pw-0000")
    where = dockerconfig.store("docker.io", creds, e)
    data = json.loads((tmp_path / "docker" / "config.json").read_text())
    assert where == str(tmp_path / "docker" / "config.json")
    assert base64.b64decode(data["auths"]["https://index.docker.io/v1/"]["auth"]) == \
        b"me:stored-pw-0000"
    assert oct((tmp_path / "docker" / "config.json").stat().st_mode & 0o777) == "0o600"

    helper = CliStub(tmp_path / "bin", "docker-credential-pass", read_stdin=True)
    helper.on(["store"])
    data["credsStore"] = "pass"
    data["credHelpers"] = {"123456789012.dkr.ecr.us-east-1.amazonaws.com": "ecr-login"}
    (tmp_path / "docker" / "config.json").write_text(json.dumps(data))
    assert dockerconfig.store("ghcr.io", creds, e) == "docker-credential-pass"
    assert json.loads(helper.records[0]["stdin"]) == {"ServerURL": "ghcr.io", "Username": "me",
                                                     "Secret": "stored-pw-0000"}
    assert "ecr-login" in dockerconfig.store("123456789012.dkr.ecr.us-east-1.amazonaws.com",
                                             creds, e)
    assert len(helper.records) == 1


# -- release.yml ------------------------------------------------------------------------------

BASE = """\
image:
  name: myapp
registries:
"""


def load(tmp_path, registries: str, **env):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    path = tmp_path / "release.yml"
    path.write_text(BASE + textwrap.indent(textwrap.dedent(registries), "  "))
    return load_config(path)


def error(tmp_path, registries: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, registries)
    return info.value


def test_per_type_keys_load(tmp_path):
    config = load(tmp_path, """\
        - name: ecr
          type: ecr
          registry: 123456789012.dkr.ecr.eu-west-1.amazonaws.com
          repository: team/app
          profile: ci
          role_arn: arn:aws:iam::123456789012:role/pusher
          create_repository: true
        - name: alias
          type: ecr
          registry: ecr.internal.example:5000
          region: eu-west-1
          repository: team/app
        - name: gar
          type: gcr
          registry: europe-west1-docker.pkg.dev
          repository: proj/repo/app
          key_file: keys/sa.json
        - name: ghcr
          type: ghcr
          repository: me/app
          token_env: CR_PAT
        - name: hub
          type: dockerhub
          repository: me/app
        - name: gitlab
          type: gitlab
          repository: group/app
        """)
    ecr, alias, gar, ghcr, hub, gitlab = config.registries
    assert (ecr.profile, ecr.role_arn, ecr.create_repository) == \
        ("ci", "arn:aws:iam::123456789012:role/pusher", True)
    assert alias.region == "eu-west-1"
    assert gar.key_file == tmp_path / "keys" / "sa.json"
    assert (ghcr.registry, ghcr.token_env) == ("ghcr.io", "CR_PAT")
    assert hub.registry == "docker.io" and hub.username_env is None
    assert gitlab.registry == "registry.gitlab.com"


def test_gitlab_registry_defaults_to_ci_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("CI_REGISTRY", "gitlab.example.com:5050")
    config = load(tmp_path, "- {name: gl, type: gitlab, repository: group/app}\n")
    assert config.registries[0].registry == "gitlab.example.com:5050"


@pytest.mark.parametrize("registries, at, phrase, hint", [
    ("- {name: a, type: gcr, registry: gcr.io, repository: x, profile: ci}\n", "profile",
     "registries[0].profile applies to type ecr only (this registry is type gcr)", "type: ecr"),
    ("- {name: a, type: ecr, registry: 1.dkr.ecr.us-east-1.amazonaws.com, repository: x}\n",
     "1.dkr", "is not an Amazon ECR host: the account ID '1' is not 12 digits", "12-digit"),
    ("- {name: a, type: ecr, registry: ecr.example.com, repository: x}\n", "ecr.example",
     "'ecr.example.com' is not an Amazon ECR host: it does not have the form", "region:"),
    ("- {name: a, type: ecr, registry: 123456789012.dkr.ecr.us-east-1.amazonaws.com, "
     "repository: x, region: eu-west-1}\n", "eu-west-1", "region eu-west-1 does not match", None),
    ("- {name: a, type: ecr, registry: r.example, region: useast1, repository: x}\n", "useast1",
     "'useast1' is not an AWS region name", "us-east-1"),
    ("- {name: a, type: ecr, registry: 123456789012.dkr.ecr.us-east-1.amazonaws.com, "
     "repository: x, role_arn: 'arn:aws:iam::1:user/me'}\n", "'arn", "is not an IAM role ARN",
     "arn:aws:iam::"),
    ("- {name: a, type: ecr, registry: 123456789012.dkr.ecr.us-east-1.amazonaws.com, "
     "repository: x, create_repository: 'yes'}\n", "'yes'", "must be true or false", None),
    ("- {name: a, type: generic, repository: x}\n", "{", "registries[0].registry is required",
     "dockerhub, ghcr and gitlab"),
    ("- {name: a, type: ghcr, repository: x, token_env: T, username_env: U, password_env: P}\n",
     "token_env", "token_env and password_env both give the password", None),
    ("- {name: a, type: ghcr, repository: x, token_env: 'ghp_abc def'}\n", "'ghp",
     "token_env must name an environment variable; the value looks like a secret", None),
])
def test_per_type_key_errors_are_located(tmp_path, registries, at, phrase, hint):
    err = error(tmp_path, registries)
    assert (err.line, err.col) == (4, 3 + registries.index(at)), str(err)
    assert phrase in err.message
    if hint:
        assert hint in err.hint
    assert "ghp_abc" not in str(err)             # a value that may be a secret is never echoed


def test_a_misspelled_registry_key_is_reported_once(tmp_path):
    err = error(tmp_path, "- {name: a, regsitry: r.example, repository: x}\n")
    assert "unknown key 'regsitry'" in err.message
    assert not any("registry is required" in e.message for e in err.errors)


# -- start-up cost ----------------------------------------------------------------------------

def test_help_and_config_loading_import_no_cloud_sdk(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "release.yml").write_text(BASE + "  - {name: e, type: ecr, registry: "
                                          "123456789012.dkr.ecr.us-east-1.amazonaws.com, "
                                          "repository: x}\n")
    code = textwrap.dedent(f"""
        import sys
        from click.testing import CliRunner
        from pipeline.cli.main import cli
        assert CliRunner().invoke(cli, ["--help"]).exit_code == 0
        r = CliRunner().invoke(cli, ["-c", {str(tmp_path / "release.yml")!r}, "validate"])
        assert r.exit_code == 0, r.output
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in
                       ("boto3", "botocore", "google", "azure", "msal", "moto", "docker"))
        print(heavy)
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


# -- release login / logout as commands -------------------------------------------------------

LOGIN_CONFIG = """\
image:
  name: myapp
registries:
  - {name: gar, type: gcr, registry: europe-west1-docker.pkg.dev, repository: p/r/app}
  - {name: hub, type: dockerhub, repository: me/app}
  - {name: ghcr, type: ghcr, repository: me/app}
"""


@pytest.fixture
def login_project(tmp_path, monkeypatch):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "release.yml").write_text(LOGIN_CONFIG)
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "DOCKER_AUTH_CONFIG", "GH_TOKEN",
                 "GITHUB_TOKEN", "DOCKERHUB_USERNAME", "DOCKERHUB_TOKEN", "RELEASE_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    from pipeline.auth.cache import CACHE
    CACHE.clear()
    yield tmp_path
    CACHE.clear()


def run_cli(project, *args):
    from click.testing import CliRunner

    from pipeline.cli.main import cli
    return CliRunner().invoke(cli, ["-c", str(project / "release.yml"), *args])


@pytest.fixture
def proofs_ok(monkeypatch):
    from pipeline.auth import prove as prove_mod

    proved = []

    def prove(registry, creds, **kw):
        proved.append(registry.name)
        return prove_mod.Proof(True, "credentials accepted")
    monkeypatch.setattr(prove_mod, "prove", prove)
    monkeypatch.setattr("pipeline.cli.login.prove", prove)   # where the command looks it up
    return proved


def test_login_an_sdk_surprise_fails_that_registry_only(login_project, monkeypatch, proofs_ok):
    import google.auth

    def broken(*args, **kwargs):
        raise RuntimeError("internal SDK state went wrong\nsecond line of a long story")
    monkeypatch.setattr(google.auth, "default", broken)
    monkeypatch.setenv("DOCKERHUB_USERNAME", "me")
    monkeypatch.setenv("DOCKERHUB_TOKEN", "dckr_pat_0000")
    result = run_cli(login_project, "login", "--json")
    assert result.exit_code == 1, result.output
    entries = {e["name"]: e for e in json.loads(result.output)["registries"]}
    assert list(entries) == ["gar", "hub", "ghcr"]                  # every registry shown
    assert not entries["gar"]["ok"]
    assert "unexpected error while getting credentials: RuntimeError: internal SDK state " \
           "went wrong" in entries["gar"]["detail"]
    assert "second line" not in entries["gar"]["detail"]
    assert "RELEASE_DEBUG=1" in entries["gar"]["hint"]
    assert entries["hub"]["ok"] and entries["ghcr"]["ok"]
    assert proofs_ok == ["hub", "ghcr"]


def test_login_configuration_errors_exit_2_with_every_registry_shown(login_project, proofs_ok):
    (login_project / "release.yml").write_text(LOGIN_CONFIG.replace(
        "{name: hub, type: dockerhub, repository: me/app}",
        "{name: hub, type: dockerhub, repository: me/app, username_env: HUB_USER, "
        "password_env: HUB_TOKEN}"))
    result = run_cli(login_project, "login", "hub", "ghcr")
    assert result.exit_code == 2, result.output
    assert "environment variables HUB_USER and HUB_TOKEN are not set" in result.output
    assert "ghcr " in result.output and "login failed for: hub" in result.output


def test_docker_config_store_writes_through_a_symlink(tmp_path):
    from pipeline.auth import dockerconfig

    real = tmp_path / "dotfiles" / "docker-config.json"
    real.parent.mkdir()
    real.write_text(json.dumps({"auths": {"other.example": {"auth": "eDp5"}}}))
    (tmp_path / "docker").mkdir()
    link = tmp_path / "docker" / "config.json"
    link.symlink_to(real)
    where = dockerconfig.store("reg.example", Credentials("env", "me", "pw-link-0000"),
                               env(tmp_path))
    assert link.is_symlink() and link.resolve() == real.resolve()
    data = json.loads(real.read_text())
    assert set(data["auths"]) == {"other.example", "reg.example"}
    assert base64.b64decode(data["auths"]["reg.example"]["auth"]) == b"me:pw-link-0000"
    assert where == str(link)
    assert dockerconfig.erase("reg.example", env(tmp_path)) == [f"reg.example from {link}"]
    assert link.is_symlink() and set(json.loads(real.read_text())["auths"]) == {"other.example"}


def test_logout_removes_what_login_docker_config_stored(login_project, monkeypatch):
    from pipeline.auth import dockerconfig
    from tests.support.cloudstubs import CliStub

    e = {"DOCKER_CONFIG": str(login_project / "docker"), "PATH": str(login_project / "bin")}
    dockerconfig.store("docker.io", Credentials("env", "me", "hub-pw-0000"), e)
    dockerconfig.store("ghcr.io", Credentials("env", "octo", "ghcr-pw-0000"), e)
    path = login_project / "docker" / "config.json"
    data = json.loads(path.read_text())
    data["auths"]["keep.example"] = {"auth": "eDp5"}
    path.write_text(json.dumps(data))

    result = run_cli(login_project, "logout", "hub")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"hub: removed https://index.docker.io/v1/ from {path}"
    assert set(json.loads(path.read_text())["auths"]) == {"ghcr.io", "keep.example"}

    result = run_cli(login_project, "logout")                 # all of release.yml's
    assert result.exit_code == 0, result.output
    assert "gar: nothing stored for europe-west1-docker.pkg.dev" in result.output
    assert "hub: nothing stored for docker.io" in result.output
    assert f"ghcr: removed ghcr.io from {path}" in result.output
    assert set(json.loads(path.read_text())["auths"]) == {"keep.example"}

    # a credential helper: its entry is erased
    helper = CliStub(login_project / "bin", "docker-credential-pass", read_stdin=True)
    helper.on(["get"], stdout=json.dumps({"ServerURL": "ghcr.io", "Username": "octo",
                                          "Secret": "ghcr-pw-0000"}))
    helper.on(["erase"])
    path.write_text(json.dumps({"credsStore": "pass", "auths": {"ghcr.io": {}}}))
    result = run_cli(login_project, "logout", "ghcr", "--json")
    assert result.exit_code == 0, result.output
    entry = json.loads(result.output)["registries"][0]
    assert entry["removed"] == ["ghcr.io from docker-credential-pass"]
    assert [r["argv"] for r in helper.records] == [["get"], ["erase"]]
    assert helper.records[1]["stdin"].strip() == "ghcr.io"
    assert json.loads(path.read_text())["auths"] == {}

    result = run_cli(login_project, "logout", "nosuch")
    assert result.exit_code == 2 and "no registry named nosuch" in result.output


# -- short-lived tokens: refresh before a push, re-fetch once on a 401 --------------------------

def test_expiring_and_refresh_forget_the_cached_token(tmp_path, monkeypatch):
    import google.auth

    from pipeline.auth.lookup import expiring, refresh
    from tests.support.cloudstubs import CliStub

    now = datetime.now(timezone.utc)
    assert expiring(Credentials("x", "u", "p", expires_at=now + timedelta(minutes=4)))
    assert not expiring(Credentials("x", "u", "p", expires_at=now + timedelta(minutes=30)))
    assert not expiring(Credentials("x", "u", "p"))                  # unknown: not guessed
    assert expiring(Credentials("x", "u", "p", expires_at=now - timedelta(minutes=1)))

    def no_adc(*args, **kwargs):
        raise google.auth.exceptions.DefaultCredentialsError("none")
    monkeypatch.setattr(google.auth, "default", no_adc)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    gcloud = CliStub(tmp_path / "bin", "gcloud").on(["auth", "print-access-token"],
                                                    stdout="ya29.first-0000\n")
    cache = TokenCache()
    r = reg("gcr", "europe-west1-docker.pkg.dev")
    e = env(tmp_path, PATH=str(tmp_path / "bin"))
    first = credentials_for(r, e, cache=cache)
    assert credentials_for(r, e, cache=cache) is first and len(gcloud.calls) == 1   # cached
    gcloud.spec["rules"].clear()
    gcloud.on(["auth", "print-access-token"], stdout="ya29.second-0000\n")
    again = refresh(r, first, e, cache=cache)
    assert again.password == "ya29.second-0000" and len(gcloud.calls) == 2
    assert credentials_for(r, e, cache=cache) is again                   # the new one is kept
    # credentials that do not come from a cloud come back the same
    plain = reg("generic", "reg.example", username_env="U", password_env="P")
    assert refresh(plain, Credentials("env U/P", "me", "pw-0000"),
                   env(tmp_path, U="me", P="pw-0000")).password == "pw-0000"
