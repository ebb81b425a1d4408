"""build-push and promote under token auth, flaky links and a registry that never recovers."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.support.release_cli import registry_block, run_release, write_release

pytestmark = pytest.mark.integration

TAGS = ["1", "1.2", "1.2.3", "latest"]


def proxied_block(name: str, proxy, repo: str) -> str:
    return "\n".join([f"  - name: {name}", "    type: generic", f"    registry: {proxy.host}",
                      f"    repository: {repo}"])


@pytest.fixture
def repo():
    return f"rel/app-{uuid.uuid4().hex[:8]}"


def test_build_push_through_bearer_token_auth(tmp_path, docker_engine, plain_registry, token_registry, repo):
    config = write_release(tmp_path, [registry_block("plain", plain_registry, repo),
                                      registry_block("token", token_registry, repo, with_auth=True)])
    env = {"TEST_REG_USER": token_registry.username, "TEST_REG_PASS": token_registry.password}
    proc = run_release(config, "build-push", "1.2.3", "--json", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    digest = json.loads(proc.stdout)["digest"]
    assert sorted(token_registry.tags(repo)) == TAGS
    assert {token_registry.manifest_digest(repo, t) for t in TAGS} == {digest}
    assert token_registry.password not in proc.stdout + proc.stderr
    # the copy into the token registry went through the Bearer flow: our client asked for tokens
    assert token_registry.token_server.count() > 0


def test_build_push_completes_through_a_flaky_link(tmp_path, docker_engine, plain_registry, make_registry,
                                                   fault_proxy, repo):
    target = make_registry()
    proxy = fault_proxy(target, reset=0.1, error503=0.2, seed=7)
    config = write_release(tmp_path, [registry_block("plain", plain_registry, repo),
                                      proxied_block("flaky", proxy, repo)],
                           retry="retry:\n  attempts: 8\n  max_delay: 0.5\n")
    proc = run_release(config, "build-push", "1.2.3", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    digest = json.loads(proc.stdout)["digest"]
    assert proxy.faults > 0                       # faults were injected, and survived
    for reg in (plain_registry, target):
        assert sorted(reg.tags(repo)) == TAGS
        assert {reg.manifest_digest(repo, t) for t in TAGS} == {digest}


def test_engine_push_through_a_flaky_link_then_copy(tmp_path, docker_engine, plain_registry, make_registry,
                                                    fault_proxy, repo):
    # the flaky registry first: the engine pushes through the proxy, our client copies from it
    target = make_registry()
    proxy = fault_proxy(target, error503=0.2, seed=3)
    config = write_release(tmp_path, [proxied_block("flaky", proxy, repo),
                                      registry_block("plain", plain_registry, repo)],
                           retry="retry:\n  attempts: 8\n  max_delay: 0.5\n")
    proc = run_release(config, "build-push", "1.2.3", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    digest = json.loads(proc.stdout)["digest"]
    assert proxy.faults > 0
    assert {plain_registry.manifest_digest(repo, t) for t in TAGS} == {digest}
    assert {target.manifest_digest(repo, t) for t in TAGS} == {digest}


def test_promote_completes_through_a_flaky_link(tmp_path, docker_engine, plain_registry, make_registry,
                                                fault_proxy, repo):
    target = make_registry()
    proxy = fault_proxy(target, reset=0.1, error503=0.2, seed=11)
    config = write_release(tmp_path, [registry_block("src", plain_registry, repo),
                                      proxied_block("dst", proxy, repo)],
                           retry="retry:\n  attempts: 8\n  max_delay: 0.5\n")
    first = run_release(config, "build-push", "1.2.3", "--registry", "src", "--json", "-q")
    assert first.returncode == 0, first.stderr
    digest = json.loads(first.stdout)["digest"]
    proc = run_release(config, "promote", "1.2.3", "--from", "src", "--to", "dst", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proxy.faults > 0
    assert {target.manifest_digest(repo, t) for t in TAGS} == {digest}


def test_a_registry_that_never_recovers_fails_within_the_retry_budget(tmp_path, docker_engine, plain_registry,
                                                                      make_registry, fault_proxy, repo):
    target = make_registry()
    proxy = fault_proxy(target)
    proxy.down()
    config = write_release(tmp_path, [registry_block("plain", plain_registry, repo),
                                      proxied_block("dead", proxy, repo)],
                           retry="retry:\n  attempts: 3\n  max_delay: 1\n")
    start = time.monotonic()
    proc = run_release(config, "build-push", "1.2.3", "--skip-preflight")   # the push path
    elapsed = time.monotonic() - start
    assert proc.returncode == 1
    assert "dead" in proc.stdout                 # the summary names the registry
    # given up as a whole once unreachable: one line per attempt, not one per layer
    retries = [l for l in proc.stderr.splitlines() if l.startswith("[dead]") and "retrying" in l]
    assert 1 <= len(retries) <= 2, proc.stderr
    assert elapsed < 60
    assert plain_registry.tags(repo) == ["1.2.3"]  # no floating tag moved anywhere
    assert target.tags(repo) == []


def test_sigterm_mid_push_cleans_up_and_later_runs_remove_orphans(tmp_path, docker_engine,
                                                                  make_registry, fault_proxy, repo):
    """CI cancels a release while layers upload (SIGTERM): it stops with 128+15, and its spooled
    layers are gone; the spool of a run killed outright (SIGKILL) goes with the next run."""
    import os
    import signal
    import subprocess
    import sys

    slow = fault_proxy(make_registry(), bandwidth=300_000)         # 300 kB/s: a long upload
    config = write_release(tmp_path, [proxied_block("slow", slow, repo)],
                           content=os.urandom(3 << 20).hex())        # ~6 MB that gzip cannot shrink
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = spool_dir / f"release-push-{dead.pid}-left"
    orphan.mkdir()
    (orphan / "blob").write_bytes(b"x" * 1000)
    env = {**os.environ, "TMPDIR": str(spool_dir)}
    env.pop("GITHUB_ACTIONS", None)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "-c", str(config), "build-push",
                             "1.0.0", "-q"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    mine = []
    while time.monotonic() < deadline and not mine:
        mine = [p for p in spool_dir.glob(f"release-push-{proc.pid}-*") if any(p.iterdir())]
        time.sleep(0.05)
    assert mine, "the push never spooled a layer"
    assert not orphan.exists()                        # removed when this run made its own
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated (SIGTERM)" in err
    assert list(spool_dir.iterdir()) == []
