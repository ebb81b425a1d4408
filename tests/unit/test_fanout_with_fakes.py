"""The fan-out push with fake registry clients, and the deterministic compressor it relies on."""

from __future__ import annotations

import gzip
import os

import pytest

from pipeline.app.fanout import PushTarget, push_local_image
from pipeline.engine import compress
from pipeline.errors import ReleaseError
from pipeline.model.platforms import parse_platform
from pipeline.model.status import Status
from pipeline.registry import upload
from pipeline.registry.client import ManifestInfo
from pipeline.registry.copy import copy_image
from pipeline.registry.errors import RegistryAPIError
from pipeline.registry.image import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    Blob,
    PlatformImage,
    family,
    image_manifest,
    push_image,
)
from pipeline.registry.manifest import OCI_MANIFEST
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


# -- the bytes each registry was sent ----------------------------------------------------------

class _Answer:
    def __init__(self, status_code, headers=None, url="https://mem.example/v2/"):
        self.status_code, self.headers, self.url = status_code, headers or {}, url

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def close(self):
        pass


class MemoryTransport:
    """What pipeline/registry/upload.py's attempts talk to, in memory: it reads request bodies
    the way the HTTP session does (iterating them) and keeps count of the body bytes it got.
    `break_after`: the next PUT body breaks (connection reset) after that many bytes."""

    host = "mem.example"

    def __init__(self, store: dict[str, bytes] | set[str]):
        self.store = store
        self.received = 0
        self.break_after: int | None = None
        self._parts: dict[str, bytearray] = {}

    def request(self, method, path, *, scopes=(), headers=None, data=None, replayable=True,
                what=None, stream=False):
        if method == "POST":
            upload_id = f"u{len(self._parts)}"
            self._parts[upload_id] = bytearray()
            return _Answer(202, {"Location": f"/v2/r/blobs/uploads/{upload_id}"})
        if method == "DELETE":
            return _Answer(204)
        upload_id = path.split("/blobs/uploads/", 1)[1].split("?", 1)[0]
        for chunk in ([data] if isinstance(data, bytes) else data or []):
            if self.break_after is not None and self.received + len(chunk) > self.break_after:
                self.break_after = None
                raise RegistryAPIError("mem.example: connection reset", transient=True)
            self.received += len(chunk)
            self._parts[upload_id] += chunk
        if method == "PATCH":
            return _Answer(202, {"Location": f"/v2/r/blobs/uploads/{upload_id}"})
        digest = path.split("digest=", 1)[1].replace("%3A", ":")
        content = bytes(self._parts.pop(upload_id))
        assert sha_of(content) == digest
        if isinstance(self.store, set):
            self.store.add(digest)
        else:
            self.store[digest] = content
        return _Answer(201, {"Docker-Content-Digest": digest})


class WireClient(FakeClient):
    """FakeClient whose uploads go through the real upload attempts (upload.py)."""

    def __init__(self, blobs=(), *, chunked=False):
        super().__init__(blobs)
        self.transport = MemoryTransport(self.blobs)
        self.chunked = chunked

    def upload_blob(self, repo, digest, size, source):
        self.calls.append(("upload", digest))
        if self.chunked:
            upload.chunked_attempt(self.transport, repo, digest, size, source, (), chunk_size=100)
        else:
            upload.monolithic_attempt(self.transport, repo, digest, size, source, ())


def test_each_registry_is_told_the_bytes_it_was_sent_and_a_rerun_sends_none(tmp_path):
    data, image_id = save_tar([L1, L2])
    probe = FakeClient()
    image, _ = push_local_image(chunks(data), [PushTarget("probe", probe, "t/app", "0")],
                                tmp_path / "0", image_id=image_id, diff_ids=[sha_of(L1), sha_of(L2)])
    sizes = {b.digest: b.size for b in image.blobs}
    # `fresh` has nothing, `half` already holds the first layer, `chunky` takes PATCHes
    fresh, half = WireClient(), WireClient(blobs={image.layers[0].digest})
    chunky = WireClient(chunked=True)
    targets = [PushTarget("fresh", fresh, "t/app", "1"), PushTarget("half", half, "t/app", "1"),
               PushTarget("chunky", chunky, "t/app", "1")]
    with upload.recording() as ledger:
        _, out = push_local_image(chunks(data), targets, tmp_path / "1", image_id=image_id,
                                  diff_ids=[sha_of(L1), sha_of(L2)], jobs=3)
    everything = sum(sizes.values())
    assert everything > 300                             # so the chunked one sends several PATCHes
    assert out["fresh"].bytes_sent == fresh.transport.received == everything
    assert (out["fresh"].blobs_sent, out["fresh"].blobs_present, out["fresh"].blobs_mounted) == (3, 0, 0)
    assert out["half"].bytes_sent == half.transport.received == everything - image.layers[0].size
    assert (out["half"].blobs_sent, out["half"].blobs_present) == (2, 1)
    assert out["chunky"].bytes_sent == chunky.transport.received == everything
    # the same counts reach the ledger of the run step, one tally per client
    assert ledger.get(half).to_dict() == {"bytes_sent": everything - image.layers[0].size,
                                          "blobs_sent": 2, "blobs_present": 1, "blobs_mounted": 0}
    assert ledger.get(probe) is None

    # again, to registries that have every blob: nothing goes out
    with upload.recording() as ledger:
        _, again = push_local_image(chunks(data), targets, tmp_path / "2", image_id=image_id,
                                    diff_ids=[sha_of(L1), sha_of(L2)])
    assert [again[n].bytes_sent for n in ("fresh", "half", "chunky")] == [0, 0, 0]
    assert [again[n].blobs_present for n in ("fresh", "half", "chunky")] == [3, 3, 3]
    assert ledger.get(fresh).bytes_sent == 0 and fresh.transport.received == everything


