"""`type: ecr`: Amazon ECR (private) and ECR Public, user `AWS` + a 12 h token.

The host grammar (ACCOUNT.dkr.ecr[-fips].REGION.SUFFIX, dual-stack, ECR Public) is parsed in
pipeline/model/config/hosts.py, which release.yml's checks share; `region:` in release.yml is
only for a host that does not say (an alias).

Credentials: GetAuthorizationToken in the host's region (the token is regional), through
boto3 (extra [aws], imported lazily) with the standard AWS chain, `profile:` and
`role_arn:` (sts:AssumeRole); FIPS hosts use the FIPS API endpoint. Without boto3 the
`aws` CLI (`aws ecr get-login-password`). AWS_ENDPOINT_URL(_ECR) is honoured by both
(tests point it at moto). Tokens are cached until half their life. The credentials are
sent for the exact host of the image reference, never the returned proxyEndpoint.

`create_repository: true` creates a missing repository before a push.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys

from pipeline.auth.cloud.common import (
    CloudAuthError,
    NotConfigured,
    aware,
    in_hours,
    pip_hint,
    quiet_logs,
    run_cli,
    which,
)
from pipeline.auth.credentials import Credentials
from pipeline.errors import UsageError
from pipeline.model.config.hosts import EcrHost, EcrHostError, parse_ecr_host
from pipeline.ui import redact

USERNAME = "AWS"
TOKEN_HOURS = 12
CREDS_HINT = ("set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), AWS_PROFILE "
              "or `profile:` in release.yml, run `aws sso login`, or use a role (ECS/EKS/EC2, "
              "GitHub OIDC with aws-actions/configure-aws-credentials)")
TOOL_HINT = (f"{pip_hint('aws')} (boto3), or install the AWS CLI v2; or use a Docker credential "
             "helper (docker-credential-ecr-login)")


def host_info(registry) -> EcrHost:
    """The registry's ECR host, with `region:` from release.yml for alias hosts."""
    region = getattr(registry, "region", None)
    try:
        info = parse_ecr_host(registry.registry)
    except EcrHostError as exc:
        if region:
            return EcrHost(registry.registry, None, region)
        raise UsageError(f"registry '{registry.name}': {registry.registry}: {exc.problem}",
                         hint=exc.hint) from None
    if region and region != info.region:
        raise UsageError(f"registry '{registry.name}': region {region} does not match the "
                         f"region of {registry.registry} ({info.region})",
                         hint="remove region: (the host says which region)")
    return info


# -- boto3 -----------------------------------------------------------------------------------

def _boto3():
    try:
        # optional SDK (extra [aws]): imported here, to see whether it is installed
        # lazy: optional extra [aws]
        import boto3
        import botocore  # noqa: F401 (is it installed?)
    except ImportError:
        return None
    return boto3


def make_client(session, service: str, info: EcrHost):
    """The boto3 client for `service` in the registry's region (tests replace this)."""
    # optional SDK (extra [aws]): imported only when an ECR registry uses it
    # lazy: optional extra [aws]
    from botocore.config import Config

    options = {"region_name": info.region, "connect_timeout": 10, "read_timeout": 30,
               "retries": {"max_attempts": 3, "mode": "standard"},
               "user_agent_extra": "release-pipeline"}
    if info.fips:
        options["use_fips_endpoint"] = True
    return session.client(service, config=Config(**options))


def _session(boto3, registry, info: EcrHost):
    # optional SDK (extra [aws]): imported only when an ECR registry uses it
    # lazy: optional extra [aws]
    import botocore.exceptions as bex

    try:
        session = boto3.Session(profile_name=registry.profile) if registry.profile else \
            boto3.Session()
    except bex.ProfileNotFound:
        raise UsageError(f"registry '{registry.name}': AWS profile '{registry.profile}' not found",
                         hint="check `profile:` in release.yml against ~/.aws/config "
                              "(aws configure list-profiles)") from None
    if not registry.role_arn:
        return session
    sts = make_client(session, "sts", EcrHost(info.host, None, info.region, fips=info.fips))
    try:
        with quiet_logs():
            answer = sts.assume_role(RoleArn=registry.role_arn, RoleSessionName="release-pipeline",
                                     DurationSeconds=3600)
    except (bex.BotoCoreError, bex.ClientError) as exc:
        raise _aws_error(exc, registry, info, "sts:AssumeRole") from None
    temp = answer["Credentials"]
    for value in (temp["SecretAccessKey"], temp["SessionToken"]):
        redact.register(value)
    return boto3.Session(aws_access_key_id=temp["AccessKeyId"],
                         aws_secret_access_key=temp["SecretAccessKey"],
                         aws_session_token=temp["SessionToken"])


