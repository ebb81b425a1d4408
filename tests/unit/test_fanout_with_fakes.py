"""The fan-out push with fake registry clients, and the deterministic compressor it relies on."""

from __future__ import annotations

import gzip
import os

import pytest

from pipeline.app.fanout import PushTarget, push_local_image
from pipeline.engine import compress
from pipeline.errors import ReleaseError
from pipeline.model.status import Status
from pipeline.registry.errors import RegistryAPIError
from tests.support.saves import L1, L2, FakeClient, chunks, save_tar

# -- compress ----------------------------------------------------------------------------------

def test_the_same_bytes_compress_to_the_same_gzip_however_they_arrive():
    data = os.urandom(300_000) + b"text " * 400_000            # incompressible, then compressible
    whole = b"".join(compress.gzip_chunks([data]))
    pieces = b"".join(compress.gzip_chunks(data[i:i + 7777] for i in range(0, len(data), 7777)))
    assert whole == pieces
    assert gzip.decompress(whole) == data
    assert whole[:4] == b"\x1f\x8b\x08\x00" and whole[4:8] == b"\0\0\0\0"     # no name, mtime 0
    assert len(whole) < len(data)


def test_blocks_regroup_a_stream_into_exact_sizes():
    blocks = compress.Blocks(4)
    out = [b for piece in (b"ab", b"cdefghij", b"k") for b in blocks.feed(piece)]
    assert out == [b"abcd", b"efgh"] and list(blocks.rest()) == [b"ijk"]
    assert list(blocks.rest()) == []


def test_the_compressor_in_use_is_named():
    pytest.importorskip("isal")
    assert compress.describe().startswith("isal ")


# -- push_local_image --------------------------------------------------------------------------

class BrokenUploads(FakeClient):
    def upload_blob(self, repo, digest, size, source):
        raise RegistryAPIError("reg.example: upload: connection refused", transient=True)


def test_every_target_gets_the_blobs_and_the_manifest_under_its_tag(tmp_path):
    data, image_id = save_tar([L1, L2])
    a, b = FakeClient(), FakeClient()
    image, out = push_local_image(chunks(data), [PushTarget("a", a, "t/app", "1.0.0"),
                                                  PushTarget("b", b, "t/app", "1.0.0")],
                                  tmp_path, image_id=image_id, diff_ids=[sha_of(L1), sha_of(L2)])
    assert out["a"].status == out["b"].status == Status.PUSHED
    assert out["a"].digest == out["b"].digest == image.digest
    for client in (a, b):
        assert client.manifests["1.0.0"] == image.manifest
        assert {c[1] for c in client.calls if c[0] == "upload"} == \
            {image_id, *[layer.digest for layer in image.layers]}
        assert client.calls[-1] == ("PUT manifest", "1.0.0")        # only after every blob
    assert list(tmp_path.iterdir()) == []        # each spool file went once both had the layer


def test_a_failing_registry_is_left_out_and_the_others_go_on(tmp_path):
    data, image_id = save_tar([L1, L2])
    good, bad = FakeClient(), BrokenUploads()
    image, out = push_local_image(chunks(data), [PushTarget("good", good, "t/app", "1.0.0"),
                                                  PushTarget("bad", bad, "t/app", "1.0.0")],
                                  tmp_path, image_id=image_id, diff_ids=[sha_of(L1), sha_of(L2)],
                                  jobs=1)
    assert out["good"].status == Status.PUSHED and good.manifests["1.0.0"] == image.manifest
    assert out["bad"].status == Status.FAILED and "connection refused" in str(out["bad"].error)
    assert "1.0.0" not in bad.manifests                             # nothing tagged there


