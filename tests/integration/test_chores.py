"""promote, prune, registry inspect/tags/catalog/delete against real registries."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from tests.support.release_cli import (
    image_name,
    registry_block,
    run_release,
    write_release,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def released(tmp_path, docker_engine, plain_registry, make_registry):
    """1.0.0 and 1.1.0 released to `src`; an empty `dst` registry beside it."""
    repo = f"chores/app-{uuid.uuid4().hex[:8]}"
    dst = make_registry()
    config = write_release(tmp_path, [registry_block("src", plain_registry, repo),
                                      registry_block("dst", dst, repo)],
                           extra="flavor:\n  - latest=highest\n")
    digests = {}
    for version in ("1.0.0", "1.1.0"):
        (tmp_path / "app" / "payload.txt").write_text(f"payload {version} {uuid.uuid4()}")
        proc = run_release(config, "build-push", version, "--registry", "src", "--json", "-q")
        assert proc.returncode == 0, proc.stderr
        digests[version] = json.loads(proc.stdout)["digest"]
    return config, repo, plain_registry, dst, digests


def test_promote_copies_every_tag_with_the_same_digest(released):
    config, repo, src, dst, digests = released
    proc = run_release(config, "promote", "1.1.0", "--from", "src", "--to", "dst", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(dst.tags(repo)) == ["1", "1.1", "1.1.0", "latest"]
    assert {dst.manifest_digest(repo, t) for t in ("1", "1.1", "1.1.0", "latest")} == {digests["1.1.0"]}
    assert dst.skopeo_digest(dst.ref(repo, "1.1.0")) == digests["1.1.0"]
    again = run_release(config, "promote", "1.1.0", "--from", "src", "--to", "dst", "--json")
    assert {r["status"] for r in json.loads(again.stdout)["results"]} == {"already there"}

    # latest=highest: promoting the older 1.0.0 afterwards does not steal `latest`
    older = run_release(config, "promote", "1.0.0", "--from", "src", "--to", "dst", "--json")
    assert older.returncode == 0, older.stderr
    report = json.loads(older.stdout)
    assert any("latest stays on 1.1.0" in n for n in report["notes"])
    assert dst.manifest_digest(repo, "latest") == digests["1.1.0"]
    assert dst.manifest_digest(repo, "1.0.0") == digests["1.0.0"]


def test_promote_of_a_missing_version_is_exit_1(released):
    config, repo, src, dst, _ = released
    proc = run_release(config, "promote", "9.9.9", "--from", "src", "--to", "dst")
    assert proc.returncode == 1
    assert "does not exist" in proc.stderr
    assert dst.tags(repo) == []


def test_registry_inspect_tags_catalog(released):
    config, repo, src, dst, digests = released
    tags = run_release(config, "registry", "tags", "src")
    assert sorted(tags.stdout.split()) == ["1", "1.0", "1.0.0", "1.1", "1.1.0", "latest"]
    inspect = run_release(config, "registry", "inspect", "src:1.1.0", "--json")
    data = json.loads(inspect.stdout)
    assert data["digest"] == digests["1.1.0"]
    assert data["labels"]["org.opencontainers.image.version"] == "1.1.0"
    assert data["platforms"][0]["platform"].startswith("linux/")
    assert data["layers"] and all(layer["size"] > 0 for layer in data["layers"])
    full = run_release(config, "registry", "inspect", f"{src.host}/{repo}:1.0.0", "--json")
    assert json.loads(full.stdout)["digest"] == digests["1.0.0"]
    catalog = run_release(config, "registry", "catalog", src.host)
    assert repo in catalog.stdout.split()


def test_prune_spares_a_version_whose_digest_a_floating_tag_uses(released):
    config, repo, src, dst, digests = released
    # 1.0.0 is older than 1.1.0, but the floating tag `1.0` still points at its manifest.
    proc = run_release(config, "prune", "--keep", "1", "--registry", "src", "--yes", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)["src"]
    assert report["keep"] == ["1.1.0"]
    assert report["delete"] == [] and "1.0.0" in report["protected"]
    assert src.manifest_digest(repo, "1.0.0") == digests["1.0.0"]


def test_prune_deletes_old_versions_but_never_a_kept_digest(tmp_path, docker_engine, plain_registry):
    repo = f"chores/prune-{uuid.uuid4().hex[:8]}"
    config = write_release(tmp_path, [registry_block("src", plain_registry, repo)])
    name = image_name(config)
    digests = {}
    for version in ("2.0.0-rc.1", "2.0.0-rc.2", "2.0.0-rc.10"):   # prereleases: no floating tags
        (tmp_path / "app" / "payload.txt").write_text(f"{version} {uuid.uuid4()}")
        proc = run_release(config, "build-push", version, "--json", "-q")
        assert proc.returncode == 0, proc.stderr
        digests[version] = json.loads(proc.stdout)["digest"]
    # rc.11 is the very same image as rc.2: both tags point at one manifest.
    docker_engine.images.get(f"{name}:2.0.0-rc.2").tag(name, "2.0.0-rc.11")
    assert run_release(config, "build-push", "2.0.0-rc.11", "--no-build", "-q").returncode == 0
    assert plain_registry.manifest_digest(repo, "2.0.0-rc.11") == digests["2.0.0-rc.2"]

    dry = run_release(config, "prune", "--keep", "1")
    assert "would delete" in dry.stdout and "dry run" in dry.stdout
    assert len(plain_registry.tags(repo)) == 4

    proc = run_release(config, "prune", "--keep", "1", "--yes", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)["src"]
    assert report["keep"] == ["2.0.0-rc.11"]          # semver order: rc.11 > rc.10 > rc.2
    assert sorted(report["deleted"]) == sorted([digests["2.0.0-rc.1"], digests["2.0.0-rc.10"]])
    assert sorted(plain_registry.tags(repo)) == ["2.0.0-rc.11", "2.0.0-rc.2"]
    assert plain_registry.manifest_digest(repo, "2.0.0-rc.11") == digests["2.0.0-rc.2"]
    assert "garbage" in proc.stderr


def test_delete_needs_yes_and_explains_a_registry_that_refuses(tmp_path, docker_engine, make_registry):
    repo = f"chores/del-{uuid.uuid4().hex[:8]}"
    reg = make_registry(delete=False)
    config = write_release(tmp_path, [registry_block("r", reg, repo)])
    assert run_release(config, "build-push", "1.0.0", "-q").returncode == 0
    dry = run_release(config, "registry", "delete", "r:1.0.0")
    assert dry.returncode == 0 and "tags removed with it: 1, 1.0, 1.0.0, latest" in dry.stdout
    assert "1.0.0" in reg.tags(repo)
    refused = run_release(config, "registry", "delete", "r:1.0.0", "--yes")
    assert refused.returncode == 1
    assert "delete" in refused.stderr and "enabled" in refused.stderr
    assert "1.0.0" in reg.tags(repo)


def test_inspect_of_an_artifact_shows_what_there_is_instead_of_failing(tmp_path, plain_registry,
                                                                       unique_repo):
    from pipeline.registry.client import RegistryClient
    from pipeline.registry.image import dump, sha256

    config, layer = b"\x00\x01 not json \xff", b"payload of an artifact"
    manifest = dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                     "config": {"mediaType": "application/vnd.example.config", "size": len(config),
                                "digest": sha256(config)},
                     "layers": [{"mediaType": "application/vnd.example.data", "size": len(layer),
                                 "digest": sha256(layer)}]})
    with RegistryClient(plain_registry.host) as client:          # set-up only
        for blob in (config, layer):
            client.upload_blob(unique_repo, sha256(blob), len(blob), blob)
        client.put_manifest(unique_repo, "art", manifest)
    config_path = write_release(tmp_path, [registry_block("plain", plain_registry, unique_repo)])
    proc = run_release(config_path, "registry", "inspect", "plain:art")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"digest      {sha256(manifest)}" in proc.stdout
    assert f"layer       {sha256(layer)}  {len(layer)} bytes" in proc.stdout
    assert "note        the config blob (application/vnd.example.config) is not an image config" \
        in proc.stdout


def test_prune_keeps_what_a_kept_index_lists_even_under_old_looking_tags(tmp_path, docker_engine,
                                                                         plain_registry):
    """Issue 12's data loss: the per-platform manifests of 2.0.0 also carry the tags
    2.0.0-amd64 / 2.0.0-arm64, which sort as prereleases below 2.0.0. Prune with --keep 1 kept
    the index and deleted its children, so `docker pull :2.0.0` failed. Checked through the
    registry API and skopeo, not through release."""
    import requests
    repo = f"chores/index-{uuid.uuid4().hex[:8]}"
    config = write_release(tmp_path, [registry_block("src", plain_registry, repo)],
                           image_extra="  platforms: [linux/amd64, linux/arm64]\n",
                           extra="tags:\n  - type=semver,pattern={{version}}\n"
                                 "flavor:\n  - latest=false\n")       # no floating tags
    for version in ("1.0.0", "2.0.0"):
        (tmp_path / "app" / "payload.txt").write_text(f"{version} {uuid.uuid4()}")
        proc = run_release(config, "build-push", version, "-q")
        assert proc.returncode == 0, proc.stderr
    index = plain_registry.manifest(repo, "2.0.0")
    children = {m["platform"]["architecture"]: m["digest"] for m in index.json()["manifests"]}
    for arch, digest in children.items():          # tag each child, as some pipelines do
        child = plain_registry.manifest(repo, digest)
        put = requests.put(f"{plain_registry.url}/v2/{repo}/manifests/2.0.0-{arch}", data=child.body,
                           headers={"Content-Type": child.media_type}, timeout=15)
        assert put.status_code == 201, put.text
    old = plain_registry.manifest_digest(repo, "1.0.0")

    proc = run_release(config, "prune", "--keep", "1", "--yes", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)["src"]
    assert report["keep"] == ["2.0.0"]
    assert report["deleted"] == [old]
    for arch in children:
        assert report["reasons"][f"2.0.0-{arch}"] == "in the index of kept tag 2.0.0"
    for arch, digest in children.items():
        assert plain_registry.manifest_digest(repo, digest) == digest
        assert plain_registry.manifest_digest(repo, f"2.0.0-{arch}") == digest
    assert plain_registry.manifest(repo, "1.0.0") is None
    raw = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw",
                          f"docker://{plain_registry.host}/{repo}:2.0.0"],
                         capture_output=True, text=True, check=True).stdout
    for digest in children.values():                # every child the index names resolves
        assert digest in raw
        assert subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw",
                               f"docker://{plain_registry.host}/{repo}@{digest}"],
                              capture_output=True).returncode == 0

    text = run_release(config, "prune", "--keep", "1")
    assert "kept         2.0.0-amd64  (in the index of kept tag 2.0.0)" in text.stdout
