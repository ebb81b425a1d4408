"""Digest verification while streaming, re-chunking, manifest parsing, per-host limits."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest

from pipeline.registry.digest import is_digest, verified_chunks
from pipeline.registry.errors import DigestMismatch
from pipeline.registry.limits import HostLimiter
from pipeline.registry.manifest import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    ManifestError,
    media_type_of,
    parse_manifest,
)
from pipeline.registry.stream import rechunk


def _d(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_good_stream_passes_unchanged():
    chunks = [b"ab", b"", b"cde", b"f"]
    assert list(verified_chunks(iter(chunks), _d(b"abcdef"), 6, where="t")) == [b"ab", b"cde", b"f"]
    assert list(verified_chunks(iter([]), _d(b""), 0, where="t")) == []


def test_wrong_content_fails_before_the_last_chunk():
    out = []
    with pytest.raises(DigestMismatch, match="expected sha256:"):
        for chunk in verified_chunks(iter([b"ab", b"cd", b"eX"]), _d(b"abcdef"), 6, where="t"):
            out.append(chunk)
    assert out == [b"ab", b"cd"]                                # "eX" was never handed out


@pytest.mark.parametrize("chunks, match", [
    ([b"abc"], "got 3 bytes"), ([b"abcdefg"], "more than the expected 6")])
def test_wrong_size_fails(chunks, match):
    with pytest.raises(DigestMismatch, match=match) as err:
        list(verified_chunks(iter(chunks), _d(b"abcdef"), 6, where="t"))
    assert not err.value.transient


def test_rechunk():
    assert list(rechunk(iter([b"abcde", b"fg", b"hijklmn"]), 4)) == [b"abcd", b"efgh", b"ijkl", b"mn"]
    assert list(rechunk(iter([]), 4)) == []


def test_is_digest():
    assert is_digest("sha256:" + "0" * 64)
    assert not is_digest("sha256:" + "0" * 63) and not is_digest("latest") and not is_digest(None)


def test_manifest_parsing():
    image = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
             "config": {"mediaType": "c", "digest": "sha256:" + "1" * 64, "size": 10},
             "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                         "digest": "sha256:" + "2" * 64, "size": 20},
                        {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                         "digest": "sha256:" + "3" * 64, "size": 30, "urls": ["https://x"]}]}
    m = parse_manifest(json.dumps(image).encode())
    assert not m.is_index and [b.size for b in m.blobs] == [10, 20, 30]
    assert [b.non_distributable for b in m.blobs] == [False, False, True]
    index = {"schemaVersion": 2, "mediaType": DOCKER_LIST,
             "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": "sha256:" + "4" * 64, "size": 5}]}
    assert parse_manifest(json.dumps(index).encode()).children[0].size == 5
    # No mediaType field (allowed in OCI): Content-Type, else the shape, decides.
    bare = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert media_type_of(bare) == OCI_INDEX
    assert media_type_of(json.dumps({"schemaVersion": 2, "layers": []}).encode()) == OCI_MANIFEST
    assert media_type_of(bare, DOCKER_LIST + "; charset=utf-8") == DOCKER_LIST
    with pytest.raises(ManifestError, match="schema 1"):
        media_type_of(json.dumps({"schemaVersion": 1}).encode())
    with pytest.raises(ManifestError, match="not JSON"):
        media_type_of(b"<html>")


def test_host_limiter_bounds_concurrency_and_is_reentrant():
    limiter = HostLimiter(per_host=2)
    active, peak, lock = [0], [0], threading.Lock()

    def job():
        with limiter.hold("a.example", "b.example"):
            with limiter.hold("a.example"):                     # nested: no second slot
                with lock:
                    active[0] += 1
                    peak[0] = max(peak[0], active[0])
                time.sleep(0.01)
                with lock:
                    active[0] -= 1

    threads = [threading.Thread(target=job) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)
    assert peak[0] == 2 and not any(t.is_alive() for t in threads)
