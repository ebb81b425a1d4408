"""A stand-in Docker Engine of API 1.38 (before BuildKit) on a Unix socket: it answers
/_ping and /version and refuses everything else, so a test can show what `release` says
to an engine without BuildKit (every real engine on this machine has it)."""

from __future__ import annotations

import contextlib
import json
import os
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

VERSION = {"Version": "18.06.3", "ApiVersion": "1.38", "MinAPIVersion": "1.12", "Os": "linux",
           "Arch": "amd64", "KernelVersion": "4.19"}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):                                   # noqa: N802 (http.server's name)
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.endswith("/_ping"):
            return self._answer(200, b"OK", "text/plain")
        if path.endswith("/version"):
            return self._answer(200, json.dumps(VERSION).encode(), "application/json")
        return self._answer(404, b'{"message": "not in this stand-in"}', "application/json")

    do_HEAD = do_POST = do_GET

    def _answer(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Api-Version", VERSION["ApiVersion"])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def address_string(self):          # a Unix socket has no client address
        return "unix"

    def log_message(self, *args):
        pass


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@contextlib.contextmanager
def old_engine(path: Path):
    """Serve on `path`; yields the DOCKER_HOST value (unix://...)."""
    path = Path(path)
    if path.exists():
        path.unlink()
    server = _Server(str(path), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"unix://{path}"
    finally:
        server.shutdown()
        server.server_close()
        with contextlib.suppress(OSError):
            os.unlink(path)
