"""`type: acr`: Azure Container Registry (`*.azurecr.io`, `.azurecr.cn`, `.azurecr.us`).

A service principal or the admin user: `username_env`/`password_env` (dispatcher).
Otherwise an Entra ID access token, from azure-identity's DefaultAzureCredential (extra
[azure], imported lazily: environment service principal, workload identity, managed
identity, az CLI, ...) or else `az account get-access-token`, is exchanged at the
registry for an ACR refresh token:

    GET  https://REGISTRY/v2/               -> 401 Bearer realm="https://R/oauth2/token",service=S
    POST https://R/oauth2/exchange          grant_type=access_token, service=S, tenant=T,
                                            access_token=<Entra token>
                                            -> {"refresh_token": "..."}

and the refresh token is the password of user 00000000-0000-0000-0000-000000000000 (what
`az acr login --expose-token` hands to docker). The ACR audience is asked first, the
Azure Resource Manager audience second (registries that only take ARM tokens). The
refresh token lives about 3 hours (its JWT `exp`).
"""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import urlsplit

from pipeline.auth.cloud.common import (
    CloudAuthError,
    NotConfigured,
    aware,
    jwt_claims,
    pip_hint,
    quiet_loggers,
    quiet_logs,
    run_cli,
    summarise_body,
    utcnow,
    which,
)
from pipeline.auth.credentials import Credentials
from pipeline.registry.auth import parse_challenge
from pipeline.registry.errors import TRANSIENT_STATUSES, certificate_refused, short
from pipeline.registry.retry import TOKEN_ATTEMPTS, TOKEN_MAX_DELAY, retrying
from pipeline.registry.session import HTTPError, Session
from pipeline.registry.tls import docker_certs_d_ca, ssl_verify
from pipeline.ui import redact

NULL_USER = "00000000-0000-0000-0000-000000000000"
ACR_SCOPE = "https://containerregistry.azure.net/.default"
ARM_SCOPES = {".azurecr.cn": "https://management.chinacloudapi.cn/.default",
              ".azurecr.us": "https://management.usgovcloudapi.net/.default"}
ARM_SCOPE = "https://management.azure.com/.default"
REFRESH_HOURS = 3
TIMEOUT = 30.0
HINT = ("run `az login` (azure/login in GitHub Actions), set AZURE_CLIENT_ID/AZURE_TENANT_ID "
        "with AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE, use a managed identity, or "
        "set username_env/password_env to a service principal or the admin user")
TOOL_HINT = (f"{pip_hint('azure')} (azure-identity), or install the Azure CLI and run `az "
             "login`; or set username_env/password_env to a service principal or the admin user")


