"""A Docker-style token server and a distribution registry that uses it (`auth: token`).

    signer = make_signer(tmp_path / "signer")            # RSA key + self-signed cert (openssl CLI)
    ts = TokenServer(signer, users={"alice": "pw"}, pki=pki).start()
    ts.realm          "https://localhost:41235/token"
    ts.service        "release-test-registry"        (the JWT `aud`, the registry's `service`)
    ts.issuer         "release-test-token-issuer"    (the JWT `iss`, the registry's `issuer`)
    ts.stats          {"GET": 2, "POST password": 1, "POST refresh_token": 0, "denied": 0,
                       "total": 3}   (requests made by the test checkers are not counted)
    ts.count(method="GET", user="alice", scope="repository:team/app:push")   finer counts
    ts.requests       every TokenRequest (method, grant_type, user, scopes, granted, status, ...)
    ts.reset_stats()

    reg = TokenRegistry(tmp_path / "reg", auth=("alice", "pw"), pki=pki).start()
    # same API as LocalRegistry (host, url, username, password, auth_config, ca_file, ref(),
    # tags(), manifest(), manifest_digest(), catalog(), skopeo_digest(), stop(), restart(),
    # stopped()); reg.token_server is its TokenServer (started/stopped with the registry).

The token protocol (https://distribution.github.io/distribution/spec/auth/token/):
  * GET  REALM?service=S&scope=repository:NAME:pull,push&scope=...&account=U[&offline_token=true]
    with HTTP Basic credentials (or none: anonymous).
  * POST REALM (form): grant_type=password (username, password) or grant_type=refresh_token
    (refresh_token), service, client_id, scope (space-separated), access_type=offline.
    A password grant always returns a refresh_token (docker login stores it as the identity
    token); a refresh grant returns the same refresh_token again.
  * 200 {"token", "access_token", "expires_in", "issued_at"[, "refresh_token"]}.
  * Wrong credentials: 401 {"details": "incorrect username or password"} (Docker Hub's body,
    which docker reports as "unauthorized: incorrect username or password").
  * Anonymous requests, per `anonymous=`: None (default) -> a token with no access (the
    registry then answers 401 insufficient_scope, like Docker Hub for a private repo);
    "pull" -> pull only; "pull,push" -> both; "deny" -> 401 from the token server.
  * Authenticated users get what they ask for among pull/push/delete/* on repositories and
    `registry:catalog:*`, unless `acl(user, type, name, actions) -> granted actions` says less.

The JWT (RS256) is signed here in pure Python (PKCS#1 v1.5 over SHA-256, RSA-CRT) with a
2048-bit key that the `openssl` CLI generates once; the numbers are read back with
`openssl rsa -text` and the first signature is checked with `openssl dgst -verify`. No
Python crypto package is needed. The JWT header carries `x5c` = [the signer's self-signed
certificate, base64 DER]; the registry's `rootcertbundle` holds that same certificate, and
distribution accepts a leaf that is itself one of the roots. Note distribution's 60 s leeway
on `exp`: a token with expires_in=1 stays usable for about a minute.

The checkers (TokenRegistry.tags/manifest/... and BearerAuth) fetch their own tokens with the
User-Agent "release-tests-checker"; TokenServer.stats leaves those requests out so that a
test can assert how many tokens the product (the Docker daemon, skopeo...) asked for. Note
that TokenRegistry.skopeo_digest() runs skopeo, whose token requests *are* counted; use
count(user_agent="docker/") to count the daemon's only.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import requests
import requests.auth
import yaml

from .pki import PKI
from .registries import LocalRegistry, RegistryError

DEFAULT_SERVICE = "release-test-registry"
DEFAULT_ISSUER = "release-test-token-issuer"
CHECKER_USER_AGENT = "release-tests-checker"
REPOSITORY_ACTIONS = ("pull", "push", "delete", "*")

# DER DigestInfo prefix for SHA-256 (RFC 8017, section 9.2, note 1)
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


# --- RS256 signing without a crypto package --------------------------------------------------

def _openssl(*args: str, cwd: Path | None = None, input: bytes | None = None) -> bytes:
    binary = shutil.which("openssl")
    if not binary:
        raise RuntimeError("the `openssl` CLI is missing (apt-get install -y openssl)")
    proc = subprocess.run([binary, *args], cwd=cwd, input=input, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed ({proc.returncode}):\n"
                           f"{proc.stdout.decode(errors='replace')}{proc.stderr.decode(errors='replace')}")
    return proc.stdout


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _parse_rsa_text(text: str) -> dict[str, int]:
    """The integers of `openssl rsa -noout -text` (OpenSSL 1.1 and 3 layouts)."""
    numbers: dict[str, int] = {}
    current: str | None = None
    hex_digits: list[str] = []
    for line in text.splitlines():
        m = re.match(r"^(\w+):\s*(\d+)\s*\(0x[0-9a-fA-F]+\)\s*$", line)   # publicExponent: 65537 (0x10001)
        if m:
            if current:
                numbers[current] = int("".join(hex_digits), 16)
            current, hex_digits = None, []
            numbers[m.group(1)] = int(m.group(2))
            continue
        m = re.match(r"^(\w+):\s*$", line)
        if m:
            if current:
                numbers[current] = int("".join(hex_digits), 16)
            current, hex_digits = m.group(1), []
            continue
        if current and re.match(r"^\s+[0-9a-fA-F:]+\s*$", line):
            hex_digits.append(line.strip().replace(":", ""))
        elif current:
            numbers[current] = int("".join(hex_digits), 16)
            current, hex_digits = None, []
    if current:
        numbers[current] = int("".join(hex_digits), 16)
    return numbers


@dataclass
class Signer:
    """An RSA key and its self-signed certificate; sign() makes RS256 signatures."""
    key_file: Path
    cert_file: Path
    n: int
    e: int
    d: int
    p: int
    q: int
    dp: int
    dq: int
    qinv: int
    cert_der: bytes

    @property
    def size(self) -> int:
        return (self.n.bit_length() + 7) // 8

    @property
    def x5c(self) -> list[str]:
        return [base64.b64encode(self.cert_der).decode()]

    def sign(self, message: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 with SHA-256 (JWS "RS256")."""
        t = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
        em = b"\x00\x01" + b"\xff" * (self.size - len(t) - 3) + b"\x00" + t
        m = int.from_bytes(em, "big")
        m1, m2 = pow(m, self.dp, self.p), pow(m, self.dq, self.q)
        s = m2 + ((self.qinv * (m1 - m2)) % self.p) * self.q
        return s.to_bytes(self.size, "big")

    def verify(self, message: bytes, signature: bytes) -> bool:
        t = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
        em = pow(int.from_bytes(signature, "big"), self.e, self.n).to_bytes(self.size, "big")
        return em == b"\x00\x01" + b"\xff" * (self.size - len(t) - 3) + b"\x00" + t

    def jwt(self, claims: dict, header: dict | None = None) -> str:
        head = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c, **(header or {})}
        signing_input = (b64url(json.dumps(head, separators=(",", ":")).encode()) + "."
                         + b64url(json.dumps(claims, separators=(",", ":")).encode()))
        return signing_input + "." + b64url(self.sign(signing_input.encode()))


