"""A small, thread-safe HTTP/1.1 client session on the standard library, for the registry client.

`import requests` (with urllib3, charset_normalizer, idna) costs more than a whole no-op
`release build-push` re-run, so the registry client talks HTTP through this module instead.
It offers the part of the requests API that transport.py, auth.py, stream.py, errors.py and
upload.py use:

    s = Session(pool_size=16)
    r = s.request("GET", url, headers={...}, params=[("scope", "...")], auth=("u", "p"),
                  data=None, stream=False, timeout=30.0, verify=True, allow_redirects=True)
    r.status_code, r.headers["content-type"], r.url, r.content, r.text, r.json()
    for chunk in r.iter_content(1 << 20): ...          # with stream=True
    r.close()  /  with r: ...
    s.post(realm, data={"grant_type": ...})            # application/x-www-form-urlencoded
    s.hooks["response"].append(fn)                      # fn(response) after every response

What it does:
  * Keep-alive pool per (scheme, host, port, TLS context, proxy), at most `pool_size` idle
    connections each, shared by threads. Every socket has TCP_NODELAY. An idle connection
    that the server closed (readable while idle) is dropped before reuse; a request on a
    reused connection that fails before any response byte (the server closed it meanwhile)
    is sent once more on a new connection when its body is replayable (None or bytes),
    never when the body is an iterator.
  * stream=False reads the whole body and returns the connection to the pool at once. A
    streamed response returns it when read to the end; closing it earlier discards it.
  * Bodies: bytes (Content-Length), a dict (form-encoded), an iterable of bytes with
    `__len__` (Content-Length, streamed as it comes; stream.SizedBody), or any other
    iterable of bytes (Transfer-Encoding: chunked, unless the caller set Content-Length).
    An exception raised by the body iterator propagates unchanged.
  * TLS (`verify`): True = the system CAs (certifi when the system has none), or the bundle
    named by REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE as requests does (SSL_CERT_FILE and
    SSL_CERT_DIR work through OpenSSL's default paths); False = no verification; a path =
    that CA file or directory only; an ssl.SSLContext as is. `ssl_context(True,
    extra_cafile=...)` adds one private CA to the system ones (tls.py). Contexts are cached.
  * Redirects 301/302/303/307/308, at most MAX_REDIRECTS, with requests' method rules (303,
    and 301/302 except for HEAD, become GET; 307/308 keep method and body, so a streamed
    body is not redirected: that response is returned as is). `Authorization` is dropped as
    soon as a redirect leaves the origin (scheme, host, port). Relative Locations resolved.
  * Proxies from the environment like requests: https_proxy/HTTPS_PROXY,
    http_proxy/HTTP_PROXY, all_proxy/ALL_PROXY (lower case wins), no_proxy/NO_PROXY: a
    comma list of `*`, host names (matching the host and its subdomains; a leading `.` or
    `*.` is ignored), `host:port`, IP addresses and CIDR ranges. As with requests, loopback
    hosts are proxied too unless NO_PROXY lists them. HTTPS goes through CONNECT, HTTP sends
    the absolute URI; credentials in the proxy URL become `Proxy-Authorization`.
  * Errors: HTTPError and its subclasses ConnectError (ConnectTimeout), SSLError, Timeout,
    ProtocolError, TooManyRedirects, InvalidURL. Messages name the method, the URL without
    user info and query, and the OS/OpenSSL text ("Connection refused", "timed out",
    "CERTIFICATE_VERIFY_FAILED", "Hostname mismatch"); never a header value or a password.
  * Timeout: `timeout` seconds for connecting and for every read (or a (connect, read) pair).

A loopback https target gets an unverified TLS handshake first while the verifying context
is not built yet (Session._probe_tls): a plain-HTTP registry on 127.0.0.1 then costs no CA
loading at all; a TLS one costs one extra local handshake, once per process.

Deliberately not supported: cookies, ~/.netrc, Content-Encoding (we ask for `identity`; a
blob must arrive byte for byte), HTTP/2, https:// and SOCKS proxies, file objects as bodies,
client certificates, `Expect: 100-continue`. http.client imports ssl itself, so ssl is not
imported lazily here; transport.py imports this module only when a client is created.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import select
import socket
import ssl
import threading
from collections.abc import Mapping, MutableMapping
from urllib.parse import quote, unquote, urlencode, urljoin, urlsplit

from .. import __version__

DEFAULT_TIMEOUT = 30.0
DEFAULT_POOL_SIZE = 16
MAX_REDIRECTS = 10
READ_CHUNK = 1024 * 1024
USER_AGENT = f"release-pipeline/{__version__}"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_DRAIN_LIMIT = 64 * 1024          # read at most this much of a redirect body to keep its connection
_TARGET_SAFE = "!#$%&'()*+,/:;=?@[]~"
_PLAIN_TARGET = re.compile(r"[A-Za-z0-9!#$%&'()*+,/:;=?@\[\]~._-]*")


# -- errors ------------------------------------------------------------------------------------

class HTTPError(Exception):
    """A request that got no (complete) HTTP answer."""


class ConnectError(HTTPError):
    """The TCP connection (or the proxy tunnel) could not be made."""


class Timeout(HTTPError):
    """Connecting or reading took longer than the timeout."""


class ConnectTimeout(ConnectError, Timeout):
    """Connecting took longer than the timeout."""


class SSLError(HTTPError):
    """The TLS handshake failed (certificate verification, protocol mismatch, ...).

    A certificate verification failure also carries OpenSSL's `verify_code` and
    `verify_message`, the `server_name` that was checked, the `context` that verified (tls.py
    knows which CA file it trusts) and `peer_cert`: the server's certificate (DER) from a
    second, unverified handshake, or None when that failed. errors.py turns them into a
    message (errors.tls_failure); all are None for other TLS errors."""

    verify_code: int | None = None
    verify_message: str | None = None
    server_name: str | None = None
    context = None
    peer_cert: bytes | None = None


class ProtocolError(HTTPError):
    """A broken, short or malformed request or response."""


class TooManyRedirects(HTTPError):
    pass


class InvalidURL(HTTPError, ValueError):
    pass


class _Stale(Exception):
    """Internal: the request failed on a connection before any response byte arrived."""

    def __init__(self, exc: BaseException):
        super().__init__(str(exc))
        self.exc = exc


# A reused keep-alive connection the server has closed fails with one of these.
_STALE_ERRORS = (http.client.RemoteDisconnected, http.client.BadStatusLine, BrokenPipeError,
                 ConnectionResetError, ConnectionAbortedError, ssl.SSLEOFError,
                 ssl.SSLZeroReturnError)


def _wrap(exc: BaseException, what: str, phase: str, timeout=None) -> HTTPError:
    """An HTTPError for a low-level failure. `phase`: "connect", "send" or "read"."""
    if isinstance(exc, HTTPError):
        return exc
    if isinstance(exc, _Stale):
        exc = exc.exc
    limit = f" (timeout {timeout:g} s)" if isinstance(timeout, (int, float)) else ""
    if isinstance(exc, TimeoutError):               # socket.timeout is TimeoutError
        if phase == "connect":
            return ConnectTimeout(f"{what}: connect timed out{limit}")
        return Timeout(f"{what}: {phase} timed out{limit}")
    if isinstance(exc, ssl.SSLError):
        if phase == "connect" or isinstance(exc, ssl.SSLCertVerificationError):
            return SSLError(f"{what}: {exc}")
        return ProtocolError(f"{what}: TLS error: {exc}")
    if isinstance(exc, socket.gaierror):
        return ConnectError(f"{what}: cannot resolve the host name: {exc}")
    if isinstance(exc, http.client.IncompleteRead):
        got = len(exc.partial) if isinstance(exc.partial, (bytes, bytearray)) else exc.partial
        more = f", {exc.expected} more expected" if exc.expected is not None else ""
        return ProtocolError(f"{what}: connection closed early ({got} bytes read{more})")
    if isinstance(exc, http.client.RemoteDisconnected):
        return ProtocolError(f"{what}: server closed the connection without an answer")
    if isinstance(exc, http.client.HTTPException):
        return ProtocolError(f"{what}: bad answer: {type(exc).__name__}: {str(exc)[:200]}")
    if isinstance(exc, OSError):
        text = exc.strerror or str(exc) or type(exc).__name__
        if isinstance(exc, ConnectionRefusedError) and "Connection refused" not in text:
            text = f"Connection refused ({text})"
        if phase == "connect":
            return ConnectError(f"{what}: {text}")
        return ProtocolError(f"{what}: {type(exc).__name__}: {text}")
    return ProtocolError(f"{what}: {type(exc).__name__}: {str(exc)[:200]}")


# -- headers -----------------------------------------------------------------------------------

class Headers(MutableMapping):
    """Case-insensitive header mapping; keeps the first spelling of each name. Repeated
    response headers are joined with ", " (as requests/urllib3 do)."""

    __slots__ = ("_store",)

    def __init__(self, data=None, **kw):
        self._store: dict[str, tuple[str, str]] = {}
        if data is not None:
            self.update(data)
        if kw:
            self.update(kw)

    def __setitem__(self, name: str, value) -> None:
        self._store[name.lower()] = (name, value)

    def __getitem__(self, name: str):
        return self._store[name.lower()][1]

    def __delitem__(self, name: str) -> None:
        del self._store[name.lower()]

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name.lower() in self._store

    def __iter__(self):
        return (name for name, _ in self._store.values())

    def __len__(self) -> int:
        return len(self._store)

    def add(self, name: str, value: str) -> None:
        key = name.lower()
        if key in self._store:
            first, old = self._store[key]
            self._store[key] = (first, f"{old}, {value}")
        else:
            self._store[key] = (name, value)

    def copy(self) -> "Headers":
        h = Headers()
        h._store = dict(self._store)
        return h

    def __eq__(self, other) -> bool:
        if isinstance(other, Mapping):
            other = Headers(other)
            return {k: v for k, (_, v) in self._store.items()} == \
                {k: v for k, (_, v) in other._store.items()}
        return NotImplemented

    def __repr__(self) -> str:
        shown = {name: ("***" if key in _SECRET_HEADERS else value)
                 for key, (name, value) in self._store.items()}
        return f"Headers({shown!r})"


# -- TLS ---------------------------------------------------------------------------------------

_contexts: dict[tuple, ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def ssl_context(verify=True, *, extra_cafile=None) -> ssl.SSLContext:
    """The (cached) client context for a `verify` value; `extra_cafile` adds a CA to it.

    Built like urllib3 does (PROTOCOL_TLS_CLIENT + CA locations), i.e.
    ssl.create_default_context() without the VERIFY_X509_STRICT flag Python 3.13 adds.
    Raises OSError (ssl.SSLError is one) when a CA file cannot be read or parsed.
    """
    if isinstance(verify, ssl.SSLContext):
        return verify
    key = _context_key(verify, extra_cafile)
    ctx = _contexts.get(key)
    if ctx is None:
        with _contexts_lock:            # one build at a time: loading the CAs takes ~50 ms
            ctx = _contexts.get(key)
            if ctx is None:
                ctx = _contexts[key] = _new_context(verify, key, extra_cafile)
    return ctx


def _context_key(verify, extra_cafile=None) -> tuple:
    env = os.environ
    if verify is False:
        return ("none",)
    if verify is True:
        return ("default", env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or None,
                env.get("SSL_CERT_FILE"), env.get("SSL_CERT_DIR"), _stat(extra_cafile))
    return ("path", os.fspath(verify), _stat(verify), _stat(extra_cafile))


def _context_built(verify) -> bool:
    return isinstance(verify, ssl.SSLContext) or _context_key(verify) in _contexts


def _stat(path):
    if path is None:
        return None
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except OSError:
        return (path, None)
    return (path, st.st_mtime_ns, st.st_size)


def _new_context(verify, key, extra_cafile) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)    # CERT_REQUIRED + check_hostname
    if verify is False:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if verify is True:
        bundle = key[1]
        if bundle:
            _load(ctx, bundle)
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
            if not _system_has_cas():
                try:
                    import certifi
                except ImportError:
                    pass
                else:
                    ctx.load_verify_locations(cafile=certifi.where())
    else:
        _load(ctx, os.fspath(verify))
    if extra_cafile is not None:
        ctx.load_verify_locations(cafile=os.fspath(extra_cafile))
    return ctx


def _load(ctx: ssl.SSLContext, path: str) -> None:
    if os.path.isdir(path):
        ctx.load_verify_locations(capath=path)
    else:
        ctx.load_verify_locations(cafile=path)


def _system_has_cas() -> bool:
    paths = ssl.get_default_verify_paths()
    if paths.cafile:
        return True
    if paths.capath:
        try:
            with os.scandir(paths.capath) as it:
                return any(True for _ in it)
        except OSError:
            return False
    return False


# -- proxies -----------------------------------------------------------------------------------

def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value.strip()
    return None


def proxy_for(scheme: str, host: str, port: int) -> str | None:
    """The proxy URL the environment names for this target, or None (NO_PROXY, none set)."""
    if scheme == "https":
        url = _env("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
    else:
        # HTTP_PROXY is ignored in CGI (httpoxy), as urllib does.
        upper = () if "REQUEST_METHOD" in os.environ else ("HTTP_PROXY",)
        url = _env("http_proxy", *upper, "all_proxy", "ALL_PROXY")
    if not url:
        return None
    no_proxy = _env("no_proxy", "NO_PROXY")
    if no_proxy and bypass_proxy(host, port, no_proxy):
        return None
    return url


def bypass_proxy(host: str, port: int, no_proxy: str) -> bool:
    """Does NO_PROXY (a comma list) exclude host:port?"""
    host = host.lower().strip("[]").rstrip(".")
    ip = None
    for entry in no_proxy.split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if "/" in entry:                        # CIDR
            import ipaddress
            try:
                ip = ip or ipaddress.ip_address(host)
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        entry_port = None
        if entry.startswith("["):               # [v6]:port or [v6]
            end = entry.find("]")
            name, rest = entry[1:end], entry[end + 1:]
            if rest.startswith(":") and rest[1:].isdigit():
                entry_port = int(rest[1:])
        elif entry.count(":") == 1:
            name, _, p = entry.partition(":")
            if not p.isdigit():
                continue
            entry_port = int(p)
        else:
            name = entry                        # a host name, IPv4 or bare IPv6 address
        if entry_port is not None and entry_port != port:
            continue
        if name.startswith("*."):
            name = name[2:]
        name = name.lstrip(".").rstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def _parse_proxy(url: str) -> tuple[str, int, str | None]:
    """(host, port, Proxy-Authorization value or None) of an http:// proxy URL."""
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme.lower() != "http":
        raise InvalidURL(f"unsupported proxy scheme {parts.scheme}:// (only http:// proxies are "
                         "supported)")
    try:
        host, port = parts.hostname, parts.port or 80
    except ValueError:
        raise InvalidURL("invalid proxy URL (bad port)") from None
    if not host:
        raise InvalidURL("invalid proxy URL (no host)")
    auth = None
    if parts.username is not None or parts.password is not None:
        auth = _basic(unquote(parts.username or ""), unquote(parts.password or ""))
    return host, port, auth


