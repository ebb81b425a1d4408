"""copy_image / tag_image against the real local registries (checked with their own clients)."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from pipeline.auth.credentials import ANONYMOUS, Credentials
from pipeline.model.status import Status
from pipeline.registry.client import DigestMismatch, RegistryClient
from pipeline.registry.copy import copy_image, tag_image
from pipeline.registry.manifest import OCI_INDEX, OCI_MANIFEST
from tests.support.images import build_image, push_image

ALREADY, PUSHED = Status.ALREADY, Status.PUSHED

pytestmark = pytest.mark.integration

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def _client(reg, **kw) -> RegistryClient:
    creds = Credentials("test", reg.username, reg.password) if reg.username else ANONYMOUS
    return RegistryClient(reg.host, creds, ca_file=reg.ca_file, retry_attempts=2,
                          retry_max_delay=0.01, **kw)


def _repo(label: str) -> str:
    return f"tests/copy-{label}-{uuid.uuid4().hex[:6]}"


def _build_push(engine, reg, repo, tmp_path, label: str, layers: int = 3) -> str:
    """FROM scratch + `layers` COPY steps (one layer each), pushed by the engine; its digest."""
    ctx = tmp_path / f"ctx-{label}"
    ctx.mkdir()
    lines = ["FROM scratch"]
    for i in range(layers):
        (ctx / f"f{i}.txt").write_text(f"{label} layer {i} {uuid.uuid4().hex}\n" * (i + 1))
        lines.append(f"COPY f{i}.txt /f{i}.txt")
    (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
    ref = reg.ref(repo, None)
    image_id = build_image(engine, ctx, f"{ref}:src")
    try:
        digest = push_image(engine, ref, "src", reg.auth_config).digest
    finally:
        engine.images.remove(image_id, force=True)
    assert digest and reg.manifest_digest(repo, "src") == digest
    return digest


@pytest.fixture(scope="module")
def source(docker_engine, plain_registry, tmp_path_factory):
    """One 3-layer image pushed by the engine to plain_registry (shared by this module)."""
    repo = _repo("src")
    digest = _build_push(docker_engine, plain_registry, repo, tmp_path_factory.mktemp("src"), "main")
    manifest = plain_registry.manifest(repo, digest).json()
    assert len(manifest["layers"]) == 3
    return repo, digest


def test_tag_image_adds_tags_without_blob_traffic(plain_registry, source):
    repo, digest = source
    client = _client(plain_registry)
    seen: list[str] = []
    client._transport.session.hooks["response"].append(
        lambda r, *a, **k: seen.append(f"{r.request.method} {r.request.path_url}"))

    status = tag_image(client, repo, digest, ["1.0", "1", "stable"])

    assert status == {"1.0": PUSHED, "1": PUSHED, "stable": PUSHED}
    for tag in ("1.0", "1", "stable"):
        assert plain_registry.manifest_digest(repo, tag) == digest
    assert {"1.0", "1", "stable", "src"} <= set(plain_registry.tags(repo))
    assert not [s for s in seen if "/blobs/" in s]
    assert sum(s.startswith("GET ") and "/manifests/" in s for s in seen) == 1   # one GET only
    # Again: HEAD only, nothing PUT.
    seen.clear()
    assert tag_image(client, repo, digest, ["1.0", "stable"]) == {"1.0": ALREADY, "stable": ALREADY}
    assert not [s for s in seen if s.startswith("PUT ")]


def test_copy_across_registries_streams_blobs_and_is_idempotent(plain_registry, auth_tls_registry,
                                                                 source):
    repo, digest = source
    src, dst = _client(plain_registry), _client(auth_tls_registry)
    dst_repo = _repo("dst")

    result = copy_image(src, repo, "src", dst, dst_repo, tags=["2.0.0", "latest"])

    assert result.digest == digest
    assert (result.blobs_copied, result.blobs_mounted, result.blobs_skipped) == (4, 0, 0)
    assert result.tags == {"2.0.0": PUSHED, "latest": PUSHED}
    assert auth_tls_registry.manifest_digest(dst_repo, "2.0.0") == digest
    assert auth_tls_registry.manifest_digest(dst_repo, digest) == digest
    assert auth_tls_registry.skopeo_digest(f"{dst_repo}:latest") == digest
    assert auth_tls_registry.tags(dst_repo) == ["2.0.0", "latest"]

    again = copy_image(src, repo, digest, dst, dst_repo, tags=["2.0.0", "latest"])
    assert (again.blobs_copied, again.blobs_mounted, again.blobs_skipped) == (0, 0, 4)
    assert (again.manifests_pushed, again.manifests_skipped) == (0, 1)
    assert again.tags == {"2.0.0": ALREADY, "latest": ALREADY}


def test_copy_within_a_registry_mounts_blobs(plain_registry, source):
    repo, digest = source
    client = _client(plain_registry)
    dst_repo = _repo("mounted")

    result = copy_image(client, repo, digest, client, dst_repo, tags=["v1"])

    assert result.blobs_mounted == 4 and result.blobs_copied == 0
    assert plain_registry.manifest_digest(dst_repo, "v1") == digest
    assert plain_registry.skopeo_digest(f"{dst_repo}:v1") == digest


def _oci_image(src: RegistryClient, repo: str, docker_digest: str) -> tuple[bytes, dict]:
    """An OCI image manifest over the same blobs as a pushed Docker v2 image, and its platform."""
    docker = json.loads(src.get_manifest(repo, docker_digest)[0])
    config = json.loads(src.get_blob(repo, docker["config"]["digest"]))
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": docker["config"]["digest"],
                   "size": docker["config"]["size"]},
        "layers": [{"mediaType": OCI_LAYER, "digest": l["digest"], "size": l["size"]}
                   for l in docker["layers"]],
        "annotations": {"org.example.test": "unordered keys & unicode: \u00e9"},
    }
    body = json.dumps(manifest, indent=3).encode()       # unusual formatting: bytes must survive
    return body, {"os": config.get("os", "linux"), "architecture": config.get("architecture", "amd64")}


def test_copy_oci_index_preserves_digest(docker_engine, plain_registry, auth_tls_registry,
                                         source, tmp_path):
    repo, first = source
    second = _build_push(docker_engine, plain_registry, repo, tmp_path, "second", layers=2)
    src, dst = _client(plain_registry), _client(auth_tls_registry)

    entries = []
    for docker_digest, variant in ((first, "v1"), (second, "v2")):
        body, platform = _oci_image(src, repo, docker_digest)
        info = src.put_manifest(repo, "sha256:" + hashlib.sha256(body).hexdigest(), body)
        entries.append({"mediaType": OCI_MANIFEST, "digest": info.digest, "size": len(body),
                        "platform": dict(platform, variant=variant)})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    index_digest = "sha256:" + hashlib.sha256(index).hexdigest()
    assert src.put_manifest(repo, index_digest, index).digest == index_digest
    assert plain_registry.manifest(repo, index_digest).media_type == OCI_INDEX

    dst_repo = _repo("index")
    result = copy_image(src, repo, index_digest, dst, dst_repo, tags=["multi"])

    assert result.digest == index_digest and result.media_type == OCI_INDEX
    assert result.manifests_pushed == 3                       # two children + the index
    assert result.blobs_copied == 4 + 3                       # config+3 layers, config+2 layers
    assert auth_tls_registry.manifest_digest(dst_repo, "multi") == index_digest
    assert auth_tls_registry.skopeo_digest(f"{dst_repo}:multi") == index_digest
    assert auth_tls_registry.manifest(dst_repo, "multi").body == index
    for entry in entries:
        assert auth_tls_registry.manifest_digest(dst_repo, entry["digest"]) == entry["digest"]


# -- a corrupted source: a tiny stand-in registry that serves one wrong byte ---------------------

class _CorruptingSource(ThreadingHTTPServer):
    """Serves manifests and blobs copied from a real registry, with one byte of one blob flipped."""

    daemon_threads = True

    def __init__(self, manifests: dict[str, tuple[str, bytes]], blobs: dict[str, bytes]):
        self.manifests, self.blobs = manifests, blobs

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_HEAD(self):
                self.do_GET(head=True)

            def do_GET(self, head=False):
                server: _CorruptingSource = self.server
                path = self.path.split("?", 1)[0]
                if path == "/v2/":
                    return self._send(200, b"{}", "application/json", head)
                if "/manifests/" in path:
                    found = server.manifests.get(path.rsplit("/", 1)[1])
                    if found:
                        return self._send(200, found[1], found[0], head)
                if "/blobs/" in path:
                    data = server.blobs.get(path.rsplit("/", 1)[1])
                    if data is not None:
                        return self._send(200, data, "application/octet-stream", head)
                self._send(404, b'{"errors":[{"code":"NOT_FOUND"}]}', "application/json", head)

            def _send(self, status, body, ctype, head):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


def test_corrupted_blob_is_detected_and_nothing_is_tagged(plain_registry, auth_tls_registry, source):
    repo, digest = source
    m = plain_registry.manifest(repo, digest)
    layers = m.json()["layers"]
    blobs = {}
    for d in [m.json()["config"]] + layers:
        r = requests.get(f"{plain_registry.url}/v2/{repo}/blobs/{d['digest']}", timeout=10)
        blobs[d["digest"]] = r.content
    bad = layers[-1]["digest"]
    data = bytearray(blobs[bad])
    data[len(data) // 2] ^= 0x01                               # same size, one bit wrong
    blobs[bad] = bytes(data)
    stand_in = _CorruptingSource({digest: (m.media_type, m.body), "src": (m.media_type, m.body)}, blobs)
    threading.Thread(target=stand_in.serve_forever, kwargs={"poll_interval": 0.02},
                     daemon=True).start()
    sleeps: list[float] = []
    try:
        src = RegistryClient(stand_in.host, sleep=sleeps.append, retry_max_delay=0.01)
        dst = _client(auth_tls_registry)
        dst_repo = _repo("corrupt")
        with pytest.raises(DigestMismatch, match="expected " + bad):
            copy_image(src, "any/repo", "src", dst, dst_repo, tags=["must-not-exist"], jobs=1)
    finally:
        stand_in.shutdown()
        stand_in.server_close()
    assert sleeps == []                                        # an integrity error is not retried
    assert auth_tls_registry.tags(dst_repo) == []
    assert auth_tls_registry.manifest_digest(dst_repo, digest) is None
    head = requests.head(f"{auth_tls_registry.url}/v2/{dst_repo}/blobs/{bad}",
                         auth=(auth_tls_registry.username, auth_tls_registry.password),
                         verify=str(auth_tls_registry.ca_file), timeout=10)
    assert head.status_code == 404                             # the wrong blob was never committed