def _via_boto3(boto3, registry, info: EcrHost) -> Credentials:
    # optional SDK (extra [aws]): imported only when an ECR registry uses it
    # lazy: optional extra [aws]
    import botocore.exceptions as bex

    session = _session(boto3, registry, info)
    client = make_client(session, info.service, info)
    try:
        with quiet_logs():
            answer = client.get_authorization_token()
    except bex.NoCredentialsError:
        if registry.profile or registry.role_arn:
            raise UsageError(f"registry '{registry.name}': no AWS credentials for "
                             f"{'profile ' + registry.profile if registry.profile else 'the role'}",
                             hint=CREDS_HINT) from None
        raise NotConfigured("no AWS credentials found (environment, shared config, SSO, web "
                            "identity, container or instance role)", hint=CREDS_HINT) from None
    except (bex.BotoCoreError, bex.ClientError) as exc:
        raise _aws_error(exc, registry, info, f"{info.service}:GetAuthorizationToken") from None
    data = answer.get("authorizationData")
    if isinstance(data, list):                  # private ECR: a list; ECR Public: one object
        data = data[0] if data else None
    if not data or not data.get("authorizationToken"):
        raise CloudAuthError(f"registry '{registry.name}': ECR answered without a token")
    username, password = _decode(data["authorizationToken"], registry)
    principal = _role_name(registry.role_arn) or (
        f"profile {registry.profile}" if registry.profile else None)
    return Credentials(source=f"ECR GetAuthorizationToken (boto3, {info.region})",
                       username=username, password=password, method="boto3",
                       expires_at=aware(data.get("expiresAt")) or in_hours(TOKEN_HOURS),
                       principal=principal)


def _decode(token: str, registry) -> tuple[str, str]:
    redact.register(token)
    try:
        username, sep, password = base64.b64decode(token, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        sep = ""
    if not sep or not password:
        raise CloudAuthError(f"registry '{registry.name}': the ECR token is not base64 "
                             "'user:password'")
    redact.register_basic(username, password)
    return username, password


def _role_name(arn: str | None) -> str | None:
    return f"role {arn.rsplit('/', 1)[-1]}" if arn else None


_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
_INVALID = {"UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException",
            "SignatureDoesNotMatch", "IncompleteSignature", "AuthFailure"}
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}