def test_an_upload_attempt_that_breaks_counts_what_went_out_before(tmp_path):
    blob = os.urandom(5000)
    store: dict[str, bytes] = {}
    transport = MemoryTransport(store)
    transport.break_after = 3000
    tally = upload.Tally()
    pieces = lambda: iter([blob[i:i + 1000] for i in range(0, len(blob), 1000)])  # noqa: E731
    with upload.metered(tally), pytest.raises(RegistryAPIError, match="connection reset"):
        upload.monolithic_attempt(transport, "r", sha_of(blob), len(blob), pieces, ())
    assert tally.bytes_sent == 4000        # 3 pieces went, the 4th was handed over and broke
    with upload.metered(tally):            # the retry sends everything again
        upload.monolithic_attempt(transport, "r", sha_of(blob), len(blob), pieces, ())
    assert tally.bytes_sent == 9000 and store[sha_of(blob)] == blob
    upload.monolithic_attempt(MemoryTransport({}), "r", sha_of(blob), len(blob), blob, ())
    assert tally.bytes_sent == 9000                 # outside `metered`: counted nowhere


class Source:
    """The source registry of a copy: manifests and blob contents."""

    host = api_host = registry_key = "mem.example"

    def __init__(self, manifest: bytes, blobs: list[bytes]):
        self.manifest, self.content = manifest, {sha_of(b): b for b in blobs}

    def get_manifest(self, repo, ref):
        return self.manifest, ManifestInfo(sha_of(self.manifest), OCI_MANIFEST, len(self.manifest))

    def open_blob(self, repo, digest, size=None):
        return iter([self.content[digest]])


class Destination(WireClient):
    host = api_host = registry_key = "mem.example"

    def __init__(self, blobs=(), mountable=()):
        super().__init__(blobs)
        self.mountable = set(mountable)

    def mount_blob(self, repo, digest, from_repo):
        if digest not in self.mountable:
            return False
        self.blobs.add(digest)
        return True


def small_image():
    config = Blob(sha_of(b'{"os":"linux"}'), 14, OCI_CONFIG, data=b'{"os":"linux"}')
    layers = [Blob(sha_of(x), len(x), OCI_LAYER_GZIP, data=x)
              for x in (os.urandom(3000), os.urandom(7000))]
    manifest = image_manifest(config, layers, family("oci"))
    return PlatformImage(parse_platform("linux/amd64"), config.digest, config, tuple(layers),
                         manifest, OCI_MANIFEST)


def test_a_copy_counts_the_blobs_sent_already_there_and_mounted():
    image = small_image()
    config, first, second = image.blobs
    src = Source(image.manifest, [b.data for b in image.blobs])
    dst = Destination(blobs={first.digest}, mountable={config.digest})
    with upload.recording() as ledger:
        result = copy_image(src, "t/src", "1", dst, "t/app", tags=["1"])
    assert (result.blobs_copied, result.blobs_skipped, result.blobs_mounted) == (1, 1, 1)
    assert result.bytes_sent == dst.transport.received == second.size == 7000
    assert ledger.get(dst).to_dict() == {"bytes_sent": 7000, "blobs_sent": 1, "blobs_present": 1,
                                         "blobs_mounted": 1}
    with upload.recording() as ledger:      # once more: everything is there
        again = copy_image(src, "t/src", "1", dst, "t/app", tags=["1"])
    assert again.bytes_sent == 0 and ledger.get(dst).to_dict()["blobs_present"] == 3


def test_a_platform_push_counts_what_it_sends():
    image = small_image()
    client = WireClient(blobs={image.layers[0].digest})
    with upload.recording() as ledger:
        assert push_image(client, "t/app", image, jobs=2) == Status.PUSHED
    assert ledger.get(client).to_dict() == {
        "bytes_sent": image.config.size + image.layers[1].size, "blobs_sent": 2,
        "blobs_present": 1, "blobs_mounted": 0}
    assert client.transport.received == image.config.size + image.layers[1].size