def test_blobs_a_registry_has_are_not_sent_again(tmp_path):
    data, image_id = save_tar([L1, L2])
    first = FakeClient()
    image, _ = push_local_image(chunks(data), [PushTarget("r", first, "t/app", "1")], tmp_path / "1",
                                image_id=image_id, diff_ids=[sha_of(L1), sha_of(L2)])
    again = FakeClient(blobs={image.layers[0].digest})                 # compressed the same way
    _, out = push_local_image(chunks(data, 1000), [PushTarget("r", again, "t/app", "2")],
                              tmp_path / "2", image_id=image_id, diff_ids=[sha_of(L1), sha_of(L2)])
    assert out["r"].blobs_present == 1 and out["r"].blobs_sent == 2
    assert ("upload", image.layers[0].digest) not in again.calls


def test_an_unusable_export_tags_nothing(tmp_path):
    data, image_id = save_tar([L1])
    client = FakeClient()
    with pytest.raises(ReleaseError, match="expected the image"):
        push_local_image(chunks(data), [PushTarget("r", client, "t/app", "1")], tmp_path,
                         image_id="sha256:" + "0" * 64, diff_ids=[sha_of(L1)])
    assert client.manifests == {}


def sha_of(data: bytes) -> str:
    import hashlib
    return "sha256:" + hashlib.sha256(data).hexdigest()


class SlowClient(FakeClient):
    """Uploads take a while; records how many spool files exist at each upload."""

    def __init__(self, spool):
        super().__init__()
        self.spool = spool
        self.on_disk: list[int] = []

    def upload_blob(self, repo, digest, size, source):
        import time
        self.on_disk.append(len(list(self.spool.glob("*.layer"))))
        time.sleep(0.03)
        super().upload_blob(repo, digest, size, source)


def many_layers(n):
    from tests.support.saves import layer_tar
    return [layer_tar({f"f{i}.bin": os.urandom(20_000)}) for i in range(n)]


def test_the_export_waits_for_uploads_so_spool_files_do_not_pile_up(tmp_path):
    layers = many_layers(6)
    data, image_id = save_tar(layers)
    client = SlowClient(tmp_path)
    _, out = push_local_image(chunks(data), [PushTarget("r", client, "t/app", "1")], tmp_path,
                              image_id=image_id, diff_ids=[sha_of(x) for x in layers], jobs=1)
    assert out["r"].status == Status.PUSHED
    assert max(client.on_disk) <= 2          # the one uploading + the one being compressed


def test_ctrl_c_stops_the_fan_out_and_tags_nothing(tmp_path):
    layers = many_layers(6)
    data, image_id = save_tar(layers)
    client = SlowClient(tmp_path)
    queued = []

    def on_blob(name, blob, status):
        if status == "queued":
            queued.append(blob.digest)
            if len(queued) == 3:
                raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        push_local_image(chunks(data), [PushTarget("r", client, "t/app", "1")], tmp_path,
                         image_id=image_id, diff_ids=[sha_of(x) for x in layers], jobs=1,
                         on_blob=on_blob)
    import time
    time.sleep(0.2)                           # anything still running would have ended
    assert len([c for c in client.calls if c[0] == "upload"]) <= 2
    assert client.manifests == {}


def test_a_spool_that_cannot_be_written_is_a_release_error(tmp_path, monkeypatch):
    import pipeline.engine.export as ie
    from pipeline.engine.export import export_image

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(ie, "_pack", full)
    data, image_id = save_tar([L1])
    with pytest.raises(ReleaseError, match="cannot write a layer to .*No space left") as err:
        export_image(chunks(data), tmp_path, "docker", image_id=image_id)
    assert "TMPDIR" in str(err.value)


def test_a_corrupt_gzip_layer_is_a_release_error(tmp_path):
    import gzip as gz

    from pipeline.engine.export import export_image

    data, image_id = save_tar([L2], layout="blobs", precompressed=True)
    packed = gz.compress(L2, mtime=0)
    broken = data.replace(packed, packed[:20] + b"\xff" * 20 + packed[40:])
    assert broken != data
    with pytest.raises(ReleaseError, match="gzip layer of the engine's export is corrupt"):
        export_image(chunks(broken), tmp_path, "docker", image_id=image_id)