def make_signer(directory: Path, *, common_name: str = "release tests token signer",
                days: int = 7) -> Signer:
    """Generate token.key/token.crt in `directory` (openssl CLI) and load the key numbers."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", str(days),
             "-keyout", "token.key", "-out", "token.crt", "-subj", f"/CN={common_name}", cwd=d)
    (d / "token.key").chmod(0o600)
    nums = _parse_rsa_text(_openssl("rsa", "-in", "token.key", "-noout", "-text", cwd=d).decode())
    try:
        signer = Signer(key_file=d / "token.key", cert_file=d / "token.crt",
                        n=nums["modulus"], e=nums["publicExponent"], d=nums["privateExponent"],
                        p=nums["prime1"], q=nums["prime2"], dp=nums["exponent1"],
                        dq=nums["exponent2"], qinv=nums["coefficient"],
                        cert_der=_openssl("x509", "-in", "token.crt", "-outform", "DER", cwd=d))
    except KeyError as exc:
        raise RuntimeError(f"could not read {exc} from `openssl rsa -text` output") from None
    # Cross-check our PKCS#1 v1.5 signature with openssl itself, once.
    sample = b"release tests: RS256 self-check"
    (d / "selfcheck.sig").write_bytes(signer.sign(sample))
    (d / "selfcheck.txt").write_bytes(sample)
    _openssl("x509", "-in", "token.crt", "-pubkey", "-noout", "-out", "token.pub", cwd=d)
    out = _openssl("dgst", "-sha256", "-verify", "token.pub", "-signature", "selfcheck.sig",
                   "selfcheck.txt", cwd=d)
    if b"Verified OK" not in out:
        raise RuntimeError(f"RS256 self-check failed: {out!r}")
    return signer


def decode_jwt(token: str) -> tuple[dict, dict]:
    """(header, claims) of a JWT, without verifying it (for assertions in tests)."""
    head, claims, _sig = token.split(".")
    return json.loads(b64url_decode(head)), json.loads(b64url_decode(claims))


# --- scopes ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scope:
    type: str          # "repository", "registry", "repository(plugin)"
    name: str          # "team/app", "catalog"; may contain ':' ("localhost:5000/x")
    actions: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> "Scope | None":
        parts = text.split(":")
        if len(parts) < 3:
            return None
        return cls(parts[0], ":".join(parts[1:-1]), tuple(a for a in parts[-1].split(",") if a))

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    """Scopes from repeated `scope` parameters, each possibly space-separated (OAuth form)."""
    scopes = []
    for value in values:
        for item in value.split():
            scope = Scope.parse(item)
            if scope is not None:
                scopes.append(scope)
    return scopes


@dataclass
class TokenRequest:
    """One request the token server answered (for assertions)."""
    method: str
    grant_type: str | None          # None for GET; "password" / "refresh_token" for POST
    user: str | None                # authenticated user, None if anonymous/denied
    scopes: list[str]
    granted: list[dict]
    status: int
    user_agent: str
    client_id: str | None = None
    offline: bool = False
    at: float = field(default_factory=time.time)

    @property
    def checker(self) -> bool:
        return self.user_agent.startswith(CHECKER_USER_AGENT)

    @property
    def endpoint(self) -> str:
        if self.status != 200:
            return "denied"
        return "GET" if self.method == "GET" else f"POST {self.grant_type}"


Acl = Callable[[str | None, str, str, tuple[str, ...]], Iterable[str]]


# --- the server ------------------------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "release-test-token-server/1"
    protocol_version = "HTTP/1.1"
    timeout = 30

    def log_message(self, fmt, *args):  # quiet
        pass

    @property
    def ts(self) -> "TokenServer":
        return self.server.token_server  # type: ignore[attr-defined]

    def _send_json(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _path_ok(self) -> bool:
        path = urllib.parse.urlsplit(self.path).path
        if path.rstrip("/") != self.ts.path:
            self.close_connection = True
            self._send_json(404, {"error": "not found"})
            return False
        return True

    def _basic(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            user, _, pw = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return ("", "")
        return user, pw

    def do_GET(self):
        if not self._path_ok():
            return
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        creds = self._basic()
        self.ts._answer(self, "GET", None, creds, query.get("scope", []),
                        (query.get("service") or [None])[0],
                        offline=(query.get("offline_token") or [""])[0].lower() == "true",
                        client_id=(query.get("client_id") or [None])[0])

    def do_POST(self):
        if not self._path_ok():
            return
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode(errors="replace"))
        first = lambda k: (form.get(k) or [None])[0]  # noqa: E731
        grant = first("grant_type")
        creds = None
        if grant == "password":
            creds = (first("username") or "", first("password") or "")
        elif grant == "refresh_token":
            creds = ("__refresh__", first("refresh_token") or "")
        else:
            self.ts._record(TokenRequest("POST", grant, None, form.get("scope", []), [], 400,
                                         self.headers.get("User-Agent", ""), first("client_id")))
            self._send_json(400, {"error": "unsupported_grant_type"})
            return
        self.ts._answer(self, "POST", grant, creds, form.get("scope", []), first("service"),
                        offline=first("access_type") == "offline" or grant is not None,
                        client_id=first("client_id"))


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    ssl_context: ssl.SSLContext | None = None
    token_server: "TokenServer"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.connections: set = set()
        self.connections_lock = threading.Lock()

    def finish_request(self, request, client_address):
        # TLS handshake in the connection's own thread, not in the accept loop.
        request.settimeout(30)
        with self.connections_lock:
            self.connections.add(request)
        try:
            if self.ssl_context is not None:
                plain = request
                try:
                    request = self.ssl_context.wrap_socket(plain, server_side=True)
                except (ssl.SSLError, OSError):
                    return
                finally:       # wrap_socket detaches `plain`: track the socket that owns the fd
                    with self.connections_lock:
                        self.connections.discard(plain)
                        self.connections.add(request)
            super().finish_request(request, client_address)
        finally:
            with self.connections_lock:
                self.connections.discard(request)

    def close_connections(self) -> None:
        """Cut keep-alive connections too, so a stopped server really answers nothing."""
        with self.connections_lock:
            conns, self.connections = list(self.connections), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):  # a client that went away: not our problem
        pass


class TokenServer:
    """A threaded token server on 127.0.0.1 (HTTPS with `pki`, else HTTP)."""

    def __init__(self, signer: Signer, *, users: dict[str, str] | None = None,
                 anonymous: str | None = None, pki: PKI | None = None,
                 service: str = DEFAULT_SERVICE, issuer: str = DEFAULT_ISSUER,
                 expires_in: int = 300, acl: Acl | None = None, host_name: str | None = None,
                 bind_ip: str = "127.0.0.1", port: int = 0, path: str = "/token"):
        self.signer = signer
        self.users = dict(users or {})
        if anonymous not in (None, "none", "deny") and not set(anonymous.split(",")) <= set(REPOSITORY_ACTIONS):
            raise ValueError(f"anonymous must be None, 'none', 'deny' or actions like 'pull', "
                             f"got {anonymous!r}")
        self.anonymous = anonymous
        self.pki = pki
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        self.acl = acl
        self.host_name = host_name or ("localhost" if pki else bind_ip)
        self.bind_ip = bind_ip
        self.port = port
        self.path = path
        self.requests: list[TokenRequest] = []
        self.refresh_tokens: dict[str, str] = {}     # refresh token -> user
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- addresses --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{'https' if self.pki else 'http'}://{self.host_name}:{self.port}"

    @property
    def realm(self) -> str:
        return self.url + self.path

    @property
    def running(self) -> bool:
        return self._server is not None

    def __repr__(self) -> str:
        return f"<TokenServer {self.realm} running={self.running}>"

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> "TokenServer":
        if self._server is not None:
            return self
        server = _Server((self.bind_ip, self.port), _Handler)   # port 0: the kernel picks
        server.token_server = self
        if self.pki is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(self.pki.server_cert), str(self.pki.server_key))
            server.ssl_context = ctx
        self.port = server.server_address[1]                    # kept for restarts
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"token-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "TokenServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- accounting -------------------------------------------------------------------------
    def _record(self, req: TokenRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()

    def count(self, *, method: str | None = None, grant_type: str | None = None,
              user: str | None = None, scope: str | None = None, status: int | None = None,
              user_agent: str | None = None, include_checker: bool = False) -> int:
        """How many requests match; `scope` matches a substring of any requested scope,
        `user_agent` a prefix of the User-Agent ("docker/" = the daemon)."""
        with self._lock:
            reqs = list(self.requests)
        return sum(1 for r in reqs
                   if (include_checker or not r.checker)
                   and (method is None or r.method == method)
                   and (grant_type is None or r.grant_type == grant_type)
                   and (user is None or r.user == user)
                   and (status is None or r.status == status)
                   and (user_agent is None or r.user_agent.startswith(user_agent))
                   and (scope is None or any(scope in s for s in r.scopes)))

    @property
    def stats(self) -> dict[str, int]:
        """Requests per endpoint, checker requests left out."""
        with self._lock:
            reqs = [r for r in self.requests if not r.checker]
        counts = Counter(r.endpoint for r in reqs)
        out = {k: counts.get(k, 0) for k in ("GET", "POST password", "POST refresh_token", "denied")}
        out["total"] = len(reqs)
        return out

    # -- policy -----------------------------------------------------------------------------
    def grant(self, user: str | None, scopes: list[Scope]) -> list[dict]:
        access: dict[tuple[str, str], list[str]] = {}
        for scope in scopes:
            if user is None:
                allowed = () if self.anonymous in (None, "none", "deny") else tuple(self.anonymous.split(","))
                actions = [a for a in scope.actions if a in allowed] if scope.type == "repository" else []
            elif self.acl is not None:
                actions = list(self.acl(user, scope.type, scope.name, scope.actions))
            elif scope.type.startswith("repository"):
                actions = [a for a in scope.actions if a in REPOSITORY_ACTIONS]
            elif scope.type == "registry" and scope.name == "catalog":
                actions = [a for a in scope.actions if a == "*"]
            else:
                actions = []
            if actions:
                merged = access.setdefault((scope.type, scope.name), [])
                merged.extend(a for a in actions if a not in merged)
        return [{"type": t, "name": n, "actions": a} for (t, n), a in access.items()]

    def issue(self, user: str | None, access: list[dict], *, now: int | None = None) -> str:
        now = int(now if now is not None else time.time())
        claims = {"iss": self.issuer, "sub": user or "", "aud": self.service,
                  "exp": now + self.expires_in, "nbf": now - 1, "iat": now,
                  "jti": uuid.uuid4().hex, "access": access}
        return self.signer.jwt(claims)

    def _answer(self, handler: _Handler, method: str, grant: str | None,
                creds: tuple[str, str] | None, raw_scopes: list[str], service: str | None,
                *, offline: bool, client_id: str | None) -> None:
        user_agent = handler.headers.get("User-Agent", "")
        record = TokenRequest(method, grant, None, [str(s) for s in parse_scopes(raw_scopes)], [], 0,
                              user_agent, client_id, offline)

        def deny(status: int, body: dict, headers: dict | None = None) -> None:
            record.status = status
            self._record(record)
            handler._send_json(status, body, headers)

        if service is not None and service != self.service:
            return deny(400, {"error": "invalid_request",
                              "details": f"unknown service {service!r}"})
        user: str | None = None
        if creds is not None:
            name, secret = creds
            if name == "__refresh__":
                user = self.refresh_tokens.get(secret)
                if user is None:
                    return deny(401, {"error": "invalid_grant", "details": "unknown refresh token"})
            elif name in self.users and secrets.compare_digest(self.users[name], secret):
                user = name
            else:
                return deny(401, {"details": "incorrect username or password"},
                            {"WWW-Authenticate": f'Basic realm="{self.realm}"'})
        elif self.anonymous == "deny":
            return deny(401, {"details": "authentication required"},
                        {"WWW-Authenticate": f'Basic realm="{self.realm}"'})
        now = int(time.time())
        access = self.grant(user, parse_scopes(raw_scopes))
        token = self.issue(user, access, now=now)
        body = {"token": token, "access_token": token, "expires_in": self.expires_in,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
        if user is not None and offline:
            if grant == "refresh_token":
                body["refresh_token"] = creds[1]
            else:
                refresh = secrets.token_urlsafe(24)
                with self._lock:
                    self.refresh_tokens[refresh] = user
                body["refresh_token"] = refresh
        record.user, record.granted, record.status = user, access, 200
        self._record(record)
        handler._send_json(200, body)


# --- a requests auth that does the Bearer dance (for the checkers) ---------------------------

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def parse_bearer_challenge(header: str) -> dict[str, str] | None:
    if not header or not header.lower().startswith("bearer "):
        return None
    return dict(_CHALLENGE_PARAM.findall(header))


class BearerAuth(requests.auth.AuthBase):
    """On a 401 with a Bearer challenge: fetch a token (Basic creds, GET) and retry once.

    Tokens are cached per scope string; the token request carries User-Agent
    "release-tests-checker" so that TokenServer.stats does not count it.
    """

    def __init__(self, username: str | None, password: str | None, verify=True):
        self.username, self.password, self.verify = username, password, verify
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def token(self, realm: str, service: str, scope: str) -> str:
        key = (realm, service, scope)
        with self._lock:
            cached = self._tokens.get(key)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        params = [("service", service)] + ([("scope", scope)] if scope else [])
        r = requests.get(realm, params=params, verify=self.verify, timeout=15,
                         auth=(self.username, self.password) if self.username is not None else None,
                         headers={"User-Agent": CHECKER_USER_AGENT})
        if r.status_code != 200:
            raise RegistryError(f"token server {realm} refused the checker: "
                                f"HTTP {r.status_code} {r.text[:200]}")
        body = r.json()
        token = body.get("token") or body["access_token"]
        ttl = max(1, int(body.get("expires_in") or 60) - 10)
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + ttl)
        return token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.register_hook("response", self._handle_401)
        return r

    def _handle_401(self, resp: requests.Response, **kwargs) -> requests.Response:
        if resp.status_code != 401 or getattr(resp.request, "_bearer_retried", False):
            return resp
        challenge = parse_bearer_challenge(resp.headers.get("WWW-Authenticate", ""))
        if challenge is None or "realm" not in challenge:
            return resp
        token = self.token(challenge["realm"], challenge.get("service", ""), challenge.get("scope", ""))
        resp.content  # drain so the connection can be reused  # noqa: B018
        resp.close()
        prep = resp.request.copy()
        prep.headers["Authorization"] = f"Bearer {token}"
        prep._bearer_retried = True  # type: ignore[attr-defined]
        retried = resp.connection.send(prep, **kwargs)
        retried.history.append(resp)
        retried.request = prep
        return retried


# --- a registry behind the token server --------------------------------------------------------

class TokenRegistry(LocalRegistry):
    """LocalRegistry with `auth: token` and its own TokenServer (same host name and PKI).

    auth: (user, password) or True (random password); the token server knows that one user.
    anonymous: see TokenServer. The token server listens on the registry's address and host
    name (localhost / 127.0.0.1 / the strict-TLS IP, same PKI); it starts before the registry
    and stops with it; its port stays the same across restart(), its counters survive restarts.
    """

    def __init__(self, workdir: Path, *, signer: Signer | None = None,
                 anonymous: str | None = None, service: str = DEFAULT_SERVICE,
                 issuer: str = DEFAULT_ISSUER, expires_in: int = 300, acl: Acl | None = None,
                 auth: tuple[str, str] | bool | None = True, **kwargs):
        super().__init__(workdir, auth=auth, **kwargs)
        self.signer = signer or make_signer(self.workdir / "token-signer")
        self.token_server = TokenServer(
            self.signer, users={self.username: self.password} if self.username is not None else {},
            anonymous=anonymous, pki=self.pki, service=service, issuer=issuer,
            expires_in=expires_in, acl=acl, host_name=self.host_name, bind_ip=self.bind_ip)
        self._bearer = BearerAuth(self.username, self.password, verify=self._verify())

    def __repr__(self) -> str:
        return (f"<TokenRegistry {self.name} {self.url} realm={self.token_server.realm} "
                f"running={self.running}>")

    def _write_config(self) -> None:
        # Called by LocalRegistry.start() once the bind address exists (strict_tls alias):
        # the token server must run first, its realm goes into the config.
        self.token_server.start()
        user, self.username = self.username, None      # no htpasswd section
        try:
            super()._write_config()
        finally:
            self.username = user
        config = yaml.safe_load(self.config_path.read_text())
        config["auth"] = {"token": {"realm": self.token_server.realm,
                                    "service": self.token_server.service,
                                    "issuer": self.token_server.issuer,
                                    "rootcertbundle": str(self.signer.cert_file)}}
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def start(self) -> "TokenRegistry":
        try:
            super().start()
        except BaseException:
            self.token_server.stop()
            raise
        return self

    def stop(self) -> None:
        super().stop()
        self.token_server.stop()

    def _auth(self):
        return self._bearer

    def token(self, scope: str) -> str:
        """A token for `scope` (e.g. "repository:team/app:pull"), fetched as the checker."""
        return self._bearer.token(self.token_server.realm, self.token_server.service, scope)
