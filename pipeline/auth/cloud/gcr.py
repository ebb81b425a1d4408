"""`type: gcr`: Google Artifact Registry (`*-docker.pkg.dev`) and Container Registry (`*gcr.io`).

In order:
  * `key_file:` in release.yml: a service-account JSON key, sent as user `_json_key` with
    the whole key as password (no Google library needed; the key is long-lived);
  * google-auth (extra [gcp], imported lazily) application default credentials:
    GOOGLE_APPLICATION_CREDENTIALS (service-account key, workload identity federation,
    authorized user), gcloud's ADC file, the GCE/GKE/Cloud Run metadata server. The
    access token (about 1 h) is the password of user `oauth2accesstoken`;
  * `gcloud auth print-access-token` (a gcloud user login, which ADC does not see);
  * then `DOCKER_AUTH_CONFIG` and the Docker config (e.g. the `gcloud` credential helper),
    also when gcloud is installed but not logged in (no active account): as ECR and ACR
    do. gcloud's first error line is kept in the message shown when nothing is found.
    A gcloud login that Google refuses (expired, revoked) is an error, not a fallback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pipeline.auth.cloud.common import (
    CliFailed,
    CloudAuthError,
    NotConfigured,
    aware,
    looks_like_json,
    pip_hint,
    quiet_logs,
    run_cli,
    summarise_body,
    which,
)
from pipeline.auth.credentials import Credentials
from pipeline.errors import UsageError
from pipeline.registry.session import HTTPError, Session
from pipeline.ui import redact

TOKEN_USER = "oauth2accesstoken"
KEY_USER = "_json_key"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
TIMEOUT = 30.0
HINT = ("set GOOGLE_APPLICATION_CREDENTIALS (google-github-actions/auth in GitHub Actions), run "
        "`gcloud auth application-default login` or `gcloud auth login`, give key_file: in "
        "release.yml, or run on GCP with a service account")
TOOL_HINT = (f"{pip_hint('gcp')} (google-auth), or install the gcloud CLI; or configure the "
             "Docker credential helper (`gcloud auth configure-docker HOST`)")


def credentials(registry, env, *, cache=None) -> Credentials:
    if getattr(registry, "key_file", None):
        return _key_file(registry, Path(registry.key_file))
    key = ("gcr", env.get("GOOGLE_APPLICATION_CREDENTIALS"), env.get("CLOUDSDK_CONFIG"),
           env.get("CLOUDSDK_CORE_ACCOUNT"))
    if cache is not None and (hit := cache.get(key)) is not None:
        return hit
    creds = _resolve(registry, env)
    return cache.put(key, creds) if cache is not None else creds


def _resolve(registry, env) -> Credentials:
    sdk = _google()
    no_adc = None
    if sdk is not None:
        try:
            return _via_google_auth(registry, env)
        except NotConfigured as exc:
            no_adc = exc
    if which("gcloud", env):
        try:
            return _via_gcloud(registry, env)
        except NotConfigured as not_logged_in:
            if no_adc is not None:
                raise NotConfigured(f"{no_adc.message}, and {not_logged_in.message}",
                                    hint=HINT) from None
            raise
    if no_adc is not None:
        raise no_adc
    raise NotConfigured("google-auth is not installed and the gcloud CLI is not on PATH",
                        hint=TOOL_HINT)


def _google():
    try:
        # optional SDK (extra [gcp]): imported here, to see whether it is installed
        # lazy: optional extra [gcp]
        import google.auth
        import google.auth.transport
    except ImportError:
        return None
    return google.auth


def _google_request(session: Session):
    """google-auth's transport, over our HTTP session: the proxies and CAs (REQUESTS_CA_BUNDLE,
    SSL_CERT_FILE) of every other request we make, without google-auth's requests extra."""
    # optional SDK (extra [gcp]): imported only when a gcr registry uses it
    # lazy: optional extra [gcp]
    import google.auth.exceptions as gex
    from google.auth import transport

    class Response(transport.Response):
        def __init__(self, resp):
            self._resp = resp

        status = property(lambda self: self._resp.status_code)
        headers = property(lambda self: self._resp.headers)
        data = property(lambda self: self._resp.content)

    class Request(transport.Request):
        def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
            try:
                return Response(session.request(method, url, data=body, headers=headers,
                                                timeout=timeout or TIMEOUT))
            except HTTPError as exc:
                raise gex.TransportError(str(exc)) from None

    return Request()


def _register_key_file(path: str | None) -> None:
    """A service-account key named by GOOGLE_APPLICATION_CREDENTIALS holds a private key:
    register it before google-auth reads it, so no error message can show it."""
    if not path:
        return
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return
    if isinstance(data, dict):
        for field in ("private_key", "client_secret", "refresh_token"):
            if isinstance(data.get(field), str):
                redact.register(data[field])


