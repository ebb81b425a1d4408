"""ECR adapter: host grammar, GetAuthorizationToken through boto3 (botocore Stubber and moto's
server), the aws CLI fallback, the token cache, create_repository, and the errors users meet."""

from __future__ import annotations

import base64
import logging
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.stub import Stubber

from pipeline.auth.cache import TokenCache
from pipeline.auth.cloud import CloudAuthError, ecr
from pipeline.auth.lookup import credentials_for
from pipeline.errors import UsageError
from pipeline.model.config import RegistryConfig
from pipeline.model.config.hosts import EcrHostError, parse_ecr_host
from pipeline.ui import redact
from tests.support.cloudstubs import CliStub, MotoServer

HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


@pytest.fixture(autouse=True)
def _hermetic(tmp_path, monkeypatch):
    """No AWS credentials, config files or metadata server of this machine."""
    for name in list(__import__("os").environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    redact.clear()
    yield
    redact.clear()


@pytest.fixture(scope="module")
def moto():
    server = MotoServer().start()
    yield server
    server.stop()


def reg(host=HOST, **kw) -> RegistryConfig:
    return RegistryConfig(name=kw.pop("name", "ecr"), type="ecr", registry=host,
                          repository=kw.pop("repository", "team/app"), **kw)


def token(user="AWS", password="ecr-password-1234") -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def stubbed(monkeypatch, service="ecr", responses=(), errors=()):
    """make_client -> a real boto3 client whose calls are answered by a Stubber."""
    client = boto3.client(service, region_name="us-east-1", aws_access_key_id="AKIAUNITTEST",
                          aws_secret_access_key="unit-test-secret")
    stub = Stubber(client)
    for method, answer in responses:
        stub.add_response(method, answer)
    for method, code, message in errors:
        stub.add_client_error(method, service_error_code=code, service_message=message,
                              http_status_code=400)
    stub.activate()
    made = []

    def make_client(session, svc, info):
        made.append((svc, info))
        return client

    monkeypatch.setattr(ecr, "make_client", make_client)
    return stub, made


# -- host grammar ----------------------------------------------------------------------------

@pytest.mark.parametrize("host, account, region, fips, dualstack, public", [
    (HOST, "123456789012", "us-east-1", False, False, False),
    ("https://123456789012.dkr.ecr.eu-west-1.amazonaws.com", "123456789012", "eu-west-1", False,
     False, False),
    ("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", "123456789012", "us-east-1", True,
     False, False),
    ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", "123456789012", "us-gov-west-1",
     True, False, False),
    ("123456789012.dkr.ecr.us-gov-east-1.amazonaws.com", "123456789012", "us-gov-east-1", False,
     False, False),
    ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "123456789012", "cn-north-1", False,
     False, False),
    ("123456789012.dkr-ecr.eu-north-1.on.aws", "123456789012", "eu-north-1", False, True, False),
    ("123456789012.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn", "123456789012",
     "cn-northwest-1", False, True, False),
    ("123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu", "123456789012", "eusc-de-east-1", False,
     False, False),
    ("123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov", "123456789012", "us-iso-east-1", False,
     False, False),
    ("123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov", "123456789012", "us-isob-east-1",
     False, False, False),
    ("public.ecr.aws", None, "us-east-1", False, False, True),
    ("ecr-public.aws.com", None, "us-east-1", False, True, True),
])
def test_host_grammar(host, account, region, fips, dualstack, public):
    info = parse_ecr_host(host)
    assert (info.account, info.region, info.fips, info.dualstack, info.public) == \
        (account, region, fips, dualstack, public)


@pytest.mark.parametrize("host, problem, hint", [
    ("1.dkr.ecr.us-east-1.amazonaws.com", "account ID '1' is not 12 digits", "12-digit"),
    ("123456789012.dkr.ecr.us_east_1.amazonaws.com", "'us_east_1' is not an AWS region",
     "us-east-1"),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.org", "'amazonaws.org' is not an ECR domain",
     "amazonaws.com"),
    ("123456789012.dkr.ecr.cn-north-1.amazonaws.com", "do not belong together",
     "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com.cn", "do not belong together",
     "amazonaws.com?"),
    ("123456789012.dkr.ecr.eusc-de-east-1.amazonaws.com", "European Sovereign Cloud",
     "amazonaws.eu"),
    ("ghcr.io", "does not have the form ACCOUNT.dkr.ecr.REGION.amazonaws.com", "region:"),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com:443", "no port", "without ':PORT'"),
])
def test_unknown_host_forms_say_what_is_wrong(host, problem, hint):
    with pytest.raises(EcrHostError) as info:
        parse_ecr_host(host)
    assert problem in info.value.problem
    assert hint in info.value.hint


