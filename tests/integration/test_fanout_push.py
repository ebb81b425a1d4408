"""build-push's fan-out (pipeline/app/fanout.py) on the real engine and real registries:
one export, each layer compressed once, every registry at once; recognising an image that
is already there whoever compressed it; unchanged layers not sent again; the engine push
as a fallback and on request."""

from __future__ import annotations

import io
import json
import os
import tarfile
import uuid

import pytest

from pipeline.engine.socket_api import EngineSocket, socket_path
from pipeline.errors import ReleaseError
from tests.support.images import write_context
from tests.support.release_cli import registry_block, run_release, write_release


def report_of(proc) -> dict:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def statuses(report: dict) -> set[str]:
    return {r["status"] for r in report["results"]}


def test_every_registry_gets_one_image_the_engine_can_pull_and_run(
        tmp_path, docker_engine, plain_registry, auth_tls_registry, unique_repo, auth_env,
        cleanup_images):
    config = write_release(tmp_path, [registry_block("plain", plain_registry, unique_repo),
                                      registry_block("secure", auth_tls_registry, unique_repo,
                                                     with_auth=True)])
    marker = f"fanout {uuid.uuid4()}"
    write_context(tmp_path / "app", marker, with_run=True)       # payload + busybox + RUN layers
    report = report_of(run_release(config, "build-push", "2.0.0", "--json", env=auth_env))
    cleanup_images.append(report["image_id"])
    assert statuses(report) == {"pushed"} and len(report["results"]) == 8
    digest = report["digest"]
    for reg in (plain_registry, auth_tls_registry):
        assert reg.tags(unique_repo) == ["2", "2.0", "2.0.0", "latest"]
        manifest = reg.manifest(unique_repo, "2.0.0")
        assert manifest.digest == digest
        body = manifest.json()
        # the config blob is the engine's own: its digest is the local image id
        assert body["config"]["digest"] == report["image_id"]
        assert len(body["layers"]) == 3
        assert all(layer["mediaType"].endswith("tar.gzip") for layer in body["layers"])
    assert plain_registry.skopeo_digest(f"{unique_repo}:latest") == digest   # another client agrees

    # Pull it back into an engine that no longer has it: every layer is decompressed and
    # checked against its diff_id there, and the image id comes out the same.
    ref = plain_registry.ref(unique_repo, "2.0.0")
    docker_engine.images.remove(report["image_id"], force=True)
    pulled = docker_engine.images.pull(ref)
    cleanup_images.append(ref)
    assert pulled.id == report["image_id"]
    out = docker_engine.containers.run(ref, ["/bin/busybox", "cat", "/built.txt"], remove=True)
    assert out.decode() == f"{marker}run-ok\n"


def test_an_image_the_engine_pushed_is_already_there(tmp_path, docker_engine, plain_registry,
                                                     unique_repo, cleanup_images):
    config = write_release(tmp_path, [registry_block("plain", plain_registry, unique_repo)])
    first = report_of(run_release(config, "build-push", "3.1.0", "--json", "--engine-push"))
    cleanup_images.append(first["image_id"])
    assert statuses(first) == {"pushed"}
    assert first["registries"]["plain"]["bytes_sent"] is None     # `docker push`: not measured
    local = docker_engine.images.get(first["image_id"])
    assert f"{plain_registry.host}/{unique_repo}@{first['digest']}" in local.attrs["RepoDigests"]

    again = report_of(run_release(config, "build-push", "3.1.0", "--json", "--no-build"))
    # same image (same config), other compression than ours: left alone, not pushed again
    assert statuses(again) == {"already there"} and again["digest"] == first["digest"]
    assert again["registries"]["plain"]["bytes_sent"] == 0


def test_with_engine_push_the_copies_are_counted(tmp_path, docker_engine, plain_registry,
                                                 auth_tls_registry, unique_repo, auth_env,
                                                 cleanup_images):
    config = write_release(tmp_path, [registry_block("plain", plain_registry, unique_repo),
                                      registry_block("secure", auth_tls_registry, unique_repo,
                                                     with_auth=True)])
    report = report_of(run_release(config, "build-push", "3.2.0", "--json", "--engine-push",
                                   env=auth_env))
    cleanup_images.append(report["image_id"])
    assert statuses(report) == {"pushed"}
    sent = report["registries"]
    assert sent["plain"] == {"bytes_sent": None, "blobs_sent": None, "blobs_present": None,
                             "blobs_mounted": None}
    # secure got its copy from plain through the registry API, every blob streamed
    body = auth_tls_registry.manifest(unique_repo, "3.2.0").json()
    sizes = [body["config"]["size"], *[layer["size"] for layer in body["layers"]]]
    assert sent["secure"] == {"bytes_sent": sum(sizes), "blobs_sent": len(sizes),
                              "blobs_present": 0, "blobs_mounted": 0}


