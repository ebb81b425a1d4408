"""`docker save` streams made in memory, and a registry client fake, for exporter/push tests."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

from pipeline.registry.client import ManifestInfo

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def image_config(diff_ids, arch="arm64", variant=None) -> bytes:
    cfg = {"architecture": arch, "os": "linux", "config": {"Labels": {"a": "b"}},
           "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    if variant:
        cfg["variant"] = variant
    return json.dumps(cfg).encode()


def save_tar(layers: list[bytes], *, arch="arm64", variant=None, layout="legacy",
             duplicate_symlink=False, precompressed=False, config_override=None) -> tuple[bytes, str]:
    """A `docker save` stream: legacy (Engine < 25) or blobs/sha256 (Engine >= 25) layout."""
    config = config_override or image_config([sha(l) for l in layers], arch, variant)
    image_id = sha(config)
    members: list[tuple[str, bytes | None, str | None]] = []   # name, data, symlink target
    layer_names = []
    for i, data in enumerate(layers):
        stored = gzip.compress(data, mtime=0) if precompressed else data
        if layout == "legacy":
            name = f"{i:064x}/layer.tar"
            if duplicate_symlink and i > 0 and data == layers[0]:
                members.append((name, None, f"../{0:064x}/layer.tar"))
            else:
                members.append((name, stored, None))
        else:
            name = f"blobs/sha256/{hashlib.sha256(stored).hexdigest()}"
            if name not in [m[0] for m in members]:
                members.append((name, stored, None))
        layer_names.append(name)
    config_name = f"{image_id[7:]}.json" if layout == "legacy" else f"blobs/sha256/{image_id[7:]}"
    members.append((config_name, config, None))
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["x:1"], "Layers": layer_names}]).encode()
    members.append(("manifest.json", manifest, None))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue(), image_id


def chunks(data: bytes, size: int = 7777):
    return (data[i:i + size] for i in range(0, len(data), size))


L1 = layer_tar({"payload.txt": b"hello\n" * 1000})
L2 = layer_tar({"other.txt": b"world\n"})


class FakeClient:
    def __init__(self, blobs=(), manifests=()):
        self.blobs = set(blobs)
        self.manifests: dict[str, bytes] = {d: b"" for d in manifests}
        self.calls: list[tuple] = []

    def head_manifest(self, repo, ref):
        self.calls.append(("HEAD manifest", ref))
        return ManifestInfo(ref, OCI_MANIFEST, 1) if ref in self.manifests else None

    def put_manifest(self, repo, ref, body, media_type):
        assert all(d in self.blobs or d in self.manifests for d in _referenced(body)), "missing content"
        self.calls.append(("PUT manifest", ref))
        self.manifests[ref] = body
        return ManifestInfo(ref, media_type, len(body))

    def head_blob(self, repo, digest):
        self.calls.append(("HEAD blob", digest))
        return 1 if digest in self.blobs else None

    def upload_blob(self, repo, digest, size, source):
        data = source if isinstance(source, bytes) else b"".join(source())
        assert sha(data) == digest and len(data) == size
        self.calls.append(("upload", digest))
        self.blobs.add(digest)


def _referenced(body: bytes) -> list[str]:
    doc = json.loads(body)
    if "manifests" in doc:
        return [m["digest"] for m in doc["manifests"]]
    return [doc["config"]["digest"], *[l["digest"] for l in doc["layers"]]]