def test_fips_china_and_eusc_hosts_reach_the_right_api_endpoint(monkeypatch):
    session = boto3.Session(aws_access_key_id="AKIAUNITTEST", aws_secret_access_key="x")
    cases = {
        "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com":
            "https://ecr-fips.us-gov-west-1.amazonaws.com",
        "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com": "https://ecr-fips.us-east-1.amazonaws.com",
        "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn": "https://api.ecr.cn-north-1.amazonaws.com.cn",
        HOST: "https://api.ecr.us-east-1.amazonaws.com",
    }
    for host, endpoint in cases.items():
        client = ecr.make_client(session, "ecr", parse_ecr_host(host))
        assert client.meta.endpoint_url == endpoint, host
    public = ecr.make_client(session, "ecr-public", parse_ecr_host("public.ecr.aws"))
    assert public.meta.region_name == "us-east-1"


# -- boto3 -----------------------------------------------------------------------------------

def test_token_from_boto3_is_user_aws_for_the_configured_host(monkeypatch):
    expires = datetime.now(timezone.utc) + timedelta(hours=12)
    stub, made = stubbed(monkeypatch, responses=[("get_authorization_token", {
        "authorizationData": [{"authorizationToken": token(), "expiresAt": expires,
                               "proxyEndpoint": f"https://{HOST}"}]})])
    creds = credentials_for(reg("123456789012.dkr-ecr.us-east-1.on.aws"), {}, cache=TokenCache())
    assert (creds.username, creds.password, creds.method) == ("AWS", "ecr-password-1234", "boto3")
    assert abs((creds.expires_at - expires).total_seconds()) < 1
    # sent for the host of the image reference, not the proxyEndpoint
    assert creds.auth_config("123456789012.dkr-ecr.us-east-1.on.aws")["serveraddress"] == \
        "123456789012.dkr-ecr.us-east-1.on.aws"
    assert made[0][0] == "ecr" and made[0][1].region == "us-east-1"
    assert "ecr-password-1234" not in repr(creds) and "ecr-password-1234" not in creds.describe()
    assert redact.redact("x ecr-password-1234 " + token()) == "x *** ***"
    stub.assert_no_pending_responses()


