"""Artifact Registry / GCR adapter: key_file (_json_key), google-auth application default
credentials against a local HTTPS token endpoint, the gcloud fallback, and the errors."""

from __future__ import annotations

import base64
import json
import logging

import google.auth
import google.auth.exceptions
import pytest

from pipeline.auth.cache import TokenCache
from pipeline.auth.cloud import CloudAuthError, gcr
from pipeline.auth.lookup import credentials_for
from pipeline.errors import UsageError
from pipeline.model.config import RegistryConfig
from pipeline.ui import redact
from tests.support.cloudstubs import (
    CliStub,
    GoogleTokenServer,
    make_service_account_key,
)

HOST = "europe-west1-docker.pkg.dev"


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch):
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    redact.clear()
    yield
    redact.clear()


@pytest.fixture
def no_adc(monkeypatch):
    """google.auth.default() finds nothing (and never probes a metadata server)."""
    def default(*args, **kwargs):
        raise google.auth.exceptions.DefaultCredentialsError("Your default credentials were "
                                                             "not found.")
    monkeypatch.setattr(google.auth, "default", default)


@pytest.fixture
def token_server(session_pki, monkeypatch):
    server = GoogleTokenServer(session_pki).start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(session_pki.ca_cert))
    yield server
    server.stop()


def reg(**kw) -> RegistryConfig:
    return RegistryConfig(name="gar", type="gcr", registry=HOST, repository="proj/repo/app", **kw)


def test_key_file_is_sent_as_json_key(tmp_path):
    key = make_service_account_key(tmp_path / "sa.json", token_uri="https://oauth2.invalid/token")
    text = (tmp_path / "sa.json").read_text()
    creds = credentials_for(reg(key_file=tmp_path / "sa.json"), {}, cache=TokenCache())
    assert (creds.username, creds.password, creds.method) == ("_json_key", text, "key file")
    assert creds.principal == key["client_email"]
    assert creds.expires_at is None
    assert redact.redact(key["private_key"]) == "***"
    assert redact.redact(text) == "***"
    assert key["private_key_id"] not in creds.describe()


@pytest.mark.parametrize("content, phrase", [
    (None, "not found"),
    ("{not json", "is not JSON"),
    (json.dumps({"type": "authorized_user", "refresh_token": "x"}), "is not a service-account key"),
])
def test_bad_key_files(tmp_path, content, phrase):
    path = tmp_path / "sa.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError, match=phrase):
        credentials_for(reg(key_file=path), {}, cache=TokenCache())


def test_adc_service_account_key_gets_an_access_token(tmp_path, token_server, monkeypatch, caplog):
    key = make_service_account_key(tmp_path / "sa.json", token_uri=token_server.token_uri)
    token_server.trust(key)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "sa.json"))
    caplog.set_level(logging.DEBUG)
    creds = credentials_for(reg(), {}, cache=TokenCache())
    assert (creds.username, creds.password, creds.method) == \
        ("oauth2accesstoken", token_server.access_token, "google-auth")
    assert creds.principal == key["client_email"]
    assert creds.expires_at is not None and creds.expires_at.tzinfo is not None
    assert token_server.issued == 1
    assert redact.redact(token_server.access_token) == "***"
    assert redact.redact(key["private_key"]) == "***"        # registered before google-auth read it
    assert token_server.access_token not in caplog.text


def test_google_refusing_the_key_is_a_clear_error(tmp_path, token_server, monkeypatch):
    key = make_service_account_key(tmp_path / "sa.json", token_uri=token_server.token_uri)
    token_server.trust(key)
    token_server.refuse = True
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "sa.json"))
    with pytest.raises(CloudAuthError) as info:
        credentials_for(reg(), {}, cache=TokenCache())
    assert "Google refused the credentials" in info.value.message
    assert "invalid_grant" in info.value.message
    assert key["private_key"] not in str(info.value)


