"""Offline stand-ins for the clouds the login adapters talk to (no network beyond loopback).

    env = offline_env(tmp_path, bin_dir)          # hermetic env: no real cloud credentials,
                                                  # metadata servers off, HOME in tmp_path
    moto = MotoServer().start()                   # ECR API (moto's server); moto.endpoint
    moto.token_password                           # "123456789012-auth-token" (user AWS)

    stub = CliStub(bin_dir, "aws")                # an executable `aws` on PATH
    stub.on(["ecr", "get-login-password"], stdout="pw\\n")     # first matching prefix wins
    stub.calls                                    # argv lists it was run with

    key = make_service_account_key(path, token_uri=gts.token_uri)   # real RSA key, JSON file
    gts = GoogleTokenServer(pki, access_token="ya29...").start()
          # POST /token: a JWT-bearer grant whose RS256 signature is checked against the
          # key's public half; answers {"access_token", "expires_in": 3599}
    acr = AcrTokenServer(signer, pki=pki, aad_tokens={...}).start()
          # a distribution token server (tokenserver.py) at /oauth2/token that also serves
          # POST /oauth2/exchange (grant_type=access_token) -> {"refresh_token": ...}

    fake_jwt({"aud": ..., "tid": ...})            # an unsigned JWT-shaped token (Entra stand-in)
    hide_modules(tmp_path, "boto3")               # a PYTHONPATH entry on which `import boto3`
                                                  # fails, to test "extra not installed"

The product is run as a subprocess with these; these helpers never import pipeline/.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import secrets
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from pathlib import Path

from .pki import PKI
from .tokenserver import TokenServer, _Server
from .tokenserver import _Handler as _TokenHandler

NULL_USER = "00000000-0000-0000-0000-000000000000"
CLOUD_ENV_PREFIXES = ("AWS_", "GOOGLE_", "GCLOUD_", "CLOUDSDK_", "GCE_", "AZURE_", "MSI_",
                      "IDENTITY_", "IMDS_", "GITHUB_", "CI_", "DOCKERHUB_", "GITLAB_")
CLOUD_ENV_NAMES = ("GH_TOKEN", "CR_PAT", "DOCKER_AUTH_CONFIG", "NO_GCE_CHECK", "REQUESTS_CA_BUNDLE",
                   "RELEASE_CONFIG")


def offline_env(tmp_path: Path, bin_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """os.environ without any cloud credentials, with every metadata-server probe off.

    HOME, DOCKER_CONFIG, the AWS/gcloud config dirs point into tmp_path, so nothing on
    this machine can make a login pass (or fail) by accident. PATH: `bin_dir` (stubs), then
    a directory with only the system tools release may run (git): never a real aws, gcloud
    or az that happens to be installed.
    """
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(CLOUD_ENV_PREFIXES) and k not in CLOUD_ENV_NAMES}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (tmp_path / "docker-config").mkdir(exist_ok=True)
    env.update({
        "HOME": str(home),
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),
        "PATH": os.pathsep.join(([str(bin_dir)] if bin_dir else []) + [_sysbin(tmp_path)]),
        # AWS: no instance metadata (169.254.169.254), no shared files of this machine
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        # Google: no GCE metadata server probe, gcloud config in tmp
        "NO_GCE_CHECK": "true",
        "GCE_METADATA_HOST": "127.0.0.1:9",
        "GCE_METADATA_IP": "127.0.0.1:9",
        "CLOUDSDK_CONFIG": str(home / "gcloud"),
        # Azure: only the az CLI credential (no managed-identity probe of 169.254.169.254)
        "AZURE_TOKEN_CREDENTIALS": "AzureCliCredential",
        "AZURE_CONFIG_DIR": str(home / "azure"),
    })
    env.update(extra)
    return env


SYSTEM_TOOLS = ("git",)


def _sysbin(tmp_path: Path) -> str:
    import shutil

    sysbin = tmp_path / "sysbin"
    sysbin.mkdir(exist_ok=True)
    for tool in SYSTEM_TOOLS:
        found = shutil.which(tool)
        if found and not (sysbin / tool).exists():
            (sysbin / tool).symlink_to(found)
    return str(sysbin)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- ECR: moto's server --------------------------------------------------------------------

class MotoServer:
    """moto's ThreadedMotoServer on 127.0.0.1 (AWS_ENDPOINT_URL_ECR=server.endpoint)."""

    ACCOUNT = "123456789012"

    def __init__(self, *, token_hours: float | None = 12.0):
        """token_hours: moto always says a token expires on 2015-01-01; with a number, the
        running server's answer says now + token_hours instead (what ECR says: 12 h)."""
        self.port = free_port()
        self.token_hours = token_hours
        self._server = None
        self._original = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_password(self) -> str:
        """The password moto's GetAuthorizationToken hands out (user AWS)."""
        return f"{self.ACCOUNT}-auth-token"

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL_ECR": self.endpoint, "AWS_ENDPOINT_URL_STS": self.endpoint,
                "AWS_ACCESS_KEY_ID": "AKIATESTMOTO0000", "AWS_SECRET_ACCESS_KEY":
                "moto-secret-access-key-for-tests", "AWS_DEFAULT_REGION": "us-east-1"}

    def start(self) -> "MotoServer":
        from moto.server import ThreadedMotoServer

        if self.token_hours is not None:
            self._patch_expiry()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        return self

    def _patch_expiry(self) -> None:
        from datetime import datetime, timedelta, timezone

        from moto.ecr.responses import ECRResponse

        original = ECRResponse.get_authorization_token
        hours = self.token_hours

        def get_authorization_token(response_self):
            result = original(response_self)
            for entry in result.result["authorizationData"]:
                entry["expiresAt"] = datetime.now(timezone.utc) + timedelta(hours=hours)
            return result

        self._original = original
        ECRResponse.get_authorization_token = get_authorization_token

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._original is not None:
            from moto.ecr.responses import ECRResponse

            ECRResponse.get_authorization_token = self._original
            self._original = None

    def client(self, service: str = "ecr", region: str = "us-east-1"):
        import boto3

        e = self.env()
        return boto3.client(service, region_name=region, endpoint_url=self.endpoint,
                            aws_access_key_id=e["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=e["AWS_SECRET_ACCESS_KEY"])


# --- stub CLIs on PATH ---------------------------------------------------------------------

_STUB = '''#!{python}
import json, os, sys
spec_file = {spec!r}
with open(spec_file) as f:
    spec = json.load(f)
argv = sys.argv[1:]
stdin = sys.stdin.read() if spec.get("read_stdin") else ""
with open(spec["log"], "a") as f:
    f.write(json.dumps({{"argv": argv, "stdin": stdin}}) + "\\n")
for rule in spec["rules"]:
    want = rule["argv"]
    if argv[:len(want)] == want and all(x in argv for x in rule.get("contains", [])):
        sys.stdout.write(rule.get("stdout", ""))
        sys.stderr.write(rule.get("stderr", ""))
        sys.exit(rule.get("exit", 0))
sys.stderr.write("stub {name}: unexpected arguments: " + " ".join(argv) + "\\n")
sys.exit(2)
'''


class CliStub:
    """An executable `name` in `bin_dir` that answers by argv prefix and logs every call."""

    def __init__(self, bin_dir: Path, name: str, *, read_stdin: bool = False):
        self.bin_dir = Path(bin_dir)
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.path = self.bin_dir / name
        self.spec_path = self.bin_dir / f".{name}.json"
        self.log_path = self.bin_dir / f".{name}.log"
        self.spec = {"rules": [], "log": str(self.log_path), "read_stdin": read_stdin}
        self.path.write_text(_STUB.format(python=sys.executable, spec=str(self.spec_path),
                                          name=name))
        self.path.chmod(0o755)
        self._save()

    def on(self, argv: list[str], *, stdout: str = "", stderr: str = "", exit: int = 0,
           contains: list[str] | None = None) -> "CliStub":
        self.spec["rules"].append({"argv": argv, "stdout": stdout, "stderr": stderr,
                                   "exit": exit, "contains": contains or []})
        self._save()
        return self

    def _save(self) -> None:
        self.spec_path.write_text(json.dumps(self.spec))

    @property
    def calls(self) -> list[list[str]]:
        return [c["argv"] for c in self.records]

    @property
    def records(self) -> list[dict]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]


def hide_modules(tmp_path: Path, *names: str) -> str:
    """A directory to put first on PYTHONPATH: `import NAME` raises ImportError there."""
    root = tmp_path / "hide-modules"
    for name in names:
        pkg = root / name
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").write_text(f"raise ImportError('{name} hidden by the test')\n")
    return str(root)


# --- JWTs ----------------------------------------------------------------------------------

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fake_jwt(claims: dict) -> str:
    """A JWT-shaped token (header.payload.signature) that nobody verifies: an Entra stand-in."""
    header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps(claims).encode())
    return f"{header}.{payload}.{_b64url(secrets.token_bytes(32))}"


