"""HTTP on urllib3 (pipeline.registry.session, proxy, tls), against real local servers.

What is ours on top of urllib3 is tested here: redirects (Authorization never follows a hop
to another origin; the proxy is chosen again on every hop), the proxy environment and
NO_PROXY rules, the CAs trusted (ca_file, REQUESTS_CA_BUNDLE, SSL_CERT_FILE), request bodies
sent with the length they claim, error messages without secrets, and the TLS failure
messages. Servers are started here: http.server in threads (plain and TLS with the test PKI),
raw sockets where a server must misbehave, and a tiny forward/CONNECT proxy. Nothing leaves
127.0.0.1.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import ssl
import threading
import time
from datetime import datetime, timezone

import pytest

from pipeline.registry import session as h
from pipeline.registry import tls
from pipeline.registry.proxy import bypass_proxy, proxy_for
from pipeline.registry.stream import SizedBody
from pipeline.registry.tls import ssl_verify
from tests.support.pki import make_pki

SECRET = "s3cret-pässword-4711"
TOKEN = "tok-very-secret-0815"


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY", "no_proxy", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                 "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)


# -- servers -----------------------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    """Routes: /echo (request as JSON, incl. the client port), /upload (body digest),
    /blob?n=N (N pseudo-random bytes), /redirect?to=URL&code=C, /loop (to itself), /close (answers, then closes)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _body(self) -> tuple[bytes, bool]:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out), True
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n), False

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _route(self) -> None:
        path, _, query = self.path.partition("?")
        args = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        body, chunked = self._body()
        if path == "/echo":
            self._send(200, json.dumps({
                "method": self.command, "path": self.path, "port": self.client_address[1],
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("latin-1")}).encode(), {"Content-Type": "application/json"})
        elif path == "/upload":
            self._send(201, json.dumps({
                "sha256": hashlib.sha256(body).hexdigest(), "size": len(body), "chunked": chunked,
                "content_length": self.headers.get("Content-Length")}).encode())
        elif path == "/blob":
            self._send(200, _blob(int(args["n"])), {"Content-Type": "application/octet-stream"})
        elif path == "/redirect":
            from urllib.parse import unquote
            self._send(int(args.get("code", 307)), b"moved", {"Location": unquote(args["to"])})
        elif path == "/loop":
            self._send(302, b"", {"Location": "/loop"})
        elif path == "/close":
            self._send(200, b"bye", {"Connection": "close"})
            self.close_connection = True
        else:
            self._send(404, b"no such route")

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _route


