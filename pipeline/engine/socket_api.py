"""Read-only Docker Engine calls over the local Unix socket, without docker-py.

Importing docker-py (and requests under it) costs more than a whole re-run with
nothing to push, and a release that is already on every registry only needs to
know the local image's id. So the two read calls of the push path, image inspect
and image export (`docker save`), go straight to the socket when the engine is
local: DOCKER_HOST unset (/var/run/docker.sock, docker-py's default) or unix://.
Anything else (tcp://, ssh://, TLS) goes through docker-py as before.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Iterator
from urllib.parse import quote

DEFAULT_SOCKET = "/var/run/docker.sock"
READ_CHUNK = 1024 * 1024


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


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class EngineSocket:
    def __init__(self, path: str, timeout: float = 900.0):
        self.path = path
        self.timeout = timeout

    def _get(self, path: str) -> tuple[_UnixConnection, http.client.HTTPResponse]:
        conn = _UnixConnection(self.path, self.timeout)
        try:
            conn.request("GET", path, headers={"Host": "docker"})
            resp = conn.getresponse()
        except OSError as exc:
            conn.close()
            raise EngineSocketError(f"cannot reach the Docker Engine at unix://{self.path}: "
                                    f"{exc.strerror or exc}") from None
        except http.client.HTTPException as exc:
            conn.close()
            raise EngineSocketError(f"the Docker Engine at unix://{self.path} broke the "
                                    f"connection: {exc!r}") from None
        if resp.status >= 400:
            body = resp.read(65536)
            conn.close()
            try:
                message = json.loads(body).get("message") or body.decode(errors="replace")
            except (ValueError, AttributeError):
                message = body.decode(errors="replace")
            raise EngineSocketError(message.strip() or f"HTTP {resp.status}", resp.status)
        return conn, resp

    def ping(self) -> None:
        conn, resp = self._get("/_ping")
        resp.read()
        conn.close()

    def info(self) -> dict:
        conn, resp = self._get("/info")
        try:
            return json.loads(resp.read())
        finally:
            conn.close()

    def inspect_image(self, ref: str) -> dict | None:
        """The engine's image inspect document, or None if there is no such local image."""
        try:
            conn, resp = self._get(f"/images/{quote(ref, safe='/:@')}/json")
        except EngineSocketError as exc:
            if exc.status == 404:
                return None
            raise
        try:
            return json.loads(resp.read())
        finally:
            conn.close()

    def export(self, ref: str) -> Iterator[bytes]:
        """`docker save REF` as a stream of tar chunks."""
        conn, resp = self._get(f"/images/{quote(ref, safe='/:@')}/get")
        try:
            while True:
                try:
                    chunk = resp.read(READ_CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise EngineSocketError(f"the Docker Engine stopped sending the export of "
                                            f"{ref}: {exc!r}") from None
                if not chunk:
                    return
                yield chunk
        finally:
            conn.close()
