"""Multi-platform releases end to end: real engine, real registries, checked from outside.

Images are `FROM scratch` + COPY, which the classic builder builds for any platform
without emulation. Each index is checked through the registry API, with
`skopeo inspect --raw` and with `docker pull --platform` of each platform.
"""

from __future__ import annotations

import json
import struct
import subprocess
import uuid
from pathlib import Path

import pytest

from pipeline.model.platforms import Platform, binfmt_handler
from tests.support.release_cli import registry_block, run_release
from tests.support.release_cli import write_release as shared_write_release

pytestmark = pytest.mark.integration

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
TWO = ("linux/amd64", "linux/arm64")


def write_release(tmp_path: Path, registries: list[str], *, platforms=TWO, index_format=None,
                  dockerfile: str | None = None, retry: str = "") -> Path:
    image_extra = f"  platforms: [{', '.join(platforms)}]\n"
    if index_format:
        image_extra += f"  index_format: {index_format}\n"
    config = shared_write_release(tmp_path, registries, retry=retry, image_extra=image_extra, name_prefix="mp")
    if dockerfile is not None:
        (tmp_path / "app" / "Dockerfile").write_text(dockerfile)
    return config


@pytest.fixture
def repo():
    return f"it/mp-{uuid.uuid4().hex[:8]}"


def skopeo_raw(reg, ref: str) -> tuple[bytes, dict]:
    """`skopeo inspect --raw` of host/ref: the exact bytes and their JSON."""
    argv = ["skopeo", "inspect", "--raw"]
    creds = reg.auth_config
    argv += ["--creds", f"{creds['username']}:{creds['password']}"] if creds else ["--no-creds"]
    if reg.cert_dir:
        argv += ["--cert-dir", str(reg.cert_dir)]
    argv += [f"--tls-verify={'true' if reg.tls else 'false'}", f"docker://{reg.host}/{ref}"]
    proc = subprocess.run(argv, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout, json.loads(proc.stdout)


def docker_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)


def pull_platform(docker_engine, ref: str, platform: str) -> dict:
    """`docker pull --platform` with nothing of that name left locally; the pulled image."""
    try:
        docker_engine.images.remove(ref, force=True)
    except Exception:
        pass
    proc = docker_cli("pull", "--platform", platform, ref)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return docker_engine.api.inspect_image(ref)


def assert_index(reg, repo: str, digest: str, media_type: str, child_type: str,
                 platforms=TWO) -> list[dict]:
    """The index behind `digest`, as the registry serves it: platforms in order, children there."""
    m = reg.manifest(repo, digest)
    assert m.digest == digest
    assert m.media_type == media_type
    index = m.json()
    assert index["mediaType"] == media_type
    entries = index["manifests"]
    assert ["/".join(filter(None, (e["platform"]["os"], e["platform"]["architecture"],
                                   e["platform"].get("variant")))) for e in entries] == list(platforms)
    for e in entries:
        assert e["mediaType"] == child_type
        child = reg.manifest(repo, e["digest"])
        assert child is not None and child.digest == e["digest"]
        assert len(child.body) == e["size"]
        assert child.json()["mediaType"] == child_type
    return entries


