"""Artifact Registry / GCR end to end: a real service-account key whose token_uri is a local
HTTPS token endpoint (google-auth ADC -> oauth2accesstoken), the same key as `key_file`
(_json_key), and a stub `gcloud`; each pushed for real to a registry that accepts exactly it."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.support.cloudstubs import (CliStub, GoogleTokenServer, assert_no_leak,
                                      make_service_account_key, masked, offline_env, run_release,
                                      write_project)

pytestmark = pytest.mark.integration


@pytest.fixture
def google(session_pki):
    server = GoogleTokenServer(session_pki).start()
    yield server
    server.stop()


@pytest.fixture
def repo():
    return f"it/gar-{uuid.uuid4().hex[:8]}"


def gcr_entry(reg, repo: str, extra: str = "") -> str:
    # The local registry stands in for europe-west1-docker.pkg.dev: a gcr registry's host is
    # only where the token goes, the token itself comes from Google.
    return (f"- name: gar\n  type: gcr\n  registry: {reg.host}\n  repository: {repo}\n"
            f"  ca_file: {reg.ca_file}\n{extra}")


def test_application_default_credentials_login_and_push(tmp_path, docker_engine, make_registry,
                                                        google, session_pki, repo):
    key = make_service_account_key(tmp_path / "sa.json", token_uri=google.token_uri)
    google.trust(key)
    reg = make_registry(auth=("oauth2accesstoken", google.access_token), tls=True)
    config = write_project(tmp_path, gcr_entry(reg, repo))
    env = offline_env(tmp_path, GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "sa.json"),
                      REQUESTS_CA_BUNDLE=str(session_pki.ca_cert), GITHUB_ACTIONS="true")

    login = run_release(config, "login", "--json", env=env)
    assert login.returncode == 0, login.stderr + login.stdout
    entry = json.loads(login.stdout)["registries"][0]
    assert entry["method"] == "google-auth"
    assert entry["identity"] == f"oauth2accesstoken ({key['client_email']})"
    assert entry["expires_at"] is not None
    push = run_release(config, "build-push", "1.0.0", "--json", env=env)
    assert push.returncode == 0, push.stderr + push.stdout
    assert reg.tags(repo) == sorted(["1.0.0", "1.0", "1", "latest"])
    assert google.issued >= 2                       # one per process: nothing kept on disk
    for proc in (login, push):
        assert masked(proc, google.access_token)
        assert_no_leak(proc, google.access_token, key["private_key"], user="oauth2accesstoken")


def test_key_file_as_json_key_login_and_push(tmp_path, docker_engine, make_token_registry,
                                             session_pki, repo):
    make_service_account_key(tmp_path / "sa.json", token_uri="https://oauth2.invalid/token")
    key_text = (tmp_path / "sa.json").read_text()
    key = json.loads(key_text)
    reg = make_token_registry(auth=("_json_key", key_text))
    config = write_project(tmp_path, gcr_entry(reg, repo, "  key_file: sa.json\n"))
    env = offline_env(tmp_path)

    login = run_release(config, "login", env=env)
    assert login.returncode == 0, login.stderr + login.stdout
    assert "key file" in login.stdout and f"push to {repo} granted" in login.stdout
    push = run_release(config, "build-push", "1.0.0", "--json", env=env)
    assert push.returncode == 0, push.stderr + push.stdout
    assert reg.tags(repo) == sorted(["1.0.0", "1.0", "1", "latest"])
    for proc in (login, push):
        assert_no_leak(proc, key_text, key["private_key"], user="_json_key")


def test_gcloud_fallback_login_and_push(tmp_path, docker_engine, make_registry, repo):
    token = "ya29.gcloud-" + uuid.uuid4().hex
    CliStub(tmp_path / "bin", "gcloud").on(["auth", "print-access-token"], stdout=token + "\n")
    reg = make_registry(auth=("oauth2accesstoken", token), tls=True)
    config = write_project(tmp_path, gcr_entry(reg, repo))
    env = offline_env(tmp_path, tmp_path / "bin")

    push = run_release(config, "build-push", "1.0.0", "--json", env=env)
    assert push.returncode == 0, push.stderr + push.stdout
    assert reg.tags(repo) == sorted(["1.0.0", "1.0", "1", "latest"])
    login = run_release(config, "login", env=env)
    assert login.returncode == 0 and "gcloud CLI" in login.stdout
    for proc in (login, push):
        assert_no_leak(proc, token, user="oauth2accesstoken")


def test_google_refusing_the_key_fails_the_login_with_a_hint(tmp_path, make_registry, google,
                                                             session_pki, repo):
    key = make_service_account_key(tmp_path / "sa.json", token_uri=google.token_uri)
    google.trust(key)
    google.refuse = True
    reg = make_registry(auth=("oauth2accesstoken", google.access_token), tls=True)
    config = write_project(tmp_path, gcr_entry(reg, repo))
    env = offline_env(tmp_path, GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "sa.json"),
                      REQUESTS_CA_BUNDLE=str(session_pki.ca_cert))
    login = run_release(config, "login", env=env)
    assert login.returncode == 1
    assert "Google refused the credentials" in login.stdout and "invalid_grant" in login.stdout
    assert "hint: renew them" in login.stdout
    assert_no_leak(login, key["private_key"])
