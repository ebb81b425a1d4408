"""HTTP for the registry client and the cloud token calls: urllib3, with our proxy, CA and redirect rules.

urllib3 does the HTTP: keep-alive pools (TCP_NODELAY; an idle connection the server
closed is replaced), TLS with the context tls.py gives, CONNECT tunnels, streamed and
chunked bodies, and Content-Length checks on answers. This module adds what a registry
client needs on top, with the small part of the requests API its callers use
(`get`/`post`/`request`, `status_code`, `headers`, `content`, `json()`, `iter_content()`):

  * one pool manager per (proxy, TLS context); proxy.py picks the proxy for every URL,
    including each redirect hop (a registry in NO_PROXY may send blob GETs to S3 through
    the proxy), which is why redirects are followed here and not by urllib3;
  * redirects (301/302/303/307/308, at most MAX_REDIRECTS): `Authorization` is dropped as
    soon as a hop leaves the origin (scheme, host, port) - blob storage must not see a
    registry token; 303, and 301/302 for POST, become GET as with requests; a streamed
    body cannot be sent twice, so its 307/308 answer is returned as it is;
  * no retries: callers retry whole operations (retry.py);
  * errors are HTTPError subclasses whose messages name the method and the URL without
    its query (never a header value or a password) and keep the OS or OpenSSL reason. A
    failed certificate verification also carries what errors.tls_failure needs: OpenSSL's
    code, the context that verified, and the server's certificate, read in a second,
    unverified handshake.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
import warnings
from collections.abc import Mapping
from urllib.parse import unquote, urlencode, urljoin, urlsplit

import urllib3
from urllib3.connection import HTTPSConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    InsecureRequestWarning,
    NewConnectionError,
    ProxyError,
    ReadTimeoutError,
)

from pipeline import __version__
from pipeline.registry import tls
from pipeline.registry.proxy import proxy_for

DEFAULT_TIMEOUT = 30.0
DEFAULT_POOL_SIZE = 16
MAX_REDIRECTS = 10
READ_CHUNK = 1024 * 1024
USER_AGENT = f"release-pipeline/{__version__}"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


class HTTPError(Exception):
    """A request that got no (complete) HTTP answer."""


class ConnectError(HTTPError):
    """The TCP connection (or the proxy tunnel) could not be made."""


class Timeout(HTTPError):
    """Connecting or reading took longer than the timeout."""


class ProtocolError(HTTPError):
    """A broken, short or malformed request or answer."""


class TooManyRedirects(HTTPError):
    pass


class SSLError(HTTPError):
    """The TLS handshake failed. For a failed certificate verification, `verify_code`,
    `verify_message`, `server_name`, `context` and `peer_cert` (DER, or None) are set."""

    verify_code: int | None = None
    verify_message: str | None = None
    server_name: str | None = None
    context = None
    peer_cert: bytes | None = None


class Headers(urllib3.HTTPHeaderDict):
    """Request headers whose repr hides credentials (a repr ends up in logs and tracebacks)."""

    def __repr__(self) -> str:
        return repr({name: "***" if name.lower() in SECRET_HEADERS else value
                     for name, value in self.items()})


class Request:
    """What was sent, for response hooks and tests; the repr shows no header values."""

    __slots__ = ("method", "url", "headers")

    def __init__(self, method: str, url: str, headers):
        self.method, self.url, self.headers = method, url, Headers(headers)

    @property
    def path_url(self) -> str:
        p = urlsplit(self.url)
        return (p.path or "/") + (f"?{p.query}" if p.query else "")

    def __repr__(self) -> str:
        return f"<Request {self.method} {_safe_url(self.url)}>"


class Response:
    """An answer. Tests build one directly: Response(404, b"...", {"A": "b"})."""

    def __init__(self, status_code: int = 200, content: bytes | None = b"", headers=None,
                 url: str = "", *, raw=None, request: Request | None = None, what: str = ""):
        self.status_code = status_code
        self.headers = headers if isinstance(headers, urllib3.HTTPHeaderDict) else \
            urllib3.HTTPHeaderDict(headers or {})
        self.url = url
        self.request = request
        self._content = content          # the whole body once read; None while it streams
        self._raw = raw
        self._what = what
        self._started = False

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def content(self) -> bytes:
        if self._content is None:
            self._content = b"".join(self.iter_content(READ_CHUNK))
        return self._content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)

    def iter_content(self, chunk_size: int = READ_CHUNK):
        """The body in pieces of at most `chunk_size` bytes (use 1 MiB for blobs)."""
        if self._content is not None:
            for i in range(0, len(self._content), chunk_size):
                yield self._content[i:i + chunk_size]
            return
        if self._started:
            raise RuntimeError("the response body was already (partly) read as a stream")
        self._started = True
        try:
            yield from self._raw.stream(chunk_size, decode_content=False)
        except urllib3.exceptions.HTTPError as exc:
            self.close()
            raise _translate(exc, self._what) from None

    def close(self) -> None:
        """Give the connection back to the pool, or drop it when the body was not read."""
        raw, self._raw = self._raw, None
        if raw is not None:
            if self._content is None:
                raw.close()
            raw.release_conn()

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Session:
    """A thread-safe HTTP client over urllib3 pools (see the module docstring)."""

    def __init__(self, *, pool_size: int = DEFAULT_POOL_SIZE):
        self.pool_size = max(1, pool_size)
        self.headers = {"User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Encoding": "identity"}
        self.hooks: dict[str, list] = {"response": []}
        self._managers: dict[tuple, urllib3.PoolManager] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the idle connections (the session stays usable)."""
        with self._lock:
            managers, self._managers = list(self._managers.values()), {}
        for manager in managers:
            manager.clear()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get(self, url: str, **kw) -> Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, data=None, **kw) -> Response:
        return self.request("POST", url, data=data, **kw)

    def request(self, method: str, url: str, *, headers=None, data=None, params=None, auth=None,
                stream: bool = False, timeout: float = DEFAULT_TIMEOUT, verify=True,
                allow_redirects: bool = True) -> Response:
        """`verify`: True (system CAs), False (no verification) or an ssl.SSLContext (tls.py).
        `data`: bytes, a dict (form-encoded), or an iterable of bytes, sent with the length
        it reports (`__len__`, or a Content-Length header) or else chunked."""
        method = method.upper()
        if params:
            url = _with_params(url, params)
        hdrs = urllib3.HTTPHeaderDict(self.headers)
        for name, value in (headers or {}).items():
            hdrs[name] = str(value)
        if auth is not None:
            pair = f"{auth[0]}:{auth[1]}".encode()
            hdrs["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        body, replayable = _body(data, hdrs)
        for hop in range(MAX_REDIRECTS + 1):
            resp = self._send(method, url, hdrs, body, stream, timeout, verify)
            status = resp.status_code
            location = resp.headers.get("Location") if allow_redirects and status in REDIRECTS else None
            if not location or (status in (307, 308) and not replayable):
                return resp
            if resp._raw is not None:
                resp._raw.drain_conn()      # a short body: read it, the connection goes back
            resp.close()
            if hop == MAX_REDIRECTS:
                raise TooManyRedirects(f"{method} {_safe_url(url)}: more than {MAX_REDIRECTS} "
                                       "redirects")
            target = urljoin(url, location.strip()).partition("#")[0]
            if _origin(target) != _origin(url):
                hdrs.discard("Authorization")
            if status not in (307, 308):
                if status in (302, 303) and method != "HEAD" or status == 301 and method == "POST":
                    method = "GET"
                body = None
                for name in ("Content-Length", "Content-Type", "Transfer-Encoding"):
                    hdrs.discard(name)
            url = target
        raise AssertionError("unreachable")

    def _send(self, method, url, hdrs, body, stream, timeout, verify) -> Response:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            host = None
        if scheme not in ("http", "https") or not host:
            raise HTTPError(f"invalid URL {_safe_url(url)!r}")
        what = f"{method} {_safe_url(url)}"
        for name, value in hdrs.items():
            if any(c in value for c in "\r\n\0"):
                raise HTTPError(f"{what}: invalid value for header {name!r}")
        ctx = None
        if scheme == "https":
            ctx = verify if isinstance(verify, ssl.SSLContext) else \
                tls.unverified() if verify is False else tls.context()
        proxy = proxy_for(scheme, host, port)
        if proxy:
            what += f" (via proxy {urlsplit(proxy).netloc.rpartition('@')[2]})"
        try:
            raw = self._manager(proxy, ctx).urlopen(
                method, url, body=body, headers=hdrs, redirect=False, retries=False,
                preload_content=not stream, decode_content=False,
                timeout=urllib3.Timeout(connect=timeout, read=timeout))
        except urllib3.exceptions.HTTPError as exc:
            error = _translate(exc, what, timeout)
            if isinstance(error, SSLError) and error.verify_code is not None:
                error.server_name, error.context = host, ctx
                error.peer_cert = _peer_cert(host, port, proxy, timeout)
            raise error from None
        resp = Response(raw.status, None if stream else raw.data, raw.headers, url, raw=raw,
                        request=Request(method, url, hdrs), what=what)
        if not stream:
            resp._raw = None
        for hook in self.hooks["response"]:
            hook(resp)
        return resp

    def _manager(self, proxy: str | None, ctx) -> urllib3.PoolManager:
        key = (proxy, ctx)
        with self._lock:
            manager = self._managers.get(key)
            if manager is None:
                kw = {"maxsize": self.pool_size, "block": False}
                if ctx is not None:
                    kw["ssl_context"] = ctx
                    if ctx.verify_mode == ssl.CERT_NONE:
                        # asked for explicitly (`insecure: true`): urllib3 would warn on every
                        # request
                        warnings.filterwarnings("ignore", category=InsecureRequestWarning)
                if proxy is None:
                    manager = urllib3.PoolManager(**kw)
                else:
                    manager = _proxy_manager(proxy, kw)
                self._managers[key] = manager
        return manager


def _proxy_manager(proxy: str, kw: dict) -> urllib3.ProxyManager:
    parts = urlsplit(proxy)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if not parts.hostname or not port_ok:
        # never the URL itself: it may carry the proxy's password
        raise HTTPError("invalid proxy URL in the proxy environment variables (a host and a "
                        "port from 1 to 65535 are needed)")
    headers = None
    if parts.username is not None or parts.password is not None:
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        headers = urllib3.make_headers(proxy_basic_auth=pair)
    try:
        return urllib3.ProxyManager(proxy, proxy_headers=headers, **kw)
    except urllib3.exceptions.ProxySchemeUnknown:
        raise HTTPError(f"unsupported proxy scheme {parts.scheme}:// in the proxy environment "
                        "variables (http:// and https:// proxies are supported)") from None
    except urllib3.exceptions.LocationValueError:   # its text holds the URL: not shown
        raise HTTPError("invalid proxy URL in the proxy environment variables") from None


def _body(data, hdrs) -> tuple:
    """(body for urllib3, replayable); sets Content-Length / Content-Type as needed."""
    if data is None:
        return None, True
    if isinstance(data, Mapping):
        data = urlencode(list(data.items()), doseq=True).encode("ascii")
        hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
    elif isinstance(data, str):
        data = data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        hdrs["Content-Length"] = str(len(data))
        return bytes(data), True
    given = str(hdrs.get("Content-Length") or "").strip()
    length = len(data) if hasattr(data, "__len__") else int(given) if given.isdigit() else None
    if length is None:
        hdrs.discard("Content-Length")      # urllib3 sends an iterable of unknown length chunked
        return iter(data), False
    hdrs["Content-Length"] = str(length)
    return _exactly(data, length), False


def _exactly(chunks, length: int):
    """The chunks, checked against the Content-Length sent: a short body would otherwise
    leave the server waiting until the timeout. Errors of `chunks` itself pass unchanged."""
    sent = 0
    for chunk in chunks:
        sent += len(chunk)
        if sent > length:
            raise ProtocolError(f"the request body is longer than its Content-Length ({length} "
                                "bytes)")
        yield chunk
    if sent != length:
        raise ProtocolError(f"the request body ended after {sent} of its {length} bytes")


def _translate(exc: Exception, what: str, timeout=None) -> HTTPError:
    """Our HTTPError for a urllib3 error, with the reason underneath urllib3's wrapping."""
    root = _root(exc)
    limit = f" (timeout {timeout:g} s)" if isinstance(timeout, (int, float)) else ""
    if isinstance(root, ssl.SSLCertVerificationError):
        error = SSLError(f"{what}: {root}")
        error.verify_code, error.verify_message = root.verify_code, root.verify_message
        return error
    via = "proxy: " if isinstance(exc, ProxyError) else ""
    if isinstance(root, socket.gaierror):
        return ConnectError(f"{what}: {via}cannot resolve the host name: {root}")
    if isinstance(exc, ReadTimeoutError):
        return Timeout(f"{what}: read timed out{limit}")
    if isinstance(root, TimeoutError) or type(exc) is ConnectTimeoutError:
        return Timeout(f"{what}: {via}connect timed out{limit}")
    if isinstance(exc, (NewConnectionError, ProxyError)):
        text = getattr(root, "strerror", None) or str(root)
        return ConnectError(f"{what}: {via}{text}")
    if isinstance(root, ssl.SSLError) or isinstance(exc, urllib3.exceptions.SSLError):
        return SSLError(f"{what}: {root}")
    if isinstance(exc, urllib3.exceptions.ProtocolError) and "IncompleteRead" in str(exc):
        return ProtocolError(f"{what}: connection closed early ({root})")
    text = getattr(root, "strerror", None) or str(root) or type(root).__name__
    return ProtocolError(f"{what}: {type(root).__name__}: {text[:200]}")


def _root(exc: BaseException) -> BaseException:
    """The innermost error urllib3 wrapped (in .reason, .original_error or its args)."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "reason", None) or getattr(exc, "original_error", None) or \
            next((a for a in exc.args if isinstance(a, BaseException)), None) or exc.__cause__
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc


def _peer_cert(host: str, port: int, proxy: str | None, timeout: float) -> bytes | None:
    """The server's certificate (DER) without verifying it, for the error message."""

    try:
        if proxy:
            p = urlsplit(proxy)
            if p.scheme != "http":
                return None
            conn = HTTPSConnection(p.hostname, p.port or 80, ssl_context=tls.unverified(),
                                   timeout=timeout)
            conn.set_tunnel(host, port)
        else:
            conn = HTTPSConnection(host, port, ssl_context=tls.unverified(), timeout=timeout)
        try:
            conn.connect()
            return conn.sock.getpeercert(binary_form=True)
        finally:
            conn.close()
    except Exception:               # noqa: BLE001 - the message then goes without the facts
        return None


def _origin(url: str) -> tuple:
    p = urlsplit(url)
    scheme = p.scheme.lower()
    try:
        port = p.port
    except ValueError:
        port = None
    return scheme, (p.hostname or "").lower(), port or {"https": 443, "http": 80}.get(scheme)


def _with_params(url: str, params) -> str:
    items = list(params.items()) if isinstance(params, Mapping) else list(params)
    query = urlencode(items, doseq=True)
    base, hash_, fragment = url.partition("#")
    sep = "" if base.endswith(("?", "&")) else "&" if "?" in base else "?"
    return f"{base}{sep}{query}{hash_}{fragment}"


def _safe_url(url: str) -> str:
    """The URL without user info, query and fragment (what messages show)."""
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc.rpartition('@')[2]}{p.path}"
