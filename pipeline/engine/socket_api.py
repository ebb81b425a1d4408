"""Read-only Docker Engine calls over the local Unix socket, without docker-py.

Importing docker-py (and requests under it) takes ~0.2 s, longer than the registry round of a
re-run with nothing to push, and a release that is already on every registry only needs to
know the local image's id. So the two read calls of the push path, image inspect
and image export (`docker save`), go straight to the socket when the engine is
local: DOCKER_HOST unset (/var/run/docker.sock, docker-py's default) or unix://.
Anything else (tcp://, ssh://, TLS) goes through docker-py as before.

HTTP is urllib3's (the registry client's library, so a re-run imports nothing more): one
keep-alive pool per socket whose connections open the Unix socket instead of TCP; the
export is streamed (`preload_content=False`), 1 MiB at a time.
"""

from __future__ import annotations

import json
import socket
from typing import Iterator
from urllib.parse import quote

import urllib3
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

DEFAULT_SOCKET = "/var/run/docker.sock"
READ_CHUNK = 1024 * 1024
POOL_SIZE = 4           # an export streaming while an inspect runs needs two


class EngineSocketError(Exception):
    """The engine could not be reached, or answered with an error (message from the engine)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def socket_path(env) -> str | None:
    """The engine's Unix socket, or None when DOCKER_HOST points elsewhere."""
    host = (env.get("DOCKER_HOST") or "").strip()
    if not host:
        return DEFAULT_SOCKET
    if host.startswith("unix://"):
        return host[len("unix://"):] or DEFAULT_SOCKET
    return None


class _UnixConnection(HTTPConnection):
    """urllib3's HTTP connection over a Unix socket (no TCP, no proxy, no TLS)."""

    def __init__(self, *args, socket_path: str, **kw):
        super().__init__(*args, **kw)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _UnixPool(HTTPConnectionPool):
    ConnectionCls = _UnixConnection


class EngineSocket:
    def __init__(self, path: str, timeout: float = 900.0):
        self.path = path
        self.timeout = timeout
        self._pool = _UnixPool("localhost", timeout=urllib3.Timeout(connect=timeout, read=timeout),
                               maxsize=POOL_SIZE, block=False, retries=False, socket_path=path)

    def close(self) -> None:
        """Close the idle connections (the socket stays usable)."""
        self._pool.close()

    def _get(self, path: str) -> urllib3.BaseHTTPResponse:
        """The engine's answer to GET `path`, its body not read yet (release_conn() after)."""
        try:
            resp = self._pool.urlopen("GET", path, headers={"Host": "docker"}, retries=False,
                                      redirect=False, preload_content=False, decode_content=False)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            root = _root(exc)
            if isinstance(root, OSError):
                raise EngineSocketError(f"cannot reach the Docker Engine at unix://{self.path}: "
                                        f"{root.strerror or root}") from None
            raise EngineSocketError(f"the Docker Engine at unix://{self.path} broke the "
                                    f"connection: {root!r}") from None
        if resp.status >= 400:
            try:
                body = resp.read(65536)
            except (urllib3.exceptions.HTTPError, OSError):
                body = b""
            finally:
                resp.close()
                resp.release_conn()
            try:
                message = json.loads(body).get("message") or body.decode(errors="replace")
            except (ValueError, AttributeError):
                message = body.decode(errors="replace")
            raise EngineSocketError(message.strip() or f"HTTP {resp.status}", resp.status)
        return resp

    def _json(self, path: str):
        resp = self._get(path)
        try:
            return json.loads(self._read(resp, None, path))
        finally:
            resp.release_conn()

    def _read(self, resp, amount: int | None, what: str) -> bytes:
        try:
            return resp.read(amount)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            resp.close()
            raise EngineSocketError(f"the Docker Engine stopped sending {what}: "
                                    f"{_root(exc)!r}") from None

    def ping(self) -> None:
        resp = self._get("/_ping")
        try:
            self._read(resp, None, "/_ping")
        finally:
            resp.release_conn()

    def info(self) -> dict:
        return self._json("/info")

    def inspect_image(self, ref: str) -> dict | None:
        """The engine's image inspect document, or None if there is no such local image."""
        try:
            return self._json(f"/images/{quote(ref, safe='/:@')}/json")
        except EngineSocketError as exc:
            if exc.status == 404:
                return None
            raise

    def export(self, ref: str) -> Iterator[bytes]:
        """`docker save REF` as a stream of tar chunks."""
        resp = self._get(f"/images/{quote(ref, safe='/:@')}/get")
        complete = False
        try:
            while True:
                chunk = self._read(resp, READ_CHUNK, f"the export of {ref}")
                if not chunk:
                    complete = True
                    return
                yield chunk
        finally:
            if not complete:
                resp.close()        # abandoned half-way: the connection cannot be reused
            resp.release_conn()


def _root(exc: BaseException) -> BaseException:
    """The error urllib3 wrapped (ProtocolError("Connection aborted.", OSError(...)), ...)."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "reason", None) or \
            next((a for a in exc.args if isinstance(a, BaseException)), None) or exc.__cause__
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc
