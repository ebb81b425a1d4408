"""Index assembly: engine exports -> manifests, the index bytes, pushes by digest, split records."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zlib
from pathlib import Path

import pytest

from pipeline.app.records import check_records, make_record, read_records, write_record
from pipeline.engine.export import _ChunkReader, export_image
from pipeline.errors import ReleaseError, UsageError
from pipeline.model.platforms import Platform
from pipeline.model.status import Status
from pipeline.registry.image import (
    Blob,
    IndexEntry,
    build_index,
    push_image,
    put_by_digest,
)
from tests.support.saves import L1, L2, FakeClient, chunks, image_config, save_tar, sha

ALREADY, PUSHED = Status.ALREADY, Status.PUSHED

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


# -- exports -----------------------------------------------------------------------------------

def test_chunk_reader_reads_exact_sizes_across_chunks():
    reader = _ChunkReader(iter([b"abc", b"", b"defgh", b"i"]))
    assert reader.read(2) == b"ab"
    assert reader.read(4) == b"cdef"
    assert reader.read(-1) == b"ghi"
    assert reader.read(3) == b""


@pytest.mark.parametrize("layout", ["legacy", "blobs"])
def test_export_gives_an_oci_manifest_whose_config_is_the_image(tmp_path, layout):
    data, image_id = save_tar([L1, L2], layout=layout)
    image = export_image(chunks(data), tmp_path / "a", "oci", image_id=image_id)
    assert image.image_id == image_id and image.config.digest == image_id
    assert image.platform == Platform("linux", "arm64")
    manifest = json.loads(image.manifest)
    assert manifest["mediaType"] == OCI_MANIFEST == image.media_type
    assert manifest["config"] == {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": image_id, "size": image.config.size}
    assert [l["mediaType"] for l in manifest["layers"]] == ["application/vnd.oci.image.layer.v1.tar+gzip"] * 2
    for desc, original in zip(manifest["layers"], (L1, L2)):
        blob = next(b for b in image.layers if b.digest == desc["digest"])
        packed = blob.path.read_bytes()
        assert sha(packed) == desc["digest"] and len(packed) == desc["size"]
        assert zlib.decompress(packed, 47) == original
    assert image.digest == sha(image.manifest) and image.size == len(image.manifest)


def test_the_same_image_always_gives_the_same_manifest_digest(tmp_path):
    data, image_id = save_tar([L1], variant=None)
    first = export_image(chunks(data), tmp_path / "a", "oci", image_id=image_id)
    second = export_image(chunks(data, 100000), tmp_path / "b", "oci", image_id=image_id)
    assert first.digest == second.digest
    docker = export_image(chunks(data), tmp_path / "c", "docker", image_id=image_id)
    body = json.loads(docker.manifest)
    assert docker.media_type == DOCKER_MANIFEST == body["mediaType"]
    assert body["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert body["layers"][0]["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert docker.digest != first.digest


def test_symlinked_duplicate_layers_and_precompressed_layers(tmp_path):
    data, image_id = save_tar([L1, L1], duplicate_symlink=True)
    image = export_image(chunks(data), tmp_path / "a", "oci", image_id=image_id)
    assert len(image.layers) == 2 and image.layers[0].digest == image.layers[1].digest
    assert len(image.blobs) == 2                 # config + one layer

    data, image_id = save_tar([L2], layout="blobs", precompressed=True)
    image = export_image(chunks(data), tmp_path / "b", "oci", image_id=image_id)
    assert image.layers[0].digest == sha(gzip.compress(L2, mtime=0))     # taken as it is


def test_export_is_checked_against_the_image_and_its_diff_ids(tmp_path):
    data, image_id = save_tar([L1])
    with pytest.raises(ReleaseError, match="expected the image"):
        export_image(chunks(data), tmp_path / "a", "oci", image_id="sha256:" + "0" * 64)
    bad, bad_id = save_tar([L1], config_override=image_config([sha(L2)]))
    with pytest.raises(ReleaseError, match="does not match its diff_id"):
        export_image(chunks(bad), tmp_path / "b", "oci", image_id=bad_id)
    short, short_id = save_tar([L1], config_override=image_config([sha(L1), sha(L2)]))
    with pytest.raises(ReleaseError, match="lists 2 layers, the export 1"):
        export_image(chunks(short), tmp_path / "c", "oci", image_id=short_id)


def test_unsafe_paths_in_an_export_are_refused(tmp_path):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("../evil")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ReleaseError, match="unsafe path"):
        export_image(chunks(out.getvalue()), tmp_path / "a", "oci")
    assert not (tmp_path / "evil").exists()


# -- the index ---------------------------------------------------------------------------------

def entry(n, platform, media_type=OCI_MANIFEST):
    return IndexEntry(media_type, "sha256:" + str(n) * 64, 400 + n, platform)


AMD64, ARM64, ARMV7 = Platform("linux", "amd64"), Platform("linux", "arm64"), Platform("linux", "arm", "v7")


def test_index_lists_the_platforms_in_the_given_order():
    index = build_index([entry(1, ARM64), entry(2, AMD64), entry(3, ARMV7)], "oci")
    data = json.loads(index.body)
    assert list(data) == ["schemaVersion", "mediaType", "manifests"]
    assert data["schemaVersion"] == 2 and data["mediaType"] == index.media_type
    assert index.media_type == "application/vnd.oci.image.index.v1+json"
    assert data["manifests"][0] == {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "1" * 64,
                                    "size": 401, "platform": {"architecture": "arm64", "os": "linux"}}
    assert data["manifests"][2]["platform"]["variant"] == "v7"
    assert index.digest == sha(index.body)
    # Same entries, same bytes; another order, another digest.
    assert build_index([entry(1, ARM64), entry(2, AMD64), entry(3, ARMV7)], "oci").digest == index.digest
    assert build_index([entry(2, AMD64), entry(1, ARM64), entry(3, ARMV7)], "oci").digest != index.digest


def test_a_docker_list_holds_docker_manifests_only():
    lst = build_index([entry(1, AMD64, DOCKER_MANIFEST), entry(2, ARM64, DOCKER_MANIFEST)], "docker")
    assert json.loads(lst.body)["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    with pytest.raises(UsageError, match="one media-type family"):
        build_index([entry(1, AMD64), entry(2, ARM64, DOCKER_MANIFEST)], "oci")
    with pytest.raises(UsageError, match="one media-type family"):
        build_index([entry(1, AMD64)], "docker")


def test_an_index_needs_distinct_platforms():
    with pytest.raises(UsageError, match="two images for linux/arm64"):
        build_index([entry(1, ARM64), entry(2, Platform("linux", "arm64", "v8"))], "oci")
    with pytest.raises(UsageError, match="at least one"):
        build_index([], "oci")


# -- pushing by digest -------------------------------------------------------------------------

def test_push_image_uploads_missing_blobs_then_puts_by_digest_only(tmp_path):
    data, image_id = save_tar([L1, L2])
    image = export_image(chunks(data), tmp_path / "a", "oci", image_id=image_id)
    client = FakeClient(blobs={image.layers[0].digest})
    assert push_image(client, "t/app", image, jobs=2) == PUSHED
    uploads = {c[1] for c in client.calls if c[0] == "upload"}
    assert uploads == {image.config.digest, image.layers[1].digest}
    assert [c for c in client.calls if c[0] == "PUT manifest"] == [("PUT manifest", image.digest)]
    # Again: one HEAD, nothing else.
    client.calls.clear()
    assert push_image(client, "t/app", image) == ALREADY
    assert client.calls == [("HEAD manifest", image.digest)]

    index = build_index([image.entry()], "oci")
    assert put_by_digest(client, "t/app", index.body, index.media_type) == PUSHED
    assert client.manifests[index.digest] == index.body
    assert put_by_digest(client, "t/app", index.body, index.media_type) == ALREADY


def test_blob_sources_stream_files_or_give_bytes(tmp_path):
    path = tmp_path / "b"
    path.write_bytes(b"x" * 3_000_000)
    blob = Blob(sha(path.read_bytes()), 3_000_000, "m", path=path)
    assert b"".join(blob.source()()) == path.read_bytes()
    assert Blob("d", 1, "m", data=b"y").source() == b"y"


# -- records -----------------------------------------------------------------------------------

def record(platform="linux/arm64", digest="1", **over):
    r = {"kind": "release.platform-image", "record_version": 1, "version": "1.0.0",
         "platform": platform, "digest": "sha256:" + digest * 64, "media_type": OCI_MANIFEST,
         "size": 500, "index_format": "oci", "registry": "local", "host": "localhost:5000",
         "repository": "team/app"}
    r.update(over)
    return r


def found(*records):
    return [(Path(f"r{i}.json"), r) for i, r in enumerate(records)]


def test_make_record_and_round_trip(tmp_path):
    data, image_id = save_tar([L1])
    image = export_image(chunks(data), tmp_path / "x", "oci", image_id=image_id)
    r = make_record(version="1.0.0", platform=ARM64, image=image, index_format="oci",
                    registry="local", host="localhost:5000", repository="team/app")
    assert r["digest"] == image.digest and r["size"] == image.size and r["image_id"] == image_id
    assert r["ref"] == f"localhost:5000/team/app@{image.digest}"
    write_record(tmp_path / "meta" / "job1" / "linux-arm64.json", r)
    assert not list((tmp_path / "meta").rglob(".*.tmp"))
    assert read_records(tmp_path / "meta") == [(tmp_path / "meta" / "job1" / "linux-arm64.json", r)]


def test_read_records_refuses_strangers_and_empty_dirs(tmp_path):
    with pytest.raises(UsageError, match="not a directory"):
        read_records(tmp_path / "missing")
    (tmp_path / "d").mkdir()
    with pytest.raises(UsageError, match="no platform records"):
        read_records(tmp_path / "d")
    (tmp_path / "d" / "x.json").write_text("{}")
    with pytest.raises(UsageError, match="not a platform record"):
        read_records(tmp_path / "d")
    (tmp_path / "d" / "x.json").write_text("{trunc")
    with pytest.raises(UsageError, match="not a readable JSON record"):
        read_records(tmp_path / "d")


def test_records_are_ordered_as_release_yml_lists_the_platforms():
    records = check_records(found(record("linux/arm64", "1"), record("linux/amd64", "2")),
                            version="1.0.0", index_format="oci",
                            platforms=("linux/amd64", "linux/arm64/v8"))
    assert [r["platform"] for r in records] == ["linux/amd64", "linux/arm64"]
    unordered = check_records(found(record("linux/arm64", "1"), record("linux/amd64", "2")),
                              version="1.0.0", index_format="oci")
    assert [r["platform"] for r in unordered] == ["linux/amd64", "linux/arm64"]
    # The same record twice (a re-run job) is fine.
    twice = check_records(found(record(), record()), version="1.0.0", index_format="oci")
    assert len(twice) == 1


@pytest.mark.parametrize("records, platforms, message", [
    ([record()], ("linux/amd64", "linux/arm64"), "no record for linux/amd64"),
    ([record(), record("linux/s390x", "2")], ("linux/arm64",), "which image.platforms does not list"),
    ([record(), record(digest="2")], (), "two different images for linux/arm64"),
    ([record(version="0.9.0")], (), "is for version 0.9.0, not 1.0.0"),
    ([record(index_format="docker")], (), "made for index_format docker"),
    ([record(), record("linux/amd64", "2", registry="b", host="h:1")], (), "different registries"),
    ([record(platform="linux/x86_64")], (), "unknown architecture"),
    ([{k: v for k, v in record().items() if k != "digest"}], (), "missing digest"),
    ([record(record_version=2)], (), "record_version 2"),
])
def test_records_that_do_not_fit_are_refused_with_every_reason(records, platforms, message):
    with pytest.raises(UsageError) as info:
        check_records(found(*records), version="1.0.0", index_format="oci", platforms=platforms)
    assert message in info.value.message
