"""ACR adapter: an Entra ID token (azure-identity or the az CLI, both through a stub `az`)
exchanged at a local HTTPS /oauth2/exchange for a refresh token; audience fallback; errors."""

from __future__ import annotations

import json
import time

import pytest

from pipeline.auth.cache import TokenCache
from pipeline.auth.cloud import CloudAuthError, acr
from pipeline.auth.lookup import credentials_for
from pipeline.errors import UsageError
from pipeline.model.config import RegistryConfig
from pipeline.registry.retry import TOKEN_ATTEMPTS
from pipeline.ui import redact
from tests.support.cloudstubs import (
    NULL_USER,
    AcrTokenServer,
    CliStub,
    fake_jwt,
    jwt_claims,
)

TENANT = "11111111-2222-3333-4444-555555555555"
ACR_AUD = "https://containerregistry.azure.net"
ARM_AUD = "https://management.azure.com"


def entra(aud: str) -> str:
    return fake_jwt({"aud": aud, "tid": TENANT, "upn": "dev@example.com",
                     "exp": int(time.time()) + 3600})


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch, tmp_path):
    for name in list(__import__("os").environ):
        if name.startswith(("AZURE_", "MSI_", "IDENTITY_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "AzureCliCredential")
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path / "azure"))
    redact.clear()
    yield
    redact.clear()


@pytest.fixture
def tokens():
    return {"acr": entra(ACR_AUD), "arm": entra(ARM_AUD)}


@pytest.fixture
def az(tmp_path, monkeypatch, tokens):
    """A stub `az` on PATH (both for azure-identity's AzureCliCredential and our own call)."""
    stub = CliStub(tmp_path / "bin", "az")
    for name, aud in (("acr", ACR_AUD), ("arm", ARM_AUD)):
        out = json.dumps({"accessToken": tokens[name], "expiresOn": "2099-01-01 00:00:00.000000",
                          "expires_on": int(time.time()) + 3600, "tenant": TENANT,
                          "tokenType": "Bearer"})
        stub.on(["account", "get-access-token"], stdout=out, contains=[aud])          # --resource
        stub.on(["account", "get-access-token"], stdout=out, contains=[aud + "/.default"])
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    return stub


@pytest.fixture
def exchange_server(session_pki, token_signer, tokens):
    server = AcrTokenServer(token_signer, aad_tokens=set(tokens.values()), tenant=TENANT,
                            pki=session_pki, service="localhost").start()
    yield server
    server.stop()


def reg(server, session_pki, **kw) -> RegistryConfig:
    return RegistryConfig(name="acr", type="acr", registry=f"localhost:{server.port}",
                          repository="team/app", ca_file=session_pki.ca_cert, **kw)


def env_for(tmp_path):
    return {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}


def test_azure_identity_token_is_exchanged_for_a_refresh_token(tmp_path, az, exchange_server,
                                                               session_pki):
    creds = credentials_for(reg(exchange_server, session_pki), env_for(tmp_path),
                            cache=TokenCache())
    assert (creds.username, creds.password) == (NULL_USER, exchange_server.refresh_token)
    assert creds.method == "azure-identity + ACR exchange"
    assert creds.principal == "dev@example.com"
    assert creds.expires_at.timestamp() == jwt_claims(exchange_server.refresh_token)["exp"]
    assert exchange_server.exchanges == [{"grant_type": "access_token", "service": "localhost",
                                          "tenant": TENANT}]
    assert any("--resource" in call for call in az.calls)            # azure-identity's own call
    assert redact.redact(exchange_server.refresh_token) == "***"


def test_az_cli_when_azure_identity_is_missing(tmp_path, az, exchange_server, session_pki,
                                               monkeypatch):
    monkeypatch.setattr(acr, "_token_source", lambda env: acr._az_cli)
    creds = credentials_for(reg(exchange_server, session_pki), env_for(tmp_path),
                            cache=TokenCache())
    assert creds.method == "az CLI + ACR exchange"
    assert creds.password == exchange_server.refresh_token
    assert az.calls[0] == ["account", "get-access-token", "--scope", ACR_AUD + "/.default",
                           "--output", "json"]


def test_arm_audience_when_the_registry_refuses_the_acr_audience(tmp_path, az, exchange_server,
                                                                 session_pki):
    exchange_server.audiences = (ARM_AUD,)
    creds = credentials_for(reg(exchange_server, session_pki), env_for(tmp_path),
                            cache=TokenCache())
    assert creds.password == exchange_server.refresh_token
    assert len(exchange_server.exchanges) == 2


def test_refused_everywhere_is_a_clear_error(tmp_path, az, exchange_server, session_pki, tokens):
    exchange_server.audiences = ()
    with pytest.raises(CloudAuthError) as info:
        credentials_for(reg(exchange_server, session_pki), env_for(tmp_path), cache=TokenCache())
    text = str(info.value)
    assert "refused the Entra ID token" in text and "ACR-audience token: HTTP 401" in text
    assert "AcrPush" in info.value.hint
    assert tokens["acr"] not in text and tokens["arm"] not in text


