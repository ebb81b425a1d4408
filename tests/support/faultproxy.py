"""A fault-injecting HTTP/1.1 proxy in front of a plain-HTTP registry (a flaky network/registry).

    proxy = FaultProxy("127.0.0.1:5000", reset=0.1, error503=0.2, seed=1).start()
    proxy.host            "127.0.0.1:41236"  -> give this to the product as the registry host
    proxy.set(reset=0.0, error503=0.5, bandwidth=200_000, latency=0.05)   at runtime
    proxy.stats           {"requests": 12, "error503": 3, "reset": 1, ...}  (a snapshot)
    proxy.faults          error503 + reset so far
    proxy.events          [(n, "PATCH blobs/uploads/{id}", "/v2/x/blobs/uploads/..", "error503"), ...]
    proxy.injected()      [("PATCH blobs/uploads/{id}", "error503"), ...]   the faults only
    proxy.dry_run([("GET", "/v2/"), ("POST", "/v2/r/blobs/uploads/")])  -> [None, "error503"]
    proxy.down()          every connection is reset, new ones too (registry never recovers);
    proxy.down("refuse")  or: the port is closed (connection refused)
    proxy.up()            back to normal (same port)
    proxy.stop()

Per request (the proxy parses HTTP/1.1 minimally: request/status line, headers,
Content-Length and chunked bodies, keep-alive, HEAD/1xx/204/304 without a body), with
seeded probabilities (see "Determinism" below):
  * reset (probability `reset`): close with SO_LINGER 0 (the client sees ECONNRESET) at one
    of `reset_at` = "request" (as soon as the request head is read; the registry never sees
    it), "before_response" (the registry handled the request, its answer is lost) or
    "mid_response" (the status line/headers or half of the body went out); "any" (default)
    picks one of the three with the same RNG.
  * error503 (probability `error503`): the request body is read and dropped, the answer is
    `503 Service Unavailable` (+ `Retry-After: 0` unless retry_after=False), keep-alive kept.
  * bandwidth (bytes/s, None = unlimited): both directions are shaped to this rate, shared by
    all connections (one slow link); latency (s): a pause before each request is forwarded.
  * match: a regex on "METHOD PATH" (e.g. r"^(PATCH|PUT) /v2/.*/blobs/uploads/"): only those
    requests may get a fault; max_faults: stop injecting after that many.
A TLS ClientHello (the Docker daemon first tries HTTPS on an insecure registry) is answered
like Go's server does ("HTTP/1.0 400 ... HTTP request to an HTTPS server"), so the daemon falls
back to HTTP; these probes are not requests and draw nothing from the RNG.

Determinism: each endpoint kind (endpoint_kind(): "GET /v2/", "POST blobs/uploads/", "PATCH
blobs/uploads/{id}", "HEAD blobs/{digest}", "PUT manifests/{ref}", ...) draws from its own
random.Random(f"{seed}/{kind}"), so the same seed and the same sequence of requests per kind
give the same faults, whatever the repository name, the upload ids, or how concurrent
uploads interleave. dry_run() shows what a seed does to a request sequence.

What the Docker daemon survives (docker.io 20.10.24, measured; see
tests/integration/test_support_token_proxy.py): it retries a *layer* upload (HEAD/POST/PATCH/
PUT of that blob) up to 5 times, waiting 5, 10, 15, 20 s; a 503 on the `GET /v2/` ping is
harmless; any fault on the config blob upload, on the HEAD that follows it, on the manifest
PUT, and a reset of the ping fail the push at once. It opens one connection per request (no
keep-alive), so Go's transparent retry on reused connections never applies. With faults on
every request, a one-layer push succeeds for ~24% of seeds at error503=0.2 and ~8% at
error503=0.2 + reset=0.1 (over 3000 seeds; a failure can take 50 s of backoff). So a test that
wants the daemon itself to ride out faults either picks a seed (dry_run) or restricts faults
(match=/max_faults); a test of the product's own retry can use any seed.

Location headers: the Host header is passed through unchanged, and distribution (no
`http.host` in its config) builds its absolute Location URLs from the request's Host, so the
upload URLs already name the proxy and clients keep going through it. As a safety net, a
Location that names the upstream address is rewritten to the proxy's (stats
"location_rewritten"; 0 with the registries of support/registries.py).

Only for plain-HTTP upstreams on loopback: the daemon treats 127.0.0.0/8 as insecure, so it
pushes to 127.0.0.1:PORT over HTTP. The registry's own checkers (reg.tags(), ...) talk to the
registry directly, not through the proxy.
"""

