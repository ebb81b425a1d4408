"""A registry's history is kept: a released version is never replaced, floating tags only move
forward, also with two releases at once. Every outcome is read back through the registry API."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from tests.support.images import build_image, write_context
from tests.support.release_cli import (
    RELEASE,
    image_name,
    registry_block,
    run_release,
    write_release,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def repo():
    return f"history/app-{uuid.uuid4().hex[:8]}"


def _release(config, version, *args, env=None):
    proc = run_release(config, "build-push", version, "--json", "-q", *args, env=env)
    return proc, (json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else None)


def test_an_existing_version_is_never_silently_replaced(tmp_path, docker_engine, plain_registry,
                                                        make_registry, repo):
    other = make_registry()
    config = write_release(tmp_path, [registry_block("a", plain_registry, repo),
                                      registry_block("b", other, repo)])
    first, report = _release(config, "6.0.0")
    assert first.returncode == 0, first.stderr
    released = report["digest"]
    (tmp_path / "app" / "payload.txt").write_text(f"another image {uuid.uuid4()}")

    again, _ = _release(config, "6.0.0")
    assert again.returncode == 1
    assert f"version 6.0.0 is already released as another image (a holds {released}, " \
           f"b holds {released})" in again.stderr
    assert "hint: a released version is never replaced" in again.stderr
    for reg in (plain_registry, other):                      # nothing moved anywhere
        assert {reg.manifest_digest(repo, t) for t in ("6.0.0", "6.0", "6", "latest")} == {released}

    forced, report = _release(config, "6.0.0", "--force")
    assert forced.returncode == 0, forced.stderr
    assert report["digest"] != released
    assert any(n.startswith("--force: replaced 6.0.0") for n in report["notes"])
    assert plain_registry.manifest_digest(repo, "6.0.0") == report["digest"]
    assert other.manifest_digest(repo, "6.0.0") == report["digest"]


def test_a_registry_marked_mutable_takes_a_replacement_and_says_so(tmp_path, docker_engine,
                                                                   plain_registry, repo):
    config = write_release(tmp_path, [registry_block("a", plain_registry, repo)
                                      + "\n    immutable: false"])
    first, report = _release(config, "7.0.0")
    assert first.returncode == 0, first.stderr
    (tmp_path / "app" / "payload.txt").write_text(f"replacement {uuid.uuid4()}")
    again, second = _release(config, "7.0.0")
    assert again.returncode == 0, again.stderr
    assert second["digest"] != report["digest"]
    assert f"immutable: false: replaced 7.0.0 (a holds {report['digest']})" in second["notes"]
    assert plain_registry.manifest_digest(repo, "7.0.0") == second["digest"]


def test_build_metadata_that_collapses_onto_a_released_tag_is_refused(tmp_path, docker_engine,
                                                                      plain_registry, repo):
    config = write_release(tmp_path, [registry_block("a", plain_registry, repo)])
    first, report = _release(config, "1.2.3+build.5")
    assert first.returncode == 0, first.stderr
    (tmp_path / "app" / "payload.txt").write_text(f"build 6 {uuid.uuid4()}")
    second, _ = _release(config, "1.2.3+build.6")
    assert second.returncode == 1 and "version 1.2.3 is already released" in second.stderr
    assert plain_registry.manifest_digest(repo, "1.2.3") == report["digest"]


def test_promote_never_replaces_a_version_on_the_target(tmp_path, docker_engine, plain_registry,
                                                        make_registry, repo):
    dst = make_registry()
    config = write_release(tmp_path, [registry_block("src", plain_registry, repo),
                                      registry_block("dst", dst, repo)])
    proc, src_report = _release(config, "2.0.0", "--registry", "src")
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "app" / "payload.txt").write_text(f"dst's own 2.0.0 {uuid.uuid4()}")
    proc, dst_report = _release(config, "2.0.0", "--registry", "dst")
    assert proc.returncode == 0, proc.stderr
    promoted = run_release(config, "promote", "2.0.0", "--from", "src", "--to", "dst")
    assert promoted.returncode == 1
    assert f"dst holds {dst_report['digest']}" in promoted.stderr
    assert dst.manifest_digest(repo, "2.0.0") == dst_report["digest"]
    forced = run_release(config, "promote", "2.0.0", "--from", "src", "--to", "dst", "--force")
    assert forced.returncode == 0, forced.stderr
    assert dst.manifest_digest(repo, "2.0.0") == src_report["digest"]


def test_floating_tags_never_move_backwards(tmp_path, docker_engine, plain_registry, repo):
    """41.1.0, then 41.2.0; then 41.1.0 again (a re-run) and a backport 41.1.1: `41` and
    `latest` stay on 41.2.0, `41.1` follows its own line. A tag set by hand to an older
    image is moved forward, never back."""
    import requests
    config = write_release(tmp_path, [registry_block("a", plain_registry, repo)])
    digests = {}
    for version in ("41.1.0", "41.2.0"):
        (tmp_path / "app" / "payload.txt").write_text(f"{version} {uuid.uuid4()}")
        proc, report = _release(config, version)
        assert proc.returncode == 0, proc.stderr
        digests[version] = report["digest"]
    # `latest` put back on 41.1.0 by hand
    old = plain_registry.manifest(repo, "41.1.0")
    requests.put(f"{plain_registry.url}/v2/{repo}/manifests/latest", data=old.body,
                 headers={"Content-Type": old.media_type}, timeout=15).raise_for_status()

    rerun, report = _release(config, "41.1.0", "--no-build")
    assert rerun.returncode == 0, rerun.stderr
    assert any(n.startswith("[a] 41 stays on 41.2.0: 41.1.0 is lower") for n in report["notes"])
    assert plain_registry.manifest_digest(repo, "41") == digests["41.2.0"]
    assert plain_registry.manifest_digest(repo, "latest") == digests["41.1.0"]   # by hand: left
    # the higher release puts it right, and a backport leaves it there
    proc, _ = _release(config, "41.2.0", "--no-build")
    assert proc.returncode == 0, proc.stderr
    assert plain_registry.manifest_digest(repo, "latest") == digests["41.2.0"]
    (tmp_path / "app" / "payload.txt").write_text(f"41.1.1 {uuid.uuid4()}")
    backport, report = _release(config, "41.1.1")
    assert backport.returncode == 0, backport.stderr
    assert plain_registry.manifest_digest(repo, "41.1") == report["digest"]
    for tag in ("41", "latest"):
        assert plain_registry.manifest_digest(repo, tag) == digests["41.2.0"]
    forced, report = _release(config, "41.1.1", "--no-build", "--force")
    assert forced.returncode == 0, forced.stderr
    assert plain_registry.manifest_digest(repo, "41") == report["digest"]


TRIALS = int(os.environ.get("RELEASE_TEST_RACE_TRIALS", "20"))


def test_two_releases_at_once_leave_floating_tags_on_the_higher(tmp_path, docker_engine,
                                                                plain_registry, make_registry,
                                                                fault_proxy, cleanup_images):
    """40.1.0 and 40.2.0 released at the same time to two registries, one of them slow:
    on both, `40`, `latest` end on 40.2.0 and `40.1` on 40.1.0, in every trial."""
    slow = fault_proxy(make_registry(), latency=0.03)
    name = f"race-{uuid.uuid4().hex[:8]}"
    ids = {}
    for version in ("40.1.0", "40.2.0"):
        ctx = write_context(tmp_path / version, f"{version} {uuid.uuid4()}")
        ids[version] = build_image(docker_engine, ctx, f"{name}:{version}")
        cleanup_images.append(f"{name}:{version}")
    failures = []
    for trial in range(TRIALS):
        repo = f"race/t{trial}-{uuid.uuid4().hex[:6]}"
        config = tmp_path / f"release-{trial}.yml"
        config.write_text(f"image:\n  name: {name}\n  context: {tmp_path / '40.1.0'}\n"
                          "registries:\n" + registry_block("fast", plain_registry, repo) + "\n"
                          + registry_block("slow", slow, repo) + "\n")
        env = {**os.environ}
        env.pop("GITHUB_ACTIONS", None)
        procs = {v: subprocess.Popen([*RELEASE, "-c", str(config), "build-push", v, "--no-build",
                                      "--json", "-q"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
                 for v in ("40.1.0", "40.2.0")}
        out = {v: p.communicate(timeout=120) for v, p in procs.items()}
        for v, p in procs.items():
            if p.returncode != 0:
                failures.append(f"trial {trial}: {v} exit {p.returncode}: {out[v][1][-300:]}")
        digests = {v: json.loads(out[v][0])["digest"] for v in procs if procs[v].returncode == 0}
        if len(digests) < 2:
            continue
        for reg, host in (("fast", plain_registry), ("slow", slow)):
            for tag, want in (("40", "40.2.0"), ("latest", "40.2.0"), ("40.1", "40.1.0"),
                              ("40.2", "40.2.0")):
                got = _digest(host, repo, tag)
                if got != digests[want]:
                    failures.append(f"trial {trial}: {reg} {tag} on "
                                    f"{next((v for v, d in digests.items() if d == got), got)}, "
                                    f"not {want}")
    assert failures == []


def _digest(registry, repo, tag):
    import requests
    r = requests.head(f"{registry.url}/v2/{repo}/manifests/{tag}", timeout=15, headers={
        "Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                  "application/vnd.oci.image.manifest.v1+json"})
    return r.headers.get("Docker-Content-Digest") if r.status_code == 200 else None


def test_release_hygiene_dirty_tree_and_tag(tmp_path, docker_engine, plain_registry, repo):
    """As goreleaser does: a dirty working tree is a warning (--strict refuses it, exit 2,
    nothing built), a VERSION that is not HEAD's tag is a warning."""
    config = write_release(tmp_path, [registry_block("a", plain_registry, repo)])
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"], ["tag", "v1.0.0"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    (tmp_path / "app" / "payload.txt").write_text(f"edited {uuid.uuid4()}")

    strict = run_release(config, "build-push", "1.0.0", "--strict")
    assert strict.returncode == 2
    assert "--strict: the working tree has 1 uncommitted change" in strict.stderr
    assert docker_engine.api.images(name=image_name(config)) == [] and plain_registry.tags(repo) == []

    proc = run_release(config, "build-push", "1.0.1")
    assert proc.returncode == 0, proc.stderr
    assert "warning: the working tree has 1 uncommitted change" in proc.stderr
    assert "warning: VERSION 1.0.1 is not the git tag at HEAD (v1.0.0)" in proc.stderr
    docker_engine.images.remove(f"{image_name(config)}:1.0.1", force=True)
