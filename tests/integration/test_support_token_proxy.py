"""The token-auth registry and the fault-injecting proxy work, with the real daemon and skopeo.

Seeds: the fault tests below use seeds picked so that the daemon's own retries carry the push
(it retries layer uploads only, after 5 s; a fault on the config blob or the manifest fails
the push at once). DAEMON_ONE_LAYER_PUSH is the request sequence of docker 20.10 pushing a
one-layer image to an empty repository; each test checks with dry_run() that its seed does
what it says on that sequence, then that the real push got exactly those faults.
"""

from __future__ import annotations

import hashlib
import time

import docker
import pytest
import requests

from tests.support.faultproxy import endpoint_kind
from tests.support.images import (
    BuildFailed,
    PushFailed,
    build_image,
    push_image,
    unique_content,
    write_context,
)
from tests.support.registries import skopeo_digest
from tests.support.tokenserver import CHECKER_USER_AGENT, b64url_decode, decode_jwt

pytestmark = pytest.mark.integration

# One-layer push by dockerd 20.10 (no faults), as seen by the proxy.
DAEMON_ONE_LAYER_PUSH = [
    ("GET", "/v2/"),                                   # ping (a 503 here is harmless)
    ("POST", "/v2/r/blobs/uploads/"),                  # layer: retried by the daemon
    ("PATCH", "/v2/r/blobs/uploads/L"),
    ("PUT", "/v2/r/blobs/uploads/L"),
    ("HEAD", "/v2/r/blobs/sha256:layer"),
    ("HEAD", "/v2/r/blobs/sha256:config"),             # config blob: not retried
    ("POST", "/v2/r/blobs/uploads/"),
    ("PATCH", "/v2/r/blobs/uploads/C"),
    ("PUT", "/v2/r/blobs/uploads/C"),
    ("HEAD", "/v2/r/blobs/sha256:config"),
    ("PUT", "/v2/r/manifests/1"),                      # manifest: not retried
]


def _image(client, tmp_path, ref: str, label: str, cleanup: list) -> str:
    ctx = write_context(tmp_path / "ctx", unique_content(label))
    try:
        build_image(client, ctx, ref)
    except BuildFailed as exc:
        # dockerd 20.10's legacy builder walks the cache candidates of FROM scratch (all
        # parentless images) and fails with "unable to find image" when a concurrent test
        # session deletes one of them (cleanup_images); seen in ~2 of 27 sessions run 3 at
        # a time. Not what these tests are about: build once more.
        if "unable to find image" not in str(exc):
            raise
        build_image(client, ctx, ref)
    cleanup.append(ref)
    return ref


def _events(proxy) -> str:
    return "\n".join(f"  {n:3d} {action:22s} {kind:28s} {path}" for n, kind, path, action in proxy.events)


# --- token auth -------------------------------------------------------------------------------