# -- request and response ----------------------------------------------------------------------

def _basic(user: str, password: str) -> str:
    pair = f"{user}:{password}".encode("utf-8")
    return "Basic " + base64.b64encode(pair).decode("ascii")


def _safe_url(url: str) -> str:
    """The URL without user info, query and fragment (what error messages show)."""
    p = urlsplit(url)
    netloc = p.netloc.rpartition("@")[2]
    return f"{p.scheme}://{netloc}{p.path}"


class Request:
    """What was sent (for hooks and tests). The repr shows no header values."""

    __slots__ = ("method", "url", "headers")

    def __init__(self, method: str, url: str, headers: Headers):
        self.method = method
        self.url = url
        self.headers = headers

    @property
    def path_url(self) -> str:
        p = urlsplit(self.url)
        return (p.path or "/") + (f"?{p.query}" if p.query else "")

    def __repr__(self) -> str:
        return f"<Request {self.method} {_safe_url(self.url)}>"


class Response:
    """An HTTP response. Construct one directly in tests: Response(404, b"...", {"A": "b"})."""

    def __init__(self, status_code: int = 200, content: bytes | None = b"", headers=None,
                 url: str = "", *, reason: str = "", request: Request | None = None):
        self.status_code = status_code
        self.reason = reason
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.url = url
        self.request = request
        self._content: bytes | None = content      # the whole body once read, else None
        self._raw: http.client.HTTPResponse | None = None
        self._conn = None
        self._release = None        # fn(conn): give the connection back to the pool
        self._reusable = True
        self._what = ""
        self._timeout = None
        self._started = False

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    # -- body -------------------------------------------------------------------------------
    @property
    def content(self) -> bytes:
        if self._content is None:
            if self._started:
                raise RuntimeError("the response body was already (partly) read as a stream")
            self._content = b"".join(self.iter_content(READ_CHUNK))
        return self._content

    @property
    def text(self) -> str:
        ctype = self.headers.get("Content-Type") or ""
        encoding = "utf-8"
        for param in ctype.split(";")[1:]:
            name, _, value = param.strip().partition("=")
            if name.lower() == "charset" and value:
                encoding = value.strip('"\' ')
        try:
            return self.content.decode(encoding, "replace")
        except LookupError:
            return self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)

    def iter_content(self, chunk_size: int = READ_CHUNK):
        """The body in pieces of at most `chunk_size` bytes (reads of that size: use 1 MiB)."""
        if self._content is not None:
            data = self._content
            for i in range(0, len(data), chunk_size):
                yield data[i:i + chunk_size]
            return
        if self._started:
            raise RuntimeError("the response body was already (partly) read as a stream")
        self._started = True
        raw = self._raw
        if raw is None:
            return
        while True:
            try:
                data = raw.read(chunk_size)
            except BaseException as exc:
                self._discard()
                if isinstance(exc, Exception):
                    raise _wrap(exc, self._what, "read", self._timeout) from exc
                raise
            if not data:
                break
            yield data
        self._done(raw)

    def _load(self) -> None:
        """Read the whole body now (stream=False)."""
        raw = self._raw
        if raw is None:
            self._content = self._content or b""
            return
        self._started = True
        try:
            data = raw.read()
        except BaseException as exc:
            self._discard()
            if isinstance(exc, Exception):
                raise _wrap(exc, self._what, "read", self._timeout) from exc
            raise
        self._done(raw)
        self._content = data

    def _done(self, raw) -> None:
        """The body was read to its end: check it is complete, give back the connection."""
        if not raw.chunked and raw.length:          # EOF before Content-Length bytes
            missing = raw.length
            self._discard()
            raise ProtocolError(f"{self._what}: connection closed early ({missing} more bytes "
                                "expected)")
        conn, release = self._conn, self._release
        self._raw = self._conn = self._release = None
        raw.close()
        if conn is None:
            return
        if self._reusable and not raw.will_close and conn.sock is not None and release:
            release(conn)
        else:
            conn.close()

    def _discard(self) -> None:
        conn, raw = self._conn, self._raw
        self._raw = self._conn = self._release = None
        if raw is not None:
            raw.close()
        if conn is not None:
            conn.close()

    def _drain(self) -> None:
        """Read a small remaining body so that the connection can be reused, else discard."""
        raw = self._raw
        if raw is None:
            return
        try:
            if self._method_head_or_empty(raw):
                raw.read()
            elif raw.chunked or raw.length is None or raw.length > _DRAIN_LIMIT:
                self._discard()
                return
            else:
                raw.read()
        except Exception:
            self._discard()
            return
        try:
            self._done(raw)
        except HTTPError:
            pass

    @staticmethod
    def _method_head_or_empty(raw) -> bool:
        return getattr(raw, "_method", None) == "HEAD" or (not raw.chunked and raw.length == 0)

    def close(self) -> None:
        """Release the connection: back to the pool if the body was read, otherwise closed."""
        raw = self._raw
        if raw is None:
            return
        if self._method_head_or_empty(raw):
            try:
                raw.read()
                self._done(raw)
            except Exception:
                self._discard()
            return
        self._discard()

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- bodies ------------------------------------------------------------------------------------