def _aws_error(exc, registry, info: EcrHost, action: str) -> Exception:
    # optional SDK (extra [aws]): imported only when an ECR registry uses it
    # lazy: optional extra [aws]
    import botocore.exceptions as bex

    where = f"registry '{registry.name}' ({info.region})"
    if isinstance(exc, bex.NoCredentialsError):
        return UsageError(f"{where}: no AWS credentials found for {action}", hint=CREDS_HINT)
    if isinstance(exc, bex.ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code", ""), redact.redact(error.get("Message", "") or "")
        if code in _EXPIRED:
            return CloudAuthError(f"{where}: the AWS credentials have expired ({code})",
                                  hint="refresh them: `aws sso login`, a new session token, or "
                                       "re-run aws-actions/configure-aws-credentials")
        if code in _INVALID:
            return CloudAuthError(f"{where}: AWS does not recognise these credentials in region "
                                  f"{info.region} ({code}: {message})",
                                  hint="check the access key, and that the region's partition "
                                       "matches the credentials (China and GovCloud regions "
                                       "need their own accounts)")
        if code in _DENIED:
            return CloudAuthError(f"{where}: not allowed to call {action} ({message})",
                                  hint=f"grant {action} to this principal"
                                       + (" and sts:GetServiceBearerToken" if info.public else ""))
        return CloudAuthError(f"{where}: {action} failed: {code}: {message}")
    if isinstance(exc, (bex.EndpointConnectionError, bex.ConnectTimeoutError)):
        return CloudAuthError(f"{where}: cannot reach the ECR API for region '{info.region}'",
                              hint="check the region in the registry host (a typo gives a region "
                                   "that does not exist), and the network or proxy "
                                   "(HTTPS_PROXY)")
    if isinstance(exc, bex.NoRegionError):
        return UsageError(f"{where}: no AWS region", hint="give region: in release.yml")
    return CloudAuthError(f"{where}: {action} failed: {redact.redact(str(exc))}")


# -- aws CLI ---------------------------------------------------------------------------------

def _cli_args(registry, info: EcrHost) -> tuple[list[str], dict[str, str]]:
    args = ["--region", info.region]
    if registry.profile:
        args += ["--profile", registry.profile]
    extra = {"AWS_USE_FIPS_ENDPOINT": "true"} if info.fips else {}
    return args, extra


def _via_cli(registry, info: EcrHost, env) -> Credentials:
    if registry.role_arn:
        raise UsageError(f"registry '{registry.name}': role_arn needs boto3",
                         hint=pip_hint("aws"))
    args, extra = _cli_args(registry, info)
    try:
        out = run_cli(["aws", info.service, "get-login-password", *args], env,
                      what=f"registry '{registry.name}': aws {info.service} get-login-password",
                      hint=CREDS_HINT, extra_env=extra)
    except CloudAuthError as exc:
        if "Unable to locate credentials" in exc.message and not registry.profile:
            raise NotConfigured("no AWS credentials found (aws CLI: Unable to locate "
                                "credentials)", hint=CREDS_HINT) from None
        raise
    password = out.strip()
    if not password:
        raise CloudAuthError(f"registry '{registry.name}': `aws {info.service} get-login-password` "
                             "printed nothing", hint=CREDS_HINT)
    redact.register_basic(USERNAME, password)
    return Credentials(source=f"aws {info.service} get-login-password ({info.region})",
                       username=USERNAME, password=password, method="aws CLI",
                       expires_at=in_hours(TOKEN_HOURS),
                       principal=f"profile {registry.profile}" if registry.profile else None)


# -- the adapter -----------------------------------------------------------------------------

def _cache_key(registry, info: EcrHost, env) -> tuple:
    return ("ecr", info.service, info.region, info.fips, registry.profile, registry.role_arn,
            env.get("AWS_PROFILE"), env.get("AWS_ACCESS_KEY_ID"),
            env.get("AWS_ENDPOINT_URL_ECR") or env.get("AWS_ENDPOINT_URL"))


def credentials(registry, env, *, cache=None) -> Credentials:
    info = host_info(registry)
    key = _cache_key(registry, info, env)
    if cache is not None and (hit := cache.get(key)) is not None:
        return hit
    boto3 = _boto3()
    if boto3 is not None:
        creds = _via_boto3(boto3, registry, info)
    elif which("aws", env):
        creds = _via_cli(registry, info, env)
    else:
        raise NotConfigured("boto3 is not installed and the aws CLI is not on PATH",
                            hint=TOOL_HINT)
    return cache.put(key, creds, half_life=True) if cache is not None else creds


def prepare_push(registry, env) -> None:
    """`create_repository: true`: create the repository if ECR does not have it."""
    if not getattr(registry, "create_repository", False):
        return
    info = host_info(registry)
    boto3 = _boto3()
    if boto3 is not None:
        created = _create_boto3(boto3, registry, info)
    elif which("aws", env):
        created = _create_cli(registry, info, env)
    else:
        raise UsageError(f"registry '{registry.name}': create_repository needs boto3 or the aws "
                         "CLI", hint=TOOL_HINT)
    if created:
        sys.stderr.write(f"note: created ECR repository {registry.repository} "
                         f"({registry.registry})\n")


def _registry_id(info: EcrHost) -> dict:
    return {"registryId": info.account} if info.account and not info.public else {}


def _create_boto3(boto3, registry, info: EcrHost) -> bool:
    # optional SDK (extra [aws]): imported only when an ECR registry uses it
    # lazy: optional extra [aws]
    import botocore.exceptions as bex

    client = make_client(_session(boto3, registry, info), info.service, info)
    try:
        client.describe_repositories(repositoryNames=[registry.repository], **_registry_id(info))
        return False
    except bex.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "RepositoryNotFoundException":
            raise _aws_error(exc, registry, info, f"{info.service}:DescribeRepositories") from None
    except bex.NoCredentialsError:
        raise UsageError(f"registry '{registry.name}': create_repository needs AWS credentials",
                         hint=CREDS_HINT) from None
    except bex.BotoCoreError as exc:
        raise _aws_error(exc, registry, info, f"{info.service}:DescribeRepositories") from None
    try:
        client.create_repository(repositoryName=registry.repository, **_registry_id(info))
    except bex.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "RepositoryAlreadyExistsException":
            return False                        # created meanwhile by a parallel job
        raise _aws_error(exc, registry, info, f"{info.service}:CreateRepository") from None
    except bex.BotoCoreError as exc:
        raise _aws_error(exc, registry, info, f"{info.service}:CreateRepository") from None
    return True


def _create_cli(registry, info: EcrHost, env) -> bool:
    args, extra = _cli_args(registry, info)
    if info.account and not info.public:
        args += ["--registry-id", info.account]
    what = f"registry '{registry.name}': aws {info.service} describe-repositories"
    try:
        out = run_cli(["aws", info.service, "describe-repositories", "--repository-names",
                       registry.repository, "--output", "json", *args], env, what=what,
                      hint=CREDS_HINT, extra_env=extra)
        json.loads(out or "{}")
        return False
    except CloudAuthError as exc:
        if "RepositoryNotFoundException" not in exc.message:
            raise
    run_cli(["aws", info.service, "create-repository", "--repository-name", registry.repository,
             "--output", "json", *args], env,
            what=f"registry '{registry.name}': aws {info.service} create-repository",
            hint=CREDS_HINT, extra_env=extra)
    return True