def test_token_requests_go_through_our_http_session(tmp_path, token_server, monkeypatch):
    """google-auth's token request uses release's HTTP stack: its CAs (REQUESTS_CA_BUNDLE, set
    by the fixture) and the proxy environment; an endpoint that cannot be reached is said so."""
    key = make_service_account_key(tmp_path / "sa.json", token_uri=token_server.token_uri)
    token_server.trust(key)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "sa.json"))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")      # discard: nothing answers
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(CloudAuthError) as info:
        credentials_for(reg(), {}, cache=TokenCache())
    assert "cannot reach Google's token endpoint" in info.value.message
    assert "via proxy 127.0.0.1:9" in info.value.message and token_server.issued == 0
    assert key["private_key"] not in str(info.value)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert credentials_for(reg(), {}, cache=TokenCache()).password == token_server.access_token


def test_missing_credentials_file_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(UsageError, match="Google credentials file"):
        credentials_for(reg(), {}, cache=TokenCache())


def test_gcloud_fallback_when_there_is_no_adc(tmp_path, no_adc):
    gcloud = CliStub(tmp_path / "bin", "gcloud").on(["auth", "print-access-token"],
                                                    stdout="ya29.from-gcloud-0000\n")
    creds = credentials_for(reg(), {"PATH": str(tmp_path / "bin")}, cache=TokenCache())
    assert (creds.username, creds.password, creds.method) == \
        ("oauth2accesstoken", "ya29.from-gcloud-0000", "gcloud CLI")
    assert gcloud.calls == [["auth", "print-access-token"]]


GCLOUD_NOT_LOGGED_IN = ("ERROR: (gcloud.auth.print-access-token) You do not currently have an "
                        "active account selected.\nPlease run:\n\n  $ gcloud auth login\n\nto "
                        "obtain new credentials.\n")


def test_gcloud_not_logged_in_and_nothing_else_keeps_gclouds_first_line(tmp_path, no_adc):
    CliStub(tmp_path / "bin", "gcloud").on(["auth"], exit=1, stderr=GCLOUD_NOT_LOGGED_IN)
    e = {"PATH": str(tmp_path / "bin"), "DOCKER_CONFIG": str(tmp_path / "docker")}
    with pytest.raises(UsageError) as info:
        credentials_for(reg(), e, cache=TokenCache())
    message = info.value.message
    assert "gcloud is not logged in (gcloud: ERROR: (gcloud.auth.print-access-token) You do " \
           "not currently have an active account selected.)" in message
    assert "no Google application default credentials" in message
    assert f"no Docker login for {HOST} either" in message
    assert "to obtain new credentials" not in message           # the first line only
    assert "gcloud auth login" in info.value.hint


def test_gcloud_not_logged_in_falls_back_to_docker_auth_config(tmp_path, no_adc):
    gcloud = CliStub(tmp_path / "bin", "gcloud").on(["auth"], exit=1, stderr=GCLOUD_NOT_LOGGED_IN)
    auth = base64.b64encode(b"oauth2accesstoken:ya29.from-ci-variable").decode()
    e = {"PATH": str(tmp_path / "bin"), "DOCKER_CONFIG": str(tmp_path / "docker"),
         "DOCKER_AUTH_CONFIG": json.dumps({"auths": {HOST: {"auth": auth}}})}
    creds = credentials_for(reg(), e, cache=TokenCache())
    assert (creds.password, creds.source) == ("ya29.from-ci-variable", "DOCKER_AUTH_CONFIG")
    assert gcloud.calls == [["auth", "print-access-token"]]


def test_gcloud_not_logged_in_falls_back_to_the_docker_config(tmp_path, no_adc):
    CliStub(tmp_path / "bin", "gcloud").on(["auth"], exit=1, stderr=GCLOUD_NOT_LOGGED_IN)
    auth = base64.b64encode(b"_json_key:from-docker-login").decode()
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(json.dumps({"auths": {HOST: {"auth": auth}}}))
    e = {"PATH": str(tmp_path / "bin"), "DOCKER_CONFIG": str(tmp_path / "docker")}
    creds = credentials_for(reg(), e, cache=TokenCache())
    assert (creds.username, creds.password, creds.source) == \
        ("_json_key", "from-docker-login", "Docker config")