def _prepare_body(method: str, data, headers: Headers):
    """(body, length or None, chunked); sets the framing headers."""
    if data is None:
        if method not in ("GET", "HEAD") and "Content-Length" not in headers:
            headers["Content-Length"] = "0"
        return None, 0, False
    if isinstance(data, Mapping):
        data = urlencode(list(data.items()), doseq=True).encode("ascii")
        if "Content-Type" not in headers:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif isinstance(data, str):
        data = data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        headers.pop("Transfer-Encoding", None)
        headers["Content-Length"] = str(len(data))
        return data, len(data), False
    if hasattr(data, "read"):
        raise TypeError("file objects are not supported as request bodies: pass bytes or an "
                        "iterable of bytes")
    try:
        iter(data)
    except TypeError:
        raise TypeError(f"unsupported request body type {type(data).__name__}") from None
    headers.pop("Transfer-Encoding", None)
    if hasattr(data, "__len__"):
        length = len(data)
        headers["Content-Length"] = str(length)
        return data, length, False
    given = str(headers.get("Content-Length") or "").strip()
    if given.isdigit():
        return data, int(given), False
    headers.pop("Content-Length", None)
    headers["Transfer-Encoding"] = "chunked"
    return data, None, True


class _SendError(Exception):
    def __init__(self, exc: BaseException):
        super().__init__(str(exc))
        self.exc = exc