from __future__ import annotations

import random
import re
import socket
import struct
import threading
import time
from collections import Counter

RESET_POINTS = ("request", "before_response", "mid_response")
_NO_BODY_STATUS = {204, 304}
_BUF = 64 * 1024


_V2_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?P<what>blobs/uploads/?|blobs/|manifests/|tags/list)(?P<rest>[^?]*)")


def endpoint_kind(method: str, path: str) -> str:
    """"PATCH blobs/uploads/{id}", "HEAD blobs/{digest}", "PUT manifests/{ref}", "GET /v2/"...

    Each kind has its own RNG stream (seeded with seed/kind), so which request of a kind gets
    a fault does not depend on how concurrent uploads of different kinds interleave, nor on
    the repository name or the random upload ids.
    """
    path = path.split("?")[0]
    m = _V2_PATH.match(path)
    if not m:
        return f"{method} {path if path in ('/v2/', '/v2', '/v2/_catalog') else 'other'}"
    what = m.group("what")
    if what.startswith("blobs/uploads"):
        return f"{method} blobs/uploads/" + ("{id}" if m.group("rest") else "")
    if what == "blobs/":
        return f"{method} blobs/{{digest}}"
    if what == "manifests/":
        return f"{method} manifests/{{ref}}"
    return f"{method} tags/list"


class _Closed(Exception):
    """The peer went away (or we reset it): end this client connection."""


def hard_reset(sock: socket.socket | None) -> None:
    """Close with SO_LINGER 0: the kernel sends RST, the peer sees 'connection reset by peer'."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Reader:
    """Buffered reads from a socket: lines, exact sizes, up to EOF."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(_BUF)
        except (OSError, ValueError):
            return False
        if not data:
            return False
        self.buf += data
        return True

    def peek(self, n: int = 1) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                break
        return self.buf[:n]

    def head(self, limit: int = 256 * 1024) -> bytes | None:
        """Bytes up to and including the blank line; None on a clean EOF before any byte."""
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                out, self.buf = self.buf[:i + 4], self.buf[i + 4:]
                return out
            if len(self.buf) > limit:
                raise _Closed("header too large")
            if not self._fill():
                if self.buf.strip():
                    raise _Closed("EOF inside a header")
                return None

    def line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                out, self.buf = self.buf[:i + 2], self.buf[i + 2:]
                return out
            if not self._fill():
                raise _Closed("EOF inside a chunked body")

    def chunks(self, n: int):
        """Yield exactly n bytes in pieces."""
        while n > 0:
            if not self.buf and not self._fill():
                raise _Closed("EOF inside a body")
            piece, self.buf = self.buf[:n], self.buf[n:]
            n -= len(piece)
            yield piece

    def until_eof(self):
        while True:
            if self.buf:
                piece, self.buf = self.buf, b""
                yield piece
            if not self._fill():
                return


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    return lines[0], [(k.strip(), v.strip()) for k, _, v in
                      (line.partition(":") for line in lines[1:] if line)]


def _get(headers: list[tuple[str, str]], name: str) -> str | None:
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _build_head(first: str, headers: list[tuple[str, str]]) -> bytes:
    return ("\r\n".join([first] + [f"{k}: {v}" for k, v in headers]) + "\r\n\r\n").encode("latin-1")


def _body_pieces(reader: _Reader, headers: list[tuple[str, str]], *, until_eof: bool = False):
    """The raw bytes of a message body (chunked framing kept), in pieces."""
    te = (_get(headers, "Transfer-Encoding") or "").lower()
    if "chunked" in te:
        while True:
            size_line = reader.line()
            yield size_line
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _Closed("bad chunk size") from None
            if size == 0:
                while True:            # trailers, then the blank line
                    trailer = reader.line()
                    yield trailer
                    if trailer == b"\r\n":
                        return
            yield from reader.chunks(size + 2)
    length = _get(headers, "Content-Length")
    if length is not None:
        yield from reader.chunks(int(length))
    elif until_eof:
        yield from reader.until_eof()


class _Bucket:
    """Shapes a byte stream to `rate` bytes/s (virtual finishing time, shared by threads)."""

    def __init__(self, rate: float):
        self.rate = float(rate)
        self.lock = threading.Lock()
        self.t = time.monotonic()

    def take(self, n: int) -> None:
        with self.lock:
            now = time.monotonic()
            self.t = max(self.t, now) + n / self.rate
            wait = self.t - now
        if wait > 0:
            time.sleep(wait)