def test_gcloud_without_adc_support_not_logged_in_also_falls_back(tmp_path, monkeypatch):
    monkeypatch.setattr(gcr, "_google", lambda: None)           # no google-auth: gcloud only
    CliStub(tmp_path / "bin", "gcloud").on(["auth"], exit=1, stderr=GCLOUD_NOT_LOGGED_IN)
    with pytest.raises(UsageError, match="gcloud is not logged in"):
        credentials_for(reg(), {"PATH": str(tmp_path / "bin"),
                                "DOCKER_CONFIG": str(tmp_path / "docker")}, cache=TokenCache())


def test_a_gcloud_login_google_refuses_is_an_error_not_a_fallback(tmp_path, no_adc):
    CliStub(tmp_path / "bin", "gcloud").on(
        ["auth"], exit=1, stderr="ERROR: (gcloud.auth.print-access-token) There was a problem "
                                 "refreshing your current auth tokens: ('invalid_grant: Token "
                                 "has been expired or revoked.')\nPlease run:\n\n  $ gcloud "
                                 "auth login\n")
    auth = base64.b64encode(b"oauth2accesstoken:stale-docker-login").decode()
    e = {"PATH": str(tmp_path / "bin"), "DOCKER_CONFIG": str(tmp_path / "docker"),
         "DOCKER_AUTH_CONFIG": json.dumps({"auths": {HOST: {"auth": auth}}})}
    with pytest.raises(CloudAuthError) as info:
        credentials_for(reg(), e, cache=TokenCache())
    assert "expired or revoked" in info.value.message and "gcloud auth login" in info.value.hint


def test_an_html_answer_from_the_token_endpoint_is_summarised(tmp_path, token_server,
                                                             monkeypatch):
    from tests.support.cloudstubs import PROXY_ERROR_PAGE

    key = make_service_account_key(tmp_path / "sa.json", token_uri=token_server.token_uri)
    token_server.trust(key)
    token_server.raw_answer = (403, PROXY_ERROR_PAGE)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "sa.json"))
    with pytest.raises(CloudAuthError) as info:
        credentials_for(reg(), {}, cache=TokenCache())
    message = info.value.message
    assert "Google refused the credentials" in message
    assert "an HTML page of" in message and "403 Forbidden - corporate proxy" in message
    assert "policy line" not in message and "<p>" not in message and "\n" not in message
    assert len(message) < 400


def test_nothing_at_all_says_what_was_tried(no_adc):
    with pytest.raises(UsageError) as info:
        credentials_for(reg(), {"PATH": "/nonexistent"}, cache=TokenCache())
    assert "no Google application default credentials" in info.value.message
    assert "GOOGLE_APPLICATION_CREDENTIALS" in info.value.hint


def test_missing_extra_names_pip_install(monkeypatch):
    monkeypatch.setattr(gcr, "_google", lambda: None)
    with pytest.raises(UsageError) as info:
        credentials_for(reg(), {"PATH": "/nonexistent"}, cache=TokenCache())
    assert "google-auth is not installed" in info.value.message
    assert "pip install 'release-pipeline[gcp]'" in info.value.hint


def test_docker_credential_helper_when_nothing_more_specific(tmp_path, no_adc, monkeypatch):
    helper = CliStub(tmp_path / "bin", "docker-credential-gcloud", read_stdin=True)
    helper.on(["get"], stdout=json.dumps({"ServerURL": HOST, "Username": "oauth2accesstoken",
                                          "Secret": "ya29.from-helper-0000"}))
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(json.dumps({"credHelpers": {HOST: "gcloud"}}))
    env = {"PATH": str(tmp_path / "bin"), "DOCKER_CONFIG": str(tmp_path / "docker")}
    monkeypatch.setenv("PATH", str(tmp_path / "bin") + ":/usr/bin:/bin")   # docker-py's lookup
    creds = credentials_for(reg(), env, cache=TokenCache())
    assert (creds.username, creds.password) == ("oauth2accesstoken", "ya29.from-helper-0000")
    assert "docker-credential-gcloud" in creds.source
    assert helper.records[0]["stdin"].strip() == HOST