def test_ecr_public_is_asked_in_us_east_1_whatever_aws_region_says(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    stub, made = stubbed(monkeypatch, service="ecr-public", responses=[("get_authorization_token", {
        "authorizationData": {"authorizationToken": token(password="public-pw-5678"),
                              "expiresAt": datetime.now(timezone.utc) + timedelta(hours=12)}})])
    creds = credentials_for(reg("public.ecr.aws", repository="abc123/app"), {}, cache=TokenCache())
    assert (creds.username, creds.password) == ("AWS", "public-pw-5678")
    assert made[0][0] == "ecr-public" and made[0][1].region == "us-east-1"


def test_tokens_are_cached_until_half_their_life(monkeypatch):
    now = [1_000_000.0]
    cache = TokenCache(clock=lambda: now[0])
    expires = datetime.fromtimestamp(now[0] + 12 * 3600, timezone.utc)
    answer = {"authorizationData": [{"authorizationToken": token(), "expiresAt": expires,
                                     "proxyEndpoint": f"https://{HOST}"}]}
    stub, made = stubbed(monkeypatch, responses=[("get_authorization_token", answer)] * 2)
    first = credentials_for(reg(), {}, cache=cache)
    now[0] += 5.9 * 3600
    assert credentials_for(reg(name="other"), {}, cache=cache) is first     # same account/region
    assert len(made) == 1
    now[0] += 0.2 * 3600                                                 # past 6 h of 12 h
    credentials_for(reg(), {}, cache=cache)
    assert len(made) == 2
    stub.assert_no_pending_responses()


@pytest.mark.parametrize("code, phrase, hint", [
    ("ExpiredTokenException", "AWS credentials have expired", "aws sso login"),
    ("UnrecognizedClientException", "does not recognise these credentials in region us-east-1",
     "partition"),
    ("AccessDeniedException", "not allowed to call ecr:GetAuthorizationToken",
     "grant ecr:GetAuthorizationToken"),
])
def test_aws_refusals_are_clear_exit_1_errors(monkeypatch, code, phrase, hint):
    stubbed(monkeypatch, errors=[("get_authorization_token", code, "The security token is bad")])
    with pytest.raises(CloudAuthError) as info:
        credentials_for(reg(), {}, cache=TokenCache())
    assert phrase in info.value.message and hint in (info.value.hint or "")
    assert info.value.exit_code == 1


def test_no_aws_credentials_is_a_usage_error_saying_where_they_come_from():
    with pytest.raises(UsageError) as info:
        credentials_for(reg(), {"PATH": "/nonexistent"}, cache=TokenCache())
    text = str(info.value)
    assert "no AWS credentials found" in text and "no Docker login for" in text
    assert "AWS_ACCESS_KEY_ID" in info.value.hint and "profile:" in info.value.hint
    assert info.value.exit_code == 2


def test_unknown_profile(monkeypatch):
    with pytest.raises(UsageError, match="AWS profile 'nope' not found"):
        credentials_for(reg(profile="nope"), {}, cache=TokenCache())


def test_wrong_region_that_cannot_be_reached(moto, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNITTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unit-test-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", "http://127.0.0.1:9")       # nothing listens
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(CloudAuthError) as info:
        credentials_for(reg("123456789012.dkr.ecr.us-east-7.amazonaws.com"), {},
                        cache=TokenCache())
    assert "cannot reach the ECR API for region 'us-east-7'" in info.value.message
    assert "check the region in the registry host" in info.value.hint


def test_role_arn_is_assumed_first_and_its_keys_registered(monkeypatch):
    sts = boto3.client("sts", region_name="us-east-1", aws_access_key_id="AKIAUNITTEST",
                       aws_secret_access_key="x")
    ecr_client = boto3.client("ecr", region_name="us-east-1", aws_access_key_id="AKIAUNITTEST",
                              aws_secret_access_key="x")
    s1, s2 = Stubber(sts), Stubber(ecr_client)
    s1.add_response("assume_role", {"Credentials": {
        "AccessKeyId": "ASIAASSUMEDROLE0001", "SecretAccessKey": "assumed-secret-key-0000",
        "SessionToken": "assumed-session-token-0000",
        "Expiration": datetime.now(timezone.utc) + timedelta(hours=1)}},
        {"RoleArn": "arn:aws:iam::123456789012:role/pusher", "RoleSessionName": "release-pipeline",
         "DurationSeconds": 3600})
    s2.add_response("get_authorization_token", {"authorizationData": [
        {"authorizationToken": token(), "expiresAt": datetime.now(timezone.utc) + timedelta(hours=1)}]})
    s1.activate(), s2.activate()
    monkeypatch.setattr(ecr, "make_client", lambda session, svc, info: sts if svc == "sts" else ecr_client)
    creds = credentials_for(reg(role_arn="arn:aws:iam::123456789012:role/pusher"), {},
                            cache=TokenCache())
    assert creds.principal == "role pusher" and creds.password == "ecr-password-1234"
    assert redact.redact("assumed-secret-key-0000 assumed-session-token-0000") == "*** ***"
    s1.assert_no_pending_responses()


# -- moto's server: the real HTTP exchange ------------------------------------------------------

def test_moto_token_create_repository_and_no_secret_in_debug_logs(moto, monkeypatch, caplog,
                                                                  capsys):
    for key, value in moto.env().items():
        monkeypatch.setenv(key, value)
    caplog.set_level(logging.DEBUG)
    repo = "unit/created-" + __import__("uuid").uuid4().hex[:6]
    creds = credentials_for(reg(repository=repo, create_repository=True), {}, push=True,
                            cache=TokenCache())
    assert (creds.username, creds.password) == ("AWS", moto.token_password)
    assert creds.expires_at > datetime.now(timezone.utc) + timedelta(hours=11)
    names = [r["repositoryName"] for r in moto.client().describe_repositories()["repositories"]]
    assert repo in names
    assert f"created ECR repository {repo}" in capsys.readouterr().err
    # a second push finds the repository and creates nothing
    credentials_for(reg(repository=repo, create_repository=True), {}, push=True,
                    cache=TokenCache())
    assert "created" not in capsys.readouterr().err
    # botocore logs response bodies at DEBUG: none of them may carry the token
    assert "botocore" in caplog.text                    # DEBUG logging really was on
    assert moto.token_password not in caplog.text
    assert token(password=moto.token_password) not in caplog.text
    assert logging.root.manager.disable == logging.NOTSET     # quiet_logs() restored it


# -- without boto3 ---------------------------------------------------------------------------

def test_aws_cli_fallback_when_boto3_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(ecr, "_boto3", lambda: None)
    aws = CliStub(tmp_path / "bin", "aws")
    aws.on(["ecr", "get-login-password"], stdout="cli-password-4321\n")
    creds = credentials_for(reg("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
                                profile="ci"), {"PATH": str(tmp_path / "bin")},
                            cache=TokenCache())
    assert (creds.username, creds.password, creds.method) == ("AWS", "cli-password-4321",
                                                              "aws CLI")
    assert aws.calls == [["ecr", "get-login-password", "--region", "us-gov-west-1",
                          "--profile", "ci"]]
    assert redact.redact("cli-password-4321") == "***"


def test_aws_cli_errors_are_shown_redacted(tmp_path, monkeypatch):
    monkeypatch.setattr(ecr, "_boto3", lambda: None)
    CliStub(tmp_path / "bin", "aws").on(
        ["ecr"], exit=255, stderr="An error occurred (ExpiredTokenException) when calling the "
                                  "GetAuthorizationToken operation: The security token included "
                                  "in the request is expired\n")
    with pytest.raises(CloudAuthError) as info:
        credentials_for(reg(), {"PATH": str(tmp_path / "bin")}, cache=TokenCache())
    assert "ExpiredTokenException" in info.value.message and "exit 255" in info.value.message


def test_missing_extra_and_no_cli_names_the_pip_extra(monkeypatch):
    monkeypatch.setattr(ecr, "_boto3", lambda: None)
    with pytest.raises(UsageError) as info:
        credentials_for(reg(), {"PATH": "/nonexistent"}, cache=TokenCache())
    assert "boto3 is not installed and the aws CLI is not on PATH" in info.value.message
    assert "pip install 'release-pipeline[aws]'" in info.value.hint
