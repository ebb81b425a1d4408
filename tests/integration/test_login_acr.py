"""ACR end to end: an Entra ID token from a stub `az` (through azure-identity, and directly
without it) exchanged at the registry's /oauth2/exchange (discovered from its /v2/ Bearer
challenge, served over HTTPS by a token server like ACR's), then a real push with user
00000000-0000-0000-0000-000000000000 and the refresh token."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.support.cloudstubs import (
    NULL_USER,
    AcrTokenServer,
    CliStub,
    assert_no_leak,
    fake_jwt,
    hide_modules,
    masked,
    offline_env,
    run_release,
    write_project,
)

pytestmark = pytest.mark.integration

TENANT = "11111111-2222-3333-4444-555555555555"
AUDIENCES = {"acr": "https://containerregistry.azure.net", "arm": "https://management.azure.com"}


@pytest.fixture
def entra():
    return {name: fake_jwt({"aud": aud, "tid": TENANT, "upn": "ci@example.com",
                            "exp": int(time.time()) + 3600})
            for name, aud in AUDIENCES.items()}


@pytest.fixture
def az(tmp_path, entra):
    stub = CliStub(tmp_path / "bin", "az")
    for name, aud in AUDIENCES.items():
        out = json.dumps({"accessToken": entra[name], "expiresOn": "2099-01-01 00:00:00.000000",
                          "expires_on": int(time.time()) + 3600, "tenant": TENANT,
                          "tokenType": "Bearer"})
        stub.on(["account", "get-access-token"], stdout=out, contains=[aud])
        stub.on(["account", "get-access-token"], stdout=out, contains=[aud + "/.default"])
    return stub


@pytest.fixture
def acr_registry(make_token_registry, token_signer, session_pki, entra):
    reg = make_token_registry(start=False)
    server = AcrTokenServer(token_signer, aad_tokens=set(entra.values()), tenant=TENANT,
                            pki=session_pki)
    server.swap_into(reg)
    return reg.start()


def acr_entry(reg, repo: str) -> str:
    return (f"- name: acr\n  type: acr\n  registry: {reg.host}\n  repository: {repo}\n"
            f"  ca_file: {reg.ca_file}\n")


@pytest.mark.parametrize("via", ["azure-identity", "az CLI"])
def test_entra_token_exchanged_then_login_and_push(tmp_path, docker_engine, acr_registry, az,
                                                   entra, via):
    repo = f"it/acr-{uuid.uuid4().hex[:8]}"
    server = acr_registry.token_server
    config = write_project(tmp_path, acr_entry(acr_registry, repo))
    env = offline_env(tmp_path, tmp_path / "bin", GITHUB_ACTIONS="true")
    if via == "az CLI":
        env["PYTHONPATH"] = hide_modules(tmp_path, "azure")

    login = run_release(config, "login", "--json", env=env)
    assert login.returncode == 0, login.stderr + login.stdout
    entry = json.loads(login.stdout)["registries"][0]
    assert entry["method"] == f"{via} + ACR exchange"
    assert entry["identity"] == f"{NULL_USER} (ci@example.com)"
    assert entry["detail"] == f"push to {repo} granted"
    # the exchange went where the /v2/ challenge pointed, with the challenge's service
    assert server.exchanges[0] == {"grant_type": "access_token", "service": server.service,
                                   "tenant": TENANT}

    # az CLI: the engine pushes with the exchanged credentials (auth_config per call);
    # azure-identity: our registry client uploads the export with them.
    engine_push = ["--engine-push"] if via == "az CLI" else []
    before = server.count(user=NULL_USER)
    push = run_release(config, "build-push", "1.0.0", "--json", *engine_push, env=env)
    assert push.returncode == 0, push.stderr + push.stdout
    assert acr_registry.tags(repo) == sorted(["1.0.0", "1.0", "1", "latest"])
    assert server.count(user=NULL_USER) > before                      # the push used them
    if engine_push:
        assert server.count(user=NULL_USER, user_agent="docker/") >= 1  # the daemon did
    for proc in (login, push):
        assert masked(proc, server.refresh_token) and masked(proc, entra["acr"])
        assert_no_leak(proc, server.refresh_token, entra["acr"], entra["arm"], user=NULL_USER)


def test_registry_refusing_the_identity(tmp_path, acr_registry, az, entra):
    acr_registry.token_server.audiences = ()           # no role on this registry
    config = write_project(tmp_path, acr_entry(acr_registry, "it/acr-denied"))
    env = offline_env(tmp_path, tmp_path / "bin")
    login = run_release(config, "login", env=env)
    assert login.returncode == 1
    assert "refused the Entra ID token" in login.stdout and "AcrPush" in login.stdout
    push = run_release(config, "build-push", "1.0.0", env=env)
    assert push.returncode == 1 and "refused the Entra ID token" in push.stderr
    for proc in (login, push):
        assert_no_leak(proc, entra["acr"], entra["arm"])


def test_no_azure_login_is_one_line_without_azure_identitys_warning(tmp_path, acr_registry):
    CliStub(tmp_path / "bin", "az").on(["account"], exit=1,
                                       stderr="ERROR: Please run 'az login' to setup account.\n")
    config = write_project(tmp_path, acr_entry(acr_registry, "it/acr-nologin"))
    login = run_release(config, "login", env=offline_env(tmp_path, tmp_path / "bin"))
    assert login.returncode == 2, login.stdout + login.stderr
    assert "no Azure credentials (DefaultAzureCredential found none: AzureCliCredential:" \
        in login.stdout
    assert "Attempted credentials" not in login.stderr + login.stdout
    assert "DefaultAzureCredential failed to retrieve a token" not in login.stderr
    assert login.stderr.strip() == ""


def test_an_html_page_from_the_exchange_is_summarised(tmp_path, acr_registry, az):
    from tests.support.cloudstubs import PROXY_ERROR_PAGE

    acr_registry.token_server.raw_answer = (502, PROXY_ERROR_PAGE)
    config = write_project(tmp_path, acr_entry(acr_registry, "it/acr-proxy"))
    login = run_release(config, "login", env=offline_env(tmp_path, tmp_path / "bin"))
    assert login.returncode == 1
    assert "answered HTTP 502 (an HTML page of" in login.stdout
    assert "403 Forbidden - corporate proxy" in login.stdout
    assert "policy line" not in login.stdout and "<p>" not in login.stdout