class _Refused(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def scopes_for(host: str) -> tuple[str, str]:
    name = host.lower().split(":", 1)[0]
    arm = next((scope for suffix, scope in ARM_SCOPES.items() if name.endswith(suffix)), ARM_SCOPE)
    return ACR_SCOPE, arm


def credentials(registry, env, *, cache=None) -> Credentials:
    key = ("acr", registry.registry.lower())
    if cache is not None and (hit := cache.get(key)) is not None:
        return hit
    source = _token_source(env)
    exchange_url, service = discover(registry)
    refused: list[str] = []
    for scope in scopes_for(registry.registry):
        entra, tenant, principal = source(registry, scope, env)
        try:
            refresh = exchange(registry, exchange_url, service, tenant, entra)
        except _Refused as exc:
            refused.append(f"{_audience(scope)} token: {exc.message}")
            continue
        claims = jwt_claims(refresh)
        expires = aware(claims.get("exp")) if isinstance(claims.get("exp"), (int, float)) else None
        creds = Credentials(source=f"Entra ID token ({source.label}) exchanged at {exchange_url}",
                            username=NULL_USER, password=refresh,
                            method=f"{source.label} + ACR exchange",
                            expires_at=expires or utcnow() + timedelta(hours=REFRESH_HOURS),
                            principal=principal)
        return cache.put(key, creds) if cache is not None else creds
    raise CloudAuthError(f"registry '{registry.name}': {registry.registry} refused the Entra ID "
                         f"token: {'; '.join(refused)}",
                         hint="give this identity a role on the registry (AcrPush), check the "
                              "tenant, or use a service principal with username_env/"
                              "password_env")


def _audience(scope: str) -> str:
    return "ACR-audience" if scope == ACR_SCOPE else "ARM-audience"


# -- where the Entra ID token comes from --------------------------------------------------------

def _token_source(env):
    try:
        # optional SDK (extra [azure]): imported here, to see whether it is installed
        # lazy: optional extra [azure]
        import azure.identity  # noqa: F401 (is it installed?)
    except ImportError:
        if which("az", env):
            return _az_cli
        raise NotConfigured("azure-identity is not installed and the az CLI is not on PATH",
                            hint=TOOL_HINT) from None
    return _azure_identity


def _azure_identity(registry, scope: str, env) -> tuple[str, str | None, str | None]:
    # optional SDK (extra [azure]): imported only when an acr registry uses it
    # lazy: optional extra [azure]
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import CredentialUnavailableError, DefaultAzureCredential

    try:
        # azure-identity logs a WARNING of a dozen lines (one per credential it tried) when
        # none works; our own message below says what failed, in one line.
        with quiet_logs(), quiet_loggers(*AZURE_LOGGERS):
            credential = DefaultAzureCredential()
            token = credential.get_token(scope)
    except CredentialUnavailableError as exc:
        raise NotConfigured(f"no Azure credentials ({_first_line(exc)})", hint=HINT) from None
    except ClientAuthenticationError as exc:
        text = _first_line(exc)
        if "failed to retrieve a token from the included credentials" in text:
            raise NotConfigured(f"no Azure credentials (DefaultAzureCredential found none: "
                                f"{_attempted(exc)})", hint=HINT) from None
        raise CloudAuthError(f"registry '{registry.name}': Entra ID refused the credentials: "
                             f"{text}", hint=HINT) from None
    except ValueError as exc:            # e.g. a bad AZURE_TOKEN_CREDENTIALS
        raise CloudAuthError(f"registry '{registry.name}': azure-identity: {_first_line(exc)}",
                             hint=HINT) from None
    redact.register(token.token)
    claims = jwt_claims(token.token)
    return token.token, _str(claims.get("tid")), _principal(claims)


_azure_identity.label = "azure-identity"

AZURE_LOGGERS = ("azure.identity", "azure.core.pipeline.policies.http_logging_policy", "msal")


def _attempted(exc: Exception) -> str:
    """One line from DefaultAzureCredential's "Attempted credentials:" list: the names, and
    why the az CLI credential (else the last one) could not give a token."""
    text = str(getattr(exc, "message", None) or exc)
    reasons: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, why = line.strip().partition(": ")
        if sep and line[:1] in ("\t", " ") and name.endswith("Credential"):
            reasons[name] = why.split(". ")[0].rstrip(".")
    if not reasons:
        return "no credential could give a token"
    pick = "AzureCliCredential" if "AzureCliCredential" in reasons else list(reasons)[-1]
    shown = f"{pick}: {reasons[pick]}"
    if len(reasons) > 1:
        shown = f"tried {', '.join(reasons)}; {shown}"
    shown = redact.redact(shown)
    return shown if len(shown) <= 400 else shown[:400] + "..."


def _az_cli(registry, scope: str, env) -> tuple[str, str | None, str | None]:
    try:
        out = run_cli(["az", "account", "get-access-token", "--scope", scope, "--output", "json"],
                      env, what=f"registry '{registry.name}': az account get-access-token",
                      hint=HINT)
    except CloudAuthError as exc:
        if "az login" in exc.message:
            raise NotConfigured("the az CLI is not logged in", hint=HINT) from None
        raise
    try:
        data = json.loads(out)
        token = data["accessToken"]
    except (ValueError, KeyError, TypeError):
        raise CloudAuthError(f"registry '{registry.name}': `az account get-access-token` did not "
                             "print the expected JSON", hint="update the Azure CLI") from None
    redact.register(token)
    claims = jwt_claims(token)
    tenant = _str(data.get("tenant")) or _str(claims.get("tid"))
    return token, tenant, _principal(claims)


_az_cli.label = "az CLI"


def _principal(claims: dict) -> str | None:
    for name in ("upn", "unique_name", "preferred_username", "appid", "oid"):
        if isinstance(claims.get(name), str) and claims[name]:
            return claims[name]
    return None


def _str(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "message", None) or exc).strip().splitlines()
    return redact.redact(text[0] if text else type(exc).__name__)[:300]