def _via_google_auth(registry, env) -> Credentials:
    # optional SDK (extra [gcp]): imported only when a gcr registry uses it
    # lazy: optional extra [gcp]
    import google.auth
    import google.auth.exceptions as gex

    adc_file = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")   # what google-auth reads
    _register_key_file(adc_file)
    try:
        with quiet_logs():
            creds, _project = google.auth.default(scopes=list(SCOPES))
    except gex.DefaultCredentialsError as exc:
        text = redact.redact(str(exc))
        if adc_file:
            raise UsageError(f"registry '{registry.name}': Google credentials file: {text}",
                             hint="GOOGLE_APPLICATION_CREDENTIALS must name a readable JSON "
                                  "credentials file") from None
        raise NotConfigured("no Google application default credentials", hint=HINT) from None
    try:
        with quiet_logs(), Session(pool_size=1) as session:
            creds.refresh(_google_request(session))
    except gex.RefreshError as exc:
        raise CloudAuthError(f"registry '{registry.name}': Google refused the credentials "
                             f"(expired, revoked or disabled?): {_short(exc)}",
                             hint="renew them: `gcloud auth application-default login`, a new "
                                  "service-account key, or check the workload identity "
                                  "provider") from None
    except gex.TransportError as exc:
        raise CloudAuthError(f"registry '{registry.name}': cannot reach Google's token endpoint: "
                             f"{_short(exc)}", hint="check the network or proxy (HTTPS_PROXY)") \
            from None
    token = creds.token
    if not token:
        raise CloudAuthError(f"registry '{registry.name}': google-auth returned no access token")
    redact.register_basic(TOKEN_USER, token)
    email = getattr(creds, "service_account_email", None)
    principal = email if isinstance(email, str) and "@" in email else None
    return Credentials(source="Google application default credentials (google-auth)",
                       username=TOKEN_USER, password=token, method="google-auth",
                       expires_at=aware(getattr(creds, "expiry", None)), principal=principal)


def _short(exc: Exception) -> str:
    """google-auth's message: "error: description" from a JSON answer, but the whole body
    when the token endpoint answered something else (a proxy's HTML page): summarised."""
    raw = exc.args[0] if exc.args else exc
    text = str(raw)
    from_json = len(exc.args) > 1 and isinstance(exc.args[1], (dict, list))
    if isinstance(raw, str) and not from_json and not looks_like_json(text) and \
            ("\n" in text.strip() or text.lstrip()[:1] == "<" or len(text) > 300):
        return "the token endpoint answered " + summarise_body(text)
    text = redact.redact(text)
    return text if len(text) < 300 else text[:300] + "..."


# gcloud's words for "installed, but nobody is logged in" (not: a login Google refuses)
NOT_LOGGED_IN = ("do not currently have an active account", "no credentialed accounts")


def _via_gcloud(registry, env) -> Credentials:
    try:
        out = run_cli(["gcloud", "auth", "print-access-token"], env,
                      what=f"registry '{registry.name}': gcloud auth print-access-token",
                      hint="run `gcloud auth login`")
    except CliFailed as exc:
        if any(phrase in exc.stderr.lower() for phrase in NOT_LOGGED_IN):
            raise NotConfigured(f"gcloud is not logged in (gcloud: {exc.first_line})",
                                hint=HINT) from None
        raise
    token = out.strip()
    if not token:
        raise CloudAuthError(f"registry '{registry.name}': `gcloud auth print-access-token` "
                             "printed nothing", hint="run `gcloud auth login`")
    redact.register_basic(TOKEN_USER, token)
    return Credentials(source="gcloud auth print-access-token", username=TOKEN_USER,
                       password=token, method="gcloud CLI")


def _key_file(registry, path: Path) -> Credentials:
    where = f"registry '{registry.name}': key_file {path}"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"{where} not found",
                         hint="key_file is relative to the directory of release.yml; write the "
                              "key there before running (e.g. from a CI secret)") from None
    except OSError as exc:
        raise UsageError(f"{where}: {exc.strerror or exc}") from None
    redact.register(text)
    redact.register(text.strip())
    try:
        data = json.loads(text)
    except ValueError:
        raise UsageError(f"{where} is not JSON",
                         hint="key_file must be a service-account key (JSON) from "
                              "`gcloud iam service-accounts keys create`") from None
    if not isinstance(data, dict) or data.get("type") != "service_account":
        raise UsageError(f"{where} is not a service-account key (\"type\": "
                         f"{(data.get('type') if isinstance(data, dict) else None)!r})",
                         hint="key_file must be a service-account key; for other credential "
                              "files use GOOGLE_APPLICATION_CREDENTIALS") from None
    if isinstance(data.get("private_key"), str):
        redact.register(data["private_key"])
    redact.register_basic(KEY_USER, text)
    email = data.get("client_email") if isinstance(data.get("client_email"), str) else None
    return Credentials(source=f"service-account key {path.name}", username=KEY_USER,
                       password=text, method="key file", principal=email)