def test_a_new_release_sends_only_the_layers_that_changed(tmp_path, docker_engine, plain_registry,
                                                           fault_proxy, unique_repo, cleanup_images):
    proxy = fault_proxy(plain_registry)            # no faults: it only counts requests
    app = tmp_path / "app"
    app.mkdir()
    (app / "base.bin").write_bytes(uuid.uuid4().bytes * 50_000)     # 800 kB, never changes
    (app / "payload.txt").write_text("one\n")
    (app / "Dockerfile").write_text("FROM scratch\nCOPY base.bin /base.bin\n"
                                    "COPY payload.txt /payload.txt\n")
    config = tmp_path / "release.yml"
    config.write_text(f"image:\n  name: layers-{uuid.uuid4().hex[:8]}\n  context: app\n"
                      f"registries:\n{registry_block('proxied', proxy, unique_repo)}\n")

    def uploads() -> list[str]:
        return [kind for _, kind, _, _ in proxy.events if kind == "POST blobs/uploads/"]

    first = report_of(run_release(config, "build-push", "1.0.0", "--json"))
    cleanup_images.append(first["image_id"])
    assert len(uploads()) == 3                                     # base, payload, config
    body = plain_registry.manifest(unique_repo, "1.0.0").json()
    assert first["registries"]["proxied"] == {
        "bytes_sent": body["config"]["size"] + sum(layer["size"] for layer in body["layers"]),
        "blobs_sent": 3, "blobs_present": 0, "blobs_mounted": 0}
    proxy.reset_stats()
    (app / "payload.txt").write_text("two\n")
    second = report_of(run_release(config, "build-push", "1.1.0", "--json"))
    cleanup_images.append(second["image_id"])
    assert statuses(second) == {"pushed"} and second["digest"] != first["digest"]
    assert len(uploads()) == 2                                     # payload, config: not base
    old = plain_registry.manifest(unique_repo, "1.0.0").json()["layers"]
    new = plain_registry.manifest(unique_repo, "1.1.0").json()["layers"]
    assert old[0] == new[0] and old[1] != new[1]       # same bytes, same digest, not re-sent
    config_size = plain_registry.manifest(unique_repo, "1.1.0").json()["config"]["size"]
    assert second["registries"]["proxied"] == {"bytes_sent": new[1]["size"] + config_size,
                                               "blobs_sent": 2, "blobs_present": 1,
                                               "blobs_mounted": 0}
    assert second["registries"]["proxied"]["bytes_sent"] < old[0]["size"]     # not the base


def test_an_export_that_cannot_be_read_falls_back_to_the_engine_push(tmp_path, docker_engine,
                                                                     plain_registry, unique_repo,
                                                                     cleanup_images):
    from pipeline.app.release import Releaser
    from pipeline.cli._common import derive
    from pipeline.engine.client import Engine
    from pipeline.model.config.loader import load_config
    from pipeline.model.plan import make_plan
    from pipeline.ui.progress import PlainReporter

    config_path = write_release(tmp_path, [registry_block("plain", plain_registry, unique_repo)])
    config = load_config(str(config_path))
    plan = make_plan(config, derive(config, "4.0.0"), config.select([]), build=True)
    out = io.StringIO()
    releaser = Releaser(config, plan, PlainReporter(out), engine=Engine())
    releaser.engine.export = lambda ref: iter([b"this is not a tar archive" * 100])
    report = releaser.run(build=True)
    cleanup_images.append(report.image_id)
    assert report.ok, report.errors
    assert "the engine pushes it instead" in out.getvalue()
    assert plain_registry.manifest(unique_repo, "4.0.0").digest == report.digest
    local = docker_engine.images.get(report.image_id)
    assert f"{plain_registry.host}/{unique_repo}@{report.digest}" in local.attrs["RepoDigests"]


def test_the_engine_socket_reads_what_docker_py_reads(tmp_path, docker_engine, cleanup_images):
    context = write_context(tmp_path / "ctx", f"socket {uuid.uuid4()}")
    image, _ = docker_engine.images.build(path=str(context), tag=f"sock-{uuid.uuid4().hex[:8]}:1")
    cleanup_images.append(image.id)
    path = socket_path(os.environ)          # the engine the fixtures use, on its Unix socket
    assert path is not None
    engine = EngineSocket(path)
    assert engine.inspect_image(image.id)["Id"] == image.id
    assert engine.inspect_image("no-such-image:really") is None
    with tarfile.open(fileobj=io.BytesIO(b"".join(engine.export(image.id))), mode="r") as tar:
        names = tar.getnames()
    assert "manifest.json" in names
    assert socket_path({"DOCKER_HOST": "tcp://127.0.0.1:2375"}) is None      # docker-py then
    assert socket_path({}) == "/var/run/docker.sock"


def test_an_unreachable_engine_socket_is_a_clear_error(tmp_path):
    from pipeline.engine.client import Engine

    engine = Engine(env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    with pytest.raises(ReleaseError) as err:
        engine.inspect("x:1")
    assert f"cannot reach the Docker Engine at unix://{tmp_path}/none.sock" in str(err.value)
    assert "start dockerd" in str(err.value)
