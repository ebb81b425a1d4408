"""The fan-out push with fake registry clients, and the deterministic compressor it relies on."""

from __future__ import annotations

import gzip
import os

import pytest

from pipeline import compress
from pipeline.errors import ReleaseError
from pipeline.fanout_push import FAILED, PUSHED, PushTarget, push_local_image
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
    assert out["a"].status == out["b"].status == PUSHED
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
    assert out["good"].status == PUSHED and good.manifests["1.0.0"] == image.manifest
    assert out["bad"].status == FAILED and "connection refused" in str(out["bad"].error)
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
