"""The test infrastructure itself works: engine, FROM-scratch builds, registries, checks."""

from __future__ import annotations

import pytest
import requests

from tests.support.images import (
    PushFailed,
    build_image,
    push_image,
    unique_content,
    write_context,
)

pytestmark = pytest.mark.integration


def _build_and_push(client, reg, repo, tag, ctx, cleanup, **build_kw):
    ref = reg.ref(repo, None)
    build_image(client, ctx, f"{ref}:{tag}", **build_kw)
    cleanup.append(f"{ref}:{tag}")
    return push_image(client, ref, tag, reg.auth_config)


def test_engine_answers(docker_engine, docker_engine_handle):
    assert docker_engine.ping()
    info = docker_engine.info()
    assert info["Driver"] in ("overlay2", "vfs", "fuse-overlayfs", "btrfs", "zfs", "devicemapper")


def test_push_to_plain_registry(docker_engine, plain_registry, unique_repo, tmp_path,
                                cleanup_images):
    assert plain_registry.host.startswith("127.0.0.1:") and plain_registry.ca_file is None
    ctx = write_context(tmp_path / "ctx", unique_content("plain"))
    result = _build_and_push(docker_engine, plain_registry, unique_repo, "1.0.0", ctx,
                             cleanup_images)
    assert result.digest and result.digest.startswith("sha256:")
    assert plain_registry.manifest_digest(unique_repo, "1.0.0") == result.digest
    assert plain_registry.skopeo_digest(f"{unique_repo}:1.0.0") == result.digest
    assert plain_registry.tags(unique_repo) == ["1.0.0"]
    m = plain_registry.manifest(unique_repo, result.digest)
    assert m.media_type == "application/vnd.docker.distribution.manifest.v2+json"


def test_push_to_auth_tls_registry(docker_engine, auth_tls_registry, unique_repo, tmp_path,
                                   cleanup_images):
    reg = auth_tls_registry
    assert reg.url.startswith("https://localhost:") and reg.ca_file.exists()
    assert (reg.certs_d_dir / "ca.crt").exists()
    ctx = write_context(tmp_path / "ctx", unique_content("auth-tls"), with_run=True)
    result = _build_and_push(docker_engine, reg, unique_repo, "v1", ctx, cleanup_images)
    assert reg.manifest_digest(unique_repo, "v1") == result.digest
    assert reg.skopeo_digest(f"{unique_repo}:v1") == result.digest
    assert reg.tags(unique_repo) == ["v1"]

    # Auth is really on: anonymous HTTP and a push with a wrong password are refused.
    r = requests.get(f"{reg.url}/v2/{unique_repo}/tags/list", verify=str(reg.ca_file), timeout=5)
    assert r.status_code == 401
    with pytest.raises(PushFailed, match="(?i)unauthorized|authentication required"):
        push_image(docker_engine, reg.ref(unique_repo, None), "v1",
                   {"username": reg.username, "password": "wrong"})
    # TLS is really on and verified by our independent clients.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{reg.url}/v2/", timeout=5)  # system CAs only


def test_same_image_same_digest_in_both_registries(docker_engine, plain_registry,
                                                   auth_tls_registry, unique_repo, tmp_path,
                                                   cleanup_images):
    ctx = write_context(tmp_path / "ctx", unique_content("both"), build_arg=("GREETING", "hi"))
    image_id = build_image(docker_engine, ctx, buildargs={"GREETING": "hello"})
    cleanup_images.append(image_id)
    digests = set()
    for reg in (plain_registry, auth_tls_registry):
        docker_engine.api.tag(image_id, reg.ref(unique_repo, None), "2.0")
        cleanup_images.append(reg.ref(unique_repo, "2.0"))
        result = push_image(docker_engine, reg.ref(unique_repo, None), "2.0", reg.auth_config)
        assert reg.manifest_digest(unique_repo, "2.0") == result.digest
        digests.add(result.digest)
    assert len(digests) == 1
    labels = docker_engine.images.get(image_id).attrs["Config"]["Labels"]
    assert labels == {"org.example.arg.greeting": "hello"}


def test_context_variants_differ(docker_engine, tmp_path, cleanup_images):
    content = unique_content("variants")
    ctx = write_context(tmp_path / "ctx", content, target_stage="release")
    default_id = build_image(docker_engine, ctx)
    target_id = build_image(docker_engine, ctx, target="release")
    other_id = build_image(docker_engine, write_context(tmp_path / "other", unique_content("x")))
    cleanup_images.extend([default_id, target_id, other_id])
    assert len({default_id, target_id, other_id}) == 3


def test_unknown_things_are_none_or_empty(plain_registry, auth_tls_registry, unique_repo):
    for reg in (plain_registry, auth_tls_registry):
        assert reg.manifest_digest(unique_repo, "nope") is None
        assert reg.tags(unique_repo) == []
        assert reg.skopeo_digest(f"{unique_repo}:nope") is None


def test_registry_down_then_back(docker_engine, make_registry, unique_repo, tmp_path,
                                 cleanup_images):
    reg = make_registry(auth=True, tls=True)
    port = reg.port
    ctx = write_context(tmp_path / "ctx", unique_content("restart"))
    result = _build_and_push(docker_engine, reg, unique_repo, "1", ctx, cleanup_images)
    with reg.stopped():
        assert not reg.running
        with pytest.raises(requests.exceptions.ConnectionError):
            reg.manifest_digest(unique_repo, "1")
        with pytest.raises(PushFailed):
            push_image(docker_engine, reg.ref(unique_repo, None), "1", reg.auth_config)
    assert reg.running and reg.port == port
    assert reg.manifest_digest(unique_repo, "1") == result.digest  # storage kept
    reg.restart()
    assert reg.tags(unique_repo) == ["1"]


def test_strict_tls_registry_needs_the_ca(docker_engine, make_registry, unique_repo, tmp_path,
                                          cleanup_images):
    """On 127.0.0.0/8 the daemon skips verification; on STRICT_TLS_IP it verifies the CA."""
    reg = make_registry(strict_tls=True, auth=True, install_ca=False)
    ctx = write_context(tmp_path / "ctx", unique_content("strict"))
    with pytest.raises(PushFailed, match="x509|certificate"):
        _build_and_push(docker_engine, reg, unique_repo, "1", ctx, cleanup_images)
    reg.install_ca()
    result = push_image(docker_engine, reg.ref(unique_repo, None), "1", reg.auth_config)
    assert reg.manifest_digest(unique_repo, "1") == result.digest
    assert reg.skopeo_digest(f"{unique_repo}:1") == result.digest