def _send_iterable(sock, body, length: int | None, chunked: bool, what: str) -> None:
    """Stream an iterable body. Exceptions from the iterator itself propagate unchanged.

    A body with a `sendfile(sock)` method (stream.FileBody) goes by sendfile(2) on a
    plain socket; through TLS it is read and sent like any other iterable."""
    sendfile = getattr(body, "sendfile", None)
    if sendfile is not None and not chunked and length is not None \
            and not isinstance(sock, ssl.SSLSocket):
        try:
            sent = sendfile(sock)
        except OSError as exc:
            raise _SendError(exc) from exc
        if sent != length:
            raise ProtocolError(f"{what}: the request body ended after {sent} of its {length} bytes")
        return
    sent = 0
    it = iter(body)
    while True:
        try:
            chunk = next(it)
        except StopIteration:
            break
        if not chunk:
            continue
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"request body chunks must be bytes, not {type(chunk).__name__}")
        n = chunk.nbytes if isinstance(chunk, memoryview) else len(chunk)
        if length is not None and sent + n > length:
            raise ProtocolError(f"{what}: the request body is longer than its Content-Length "
                                f"({length} bytes)")
        try:
            if chunked:
                if n < 65536:
                    sock.sendall(b"%X\r\n%b\r\n" % (n, chunk))
                else:
                    sock.sendall(b"%X\r\n" % n)
                    sock.sendall(chunk)
                    sock.sendall(b"\r\n")
            else:
                sock.sendall(chunk)
        except OSError as exc:
            raise _SendError(exc) from exc
        sent += n
    if chunked:
        try:
            sock.sendall(b"0\r\n\r\n")
        except OSError as exc:
            raise _SendError(exc) from exc
    elif length is not None and sent != length:
        raise ProtocolError(f"{what}: the request body ended after {sent} of its {length} bytes")