def jwt_claims(token: str) -> dict:
    return json.loads(_b64url_decode(token.split(".")[1]))


# --- a small HTTPS server ------------------------------------------------------------------

class _StubHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode(errors="replace"))
        path = urllib.parse.urlsplit(self.path).path
        if self.server.owner.raw_answer is not None:
            self.server.owner.requests.append((path, {}))
            return _send_raw(self, *self.server.owner.raw_answer)
        status, body = self.server.owner.handle(path, {k: v[0] for k, v in form.items()})
        self._send(status, body)


def _send_raw(handler, status: int, body: str, content_type: str = "text/html") -> None:
    """A non-JSON answer (what a proxy or load balancer in front of a token endpoint sends)."""
    data = body.encode()
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


# An HTML error page as a proxy in front of a token endpoint sends it (30+ lines).
PROXY_ERROR_PAGE = ("<!DOCTYPE html>\n<html>\n<head>\n"
                    "<title>403 Forbidden - corporate proxy</title>\n"
                    "<style>body { font-family: sans-serif; }</style>\n</head>\n<body>\n"
                    + "".join(f"<p>policy line {i}: access to this site is blocked</p>\n"
                              for i in range(30))
                    + "</body>\n</html>\n")


class _HTTPSStub:
    def __init__(self, pki: PKI):
        self.pki = pki
        self._server: _Server | None = None
        self.port = 0
        self.requests: list[tuple[str, dict]] = []
        self.raw_answer: tuple[int, str] | None = None   # (status, body): answer this instead

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def start(self):
        server = _Server(("127.0.0.1", 0), _StubHandler)
        server.owner = self
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.pki.server_cert), str(self.pki.server_key))
        server.ssl_context = ctx
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
            self._server = None

    def handle(self, path: str, form: dict) -> tuple[int, dict]:   # pragma: no cover
        raise NotImplementedError