def _blob(n: int) -> bytes:
    seed = hashlib.sha256(b"blob").digest()
    return (seed * (n // len(seed) + 1))[:n]


class _Quiet(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass                    # clients here abort on purpose (short bodies, early closes)


class Server:
    def __init__(self, context: ssl.SSLContext | None = None, ip: str = "127.0.0.1"):
        self.httpd = _Quiet((ip, 0), Handler)
        self.httpd.daemon_threads = True
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.ip = ip
        self.port = self.httpd.server_address[1]
        self.scheme = "https" if context else "http"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()

    def url(self, path: str, host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.ip}:{self.port}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def pki(session_pki):
    return session_pki          # CA + server certificate for localhost and 127.0.0.1


def _server_context(pki) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    return ctx


@pytest.fixture(scope="module")
def tls_server(pki):
    s = Server(_server_context(pki))
    yield s
    s.stop()


class RawServer:
    """Accepts connections and runs `behave(conn, n)` for the n-th one (0-based) in a thread."""

    def __init__(self, behave):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.behave = behave
        self.connections = 0
        self.requests: list[bytes] = []
        self._stop = False
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            n, self.connections = self.connections, self.connections + 1
            threading.Thread(target=self._run, args=(conn, n), daemon=True).start()

    def _run(self, conn, n) -> None:
        with conn:
            try:
                self.behave(self, conn, n)
            except OSError:
                pass

    def read_request(self, conn) -> bytes | None:
        """One request head (+ Content-Length body); None at EOF."""
        data = b""
        while b"\r\n\r\n" not in data:
            piece = conn.recv(65536)
            if not piece:
                return None
            data += piece
        head, _, rest = data.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                n = int(line.split(b":")[1])
                while len(rest) < n:
                    rest += conn.recv(65536)
        self.requests.append(head)
        return head

    def stop(self) -> None:
        self._stop = True
        self.sock.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


# -- connections -------------------------------------------------------------------------------

def test_keep_alive_reuses_one_connection(server):
    s = h.Session()
    first = s.get(server.url("/echo")).json()
    second = s.get(server.url("/echo"), headers={"X-Two": "2"}).json()
    assert first["port"] == second["port"]            # same client socket
    assert second["headers"]["x-two"] == "2"
    assert second["headers"]["user-agent"] == h.USER_AGENT
    assert second["headers"]["accept-encoding"] == "identity"      # blobs arrive byte for byte


def test_a_failed_request_is_not_sent_again():
    """No retries below the caller's policy: not even a replayable body on a fresh connection."""
    def behave(srv, conn, n):
        while srv.read_request(conn) is not None:
            if n == 0 and len(srv.requests) == 2:
                return                      # the 2nd request on connection 0: close, no answer
            conn.sendall(OK)

    srv = RawServer(behave)
    try:
        s = h.Session()
        url = f"http://127.0.0.1:{srv.port}/x"
        assert s.get(url).content == b"ok"
        with pytest.raises(h.ProtocolError, match="RemoteDisconnected"):
            s.post(url, data=b"payload")
        assert srv.connections == 1 and len(srv.requests) == 2
    finally:
        srv.stop()


def test_idle_connection_closed_by_the_server_is_not_reused():
    def behave(srv, conn, n):
        if srv.read_request(conn) is not None:
            conn.sendall(OK)                     # keep-alive answer, then close while idle

    srv = RawServer(behave)
    try:
        s = h.Session()
        url = f"http://127.0.0.1:{srv.port}/x"
        assert s.get(url).content == b"ok"
        time.sleep(0.05)
        assert s.get(url).content == b"ok"       # no error: a new connection
        assert srv.connections == 2 and len(srv.requests) == 2
    finally:
        srv.stop()


def test_response_hooks_see_every_answer_with_its_request(server):
    s = h.Session()
    seen = []
    s.hooks["response"].append(lambda r: seen.append((r.status_code, r.request.method,
                                                       r.request.path_url)))
    s.get(server.url("/redirect?code=302&to=/echo%3Fx=1"))
    assert seen == [(302, "GET", "/redirect?code=302&to=/echo%3Fx=1"), (200, "GET", "/echo?x=1")]


# -- bodies ------------------------------------------------------------------------------------

def test_iterable_without_length_is_sent_chunked(server):
    pieces = [_blob(100_000), b"", b"x" * 7, _blob(70_000)]
    r = h.Session().request("PUT", server.url("/upload"), data=(p for p in pieces))
    got = r.json()
    assert got["chunked"] is True and got["content_length"] is None
    assert got["sha256"] == hashlib.sha256(b"".join(pieces)).hexdigest()


def test_sized_body_is_sent_with_content_length(server):
    pieces = [_blob(300_000), _blob(5)]
    r = h.Session().request("PUT", server.url("/upload"), data=SizedBody(iter(pieces), 300_005))
    got = r.json()
    assert (got["chunked"], got["content_length"], got["size"]) == (False, "300005", 300_005)
    assert got["sha256"] == hashlib.sha256(b"".join(pieces)).hexdigest()


def test_sized_body_must_keep_to_its_length(server):
    s = h.Session()
    with pytest.raises(h.ProtocolError, match="ended after 3 of its 10 bytes"):
        s.request("PUT", server.url("/upload"), data=SizedBody(iter([b"abc"]), 10))
    with pytest.raises(h.ProtocolError, match="longer than its Content-Length"):
        s.request("PUT", server.url("/upload"), data=SizedBody(iter([b"abc", b"defgh"]), 4))
    assert s.get(server.url("/echo")).status_code == 200


def test_body_iterator_exceptions_propagate_unchanged(server):
    class Boom(Exception):
        pass

    def body():
        yield b"a" * 1000
        raise Boom("digest mismatch")

    s = h.Session()
    with pytest.raises(Boom, match="digest mismatch"):
        s.request("PUT", server.url("/upload"), data=body())
    with pytest.raises(Boom):
        s.request("PUT", server.url("/upload"), data=SizedBody(body(), 5000))
    assert s.get(server.url("/echo")).status_code == 200


def test_post_dict_is_form_encoded_and_params_and_auth(server):
    r = h.Session().post(server.url("/echo"), data={"grant_type": "refresh_token", "scope": "a b"},
                         params=[("scope", "repository:x/y:pull"), ("scope", "registry:catalog:*")],
                         auth=("alice", "pw"))
    got = r.json()
    assert got["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert got["body"] == "grant_type=refresh_token&scope=a+b"
    assert got["path"] == "/echo?scope=repository%3Ax%2Fy%3Apull&scope=registry%3Acatalog%3A%2A"
    assert got["headers"]["authorization"] == "Basic YWxpY2U6cHc="


# -- streaming download ------------------------------------------------------------------------

def test_streamed_download_comes_in_pieces_and_keeps_the_connection(server):
    n = 3 * 1024 * 1024 + 17
    s = h.Session()
    with s.get(server.url(f"/blob?n={n}"), stream=True) as r:
        chunks = list(r.iter_content(1024 * 1024))
        with pytest.raises(RuntimeError, match="already"):
            next(r.iter_content(10))
    assert [len(c) for c in chunks] == [1024 * 1024] * 3 + [17]
    assert b"".join(chunks) == _blob(n)
    port = s.get(server.url("/echo")).json()["port"]
    assert s.get(server.url("/echo")).json()["port"] == port       # pooled again


def test_streamed_download_closed_early_drops_the_connection(server):
    s = h.Session()
    r = s.get(server.url(f"/blob?n={4 * 1024 * 1024}"), stream=True)
    assert len(next(r.iter_content(65536))) == 65536
    r.close()
    r.close()
    assert s.get(server.url("/echo")).status_code == 200


def test_truncated_body_raises_protocol_error():
    def behave(srv, conn, n):
        if srv.read_request(conn) is not None:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)

    srv = RawServer(behave)
    try:
        r = h.Session().get(f"http://127.0.0.1:{srv.port}/b", stream=True)
        with pytest.raises(h.ProtocolError, match="closed early"):
            for _ in r.iter_content(1024 * 1024):
                pass
        with pytest.raises(h.ProtocolError, match="closed early"):
            h.Session().get(f"http://127.0.0.1:{srv.port}/b")
    finally:
        srv.stop()


# -- redirects ---------------------------------------------------------------------------------

def test_redirect_to_another_port_drops_authorization(server):
    other = Server()
    try:
        target = other.url("/echo")
        r = h.Session().get(server.url(f"/redirect?code=307&to={target}"),
                            headers={"Authorization": f"Bearer {TOKEN}", "X-Keep": "1"})
        got = r.json()
        assert r.url == target and got["port"] and got["headers"]["x-keep"] == "1"
        assert "authorization" not in got["headers"]
    finally:
        other.stop()


def test_same_origin_redirect_keeps_authorization_and_resolves_relative_location(server):
    r = h.Session().get(server.url("/redirect?code=302&to=/echo%3Fhop=2"),
                        headers={"Authorization": f"Bearer {TOKEN}"})
    got = r.json()
    assert got["path"] == "/echo?hop=2" and r.url == server.url("/echo?hop=2")
    assert got["headers"]["authorization"] == f"Bearer {TOKEN}"


def test_303_after_post_becomes_get_and_redirect_loops_stop(server):
    got = h.Session().post(server.url("/redirect?code=303&to=/echo"), data=b"body").json()
    assert got["method"] == "GET" and got["body"] == ""
    assert "content-length" not in got["headers"]
    with pytest.raises(h.TooManyRedirects):
        h.Session().get(server.url("/loop"))
    r = h.Session().get(server.url("/redirect?to=/echo"), allow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/echo"


def test_307_keeps_method_and_body_but_a_stream_is_not_sent_twice(server):
    got = h.Session().request("PUT", server.url("/redirect?code=307&to=/upload"), data=b"abc").json()
    assert got["sha256"] == hashlib.sha256(b"abc").hexdigest()
    r = h.Session().request("PUT", server.url("/redirect?code=307&to=/upload"),
                        data=SizedBody(iter([b"abc"]), 3))
    assert r.status_code == 307                 # returned as it is: the caller decides


def test_each_redirect_hop_gets_its_own_proxy_decision(server, monkeypatch):
    """A registry in NO_PROXY may send blob GETs to storage that is only reachable through
    the proxy: the hop goes through the proxy, without the registry's Authorization."""
    proxy = Proxy()
    other = Server()
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("NO_PROXY", f"127.0.0.1:{server.port}")
        r = h.Session().get(server.url(f"/redirect?code=307&to={other.url('/blob')}"),
                            headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.content == b"from proxy" and r.url == other.url("/blob")
        assert proxy.seen == [("GET", other.url("/blob"), None)]
        assert TOKEN not in b"".join(proxy.raw.requests).decode()
    finally:
        other.stop()
        proxy.stop()


# -- TLS ---------------------------------------------------------------------------------------

def test_private_ca_fails_with_system_cas_and_works_with_ca_file(tls_server, pki):
    s = h.Session()
    with pytest.raises(h.SSLError) as info:
        s.get(tls_server.url("/echo", host="localhost"), verify=True)
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
    # ca_file adds the CA to the system ones: one cached context per file.
    ctx = ssl_verify(pki.ca_cert)
    assert ctx is ssl_verify(pki.ca_cert) and ssl_verify(None) is True
    assert s.get(tls_server.url("/echo", host="localhost"), verify=ctx).json()["method"] == "GET"
    assert tls.ca_source(ctx) == ("ca_file", pki.ca_cert)
    assert s.get(tls_server.url("/echo"), verify=False).status_code == 200     # insecure


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"])
def test_ca_bundle_from_the_environment(tls_server, pki, monkeypatch, variable):
    monkeypatch.setenv(variable, str(pki.ca_cert))
    assert h.Session().get(tls_server.url("/echo", host="localhost")).ok
    monkeypatch.delenv(variable)
    with pytest.raises(h.SSLError):
        h.Session().get(tls_server.url("/echo", host="localhost"))


def test_a_ca_bundle_directory_from_the_environment(tls_server, pki, monkeypatch, tmp_path):
    import subprocess

    name = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(pki.ca_cert)],
                          capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / f"{name}.0").write_bytes(pki.ca_cert.read_bytes())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path))
    assert h.Session().get(tls_server.url("/echo", host="localhost")).ok


def test_name_mismatch_is_a_verification_error(pki):
    # The certificate names localhost and 127.0.0.1; 127.0.0.2 is loopback too, but not in it.
    srv = Server(_server_context(pki), ip="127.0.0.2")
    try:
        with pytest.raises(h.SSLError) as info:
            h.Session().get(srv.url("/echo"), verify=ssl_verify(pki.ca_cert))
        assert "CERTIFICATE_VERIFY_FAILED" in str(info.value) and "mismatch" in str(info.value)
        assert info.value.verify_code == 64 and info.value.server_name == "127.0.0.2"
        assert info.value.peer_cert == ssl.PEM_cert_to_DER_cert(pki.server_cert.read_text())
    finally:
        srv.stop()


def _tls_message(pki, verify, host="localhost"):
    """The message errors.connection_error makes of a failed request to a server with pki."""
    from pipeline.registry.errors import connection_error

    srv = Server(_server_context(pki))
    try:
        with pytest.raises(h.SSLError) as info:
            h.Session().get(srv.url("/echo", host=host), verify=verify)
        err = connection_error(f"{host}:{srv.port}", "GET /v2/", info.value)
        assert not err.transient
        return str(err), srv.port
    finally:
        srv.stop()


def test_tls_wrong_name_lists_the_certificates_names(tmp_path):
    pki = make_pki(tmp_path, dns_names=("registry.invalid",), ip_addresses=("10.1.2.3",))
    text, _ = _tls_message(pki, ssl_verify(pki.ca_cert))
    assert "not valid for localhost; its names are registry.invalid, 10.1.2.3" in text
    assert "(OpenSSL: Hostname mismatch, certificate is not valid for 'localhost'.)" in text
    assert "in its subjectAltName" in text


def test_tls_wrong_name_without_a_readable_certificate(tmp_path, monkeypatch):
    pki = make_pki(tmp_path, dns_names=("registry.invalid",), ip_addresses=())
    monkeypatch.setattr(h, "_peer_cert", lambda *a: None)
    text, _ = _tls_message(pki, ssl_verify(pki.ca_cert))
    assert "the host name localhost does not match the certificate" in text
    assert "Hostname mismatch" in text


def test_tls_expired_certificate_gives_its_date(tmp_path):
    pki = make_pki(tmp_path, not_before=datetime(2021, 3, 1, tzinfo=timezone.utc),
                   not_after=datetime(2021, 3, 2, 8, 15, tzinfo=timezone.utc))
    text, _ = _tls_message(pki, ssl_verify(pki.ca_cert))
    assert "certificate expired on 2021-03-02 08:15 UTC (OpenSSL: certificate has expired)" in text
    assert "renew" in text and "ca_file" not in text


def test_tls_unknown_ca_says_which_ca_was_trusted(tmp_path, pki, monkeypatch):
    other = make_pki(tmp_path / "other", ca_name="other CA")
    text, port = _tls_message(other, True)
    assert "not signed by a trusted CA (issuer: CN=other CA)" in text
    assert f"no /etc/docker/certs.d/localhost:{port}/ca.crt" in text
    assert "unable to get local issuer certificate" in text
    assert "set `ca_file: path/to/ca.crt`" in text

    text, _ = _tls_message(other, ssl_verify(pki.ca_cert))
    assert f"the system CAs and ca_file {pki.ca_cert} from release.yml" in text
    assert "this ca_file did not sign the registry's certificate" in text

    certs_d = tmp_path / "certs.d"
    (certs_d / "localhost:5000").mkdir(parents=True)
    ca = certs_d / "localhost:5000" / "ca.crt"
    ca.write_bytes(pki.ca_cert.read_bytes())
    monkeypatch.setattr("pipeline.registry.tls.DOCKER_CERTS_D", certs_d)
    text, _ = _tls_message(other, ssl_verify(ca))
    assert f"the system CAs and Docker's {ca}" in text
    assert "that certs.d ca.crt did not sign" in text


def test_certificate_facts_without_cryptography(tmp_path):
    from pipeline.registry import errors

    pki = make_pki(tmp_path, dns_names=("a.invalid",), ip_addresses=("10.0.0.9",),
                   not_before=datetime(2021, 1, 1, tzinfo=timezone.utc),
                   not_after=datetime(2021, 1, 2, tzinfo=timezone.utc))
    der = ssl.PEM_cert_to_DER_cert(pki.server_cert.read_text())
    facts = errors._cert_facts_ssl(der)
    assert facts["names"] == ["a.invalid", "10.0.0.9"]
    assert facts["not_after"] == datetime(2021, 1, 2, tzinfo=timezone.utc)
    assert errors._cert_facts(b"not a certificate") == {}
    assert errors._reason_from_text("GET x: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
                                    "failed: certificate has expired (_ssl.c:1006)") \
        == "certificate has expired"


def test_plain_http_costs_no_ca_loading(server, monkeypatch):
    def no(*args):
        raise AssertionError("the system CAs were loaded for a plain-HTTP request")

    monkeypatch.setattr(tls, "_verifying", no)
    monkeypatch.setenv("SSL_CERT_DIR", "/nonexistent/fresh-cache-key")
    assert h.Session().get(server.url("/echo")).ok
    with pytest.raises(AssertionError, match="system CAs"):
        h.Session().get(f"https://127.0.0.1:{server.port}/echo")


def test_plain_http_server_asked_for_https_is_a_tls_error(server, pki):
    with pytest.raises(h.SSLError, match="WRONG_VERSION_NUMBER|wrong version|record layer") as info:
        h.Session().get(f"https://127.0.0.1:{server.port}/echo", verify=ssl_verify(pki.ca_cert))
    assert info.value.verify_code is None


def test_bad_ca_file_is_an_os_error(tmp_path):
    bad = tmp_path / "not-a-ca.pem"
    bad.write_text("hello\n")
    with pytest.raises(OSError):
        ssl_verify(bad)
    with pytest.raises(OSError):
        ssl_verify(tmp_path / "missing.pem")


# -- failures ----------------------------------------------------------------------------------

def test_read_timeout_raises_timeout():
    def behave(srv, conn, n):
        srv.read_request(conn)
        time.sleep(2)                           # never answers in time

    srv = RawServer(behave)
    try:
        t0 = time.monotonic()
        with pytest.raises(h.Timeout, match="timed out"):
            h.Session().get(f"http://127.0.0.1:{srv.port}/", timeout=0.2)
        assert time.monotonic() - t0 < 1.5
    finally:
        srv.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_and_no_secret_in_the_error():
    port = _free_port()
    url = f"http://user:{SECRET}@127.0.0.1:{port}/v2/?token={TOKEN}"
    with pytest.raises(h.ConnectError) as info:
        h.Session().get(url, headers={"Authorization": f"Bearer {TOKEN}"}, auth=("alice", SECRET))
    text = f"{info.value} {info.value!r}"
    assert "Connection refused" in text
    assert SECRET not in text and TOKEN not in text and "Basic" not in text


def test_invalid_header_value_does_not_echo_the_value(server):
    with pytest.raises(h.HTTPError) as info:
        h.Session().get(server.url("/echo"), headers={"Authorization": f"Bearer {TOKEN}\r\nX: y"})
    assert "Authorization" in str(info.value) and TOKEN not in f"{info.value} {info.value!r}"


def test_response_and_request_reprs_hide_secrets(server):
    r = h.Session().get(server.url("/echo"), headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.request.headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in repr(r) + repr(r.request) + repr(r.request.headers)
    assert r.request.path_url == "/echo"


# -- proxies -----------------------------------------------------------------------------------

class Proxy:
    """A forward proxy: absolute-URI requests answered by itself, CONNECT tunnelled."""

    def __init__(self):
        self.seen: list[tuple[str, str, str | None]] = []    # (method, target, Proxy-Authorization)
        self.raw = RawServer(self._behave)
        self.port = self.raw.port

    def _behave(self, srv, conn, n):
        head = srv.read_request(conn)
        if head is None:
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        auth = next((line.split(":", 1)[1].strip() for line in lines[1:]
                     if line.lower().startswith("proxy-authorization:")), None)
        self.seen.append((method, target, auth))
        if method != "CONNECT":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
                         b"from proxy")
            return
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def pump(a, b):
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        t = threading.Thread(target=pump, args=(upstream, conn), daemon=True)
        t.start()
        pump(conn, upstream)
        t.join(2)
        upstream.close()

    def stop(self):
        self.raw.stop()


def test_http_proxy_and_no_proxy_bypass(server, monkeypatch):
    proxy = Proxy()
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://bob:{SECRET}@127.0.0.1:{proxy.port}")
        r = h.Session().get(server.url("/echo?a=1"))
        assert r.content == b"from proxy"
        method, target, auth = proxy.seen[-1]
        assert (method, target) == ("GET", server.url("/echo?a=1"))     # absolute URI
        assert auth and auth.startswith("Basic ")
        monkeypatch.setenv("NO_PROXY", "example.com, 127.0.0.1")
        assert h.Session().get(server.url("/echo")).json()["method"] == "GET"   # direct
        assert len(proxy.seen) == 1
    finally:
        proxy.stop()


def test_https_goes_through_connect(tls_server, pki, monkeypatch):
    proxy = Proxy()
    try:
        monkeypatch.setenv("https_proxy", f"127.0.0.1:{proxy.port}")
        monkeypatch.setenv("NO_PROXY", "other.example")
        r = h.Session().get(tls_server.url("/echo", host="localhost"),
                            verify=ssl_verify(pki.ca_cert))
        assert r.json()["headers"]["host"] == f"localhost:{tls_server.port}"
        assert proxy.seen == [("CONNECT", f"localhost:{tls_server.port}", None)]
    finally:
        proxy.stop()


@pytest.mark.parametrize("host, port, no_proxy, bypass", [
    ("registry.example.com", 443, "example.com", True),
    ("registry.example.com", 443, ".example.com", True),
    ("registry.example.com", 443, "*.example.com", True),
    ("badexample.com", 443, "example.com", False),
    ("registry.example.com", 5000, "registry.example.com:5000", True),
    ("registry.example.com", 443, "registry.example.com:5000", False),
    ("10.1.2.3", 443, "10.0.0.0/8", True),
    ("127.0.0.1", 80, "localhost", False),        # like requests: no implicit loopback rule
    ("::1", 80, "::1", True),
    ("anything", 80, " * ", True),
    ("anything", 80, "", False),
    ("registry.example.com.", 443, "other.example, example.com.", True),
    ("::1", 5000, "[::1]:5000", True),
    ("::1", 5001, "[::1]:5000", False),
    ("fd00::7", 443, "fd00::/8", True),
    ("registry.example.com", 443, "10.0.0.0/8", False),    # a name is not in a CIDR range
])
def test_no_proxy_rules(host, port, no_proxy, bypass):
    assert bypass_proxy(host, port, no_proxy) is bypass


def test_proxy_environment_precedence(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://upper:1")
    monkeypatch.setenv("https_proxy", "http://lower:2")
    monkeypatch.setenv("ALL_PROXY", "http://all:3")
    assert proxy_for("https", "r.example", 443) == "http://lower:2"
    assert proxy_for("http", "r.example", 80) == "http://all:3"
    monkeypatch.setenv("no_proxy", "r.example")
    assert proxy_for("https", "r.example", 443) is None
    assert proxy_for("https", "s.example", 443) == "http://lower:2"


def test_http_proxy_is_ignored_in_cgi_and_a_bare_proxy_is_http(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://from-a-request-header:1")
    monkeypatch.setenv("REQUEST_METHOD", "GET")
    assert proxy_for("http", "r.example", 80) is None               # httpoxy
    monkeypatch.setenv("http_proxy", "proxy.internal:3128")
    assert proxy_for("http", "r.example", 80) == "http://proxy.internal:3128"


def test_unreachable_or_unknown_proxy_errors_name_no_password(server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", f"http://bob:{SECRET}@127.0.0.1:{_free_port()}")
    with pytest.raises(h.ConnectError) as info:
        h.Session().get(server.url("/echo"))
    assert "via proxy 127.0.0.1:" in str(info.value) and "Connection refused" in str(info.value)
    assert SECRET not in str(info.value)
    monkeypatch.setenv("HTTP_PROXY", f"socks5://bob:{SECRET}@127.0.0.1:1080")
    with pytest.raises(h.HTTPError, match="unsupported proxy scheme socks5://") as info:
        h.Session().get(server.url("/echo"))
    assert SECRET not in str(info.value)


# -- Response ----------------------------------------------------------------------------------

def test_response_helper_and_case_insensitive_headers():
    r = h.Response(429, b'{"errors": []}', {"Retry-After": "3", "content-type": "application/json"})
    assert r.headers["retry-after"] == "3" and r.headers.get("Content-Type") == "application/json"
    assert r.json() == {"errors": []} and r.text == '{"errors": []}'
    assert list(r.iter_content(5)) == [b'{"err', b'ors":', b' []}']
    assert not r.ok
    r.close()


def test_a_proxy_url_with_a_bad_port_is_refused_without_its_password(monkeypatch):
    from pipeline.registry.session import HTTPError, Session
    monkeypatch.setenv("HTTPS_PROXY", "http://bob:Sup3rS3cret@proxy.invalid:99999")
    with pytest.raises(HTTPError) as info:
        Session().request("GET", "https://registry.example.com/v2/")
    assert "Sup3rS3cret" not in str(info.value) and "invalid proxy URL" in str(info.value)