def test_a_registry_echoing_the_token_in_its_error_shows_no_token(tmp_path, az,
                                                                 exchange_server, session_pki,
                                                                 tokens):
    exchange_server.audiences, exchange_server.echo = (), True
    with pytest.raises(CloudAuthError) as info:
        credentials_for(reg(exchange_server, session_pki), env_for(tmp_path), cache=TokenCache())
    text = str(info.value)
    assert "not accepted (***)" in text
    assert tokens["acr"] not in text and tokens["arm"] not in text


def test_az_not_logged_in_is_a_usage_error(tmp_path, monkeypatch, exchange_server, session_pki):
    CliStub(tmp_path / "bin", "az").on(["account"], exit=1,
                                       stderr="ERROR: Please run 'az login' to setup account.\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    with pytest.raises(UsageError) as info:
        credentials_for(reg(exchange_server, session_pki), env_for(tmp_path), cache=TokenCache())
    assert "no Azure credentials" in info.value.message and "az login" in info.value.hint


def test_missing_extra_and_no_az(monkeypatch, exchange_server, session_pki):
    monkeypatch.setattr(acr, "which", lambda name, env: None)
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("azure.identity"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(UsageError) as info:
        credentials_for(reg(exchange_server, session_pki), {"PATH": "/nonexistent"},
                        cache=TokenCache())
    assert "azure-identity is not installed and the az CLI is not on PATH" in info.value.message
    assert "pip install 'release-pipeline[azure]'" in info.value.hint


def test_service_principal_from_env_needs_no_exchange(exchange_server, session_pki):
    creds = credentials_for(reg(exchange_server, session_pki, username_env="SP_ID",
                                password_env="SP_SECRET"),
                            {"SP_ID": "app-id-0000", "SP_SECRET": "sp-secret-0000"},
                            cache=TokenCache())
    assert (creds.username, creds.password) == ("app-id-0000", "sp-secret-0000")
    assert exchange_server.exchanges == []


def test_audiences_per_cloud():
    assert acr.scopes_for("x.azurecr.io") == (acr.ACR_SCOPE, "https://management.azure.com/.default")
    assert acr.scopes_for("x.azurecr.cn")[1] == "https://management.chinacloudapi.cn/.default"
    assert acr.scopes_for("x.azurecr.us")[1] == "https://management.usgovcloudapi.net/.default"


def test_azure_identitys_warning_is_silenced_and_our_message_says_what_failed(
        tmp_path, monkeypatch, exchange_server, session_pki, caplog):
    import logging

    monkeypatch.setenv("PATH", str(tmp_path / "bin"))                  # no az at all
    caplog.set_level(logging.INFO)
    before = logging.getLogger("azure.identity").level
    with pytest.raises(UsageError) as info:
        credentials_for(reg(exchange_server, session_pki), env_for(tmp_path), cache=TokenCache())
    azure = [r for r in caplog.records if r.name.startswith("azure")
             and r.levelno >= logging.WARNING]
    assert azure == [], [r.getMessage()[:80] for r in azure]
    assert "Attempted credentials" not in caplog.text
    assert "no Azure credentials (DefaultAzureCredential found none: AzureCliCredential: " \
           in info.value.message
    assert "\n" not in info.value.message
    assert logging.getLogger("azure.identity").level == before        # restored


def test_an_html_answer_from_the_exchange_is_summarised(tmp_path, az, exchange_server,
                                                       session_pki):
    from tests.support.cloudstubs import PROXY_ERROR_PAGE

    exchange_server.raw_answer = (502, PROXY_ERROR_PAGE)
    with pytest.raises(CloudAuthError) as info:
        credentials_for(reg(exchange_server, session_pki), env_for(tmp_path), cache=TokenCache())
    message = info.value.message
    assert len(exchange_server.exchanges) == TOKEN_ATTEMPTS      # 5xx: retried, then told
    assert "answered HTTP 502 (an HTML page of" in message
    assert "403 Forbidden - corporate proxy" in message
    assert "policy line" not in message and "<" not in message.split("HTTP 502", 1)[1]
    assert len(message) < 400


def test_a_busy_exchange_is_retried_and_a_refusal_is_not(tmp_path, az, exchange_server,
                                                        session_pki, monkeypatch):
    real, calls, busy = exchange_server.exchange, [], [True]

    def busy_once(form):
        calls.append(form["service"])
        if busy and busy.pop():
            return 503, {"errors": [{"code": "UNAVAILABLE", "message": "try again"}]}
        return real(form)

    monkeypatch.setattr(exchange_server, "exchange", busy_once)
    creds = credentials_for(reg(exchange_server, session_pki), env_for(tmp_path),
                            cache=TokenCache())
    assert creds.password == exchange_server.refresh_token and len(calls) == 2

    calls.clear()
    exchange_server.audiences = ()                  # 401 for both audiences: each asked once
    with pytest.raises(CloudAuthError, match="refused the Entra ID token"):
        credentials_for(reg(exchange_server, session_pki), env_for(tmp_path), cache=TokenCache())
    assert len(calls) == 2