def test_token_server_protocol(token_registry, unique_repo):
    reg, ts = token_registry, token_registry.token_server
    ca = str(reg.ca_file)

    # The registry challenges with Bearer pointing at our token server.
    r = requests.get(f"{reg.url}/v2/{unique_repo}/tags/list", verify=ca, timeout=5)
    assert r.status_code == 401
    challenge = r.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and f'realm="{ts.realm}"' in challenge
    assert f'service="{ts.service}"' in challenge and f"repository:{unique_repo}:pull" in challenge

    # GET with Basic credentials and two scope parameters.
    scopes = [f"repository:{unique_repo}:pull,push", f"repository:{unique_repo}-other:pull"]
    r = requests.get(ts.realm, params=[("service", ts.service)] + [("scope", s) for s in scopes],
                     auth=(reg.username, reg.password), verify=ca, timeout=5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token"] == body["access_token"] and body["expires_in"] == 300
    assert time.strptime(body["issued_at"], "%Y-%m-%dT%H:%M:%SZ")
    header, claims = decode_jwt(body["token"])
    assert header["alg"] == "RS256" and header["x5c"] == ts.signer.x5c
    assert claims["iss"] == ts.issuer and claims["aud"] == ts.service and claims["sub"] == reg.username
    assert claims["exp"] - claims["iat"] == 300
    assert claims["access"] == [
        {"type": "repository", "name": unique_repo, "actions": ["pull", "push"]},
        {"type": "repository", "name": f"{unique_repo}-other", "actions": ["pull"]}]
    signing_input, _, sig = body["token"].rpartition(".")
    assert ts.signer.verify(signing_input.encode(), b64url_decode(sig))

    # The registry accepts the JWT: 404 (unknown repository) instead of 401.
    r = requests.get(f"{reg.url}/v2/{unique_repo}/tags/list", verify=ca, timeout=5,
                     headers={"Authorization": f"Bearer {body['token']}"})
    assert r.status_code == 404 and "NAME_UNKNOWN" in r.text

    # Wrong password: 401 with Docker Hub's body; anonymous: a token without access.
    r = requests.get(ts.realm, params={"service": ts.service, "scope": scopes[0]},
                     auth=(reg.username, "wrong"), verify=ca, timeout=5)
    assert r.status_code == 401 and r.json() == {"details": "incorrect username or password"}
    r = requests.get(ts.realm, params={"service": ts.service, "scope": scopes[0]}, verify=ca, timeout=5)
    assert r.status_code == 200 and decode_jwt(r.json()["token"])[1]["access"] == []
    r = requests.get(f"{reg.url}/v2/{unique_repo}/tags/list", verify=ca, timeout=5,
                     headers={"Authorization": f"Bearer {r.json()['token']}"})
    assert r.status_code == 401 and "insufficient_scope" in r.headers["WWW-Authenticate"]

    # OAuth2 POST: password grant -> refresh_token; refresh grant -> a new access token.
    r = requests.post(ts.realm, data={"grant_type": "password", "username": reg.username,
                                      "password": reg.password, "service": ts.service,
                                      "client_id": "release-tests", "access_type": "offline",
                                      "scope": f"{scopes[0]} {scopes[1]}"}, verify=ca, timeout=5)
    assert r.status_code == 200, r.text
    refresh = r.json()["refresh_token"]
    assert len(decode_jwt(r.json()["access_token"])[1]["access"]) == 2
    r = requests.post(ts.realm, data={"grant_type": "refresh_token", "refresh_token": refresh,
                                      "service": ts.service, "client_id": "release-tests",
                                      "scope": scopes[0]}, verify=ca, timeout=5)
    assert r.status_code == 200 and r.json()["refresh_token"] == refresh
    assert decode_jwt(r.json()["access_token"])[1]["sub"] == reg.username
    r = requests.post(ts.realm, data={"grant_type": "refresh_token", "refresh_token": "nope",
                                      "service": ts.service}, verify=ca, timeout=5)
    assert r.status_code == 401
    r = requests.post(ts.realm, data={"grant_type": "client_credentials"}, verify=ca, timeout=5)
    assert r.status_code == 400

    # Counted per endpoint, by scope (the session registry is shared: filter on our repo).
    assert ts.count(method="GET", scope=unique_repo) == 3               # creds, wrong, anonymous
    assert ts.count(method="GET", scope=unique_repo, status=401) == 1
    assert ts.count(grant_type="password", scope=unique_repo) == 1
    assert ts.count(grant_type="refresh_token", scope=unique_repo) == 1
    assert ts.stats["POST password"] >= 1 and ts.stats["denied"] >= 2


def test_daemon_pushes_to_token_registry(docker_engine, token_registry, unique_repo, tmp_path,
                                         cleanup_images):
    reg, ts = token_registry, token_registry.token_server
    ref = _image(docker_engine, tmp_path, reg.ref(unique_repo, "v1"), "token", cleanup_images)
    result = push_image(docker_engine, reg.ref(unique_repo, None), "v1", reg.auth_config)

    # Checked independently: our checker fetches its own tokens, and skopeo uses --creds.
    assert reg.manifest_digest(unique_repo, "v1") == result.digest
    assert reg.tags(unique_repo) == ["v1"]
    assert reg.skopeo_digest(f"{unique_repo}:v1") == result.digest

    # The daemon asked once for the whole push (its token is cached for all blob/manifest
    # requests), with Basic credentials, for pull+push on this repository.
    daemon = [r for r in ts.requests
              if unique_repo in " ".join(r.scopes) and r.user_agent.startswith("docker/")]
    assert len(daemon) == 1, daemon
    assert ts.count(scope=unique_repo, user_agent="docker/") == 1
    assert daemon[0].method == "GET" and daemon[0].user == reg.username and daemon[0].status == 200
    assert daemon[0].granted == [{"type": "repository", "name": unique_repo, "actions": ["push", "pull"]}]
    assert ts.count(scope=unique_repo, include_checker=True) > ts.count(scope=unique_repo)
    assert all(r.user_agent == CHECKER_USER_AGENT for r in ts.requests if r.checker)

    # A wrong password is refused by the token server, and the daemon says so.
    with pytest.raises(PushFailed, match="(?i)unauthorized|incorrect username or password"):
        push_image(docker_engine, reg.ref(unique_repo, None), "v1",
                   {"username": reg.username, "password": "wrong"})
    assert ts.count(scope=unique_repo, status=401) >= 1
    assert ref in cleanup_images


def test_daemon_identity_token_flow(docker_engine, docker_engine_handle, token_registry,
                                    unique_repo, tmp_path, cleanup_images):
    """docker login -> identity token (refresh token); a push with it uses grant_type=refresh_token."""
    reg, ts = token_registry, token_registry.token_server
    # A throw-away client: docker-py remembers login credentials per client object.
    api = docker.APIClient(base_url=docker_engine_handle.base_url, timeout=60)
    try:
        login = api.login(reg.username, reg.password, registry=reg.host, reauth=True)
    finally:
        api.close()
    identity = login.get("IdentityToken")
    assert identity and identity in ts.refresh_tokens, login
    _image(docker_engine, tmp_path, reg.ref(unique_repo, "id"), "identity", cleanup_images)
    before = ts.stats["POST refresh_token"]
    result = push_image(docker_engine, reg.ref(unique_repo, None), "id", {"identitytoken": identity})
    assert reg.manifest_digest(unique_repo, "id") == result.digest
    assert ts.stats["POST refresh_token"] > before
    assert ts.count(grant_type="refresh_token", scope=unique_repo, user=reg.username) == 1


def test_plain_http_token_registry_with_anonymous_pull(docker_engine, make_token_registry,
                                                      unique_repo, tmp_path, cleanup_images):
    reg = make_token_registry(tls=False, anonymous="pull")
    ts = reg.token_server
    assert reg.url.startswith("http://127.0.0.1:") and ts.realm.startswith("http://127.0.0.1:")
    _image(docker_engine, tmp_path, reg.ref(unique_repo, "1"), "anon", cleanup_images)
    result = push_image(docker_engine, reg.ref(unique_repo, None), "1", reg.auth_config)
    assert reg.manifest_digest(unique_repo, "1") == result.digest
    # Anonymous: pull yes (skopeo --no-creds), push no.
    assert skopeo_digest(reg.ref(unique_repo, "1"), tls_verify=False) == result.digest
    r = requests.get(ts.realm, params={"service": ts.service,
                                       "scope": f"repository:{unique_repo}:pull,push"}, timeout=5)
    assert decode_jwt(r.json()["token"])[1]["access"] == [
        {"type": "repository", "name": unique_repo, "actions": ["pull"]}]
    with pytest.raises(PushFailed, match="(?i)unauthorized|authentication required|denied"):
        push_image(docker_engine, reg.ref(unique_repo, None), "1", None)
    assert ts.stats["GET"] >= 3 and ts.count(user=None, scope=unique_repo) >= 2


# --- the fault proxy --------------------------------------------------------------------------

def test_proxy_forwards_http_faithfully(plain_registry, fault_proxy, unique_repo):
    """No faults: chunked and sized bodies, HEAD, keep-alive, Location, throttling."""
    proxy = fault_proxy(plain_registry)
    blob = bytes(range(256)) * 800                                      # 200 KiB
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    with requests.Session() as s:
        assert s.get(f"{proxy.url}/v2/", timeout=5).status_code == 200
        r = s.post(f"{proxy.url}/v2/{unique_repo}/blobs/uploads/", timeout=5)
        assert r.status_code == 202
        location = r.headers["Location"]
        assert location.startswith(f"http://{proxy.host}/v2/{unique_repo}/blobs/uploads/"), location
        # A chunked PATCH (generator body), then the closing PUT.
        r = s.patch(location, data=(blob[i:i + 50_000] for i in range(0, len(blob), 50_000)),
                    headers={"Content-Type": "application/octet-stream"}, timeout=10)
        assert r.status_code == 202, r.text
        r = s.put(r.headers["Location"], params={"digest": digest}, timeout=10)
        assert r.status_code == 201, r.text
        r = s.head(f"{proxy.url}/v2/{unique_repo}/blobs/{digest}", timeout=5)
        assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(blob)
        # Throttled download: 200 KiB at 400 KB/s takes ~0.5 s.
        proxy.set(bandwidth=400_000)
        t0 = time.monotonic()
        r = s.get(f"{proxy.url}/v2/{unique_repo}/blobs/{digest}", timeout=10)
        elapsed = time.monotonic() - t0
        assert r.content == blob
        assert 0.4 < elapsed < 3, elapsed
        proxy.set(bandwidth=None)
    stats = proxy.stats
    assert stats["requests"] == 6 and stats["forwarded"] == 6 and proxy.faults == 0
    assert stats["connections"] == 1                                   # keep-alive kept
    assert stats.get("location_rewritten", 0) == 0                     # Host passed through
    assert stats["bytes_up"] > len(blob) and stats["bytes_down"] > len(blob)

    # 503 and resets, seen by a plain client.
    proxy.set(error503=1.0)
    r = requests.get(f"{proxy.url}/v2/", timeout=5)
    assert r.status_code == 503 and r.headers["Retry-After"] == "0"
    proxy.set(error503=0.0, reset=1.0, reset_at="request")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{proxy.url}/v2/", timeout=5)
    assert proxy.stats["error503"] == 1 and proxy.stats["reset_request"] == 1


def _fault_push(docker_engine, proxy, repo, tmp_path, cleanup_images, expected, label):
    # The seed does what the test says on the daemon's request sequence...
    actions = proxy.dry_run(DAEMON_ONE_LAYER_PUSH)
    predicted = [(endpoint_kind(m, p), a) for (m, p), a in zip(DAEMON_ONE_LAYER_PUSH, actions) if a]
    assert predicted == expected, predicted
    _image(docker_engine, tmp_path, proxy.ref(repo, "1"), label, cleanup_images)
    t0 = time.monotonic()
    try:
        result = push_image(docker_engine, proxy.ref(repo, None), "1")
    except PushFailed as exc:
        pytest.fail(f"{exc}\nproxy events:\n{_events(proxy)}", pytrace=False)
    elapsed = time.monotonic() - t0
    # ... and the real push got exactly those faults (a different list means the daemon's
    # request sequence changed: update DAEMON_ONE_LAYER_PUSH and pick seeds with dry_run()).
    assert proxy.injected() == expected, _events(proxy)
    return result, elapsed


def test_daemon_push_survives_503_on_a_layer(docker_engine, plain_registry, fault_proxy,
                                             unique_repo, tmp_path, cleanup_images):
    # error503=0.2 on every request; seed 19 hits the layer's PATCH (the daemon retries it
    # after 5 s) and spares the config blob and the manifest.
    proxy = fault_proxy(plain_registry, error503=0.2, seed=19)
    result, elapsed = _fault_push(docker_engine, proxy, unique_repo, tmp_path, cleanup_images,
                                  [("PATCH blobs/uploads/{id}", "error503")], "503")
    assert plain_registry.manifest_digest(unique_repo, "1") == result.digest
    assert 4 < elapsed < 15, elapsed                                   # one retry, 5 s backoff
    assert proxy.stats["tls_probes"] >= 1                               # https tried, then http


def test_daemon_push_survives_reset_and_503(docker_engine, plain_registry, fault_proxy,
                                            unique_repo, tmp_path, cleanup_images):
    # error503=0.2 + reset=0.1; seed 1898: a 503 on the ping, and the layer's PUT is reset
    # mid-response (after the registry committed the blob): the daemon retries the layer.
    proxy = fault_proxy(plain_registry, error503=0.2, reset=0.1, seed=1898)
    result, elapsed = _fault_push(docker_engine, proxy, unique_repo, tmp_path, cleanup_images,
                                  [("GET /v2/", "error503"),
                                   ("PUT blobs/uploads/{id}", "reset_mid_response")], "reset")
    assert plain_registry.manifest_digest(unique_repo, "1") == result.digest
    assert plain_registry.skopeo_digest(f"{unique_repo}:1") == result.digest
    assert proxy.stats["reset"] == 1 and proxy.stats["error503"] == 1


def test_daemon_push_fails_when_proxy_down(docker_engine, plain_registry, fault_proxy,
                                           unique_repo, tmp_path, cleanup_images):
    proxy = fault_proxy(plain_registry)
    _image(docker_engine, tmp_path, proxy.ref(unique_repo, "1"), "down", cleanup_images)
    proxy.down()
    with pytest.raises(PushFailed, match="(?i)connection reset by peer|EOF"):
        push_image(docker_engine, proxy.ref(unique_repo, None), "1")
    assert proxy.stats["down_rejected"] >= 1
    proxy.down("refuse")
    with pytest.raises(PushFailed, match="(?i)connection refused"):
        push_image(docker_engine, proxy.ref(unique_repo, None), "1")
    assert plain_registry.tags(unique_repo) == []
    proxy.up()
    result = push_image(docker_engine, proxy.ref(unique_repo, None), "1")
    assert plain_registry.manifest_digest(unique_repo, "1") == result.digest