# --- Google: a service-account key and its token endpoint ------------------------------------

def make_service_account_key(path: Path, *, token_uri: str,
                             email: str = "release-push@test-project.iam.gserviceaccount.com"
                             ) -> dict:
    """Write a real service-account key (fresh RSA key) whose token_uri is `token_uri`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    data = {"type": "service_account", "project_id": "test-project",
            "private_key_id": secrets.token_hex(20), "private_key": pem,
            "client_email": email, "client_id": str(secrets.randbelow(10**20)),
            "auth_uri": "https://accounts.invalid/o/oauth2/auth", "token_uri": token_uri}
    path.write_text(json.dumps(data, indent=2))
    return data


class GoogleTokenServer(_HTTPSStub):
    """An OAuth2 token endpoint for service-account JWT-bearer grants (RFC 7523), over HTTPS.

    The assertion's RS256 signature is checked with the public key of each key added with
    trust(); iss must be the key's client_email, aud this token_uri or Google's. refuse=True answers
    400 invalid_grant (what Google says for a disabled or deleted key).
    """

    GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    GOOGLE_TOKEN_ENDPOINT = "https://oauth2.googleapis.com/token"

    def __init__(self, pki: PKI, *, access_token: str | None = None, expires_in: int = 3599):
        super().__init__(pki)
        self.access_token = access_token or "ya29.test-" + secrets.token_urlsafe(24)
        self.expires_in = expires_in
        self.keys: dict[str, object] = {}
        self.refuse = False
        self.issued = 0

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def trust(self, key_data: dict) -> None:
        from cryptography.hazmat.primitives import serialization

        private = serialization.load_pem_private_key(key_data["private_key"].encode(), None)
        self.keys[key_data["client_email"]] = private.public_key()

    def handle(self, path: str, form: dict) -> tuple[int, dict]:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        self.requests.append((path, {k: v for k, v in form.items() if k != "assertion"}))
        if path != "/token":
            return 404, {"error": "not_found"}
        if form.get("grant_type") != self.GRANT:
            return 400, {"error": "unsupported_grant_type"}
        if self.refuse:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        try:
            head, body, sig = form["assertion"].split(".")
            claims = json.loads(_b64url_decode(body))
            public = self.keys[claims["iss"]]
            public.verify(_b64url_decode(sig), f"{head}.{body}".encode(), padding.PKCS1v15(),
                          hashes.SHA256())
        except (KeyError, ValueError, InvalidSignature):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        # google-auth always signs for Google's own endpoint, whatever token_uri says
        if claims.get("aud") not in (self.token_uri, self.GOOGLE_TOKEN_ENDPOINT) or \
                claims.get("exp", 0) < time.time():
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT: aud/exp"}
        self.issued += 1
        return 200, {"access_token": self.access_token, "expires_in": self.expires_in,
                     "token_type": "Bearer"}


# --- Azure: ACR's /oauth2/exchange in front of a distribution token server --------------------

class _AcrHandler(_TokenHandler):
    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        if path != "/oauth2/exchange":
            return super().do_POST()
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in urllib.parse.parse_qs(
            self.rfile.read(length).decode(errors="replace")).items()}
        if self.ts.raw_answer is not None:
            self.ts.exchanges.append({k: v for k, v in form.items() if k != "access_token"})
            return _send_raw(self, *self.ts.raw_answer)
        status, body = self.ts.exchange(form)
        self._send_json(status, body)


class AcrTokenServer(TokenServer):
    """A TokenServer at /oauth2/token (as ACR) that also answers POST /oauth2/exchange.

    The exchange takes `grant_type=access_token` with one of `aad_tokens` whose JWT `aud`
    is in `audiences` (and `tenant` when given) and answers the ACR refresh token, which
    the token server then accepts as the password of user 00000000-0000-0000-0000-000000000000
    (Basic on GET, like ACR). Put it in a TokenRegistry with swap_into().
    """

    def __init__(self, signer, *, aad_tokens: set[str], tenant: str,
                 audiences: tuple[str, ...] = ("https://containerregistry.azure.net",),
                 refresh_lifetime: int = 3 * 3600, **kwargs):
        kwargs.setdefault("path", "/oauth2/token")
        super().__init__(signer, **kwargs)
        self.aad_tokens = set(aad_tokens)
        self.tenant = tenant
        self.audiences = tuple(audiences)
        now = int(time.time())
        self.refresh_token = signer.jwt({"iss": "release-test-acr", "sub": NULL_USER,
                                         "exp": now + refresh_lifetime, "iat": now,
                                         "grant_type": "refresh_token",
                                         "jti": secrets.token_hex(8)})
        self.users[NULL_USER] = self.refresh_token
        self.exchanges: list[dict] = []
        self.echo = False               # put the refused access token in the error message
        self.raw_answer: tuple[int, str] | None = None   # (status, body) for /oauth2/exchange

    def exchange(self, form: dict) -> tuple[int, dict]:
        self.exchanges.append({k: v for k, v in form.items() if k != "access_token"})
        if form.get("grant_type") != "access_token":
            return 400, {"errors": [{"code": "UNSUPPORTED", "message": "unsupported grant"}]}
        if form.get("service") != self.service:
            return 400, {"errors": [{"code": "INVALID", "message": "unknown service"}]}
        token = form.get("access_token", "")
        try:
            aud = jwt_claims(token).get("aud")
        except (ValueError, IndexError):
            aud = None
        if token not in self.aad_tokens or aud not in self.audiences or \
                form.get("tenant", self.tenant) != self.tenant:
            shown = f" ({token})" if self.echo else ""
            return 401, {"errors": [{"code": "UNAUTHORIZED",
                                     "message": f"token audience {aud} not accepted{shown}"}]}
        return 200, {"refresh_token": self.refresh_token}

    def start(self) -> "AcrTokenServer":
        if self._server is not None:
            return self
        server = _Server((self.bind_ip, self.port), _AcrHandler)
        server.token_server = self
        if self.pki is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(self.pki.server_cert), str(self.pki.server_key))
            server.ssl_context = ctx
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"acr-token-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def swap_into(self, registry) -> None:
        """Make a TokenRegistry (not started yet) use this server as its token server."""
        assert not registry.running
        self.service = registry.token_server.service
        self.issuer = registry.token_server.issuer
        self.host_name = registry.token_server.host_name
        self.bind_ip = registry.token_server.bind_ip
        registry.token_server = self
        registry.username, registry.password = NULL_USER, self.refresh_token
        from .tokenserver import BearerAuth
        registry._bearer = BearerAuth(NULL_USER, self.refresh_token, verify=registry._verify())


# --- running `release` against these ---------------------------------------------------------

RELEASE = [sys.executable, "-m", "pipeline"]


def write_project(tmp_path: Path, registries: str) -> Path:
    """release.yml with a FROM-scratch image of unique content and the given registries:
    YAML list items, written at column 0 ("- name: x\\n  type: ecr\\n ...")."""
    import textwrap
    import uuid

    from .images import write_context

    write_context(tmp_path / "app", f"cloud login test {uuid.uuid4()}")
    path = tmp_path / "release.yml"
    path.write_text(f"image:\n  name: cloudtest-{uuid.uuid4().hex[:8]}\n  context: app\n"
                    "registries:\n" + textwrap.indent(textwrap.dedent(registries), "  "))
    return path


def run_release(config: Path, *args: str, env: dict[str, str], timeout: float = 180):
    import subprocess

    return subprocess.run([*RELEASE, "-c", str(config), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=config.parent)


def secret_forms(secret: str, user: str | None = None) -> list[str]:
    """The secret and the encodings a client sends it in (base64, base64 user:secret)."""
    forms = [secret, base64.b64encode(secret.encode()).decode()]
    if user is not None:
        forms.append(base64.b64encode(f"{user}:{secret}".encode()).decode())
    return forms


def assert_no_leak(proc, *secrets: str, user: str | None = None) -> None:
    """No secret (in any usual encoding) on stdout, or on stderr outside ::add-mask:: lines."""
    stderr = "\n".join(line for line in proc.stderr.splitlines()
                       if not line.startswith("::add-mask::"))
    for secret in secrets:
        for form in secret_forms(secret, user):
            assert form not in proc.stdout, f"a secret ({form[:6]}...) reached stdout"
            assert form not in stderr, f"a secret ({form[:6]}...) reached stderr"


def masked(proc, secret: str) -> bool:
    """Did the run tell GitHub Actions to mask `secret`?"""
    return f"::add-mask::{secret}" in proc.stderr.splitlines()