def _redirect_method(status: int, method: str) -> str:
    """requests' rules (browsers' behaviour)."""
    if status == 303 and method != "HEAD":
        return "GET"
    if status == 302 and method != "HEAD":
        return "GET"
    if status == 301 and method == "POST":
        return "GET"
    return method


def _origin(url: str) -> tuple[str, str, int | None]:
    p = urlsplit(url)
    scheme = p.scheme.lower()
    try:
        port = p.port
    except ValueError:
        port = None
    return scheme, (p.hostname or "").lower(), port or {"https": 443, "http": 80}.get(scheme)


def _with_params(url: str, params) -> str:
    if not params:
        return url
    items = list(params.items()) if isinstance(params, Mapping) else list(params)
    query = urlencode(items, doseq=True)
    if not query:
        return url
    base, hash_, fragment = url.partition("#")
    sep = "&" if "?" in base else "?"
    if base.endswith(("?", "&")):
        sep = ""
    return f"{base}{sep}{query}{hash_}{fragment}"


def _is_loopback(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    if not (host[:1].isdigit() or ":" in host):
        return False
    import ipaddress
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _dropped(sock) -> bool:
    """Has the server closed (or written to) this idle connection?"""
    try:
        if getattr(sock, "pending", None) and sock.pending():
            return True
        if hasattr(select, "poll"):
            p = select.poll()
            p.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
            return bool(p.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


# -- session -----------------------------------------------------------------------------------

class Session:
    """A thread-safe keep-alive HTTP client (see the module docstring)."""

    def __init__(self, *, pool_size: int = DEFAULT_POOL_SIZE, trust_env: bool = True,
                 user_agent: str = USER_AGENT):
        self.pool_size = max(1, pool_size)
        self.trust_env = trust_env
        self.headers = Headers({"User-Agent": user_agent, "Accept": "*/*",
                                "Accept-Encoding": "identity"})
        self.hooks: dict[str, list] = {"response": []}
        self._idle: dict[tuple, list] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Session pools={len(self._idle)}>"

    # -- pool -------------------------------------------------------------------------------
    def _checkout(self, key):
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                conn = idle.pop()
            if conn.sock is not None and not _dropped(conn.sock):
                return conn
            conn.close()

    def _checkin(self, key, conn) -> None:
        if conn.sock is None:
            return
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.pool_size:
                idle.append(conn)
                return
        conn.close()

    def idle_connections(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._idle.values())

    def close(self) -> None:
        """Close the idle connections (the session stays usable)."""
        with self._lock:
            pools, self._idle = self._idle, {}
        for idle in pools.values():
            for conn in idle:
                conn.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- API --------------------------------------------------------------------------------
    def get(self, url: str, **kw) -> Response:
        return self.request("GET", url, **kw)

    def head(self, url: str, **kw) -> Response:
        return self.request("HEAD", url, **kw)

    def post(self, url: str, data=None, **kw) -> Response:
        return self.request("POST", url, data=data, **kw)

    def put(self, url: str, data=None, **kw) -> Response:
        return self.request("PUT", url, data=data, **kw)

    def delete(self, url: str, **kw) -> Response:
        return self.request("DELETE", url, **kw)

    def request(self, method: str, url: str, *, headers=None, data=None, params=None, auth=None,
                stream: bool = False, timeout=DEFAULT_TIMEOUT, verify=True,
                allow_redirects: bool = True) -> Response:
        method = method.upper()
        url = _with_params(url, params)
        hdrs = self.headers.copy()
        if headers:
            for name, value in headers.items():
                if value is None:
                    hdrs.pop(name, None)
                else:
                    hdrs[name] = value
        parts = urlsplit(url)
        if "@" in parts.netloc:                 # user info: Basic auth (unless auth= is given)
            userinfo, _, hostport = parts.netloc.rpartition("@")
            if auth is None:
                user, _, password = userinfo.partition(":")
                auth = (unquote(user), unquote(password))
            url = parts._replace(netloc=hostport).geturl()
        if auth is not None:
            hdrs["Authorization"] = _basic(*auth)
        body, length, chunked = _prepare_body(method, data, hdrs)
        replayable = body is None or isinstance(body, bytes)

        for hop in range(MAX_REDIRECTS + 1):
            resp = self._send(method, url, hdrs, body, length, chunked, replayable, stream,
                              timeout, verify)
            location = resp.headers.get("Location") if allow_redirects else None
            if resp.status_code not in REDIRECT_STATUSES or not location:
                return resp
            new_method = _redirect_method(resp.status_code, method)
            keep_body = resp.status_code in (307, 308)
            if keep_body and not replayable:
                return resp                     # a stream cannot be sent twice
            if hop == MAX_REDIRECTS:
                resp.close()
                raise TooManyRedirects(f"{method} {_safe_url(url)}: more than {MAX_REDIRECTS} "
                                       "redirects")
            resp._drain()
            target = urljoin(url, location.strip()).partition("#")[0]
            if _origin(target) != _origin(url):
                hdrs.pop("Authorization", None)
            if not keep_body:
                body, length, chunked, replayable = None, 0, False, True
                for name in ("Content-Length", "Content-Type", "Transfer-Encoding"):
                    hdrs.pop(name, None)
                if new_method not in ("GET", "HEAD"):
                    hdrs["Content-Length"] = "0"
            method, url = new_method, target
        raise AssertionError("unreachable")

    # -- one exchange -----------------------------------------------------------------------
    def _send(self, method, url, hdrs: Headers, body, length, chunked, replayable, stream,
              timeout, verify) -> Response:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise InvalidURL(f"unsupported URL scheme in {_safe_url(url)!r}")
        host = parts.hostname
        try:
            port = parts.port
        except ValueError:
            raise InvalidURL(f"invalid port in {_safe_url(url)!r}") from None
        if not host:
            raise InvalidURL(f"no host in {_safe_url(url)!r}")
        default_port = 443 if scheme == "https" else 80
        port = port or default_port
        shown_host = f"[{host}]" if ":" in host else host
        host_header = shown_host if port == default_port else f"{shown_host}:{port}"
        path = parts.path or "/"
        target = path + (f"?{parts.query}" if parts.query else "")
        if not _PLAIN_TARGET.fullmatch(target):
            target = quote(target, safe=_TARGET_SAFE)     # as requests' requote_uri
        what = f"{method} {scheme}://{host_header}{parts.path}"
        if isinstance(timeout, tuple):
            connect_timeout, read_timeout = timeout
        else:
            connect_timeout = read_timeout = timeout

        proxy = None
        if self.trust_env:
            proxy_url = proxy_for(scheme, host, port)
            if proxy_url:
                proxy = _parse_proxy(proxy_url)
                what += f" (via proxy {proxy[0]}:{proxy[1]})"
        ctx = None
        if scheme == "https":
            if (verify is not False and proxy is None and not _context_built(verify)
                    and _is_loopback(host)):
                self._probe_tls(host, port, connect_timeout, what)
            ctx = ssl_context(verify)
        key = (scheme, host.lower(), port, ctx, proxy)

        lines: list[tuple[str, str]] = [("Host", host_header)]
        lines += [(k, str(v)) for k, v in hdrs.items() if k.lower() != "host"]
        if proxy and scheme == "http":
            target = f"http://{host_header}{target}"        # absolute URI to the proxy
            if proxy[2]:
                lines.append(("Proxy-Authorization", proxy[2]))
        request = Request(method, url, hdrs.copy())

        for attempt in (0, 1):
            conn = self._checkout(key) if attempt == 0 else None     # the retry: a new one
            reused = conn is not None
            if conn is None:
                conn = self._connect(scheme, host, port, ctx, proxy, connect_timeout, what)
            try:
                raw, reusable = self._exchange(conn, method, target, lines, body, length, chunked,
                                               read_timeout, what, retry=reused and replayable)
            except _Stale as exc:
                conn.close()
                if attempt == 0:
                    continue                # the server closed the idle connection: once more
                raise _wrap(exc.exc, what, "read", read_timeout) from exc.exc
            except BaseException:
                conn.close()
                raise
            break

        resp = Response(raw.status, None, None, url, reason=raw.reason, request=request)
        for name, value in raw.getheaders():
            resp.headers.add(name, value)
        resp._raw, resp._conn, resp._reusable = raw, conn, reusable
        resp._release = lambda c, key=key: self._checkin(key, c)
        resp._what, resp._timeout = what, read_timeout
        if not stream:
            resp._load()
        for hook in self.hooks.get("response", ()):
            hook(resp)
        return resp

    def _probe_tls(self, host, port, timeout, what) -> None:
        """Does this loopback server speak TLS at all? Asked before building a verifying
        context, which loads every system CA (~40 ms with OpenSSL 3): on a plain-HTTP
        registry (Transport.ping tries https first) the handshake fails before any
        certificate is seen, with the same error. When the server does speak TLS, the
        probe connection is closed and the real, verified one follows (loopback: ~1 ms)."""
        self._connect("https", host, port, ssl_context(False), None, timeout, what).close()

    def _connect(self, scheme, host, port, ctx, proxy, timeout, what):
        conn_host, conn_port = (proxy[0], proxy[1]) if proxy else (host, port)
        if scheme == "https":
            conn = http.client.HTTPSConnection(conn_host, conn_port, timeout=timeout, context=ctx)
            if proxy:
                conn.set_tunnel(host, port, headers={"Proxy-Authorization": proxy[2]}
                                if proxy[2] else None)
        else:
            conn = http.client.HTTPConnection(conn_host, conn_port, timeout=timeout)
        try:
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, Exception):
                error = _wrap(exc, what, "connect", timeout)
                if isinstance(exc, ssl.SSLCertVerificationError) and isinstance(error, SSLError):
                    error.verify_code = exc.verify_code
                    error.verify_message = exc.verify_message
                    error.server_name, error.context = host, ctx
                    error.peer_cert = self._peer_cert(host, port, proxy, timeout, what)
                raise error from exc
            raise
        return conn

    def _peer_cert(self, host, port, proxy, timeout, what) -> bytes | None:
        """The server's certificate (DER) without verifying it, for an error message."""
        try:
            conn = self._connect("https", host, port, ssl_context(False), proxy, timeout, what)
        except Exception:
            return None
        try:
            return conn.sock.getpeercert(binary_form=True)
        except Exception:
            return None
        finally:
            conn.close()

    def _exchange(self, conn, method, target, lines, body, length, chunked, read_timeout, what,
                  *, retry: bool):
        """Send the request, read the status line and headers: (HTTPResponse, reusable).

        Raises _Stale when `retry` and the connection turned out to be closed by the server.
        """
        conn.sock.settimeout(read_timeout)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        except http.client.InvalidURL as exc:
            raise InvalidURL(f"{what}: {exc}") from None
        for name, value in lines:
            try:
                conn.putheader(name, value)
            except ValueError:
                # http.client's message would quote the value (a token, a password).
                raise ProtocolError(f"{what}: invalid value for header {name!r}") from None
        send_error = None
        try:
            try:
                conn.endheaders(body if isinstance(body, bytes) else None)
            except OSError as exc:
                raise _SendError(exc) from exc
            if body is not None and not isinstance(body, bytes):
                _send_iterable(conn.sock, body, length, chunked, what)
        except _SendError as exc:
            if retry and isinstance(exc.exc, _STALE_ERRORS):
                raise _Stale(exc.exc) from None
            if isinstance(exc.exc, TimeoutError):
                raise _wrap(exc.exc, what, "send", read_timeout) from exc.exc
            send_error = exc.exc        # the server may have answered before closing: read it
        try:
            raw = conn.getresponse()
        except Exception as exc:
            if send_error is not None:
                raise _wrap(send_error, what, "send", read_timeout) from send_error
            if retry and isinstance(exc, _STALE_ERRORS):
                raise _Stale(exc) from None
            raise _wrap(exc, what, "read", read_timeout) from exc
        return raw, send_error is None
