"""RegistryClient against real registries: plain, htpasswd + TLS, token auth, a faulty network.

Assertions use the registries' own checkers (reg.tags, reg.manifest_digest, skopeo) or
plain `requests`, never the client under test.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid

import pytest
import requests

from pipeline.auth.credentials import ANONYMOUS, Credentials
from pipeline.errors import UsageError
from pipeline.model.status import Status
from pipeline.registry.client import RegistryAPIError, RegistryClient
from pipeline.registry.copy import copy_image, tag_image
from pipeline.registry.manifest import OCI_MANIFEST
from pipeline.ui import redact
from tests.support.faultproxy import FaultProxy
from tests.support.tokenserver import TokenRegistry

PUSHED = Status.PUSHED

pytestmark = pytest.mark.integration

EMPTY_CONFIG = b"{}"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _creds(reg, password: str | None = None) -> Credentials:
    if reg.username is None:
        return ANONYMOUS
    return Credentials("test", reg.username, password or reg.password)


class Recorder:
    """Fake `sleep` for the client: records the waits instead of sleeping."""

    def __init__(self):
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _client(reg_or_host, creds=ANONYMOUS, **kw) -> tuple[RegistryClient, Recorder, list[str]]:
    """A client whose sleeps and HTTP requests are recorded."""
    sleeps = Recorder()
    host = getattr(reg_or_host, "host", reg_or_host)
    ca_file = getattr(reg_or_host, "ca_file", None)
    kw.setdefault("retry_max_delay", 5.0)
    client = RegistryClient(host, creds, ca_file=ca_file, sleep=sleeps, **kw)
    log: list[str] = []
    client._transport.session.hooks["response"].append(
        lambda r, *a, **k: log.append(f"{r.status_code} {r.request.method} {r.request.path_url}"))
    return client, sleeps, log


def _image(client: RegistryClient, repo: str, label: str = "") -> tuple[bytes, str]:
    """Upload two small blobs and PUT an OCI manifest by digest; return (bytes, digest)."""
    layer = f"layer {label} {uuid.uuid4().hex}\n".encode() * 50
    for blob in (EMPTY_CONFIG, layer):
        client.upload_blob(repo, _digest(blob), len(blob), blob)
    body = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": _digest(EMPTY_CONFIG),
                   "size": len(EMPTY_CONFIG)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _digest(layer),
                    "size": len(layer)}]}).encode()
    info = client.put_manifest(repo, _digest(body), body)
    assert info.digest == _digest(body) and info.media_type == OCI_MANIFEST
    return body, info.digest


# -- plain registry: manifests, blobs, listing -----------------------------------------------------

def test_manifest_and_blob_round_trip(plain_registry, unique_repo):
    client, sleeps, _ = _client(plain_registry)
    body, digest = _image(client, unique_repo, "round-trip")

    assert plain_registry.manifest(unique_repo, digest).body == body       # byte-exact
    assert client.head_manifest(unique_repo, digest).digest == digest
    assert client.head_manifest(unique_repo, "nope") is None
    got, info = client.get_manifest(unique_repo, digest)
    assert got == body and info.media_type == OCI_MANIFEST and info.size == len(body)
    client.put_manifest(unique_repo, "v1", body)
    assert plain_registry.manifest_digest(unique_repo, "v1") == digest
    assert plain_registry.skopeo_digest(f"{unique_repo}:v1") == digest
    assert client.head_blob(unique_repo, _digest(EMPTY_CONFIG)) == 2
    assert client.head_blob(unique_repo, _digest(b"missing")) is None
    with pytest.raises(RegistryAPIError) as err:
        client.get_manifest(unique_repo, "nope")
    assert err.value.status == 404 and not err.value.transient and "MANIFEST_UNKNOWN" in str(err.value)
    assert sleeps.waits == []                                  # 404s are never retried


@pytest.mark.parametrize("mode", ["monolithic", "chunked"])
def test_blob_upload_modes(plain_registry, unique_repo, mode):
    client, _, log = _client(plain_registry)
    data = os.urandom(2500)
    digest = _digest(data)
    opened = []

    def source():
        opened.append(1)
        return iter([data[i:i + 700] for i in range(0, len(data), 700)])

    client.upload_blob(unique_repo, digest, len(data), source,
                       chunk_size=1000 if mode == "chunked" else None)

    r = requests.get(f"{plain_registry.url}/v2/{unique_repo}/blobs/{digest}", timeout=10)
    assert r.status_code == 200 and r.content == data
    patches = [line for line in log if " PATCH " in line]
    assert len(patches) == (3 if mode == "chunked" else 0)
    assert len(opened) == 1
    with client.open_blob(unique_repo, digest, size=len(data)) as stream:
        assert b"".join(stream) == data


def test_monolithic_refused_falls_back_to_chunks(plain_registry, unique_repo, monkeypatch):
    """A registry that answers the monolithic PUT with 413 gets the blob in PATCH chunks."""
    client, _, log = _client(plain_registry)
    data = os.urandom(3000)
    transport = client._transport
    real = transport.request

    def refuse_big_put(method, url, **kw):
        if method == "PUT" and "/blobs/uploads/" in url and kw.get("data") not in (None, b""):
            kw = dict(kw, data=b"")                             # the body is dropped...
            resp = real("GET", "/v2/", what="stand-in")
            resp.status_code = 413                              # ...and the registry says "too large"
            return resp
        return real(method, url, **kw)

    monkeypatch.setattr(transport, "request", refuse_big_put)
    client.upload_blob(unique_repo, _digest(data), len(data), data)
    assert any(" PATCH " in line for line in log)
    r = requests.get(f"{plain_registry.url}/v2/{unique_repo}/blobs/{_digest(data)}", timeout=10)
    assert r.content == data


def test_list_tags(plain_registry, unique_repo):
    client, _, log = _client(plain_registry)
    body, _ = _image(client, unique_repo, "tags")
    tags = ["a1", "b2", "c3", "d4", "e5"]
    assert tag_image(client, unique_repo, body, tags) == {t: PUSHED for t in tags}
    assert plain_registry.tags(unique_repo) == tags

    log.clear()
    paged = client.list_tags(unique_repo, page_size=2)
    # distribution 2.8 ignores n/last on tags/list (pagination came with v3): one page with
    # all five, in storage order; the client must neither stop at 2 nor loop.
    assert sorted(paged) == tags and len(paged) == 5
    assert len([line for line in log if "/tags/list" in line]) == 1
    assert sorted(client.list_tags(unique_repo)) == tags
    assert client.list_tags(f"{unique_repo}-unknown") == []


def test_catalog_follows_link_pagination(make_registry):
    reg = make_registry(name="catalog")
    client, _, log = _client(reg)
    repos = [f"cat/r{i}" for i in range(5)]
    for repo in repos:
        _image(client, repo, repo)
    log.clear()
    assert client.catalog(page_size=2) == repos
    pages = [line for line in log if "/_catalog" in line]
    assert len(pages) == 3, pages                             # 2 + 2 + 1, following Link
    assert "last=cat%2Fr1" in pages[1] or "last=cat/r1" in pages[1]
    # Independent check (reg.catalog() asks for n=10000, which distribution 2.8 refuses).
    r = requests.get(f"{reg.url}/v2/_catalog?n=1000", timeout=10)
    assert r.json()["repositories"] == repos


def test_delete_manifest(make_registry, unique_repo):
    enabled = make_registry(name="delete-on")                  # LocalRegistry default: delete on
    client, _, _ = _client(enabled)
    body, digest = _image(client, unique_repo)
    client.put_manifest(unique_repo, "gone", body)
    client.delete_manifest(unique_repo, digest)
    assert enabled.manifest_digest(unique_repo, digest) is None
    assert enabled.tags(unique_repo) == []
    with pytest.raises(UsageError, match="needs a digest"):
        client.delete_manifest(unique_repo, "gone")

    disabled = make_registry(name="delete-off", delete=False)
    client, sleeps, _ = _client(disabled)
    _, digest = _image(client, unique_repo)
    with pytest.raises(RegistryAPIError) as err:
        client.delete_manifest(unique_repo, digest)
    assert err.value.status == 405 and "storage.delete.enabled" in str(err.value)
    assert disabled.manifest_digest(unique_repo, digest) == digest
    assert sleeps.waits == []


# -- Basic auth + TLS ----------------------------------------------------------------------------

def test_wrong_password_is_an_auth_error_without_retries(auth_tls_registry, unique_repo):
    redact.register("definitely-wrong-pw")
    client, sleeps, log = _client(auth_tls_registry, _creds(auth_tls_registry, "definitely-wrong-pw"))
    with pytest.raises(RegistryAPIError) as err:
        client.head_manifest(unique_repo, "latest")
    assert err.value.auth and err.value.status == 401 and not err.value.transient
    assert sleeps.waits == []
    # ping (on loopback plain HTTP is asked first: the TLS registry answers 400) + 1 try
    assert log == ["400 GET /v2/", "401 GET /v2/", f"401 HEAD /v2/{unique_repo}/manifests/latest"]
    assert "definitely-wrong-pw" not in str(err.value)


def test_tls_is_verified(auth_tls_registry, unique_repo):
    auth_tls_registry.uninstall_ca()      # no ca_file and no /etc/docker/certs.d entry
    try:
        client, sleeps, _ = _client(auth_tls_registry.host, _creds(auth_tls_registry))
        with pytest.raises(RegistryAPIError, match="certificate verification failed") as err:
            client.head_manifest(unique_repo, "latest")
        assert not err.value.transient and sleeps.waits == []
    finally:
        auth_tls_registry.install_ca()
    # The CA dockerd trusts (certs.d) is trusted too, without ca_file.
    client, _, _ = _client(auth_tls_registry.host, _creds(auth_tls_registry))
    assert client.head_manifest(unique_repo, "latest") is None
    # With the CA: works, over https.
    client, _, _ = _client(auth_tls_registry, _creds(auth_tls_registry))
    assert client.head_manifest(unique_repo, "latest") is None
    assert client._transport.base.startswith("https://")


def test_plain_http_only_for_loopback_or_insecure():
    assert RegistryClient("127.0.0.1:5000")._transport.allow_http
    assert RegistryClient("localhost:5000")._transport.allow_http
    assert not RegistryClient("registry.example.com")._transport.allow_http
    assert RegistryClient("registry.example.com", insecure=True)._transport.allow_http
    assert RegistryClient("docker.io")._transport.api_host == "registry-1.docker.io"


# -- Bearer token auth (real distribution with `auth: token` + token server) -----------------------

@pytest.fixture(scope="module")
def token_reg(tmp_path_factory, session_pki):
    # TODO: switch to the shared `token_registry` fixture once tests/conftest.py provides it.
    reg = TokenRegistry(tmp_path_factory.mktemp("token-registry"), name="token", auth=True,
                        pki=session_pki)
    reg.start()
    yield reg
    reg.stop()


def test_bearer_tokens_are_cached_per_scope_set(token_reg):
    ts = token_reg.token_server
    ts.reset_stats()
    client, sleeps, _ = _client(token_reg, _creds(token_reg))
    repo = f"bearer/{uuid.uuid4().hex[:6]}"

    body, digest = _image(client, repo)              # push: blobs + manifest
    client.put_manifest(repo, "v1", body)
    assert client.head_manifest(repo, "v1").digest == digest   # pull reuses the pull,push token
    assert client.list_tags(repo) == ["v1"]

    assert [(r.method, r.scopes) for r in ts.requests if not r.checker] == \
        [("GET", [f"repository:{repo}:pull,push"])]
    assert token_reg.manifest_digest(repo, "v1") == digest
    assert token_reg.skopeo_digest(f"{repo}:v1") == digest
    assert sleeps.waits == []

    # A mount asks for the destination's push scope first, plus pull on the source.
    ts.reset_stats()
    other = f"bearer/{uuid.uuid4().hex[:6]}"
    result = copy_image(client, repo, "v1", client, other, tags=["v1"])
    assert result.blobs_mounted == 2 and result.digest == digest
    scopes = [r.scopes for r in ts.requests if not r.checker]
    assert [f"repository:{other}:pull,push", f"repository:{repo}:pull"] in scopes
    assert token_reg.manifest_digest(other, "v1") == digest


def test_identity_token_uses_the_refresh_grant(token_reg):
    ts = token_reg.token_server
    # What `docker login` stores as the identity token: a refresh token from a password grant.
    r = requests.post(ts.realm, data={"grant_type": "password", "username": token_reg.username,
                                      "password": token_reg.password, "service": ts.service,
                                      "client_id": "test", "access_type": "offline"},
                      verify=str(token_reg.ca_file), timeout=10)
    refresh = r.json()["refresh_token"]
    redact.register(refresh)
    ts.reset_stats()
    client, _, _ = _client(token_reg, Credentials("test", identity_token=refresh))
    assert client.head_manifest("bearer/none", "latest") is None
    assert ts.count(grant_type="refresh_token", status=200) == 1
    assert ts.count(method="GET") == 0


def test_bearer_wrong_password_and_insufficient_scope(token_reg):
    ts = token_reg.token_server
    ts.reset_stats()
    client, sleeps, _ = _client(token_reg, _creds(token_reg, "wrong-password-123"))
    with pytest.raises(RegistryAPIError) as err:
        client.head_manifest("bearer/x", "latest")
    assert err.value.auth and not err.value.transient and sleeps.waits == []
    assert ts.stats["total"] == 1 and ts.stats["denied"] == 1

    # Anonymous: the token server hands out a token without access; the registry answers
    # 401 insufficient_scope; the client asks for a new token once, then gives up.
    ts.reset_stats()
    client, sleeps, log = _client(token_reg, ANONYMOUS)
    with pytest.raises(RegistryAPIError) as err:
        client.head_manifest("bearer/x", "latest")
    assert err.value.auth and err.value.status == 401 and sleeps.waits == []
    assert ts.stats["total"] == 2
    assert sum(" HEAD " in line for line in log) == 2


# -- a faulty network: retries ----------------------------------------------------------------------

@pytest.fixture
def proxy(plain_registry):
    # TODO: switch to the shared `fault_proxy` fixture once tests/conftest.py provides it.
    p = FaultProxy(plain_registry.host, seed=7).start()
    yield p
    p.stop()


def test_503_with_retry_after_is_retried(proxy, plain_registry, unique_repo):
    client, sleeps, _ = _client(plain_registry)
    body, digest = _image(client, unique_repo)
    client.put_manifest(unique_repo, "v1", body)

    via, sleeps, _ = _client(proxy.host)
    proxy.set(error503=1.0, match=r"^GET /v2/.*/manifests/", max_faults=2)
    got, info = via.get_manifest(unique_repo, "v1")
    assert info.digest == digest and got == body
    assert proxy.stats["error503"] == 2
    assert sleeps.waits == [0.0, 0.0]                         # the proxy sends Retry-After: 0


def test_broken_upload_is_retried_from_a_reopened_source(proxy, plain_registry, unique_repo):
    data = os.urandom(200_000)
    digest = _digest(data)
    opened = []

    def source():
        opened.append(1)
        return iter([data[i:i + 65536] for i in range(0, len(data), 65536)])

    proxy.set(reset=1.0, reset_at="request", match=r"^PUT /v2/.*/blobs/uploads/", max_faults=1)
    client, sleeps, _ = _client(proxy.host)
    client.upload_blob(unique_repo, digest, len(data), source)

    assert proxy.stats["reset"] == 1 and len(opened) == 2 and len(sleeps.waits) == 1
    posts = [e for e in proxy.events if e[1] == "POST blobs/uploads/"]
    assert len(posts) == 2                                      # the whole sequence again
    r = requests.get(f"{plain_registry.url}/v2/{unique_repo}/blobs/{digest}", timeout=10)
    assert r.content == data


def test_copy_survives_a_flaky_network(proxy, plain_registry, unique_repo):
    src, _, _ = _client(plain_registry)
    images = [_image(src, unique_repo, str(i)) for i in range(2)]
    proxy.set(reset=0.15, error503=0.15, seed=3)
    dst, sleeps, _ = _client(proxy.host, retry_attempts=8, retry_max_delay=0.0)
    for i, (body, digest) in enumerate(images):
        result = copy_image(src, unique_repo, digest, dst, f"{unique_repo}-copy", tags=[f"t{i}"])
        assert result.digest == digest
        assert plain_registry.manifest_digest(f"{unique_repo}-copy", f"t{i}") == digest
    assert proxy.faults > 0 and sleeps.waits


def test_unreachable_registry_is_retried_then_reported(proxy):
    proxy.down("refuse")
    client, sleeps, _ = _client(proxy.host, retry_attempts=3, retry_max_delay=0.0)
    with pytest.raises(RegistryAPIError, match="connection refused") as err:
        client.head_manifest("any/repo", "latest")
    assert err.value.transient and len(sleeps.waits) == 2


def test_non_loopback_registry_needs_the_ca_or_insecure(make_registry, unique_repo):
    reg = make_registry(name="strict", strict_tls=True, install_ca=False)   # 192.0.2.10:PORT
    client, sleeps, log = _client(reg.host)                                  # no ca_file
    with pytest.raises(RegistryAPIError, match="certificate verification failed") as err:
        client.head_manifest(unique_repo, "latest")
    assert not err.value.transient and sleeps.waits == [] and log == []     # no http:// fallback
    client, _, _ = _client(reg.host, insecure=True)                          # like dockerd's list
    assert client.head_manifest(unique_repo, "latest") is None
    assert client._transport.base == f"https://{reg.host}" and client._transport.verify is False
    client, _, _ = _client(reg)                                              # with the CA
    assert client.head_manifest(unique_repo, "latest") is None