def test_two_platforms_one_index_on_two_registries(tmp_path, docker_engine, plain_registry,
                                                   auth_tls_registry, auth_env, repo, cleanup_images):
    config = write_release(tmp_path, [registry_block("plain", plain_registry, repo),
                                      registry_block("secure", auth_tls_registry, repo, with_auth=True)])
    proc = run_release(config, "build-push", "1.2.3", "--json", env=auth_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    digest = report["digest"]
    assert report["media_type"] == OCI_INDEX
    assert [p["platform"] for p in report["platforms"]] == list(TWO)
    assert {r["status"] for r in report["results"]} == {"pushed"}
    assert auth_tls_registry.password not in proc.stdout + proc.stderr

    tags = ["1", "1.2", "1.2.3", "latest"]
    for reg in (plain_registry, auth_tls_registry):
        assert reg.tags(repo) == tags                  # platform images carry no tag
        assert {reg.manifest_digest(repo, t) for t in tags} == {digest}
        entries = assert_index(reg, repo, digest, OCI_INDEX, OCI_MANIFEST)
        assert [e["digest"] for e in entries] == [p["digest"] for p in report["platforms"]]

    # skopeo sees the same bytes on both registries: one index digest everywhere.
    for reg in (plain_registry, auth_tls_registry):
        raw, data = skopeo_raw(reg, f"{repo}:1.2.3")
        assert reg.skopeo_digest(f"{repo}:1.2.3") == digest
        assert [e["platform"]["architecture"] for e in data["manifests"]] == ["amd64", "arm64"]

    # docker pull --platform gets each platform's own image (the config we built).
    ref = f"{plain_registry.host}/{repo}:1.2.3"
    cleanup_images.append(ref)
    for wanted, built in zip(TWO, report["platforms"]):
        pulled = pull_platform(docker_engine, ref, wanted)
        assert f"{pulled['Os']}/{pulled['Architecture']}" == wanted
        assert pulled["Id"] == built["image_id"]

    # `release registry inspect` lists the index's platforms.
    inspect = run_release(config, "registry", "inspect", "plain:1.2.3", "--json")
    assert inspect.returncode == 0, inspect.stderr
    assert [p["platform"] for p in json.loads(inspect.stdout)["platforms"]] == list(TWO)

    # A re-run rebuilds each platform from its own cache: same index, nothing pushed.
    again = run_release(config, "build-push", "1.2.3", "--json", env=auth_env)
    assert again.returncode == 0, again.stdout + again.stderr
    second = json.loads(again.stdout)
    assert second["digest"] == digest
    assert {r["status"] for r in second["results"]} == {"already there"}


def test_split_build_then_merge(tmp_path, docker_engine, plain_registry, make_registry, repo,
                                cleanup_images):
    other = make_registry()
    config = write_release(tmp_path, [registry_block("first", plain_registry, repo),
                                      registry_block("second", other, repo)])
    meta = tmp_path / "meta"
    arm = run_release(config, "build-push", "2.0.0", "--platform", "linux/arm64", "--push-by-digest",
                      "--metadata-file", str(meta / "job-arm64" / "linux-arm64.json"), "--json")
    assert arm.returncode == 0, arm.stdout + arm.stderr
    record = json.loads((meta / "job-arm64" / "linux-arm64.json").read_text())
    assert record["platform"] == "linux/arm64" and record["registry"] == "first"
    assert record["media_type"] == OCI_MANIFEST
    assert json.loads(arm.stdout)["record"] == record
    # Pushed by digest only, to the first registry only.
    assert plain_registry.tags(repo) == []
    assert plain_registry.manifest_digest(repo, record["digest"]) == record["digest"]
    assert other.tags(repo) == []

    # A merge with a platform missing is refused before touching anything.
    early = run_release(config, "manifest", "merge", "2.0.0", "--from-metadata", str(meta))
    assert early.returncode == 2
    assert "no record for linux/amd64" in early.stderr
    assert plain_registry.tags(repo) == [] and other.tags(repo) == []

    amd = run_release(config, "build-push", "2.0.0", "--platform", "linux/amd64", "--push-by-digest",
                      "--metadata-file", str(meta / "job-amd64" / "linux-amd64.json"), "-q")
    assert amd.returncode == 0, amd.stdout + amd.stderr
    amd_record = json.loads((meta / "job-amd64" / "linux-amd64.json").read_text())

    merged = run_release(config, "manifest", "merge", "2.0.0", "--from-metadata", str(meta), "--json")
    assert merged.returncode == 0, merged.stdout + merged.stderr
    report = json.loads(merged.stdout)
    digest = report["digest"]
    tags = ["2", "2.0", "2.0.0", "latest"]
    for reg in (plain_registry, other):
        assert reg.tags(repo) == tags
        assert {reg.manifest_digest(repo, t) for t in tags} == {digest}
        entries = assert_index(reg, repo, digest, OCI_INDEX, OCI_MANIFEST)
        assert [e["digest"] for e in entries] == [amd_record["digest"], record["digest"]]
    assert other.skopeo_digest(f"{repo}:2.0.0") == digest

    ref = f"{other.host}/{repo}:2.0.0"
    cleanup_images.append(ref)
    pulled = pull_platform(docker_engine, ref, "linux/arm64")
    assert pulled["Architecture"] == "arm64" and pulled["Id"] == record["image_id"]

    # Merging again changes nothing; the one-run path over the same local images gives the
    # same index.
    again = run_release(config, "manifest", "merge", "2.0.0", "--from-metadata", str(meta), "--json")
    assert again.returncode == 0, again.stderr
    assert {r["status"] for r in json.loads(again.stdout)["results"]} == {"already there"}
    whole = run_release(config, "build-push", "2.0.0", "--no-build", "--json")
    assert whole.returncode == 0, whole.stdout + whole.stderr
    assert json.loads(whole.stdout)["digest"] == digest

    # A merge of other images under the released version is refused (nothing moves), unless
    # --force.
    (tmp_path / "app" / "payload.txt").write_text(f"changed {uuid.uuid4()}")
    amd = run_release(config, "build-push", "2.0.0", "--platform", "linux/amd64", "--push-by-digest",
                      "--metadata-file", str(meta / "job-amd64" / "linux-amd64.json"), "-q")
    assert amd.returncode == 0, amd.stdout + amd.stderr
    refused = run_release(config, "manifest", "merge", "2.0.0", "--from-metadata", str(meta))
    assert refused.returncode == 1
    assert "version 2.0.0 is already released as another image" in refused.stderr
    for reg in (plain_registry, other):
        assert {reg.manifest_digest(repo, t) for t in tags} == {digest}
    forced = run_release(config, "manifest", "merge", "2.0.0", "--from-metadata", str(meta),
                         "--force", "--json")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert json.loads(forced.stdout)["digest"] != digest
    assert plain_registry.manifest_digest(repo, "2.0.0") == json.loads(forced.stdout)["digest"]


def test_a_registry_down_moves_no_floating_tag_and_a_rerun_finishes(tmp_path, docker_engine,
                                                                    plain_registry, make_registry,
                                                                    repo):
    flaky = make_registry()
    flaky.stop()
    config = write_release(tmp_path, [registry_block("plain", plain_registry, repo),
                                      registry_block("flaky", flaky, repo)],
                           retry="retry:\n  attempts: 2\n  max_delay: 1\n")
    proc = run_release(config, "build-push", "4.0.0", "--skip-preflight")   # the push path
    assert proc.returncode == 1
    assert "no floating tag was moved" in proc.stdout
    assert plain_registry.tags(repo) == ["4.0.0"]           # the index, and only its version
    digest = plain_registry.manifest_digest(repo, "4.0.0")
    assert plain_registry.manifest(repo, digest).media_type == OCI_INDEX

    flaky.restart()
    again = run_release(config, "build-push", "4.0.0", "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["digest"] == digest
    for reg in (plain_registry, flaky):
        assert reg.tags(repo) == ["4", "4.0", "4.0.0", "latest"]
        assert_index(reg, repo, digest, OCI_INDEX, OCI_MANIFEST)


def test_docker_manifest_list_format(tmp_path, docker_engine, plain_registry, repo, cleanup_images):
    config = write_release(tmp_path, [registry_block("plain", plain_registry, repo)],
                           platforms=("linux/arm/v7", "linux/amd64"), index_format="docker")
    proc = run_release(config, "build-push", "0.1.0", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    digest = json.loads(proc.stdout)["digest"]
    assert_index(plain_registry, repo, digest, DOCKER_LIST, DOCKER_MANIFEST,
                 platforms=("linux/arm/v7", "linux/amd64"))
    ref = f"{plain_registry.host}/{repo}:0.1.0"
    cleanup_images.append(ref)
    pulled = pull_platform(docker_engine, ref, "linux/arm/v7")
    assert (pulled["Architecture"], pulled.get("Variant")) == ("arm", "v7")


def test_one_foreign_platform_is_a_single_manifest(tmp_path, docker_engine, plain_registry, repo):
    config = write_release(tmp_path, [registry_block("plain", plain_registry, repo)],
                           platforms=("linux/arm64",))
    proc = run_release(config, "build-push", "3.0.0", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = plain_registry.manifest(repo, "3.0.0")
    assert m.digest == json.loads(proc.stdout)["digest"]
    assert m.media_type == DOCKER_MANIFEST            # the engine's own push, as without platforms
    config_blob = plain_registry._get(f"/v2/{repo}/blobs/{m.json()['config']['digest']}").json()
    assert (config_blob["os"], config_blob["architecture"]) == ("linux", "arm64")


def _aarch64_exit0() -> bytes:
    """A 132-byte static aarch64 ELF that exits 0: a foreign binary for a RUN step."""
    code = struct.pack("<III", 0xD2800000, 0xD2800BA8, 0xD4000001)   # mov x0,0; mov x8,93; svc 0
    base, ehsize, phsize = 0x400000, 64, 56
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header += struct.pack("<HHIQQQIHHHHHH", 2, 183, 1, base + ehsize + phsize, ehsize, 0, 0,
                          ehsize, phsize, 1, 0, 0, 0)
    total = ehsize + phsize + len(code)
    return header + struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, total, total, 0x1000) + code


def test_foreign_run_step_without_qemu_says_so(tmp_path, docker_engine, plain_registry, repo):
    # An aarch64 program RUN in both builds: arm64 (built first) needs QEMU on this amd64
    # engine; for amd64 it is simply the wrong binary.
    config = write_release(tmp_path, [registry_block("plain", plain_registry, repo)],
                           platforms=("linux/arm64", "linux/amd64"),
                           dockerfile="FROM scratch\nCOPY exit0 /exit0\nRUN [\"/exit0\"]\n")
    binary = tmp_path / "app" / "exit0"
    binary.write_bytes(_aarch64_exit0())
    binary.chmod(0o755)
    proc = run_release(config, "build-push", "1.0.0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert plain_registry.tags(repo) == []
    if binfmt_handler(Platform("linux", "arm64")):       # this host emulates arm64: amd64 fails
        assert "exec format error: a program run by this step is not built for linux/amd64" \
            in proc.stderr
        return
    # Said before the build when binfmt_misc is visible here, else from the failing RUN.
    assert "QEMU binfmt handler" in proc.stderr and "linux/arm64" in proc.stderr
    assert "--platform linux/arm64 --push-by-digest" in proc.stderr   # the native-runner way out


def test_a_rerun_whose_compression_differs_keeps_the_released_index(tmp_path, docker_engine,
                                                                    plain_registry, make_registry,
                                                                    repo, monkeypatch):
    """Same local images, other gzip bytes (e.g. isal installed, or upgraded, since the first
    run): the index on the registry has their configs, so it is ours and stays; a registry
    that lacks it gets a copy of that index, not a new one, and nothing is exported."""
    import io

    from pipeline.app.release import Releaser
    from pipeline.cli._common import derive
    from pipeline.engine import compress
    from pipeline.engine.client import Engine
    from pipeline.model.config.loader import load_config
    from pipeline.model.plan import make_plan
    from pipeline.ui.progress import PlainReporter

    config = write_release(tmp_path, [registry_block("plain", plain_registry, repo)])
    first = run_release(config, "build-push", "6.0.0", "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    released = json.loads(first.stdout)["digest"]

    second_reg = make_registry(name="late")
    config.write_text(config.read_text() + registry_block("late", second_reg, repo) + "\n")
    monkeypatch.setattr(compress, "ISAL_LEVEL", 1)     # another compression from now on
    monkeypatch.setattr(compress, "ZLIB_LEVEL", 1)
    cfg = load_config(str(config))
    plan = make_plan(cfg, derive(cfg, "6.0.0"), cfg.select([]), build=False)
    out = io.StringIO()
    releaser = Releaser(cfg, plan, PlainReporter(out), engine=Engine())
    exported = []
    releaser.engine.export = lambda ref: exported.append(ref) or iter(())
    report = releaser.run(build=False)
    assert report.ok, report.errors
    assert exported == []                                        # nothing was compressed again
    assert report.digest == released
    by_registry = {(r.registry, r.ref.rsplit(":", 1)[1]): r.status for r in report.results}
    assert by_registry[("plain", "6.0.0")] == "already there"
    assert by_registry[("late", "6.0.0")] == "pushed"            # a copy of the released index
    assert plain_registry.manifest(repo, "6.0.0").digest == released
    assert second_reg.manifest(repo, "6.0.0").digest == released
    assert second_reg.manifest(repo, "latest").digest == released