class FaultProxy:
    """A threaded fault-injecting proxy on `listen_ip`:free port -> upstream "host:port"."""

    def __init__(self, upstream: str, *, reset: float = 0.0, error503: float = 0.0,
                 retry_after: bool = True, bandwidth: float | None = None, latency: float = 0.0,
                 reset_at: str = "any", match: str | None = None, max_faults: int | None = None,
                 seed: int = 1, listen_ip: str = "127.0.0.1", port: int = 0,
                 rewrite_location: bool = True, timeout: float = 60.0, name: str = "proxy"):
        up_host, _, up_port = upstream.rpartition(":")
        if not up_host or not up_port.isdigit():
            raise ValueError(f"upstream must be HOST:PORT, got {upstream!r}")
        self.upstream = upstream
        self.upstream_addr = (up_host.strip("[]"), int(up_port))
        self.listen_ip = listen_ip
        self.port = port
        self.name = name
        self.timeout = timeout
        self.rewrite_location = rewrite_location
        self._lock = threading.Lock()
        self._stats: Counter = Counter()
        self.events: list[tuple[int, str, str, str]] = []
        self._opts: dict = {}
        self._seed = seed
        self._rngs: dict[str, random.Random] = {}
        self._up_bucket: _Bucket | None = None
        self._down_bucket: _Bucket | None = None
        self._down: str | None = None
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._clients: set[socket.socket] = set()
        self.set(reset=reset, error503=error503, retry_after=retry_after, bandwidth=bandwidth,
                 latency=latency, reset_at=reset_at, match=match, max_faults=max_faults)

    # -- configuration -------------------------------------------------------------------------
    def set(self, **opts) -> "FaultProxy":
        """Change options at runtime: reset, error503, retry_after, bandwidth, latency,
        reset_at, match, max_faults, seed (re-seeds the RNG)."""
        known = {"reset", "error503", "retry_after", "bandwidth", "latency", "reset_at", "match",
                 "max_faults", "seed"}
        unknown = set(opts) - known
        if unknown:
            raise TypeError(f"unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
        with self._lock:
            for k in ("reset", "error503"):
                if k in opts and not 0.0 <= float(opts[k]) <= 1.0:
                    raise ValueError(f"{k} must be a probability in [0, 1], got {opts[k]!r}")
            if "reset_at" in opts and opts["reset_at"] not in (*RESET_POINTS, "any"):
                raise ValueError(f"reset_at must be one of {RESET_POINTS} or 'any'")
            if "seed" in opts:
                self._seed = opts.pop("seed")
                self._rngs.clear()
            if "match" in opts:
                m = opts["match"]
                opts["match"] = re.compile(m) if isinstance(m, str) else m
            if "bandwidth" in opts:
                bw = opts["bandwidth"]
                self._up_bucket = _Bucket(bw) if bw else None
                self._down_bucket = _Bucket(bw) if bw else None
            self._opts.update(opts)
            if self._opts["reset"] + self._opts["error503"] > 1.0:
                raise ValueError("reset + error503 must not exceed 1")
        return self

    @property
    def options(self) -> dict:
        with self._lock:
            return dict(self._opts)

    # -- addresses -----------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return f"{self.listen_ip}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def ref(self, repo: str, tag: str | None = "latest") -> str:
        return f"{self.host}/{repo}" + (f":{tag}" if tag else "")

    def __repr__(self) -> str:
        return f"<FaultProxy {self.name} {self.host} -> {self.upstream} {self.options} down={self._down}>"

    # -- statistics ----------------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats)

    @property
    def faults(self) -> int:
        with self._lock:
            return self._stats["reset"] + self._stats["error503"]

    def reset_stats(self) -> None:
        """Clear stats and events (the RNG streams go on; set(seed=...) restarts them)."""
        with self._lock:
            self._stats.clear()
            self.events.clear()

    def injected(self) -> list[tuple[str, str]]:
        """The faults so far, as (kind, action): [("PATCH blobs/uploads/{id}", "error503")]."""
        with self._lock:
            return [(kind, action) for _, kind, _, action in self.events if action != "forwarded"]

    def dry_run(self, requests: list[tuple[str, str]]) -> list[str | None]:
        """What a fresh proxy with these options and seed would do to this request sequence
        [(method, path), ...] (None = forwarded); touches neither this proxy's RNG nor stats.
        For picking a seed that hits the requests a client retries."""
        opts = self.options
        twin = FaultProxy(self.upstream, seed=self._seed,
                          **{k: opts[k] for k in opts if k != "match"})
        twin._opts["match"] = opts["match"]
        return [twin._decide(m, p) for m, p in requests]

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._stats[key] += n

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "FaultProxy":
        if self._listener is not None:
            return self
        self._stopping.clear()
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((self.listen_ip, self.port))
        lsock.listen(128)
        lsock.settimeout(0.1)
        self.port = lsock.getsockname()[1]
        self._listener = lsock
        self._accept_thread = threading.Thread(target=self._accept_loop, args=(lsock,),
                                               name=f"faultproxy-{self.port}", daemon=True)
        self._accept_thread.start()
        return self

    def _close_listener(self) -> None:
        lsock, self._listener = self._listener, None
        thread, self._accept_thread = self._accept_thread, None
        if lsock is not None:
            self._stopping.set()
            if thread is not None:
                thread.join(timeout=5)
            lsock.close()

    def _reset_clients(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients), set()
        for c in clients:
            hard_reset(c)

    def stop(self) -> None:
        self._close_listener()
        self._reset_clients()

    def down(self, mode: str = "reset") -> None:
        """Fail everything from now on: "reset" (accept, then RST) or "refuse" (port closed)."""
        if mode not in ("reset", "refuse"):
            raise ValueError("mode must be 'reset' or 'refuse'")
        self._down = mode
        if mode == "refuse":
            self._close_listener()
        elif self._listener is None:
            self.start()                  # from "refuse" to "reset": accept (and reset) again
        self._reset_clients()

    def up(self) -> None:
        was, self._down = self._down, None
        if was == "refuse" or self._listener is None:
            self.start()

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the work ------------------------------------------------------------------------------
    def _accept_loop(self, lsock: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                csock, _ = lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._count("connections")
            if self._down:
                self._count("down_rejected")
                hard_reset(csock)
                continue
            csock.settimeout(self.timeout)
            with self._lock:
                self._clients.add(csock)
            threading.Thread(target=self._serve, args=(csock,), daemon=True,
                             name=f"faultproxy-{self.port}-conn").start()

    def _decide(self, method: str, path: str) -> str | None:
        kind = endpoint_kind(method, path)
        with self._lock:
            self._stats["requests"] += 1
            n = self._stats["requests"]
            o = self._opts
            action = None
            eligible = ((o["match"] is None or o["match"].search(f"{method} {path}"))
                        and (o["max_faults"] is None
                             or self._stats["reset"] + self._stats["error503"] < o["max_faults"]))
            if eligible and (o["reset"] or o["error503"]):
                rng = self._rngs.get(kind)
                if rng is None:
                    rng = self._rngs[kind] = random.Random(f"{self._seed}/{kind}")
                r = rng.random()
                if r < o["reset"]:
                    point = o["reset_at"]
                    if point == "any":
                        point = RESET_POINTS[rng.randrange(len(RESET_POINTS))]
                    action = f"reset_{point}"
                    self._stats["reset"] += 1
                    self._stats[action] += 1
                elif r < o["reset"] + o["error503"]:
                    action = "error503"
                    self._stats["error503"] += 1
            self.events.append((n, kind, path, action or "forwarded"))
            return action

    def _send(self, sock: socket.socket, data: bytes, bucket: _Bucket | None, stat: str) -> None:
        # Counted before sending: once the peer has the bytes, the stats include them.
        if bucket is None:
            self._count(stat, len(data))
            sock.sendall(data)
        else:
            step = max(512, min(16 * 1024, int(bucket.rate / 20)))
            for i in range(0, len(data), step):
                piece = data[i:i + step]
                bucket.take(len(piece))
                self._count(stat, len(piece))
                sock.sendall(piece)

    def _serve(self, csock: socket.socket) -> None:
        upstream: socket.socket | None = None
        up_reader: _Reader | None = None
        client = _Reader(csock)
        try:
            if client.peek(1) == b"\x16":      # a TLS ClientHello: answer like Go's server does
                self._count("tls_probes")
                csock.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n"
                              b"Client sent an HTTP request to an HTTPS server.\n")
                return
            while True:
                head = client.head()
                if head is None:
                    return
                if self._down:
                    self._count("down_rejected")
                    hard_reset(csock)
                    return
                first, headers = _parse_head(head)
                parts = first.split(" ")
                if len(parts) != 3:
                    raise _Closed(f"bad request line {first!r}")
                method, target, version = parts
                action = self._decide(method, target.split("?")[0])
                keep_alive = (version == "HTTP/1.1"
                              and (_get(headers, "Connection") or "").lower() != "close")
                if (_get(headers, "Expect") or "").lower() == "100-continue":
                    headers = [(k, v) for k, v in headers if k.lower() != "expect"]
                    csock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                if action == "reset_request":
                    hard_reset(csock)
                    return
                if action == "error503":
                    for _ in _body_pieces(client, headers):
                        pass
                    self._answer_503(csock, keep_alive)
                    if not keep_alive:
                        return
                    continue
                latency = self._opts["latency"]
                if latency:
                    time.sleep(latency)
                # forward the request
                if upstream is None:
                    try:
                        upstream = socket.create_connection(self.upstream_addr, timeout=self.timeout)
                    except OSError as exc:
                        self._count("upstream_errors")
                        for _ in _body_pieces(client, headers):
                            pass
                        body = f"fault proxy: upstream {self.upstream} unreachable: {exc}\n".encode()
                        csock.sendall(_build_head("HTTP/1.1 502 Bad Gateway",
                                                  [("Content-Type", "text/plain"),
                                                   ("Content-Length", str(len(body))),
                                                   ("Connection", "close")]) + body)
                        return
                    up_reader = _Reader(upstream)
                self._count("forwarded")
                self._send(upstream, _build_head(first, headers), self._up_bucket, "bytes_up")
                for piece in _body_pieces(client, headers):
                    self._send(upstream, piece, self._up_bucket, "bytes_up")
                # the response (skipping, but passing on, 1xx interim answers)
                while True:
                    rhead = up_reader.head()
                    if rhead is None:
                        raise _Closed("upstream closed before answering")
                    rfirst, rheaders = _parse_head(rhead)
                    status = int(rfirst.split(" ")[1])
                    if status >= 200:
                        break
                    csock.sendall(rhead)
                if action == "reset_before_response":
                    hard_reset(csock)
                    return
                rheaders = self._rewrite(rheaders)
                no_body = method == "HEAD" or status in _NO_BODY_STATUS
                framed = (_get(rheaders, "Content-Length") is not None
                          or "chunked" in (_get(rheaders, "Transfer-Encoding") or "").lower())
                up_keep = (_get(rheaders, "Connection") or "").lower() != "close" and (framed or no_body)
                out_head = _build_head(rfirst, rheaders)
                if action == "reset_mid_response":
                    self._mid_response_reset(csock, out_head, up_reader, rheaders, no_body)
                    return
                self._send(csock, out_head, self._down_bucket, "bytes_down")
                if not no_body:
                    for piece in _body_pieces(up_reader, rheaders, until_eof=True):
                        self._send(csock, piece, self._down_bucket, "bytes_down")
                if not up_keep:
                    upstream.close()
                    upstream, up_reader = None, None
                if not keep_alive or not (framed or no_body):
                    return
        except (_Closed, OSError, ValueError, IndexError):
            pass
        finally:
            with self._lock:
                self._clients.discard(csock)
            try:
                csock.close()
            except OSError:
                pass
            if upstream is not None:
                upstream.close()

    def _answer_503(self, csock: socket.socket, keep_alive: bool) -> None:
        body = b'{"errors":[{"code":"UNAVAILABLE","message":"service unavailable (fault proxy)"}]}\n'
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                   ("Docker-Distribution-Api-Version", "registry/2.0")]
        if self._opts["retry_after"]:
            headers.append(("Retry-After", "0"))
        if not keep_alive:
            headers.append(("Connection", "close"))
        csock.sendall(_build_head("HTTP/1.1 503 Service Unavailable", headers) + body)

    def _mid_response_reset(self, csock, out_head, up_reader, rheaders, no_body) -> None:
        length = _get(rheaders, "Content-Length")
        if not no_body and length is not None and int(length) >= 2:
            want = int(length) // 2
            sent = b""
            for piece in _body_pieces(up_reader, rheaders):
                sent += piece
                if len(sent) >= want:
                    break
            csock.sendall(out_head + sent[:want])
        else:
            csock.sendall(out_head[:max(1, len(out_head) // 2)])
        hard_reset(csock)

    def _rewrite(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if not self.rewrite_location:
            return headers
        out = []
        for k, v in headers:
            if k.lower() == "location":
                for prefix in (f"http://{self.upstream}", f"https://{self.upstream}"):
                    if v.startswith(prefix + "/") or v == prefix:
                        v = f"http://{self.host}" + v[len(prefix):]
                        self._count("location_rewritten")
                        break
            out.append((k, v))
        return out
