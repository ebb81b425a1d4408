"""Artifact Registry / GCR end to end: a real service-account key whose token_uri is a local
HTTPS token endpoint (google-auth ADC -> oauth2accesstoken), the same key as `key_file`
(_json_key), and a stub `gcloud`; each pushed for real to a registry that accepts exactly it."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.support.cloudstubs import (
    CliStub,
    GoogleTokenServer,
    assert_no_leak,
    make_service_account_key,
    masked,
    offline_env,
    run_release,
    write_project,
)

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


def _key_file_project(tmp_path, make_registry, google, session_pki, repo):
    """(key, release.yml, env): a service-account key Google's stand-in trusts, a TLS registry
    taking the token Google issues, and an offline environment that points at the key."""
    key = make_service_account_key(tmp_path / "sa.json", token_uri=google.token_uri)
    google.trust(key)
    reg = make_registry(auth=("oauth2accesstoken", google.access_token), tls=True)
    config = write_project(tmp_path, gcr_entry(reg, repo))
    env = offline_env(tmp_path, GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "sa.json"),
                      REQUESTS_CA_BUNDLE=str(session_pki.ca_cert))
    return key, config, env


def test_google_refusing_the_key_fails_the_login_with_a_hint(tmp_path, make_registry, google,
                                                             session_pki, repo):
    google.refuse = True
    key, config, env = _key_file_project(tmp_path, make_registry, google, session_pki, repo)
    login = run_release(config, "login", env=env)
    assert login.returncode == 1
    assert "Google refused the credentials" in login.stdout and "invalid_grant" in login.stdout
    assert "hint: renew them" in login.stdout
    assert_no_leak(login, key["private_key"])


GCLOUD_NOT_LOGGED_IN = ("ERROR: (gcloud.auth.print-access-token) You do not currently have an "
                        "active account selected.\nPlease run:\n\n  $ gcloud auth login\n\nto "
                        "obtain new credentials.\n")


def test_gcloud_not_logged_in_falls_back_to_docker_auth_config(tmp_path, docker_engine,
                                                                make_registry, repo):
    import base64

    token = "ya29.ci-variable-" + uuid.uuid4().hex
    gcloud = CliStub(tmp_path / "bin", "gcloud").on(["auth"], exit=1,
                                                    stderr=GCLOUD_NOT_LOGGED_IN)
    reg = make_registry(auth=("oauth2accesstoken", token), tls=True)
    config = write_project(tmp_path, gcr_entry(reg, repo))
    env = offline_env(tmp_path, tmp_path / "bin")

    # nothing anywhere: a configuration error (exit 2) that keeps gcloud's first line
    nothing = run_release(config, "login", env=env)
    assert nothing.returncode == 2, nothing.stdout + nothing.stderr
    assert "gcloud is not logged in (gcloud: ERROR: (gcloud.auth.print-access-token) You do " \
           "not currently have an active account selected.)" in nothing.stdout
    assert f"no Docker login for {reg.host} either" in nothing.stdout

    auth = base64.b64encode(f"oauth2accesstoken:{token}".encode()).decode()
    env["DOCKER_AUTH_CONFIG"] = json.dumps({"auths": {reg.host: {"auth": auth}}})
    login = run_release(config, "login", "--json", env=env)
    assert login.returncode == 0, login.stderr + login.stdout
    assert json.loads(login.stdout)["registries"][0]["method"] == "DOCKER_AUTH_CONFIG"
    push = run_release(config, "build-push", "1.0.0", "--json", env=env)
    assert push.returncode == 0, push.stderr + push.stdout
    assert reg.tags(repo) == sorted(["1.0.0", "1.0", "1", "latest"])
    assert ["auth", "print-access-token"] in gcloud.calls
    for proc in (login, push):
        assert_no_leak(proc, token, user="oauth2accesstoken")


def test_a_token_past_expiry_by_clock_skew_is_tried_not_refused(tmp_path, docker_engine,
                                                                  make_registry, session_pki,
                                                                  repo):
    # the token endpoint's clock is 3 minutes ahead of ours: the fresh token looks expired
    skewed = GoogleTokenServer(session_pki, expires_in=-180).start()
    try:
        key = make_service_account_key(tmp_path / "sa.json", token_uri=skewed.token_uri)
        skewed.trust(key)
        reg = make_registry(auth=("oauth2accesstoken", skewed.access_token), tls=True)
        config = write_project(tmp_path, gcr_entry(reg, repo))
        env = offline_env(tmp_path, GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "sa.json"),
                          REQUESTS_CA_BUNDLE=str(session_pki.ca_cert))
        login = run_release(config, "login", "--json", env=env)
        assert login.returncode == 0, login.stderr + login.stdout
        entry = json.loads(login.stdout)["registries"][0]
        assert entry["ok"] and "check the clock" in entry["detail"]
        push = run_release(config, "build-push", "1.0.0", "--json", env=env)
        assert push.returncode == 0, push.stderr + push.stdout
        assert reg.tags(repo) == sorted(["1.0.0", "1.0", "1", "latest"])

        # a registry that refuses it: now the message says it expired
        other = make_registry(auth=("oauth2accesstoken", "ya29.another-token"), tls=True)
        refused = write_project(tmp_path / "refused", gcr_entry(other, repo))
        login = run_release(refused, "login", "--json", env=env)
        assert login.returncode == 1
        entry = json.loads(login.stdout)["registries"][0]
        assert "refused the credentials" in entry["detail"]
        assert "the token expired at" in entry["detail"] and "clock" in entry["hint"]
        assert_no_leak(login, skewed.access_token, key["private_key"], user="oauth2accesstoken")
    finally:
        skewed.stop()


def test_an_html_page_from_the_token_endpoint_is_summarised(tmp_path, make_registry, google,
                                                           session_pki, repo):
    from tests.support.cloudstubs import PROXY_ERROR_PAGE

    google.raw_answer = (403, PROXY_ERROR_PAGE)
    key, config, env = _key_file_project(tmp_path, make_registry, google, session_pki, repo)
    login = run_release(config, "login", env=env)
    assert login.returncode == 1
    assert "an HTML page of" in login.stdout and "403 Forbidden - corporate proxy" in login.stdout
    assert "policy line" not in login.stdout and "<p>" not in login.stdout
    assert_no_leak(login, key["private_key"])