# -- the exchange --------------------------------------------------------------------------------

def _verify(registry):
    if registry.insecure:
        return False
    return ssl_verify(registry.ca_file or docker_certs_d_ca(registry.registry))


class _Busy(Exception):
    """An answer worth asking again for (408/429/5xx); the last one is reported as it is."""

    transient = True

    def __init__(self, response):
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


class _Unreachable(Exception):
    """No answer at all: retried, unless the server's certificate was refused."""

    def __init__(self, exc, host: str):
        super().__init__(short(exc, host))
        self.transient = not certificate_refused(exc)


def _call(registry, method: str, url: str, **kw):
    """One request to the registry's endpoints, retried by the one policy (registry/retry.py)
    while the registry cannot answer; raises _Unreachable when it never answered."""
    verify = _verify(registry)

    def attempt():
        try:
            resp = session.request(method, url, timeout=TIMEOUT, verify=verify, **kw)
        except HTTPError as exc:
            raise _Unreachable(exc, registry.registry) from None
        if resp.status_code in TRANSIENT_STATUSES or resp.status_code >= 500:
            raise _Busy(resp)
        return resp

    with Session(pool_size=1) as session:
        try:
            return retrying(TOKEN_ATTEMPTS, TOKEN_MAX_DELAY)(attempt)
        except _Busy as busy:
            return busy.response


def discover(registry) -> tuple[str, str]:
    """(exchange URL, service) from the registry's /v2/ challenge; the registry itself if none."""
    host = registry.registry
    default = (f"https://{host}/oauth2/exchange", host.split(":", 1)[0])
    try:
        resp = _call(registry, "GET", f"https://{host}/v2/")
    except _Unreachable as exc:
        raise CloudAuthError(f"registry '{registry.name}': cannot reach https://{host}/v2/: "
                             f"{_first_line(exc)}",
                             hint="check the registry host and the network") from None
    challenge = parse_challenge(resp.headers.get("WWW-Authenticate"))
    if challenge is None or challenge.scheme != "bearer" or not challenge.params.get("realm"):
        return default
    realm = urlsplit(challenge.params["realm"])
    if realm.scheme != "https" or not realm.netloc:
        return default
    return (f"https://{realm.netloc}/oauth2/exchange",
            challenge.params.get("service") or default[1])


def exchange(registry, url: str, service: str, tenant: str | None, entra_token: str) -> str:
    """POST the Entra ID token to /oauth2/exchange; the ACR refresh token it answers."""
    form = {"grant_type": "access_token", "service": service, "access_token": entra_token}
    if tenant:
        form["tenant"] = tenant
    try:
        with quiet_logs():
            resp = _call(registry, "POST", url, data=form)
    except _Unreachable as exc:
        raise CloudAuthError(f"registry '{registry.name}': cannot reach {url}: "
                             f"{_first_line(exc)}") from None
    if resp.status_code in (400, 401, 403):
        raise _Refused(f"HTTP {resp.status_code} {_error_text(resp)}".strip())
    if resp.status_code >= 300:
        raise CloudAuthError(f"registry '{registry.name}': {url} answered HTTP "
                             f"{resp.status_code} {_error_text(resp)}".rstrip())
    try:
        refresh = resp.json().get("refresh_token")
    except (ValueError, AttributeError):
        refresh = None
    if not isinstance(refresh, str) or not refresh:
        raise CloudAuthError(f"registry '{registry.name}': {url} answered without a "
                             "refresh_token")
    redact.register_basic(NULL_USER, refresh)
    return refresh


def _error_text(resp) -> str:
    try:
        body = resp.json()
    except ValueError:                  # a proxy's HTML page, a stack trace: summarised
        return f"({summarise_body(resp.text)})" if resp.text.strip() else ""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return redact.redact(str(errors[0].get("message") or errors[0].get("code") or ""))[:300]
        for key in ("error_description", "error", "details", "message"):
            if isinstance(body.get(key), str):
                return redact.redact(body[key])[:300]
    return ""
