"""A local image as registry blobs, read straight from the engine's `docker save` stream.

The stream is read once, without unpacking it to disk: each layer tar is hashed (its
diff_id) and gzip-compressed (compress.py) into a spool file while the digest of the
compressed bytes is computed. `on_layer(blob)` is called the moment a layer is
complete, so the caller can upload it while the next one is still being compressed.
The config blob is the engine's own bytes, so its digest is the local image id.

Layouts: Engine < 25 (`<id>/layer.tar`, `<id>.json`, symlinks for repeated layers),
Engine >= 25 (`blobs/sha256/<hex>`); a layer that is already compressed is taken as it
is: gzip (its diff_id checked by decompressing), zstd (OCI manifests only). A spool
file that cannot be written (a full disk) or a corrupt gzip layer is a ReleaseError,
like any other unusable export. manifest.json, at the end of
the stream, says which member is which layer; every layer is checked against the
config's diff_ids before a manifest is made.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

from pipeline.engine import compress
from pipeline.errors import ReleaseError
from pipeline.model.platforms import from_image_config
from pipeline.registry.image import Blob, PlatformImage, family, image_manifest, sha256

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
CHUNK = 1024 * 1024
SMALL = 4 * 1024 * 1024          # a JSON member up to this size is metadata (config, manifest.json)


class _ChunkReader:
    """A read()-able view of an iterator of byte chunks (for tarfile's stream mode).

    Keeps a position in the current chunk instead of re-slicing a buffer on every read.
    """

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._chunk = b""
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        if size > 0 and self._pos == 0 and len(self._chunk) == size:
            self._pos = size
            return self._chunk
        parts = []
        while size != 0:
            if self._pos >= len(self._chunk):
                try:
                    self._chunk, self._pos = next(self._chunks), 0
                except StopIteration:
                    break
                continue
            end = len(self._chunk) if size < 0 else min(len(self._chunk), self._pos + size)
            parts.append(self._chunk[self._pos:end])
            if size > 0:
                size -= end - self._pos
            self._pos = end
        return b"".join(parts)


def member_name(name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise ReleaseError(f"the engine's export holds an unsafe path: {name!r}")
    return str(path)


class _Layer:
    """One layer member, packed: its spool file, digest, size, media type and diff_id."""

    def __init__(self, path: Path, digest: str, size: int, media_type: str, diff_id: str | None):
        self.path, self.digest, self.size = path, digest, size
        self.media_type, self.diff_id = media_type, diff_id

    def blob(self, media_type: str | None = None) -> Blob:
        return Blob(self.digest, self.size, media_type or self.media_type, path=self.path)


def _blocks(source, first: bytes):
    block = first
    while block:
        yield block
        block = source.read(CHUNK)


def _hashed(blocks, h):
    for block in blocks:
        h.update(block)
        yield block


def _pack(source, first: bytes, out: Path, gzip_type: str) -> _Layer:
    """Compress a layer tar into `out` (or copy it when it already is gzip / zstd)."""
    inner = hashlib.sha256()
    if first.startswith(GZIP_MAGIC):
        media_type, d = gzip_type, compress.decompressor()

        def packed():
            for block in _blocks(source, first):
                _inflate_into(inner, d, block)
                yield block
            try:
                inner.update(d.flush())
            except Exception as exc:
                raise ReleaseError(f"a gzip layer of the engine's export is corrupt: {exc}") from None
    elif first.startswith(ZSTD_MAGIC):
        media_type, inner = OCI_LAYER_ZSTD, None

        def packed():
            return _blocks(source, first)
    else:
        media_type = gzip_type

        def packed():
            return compress.gzip_chunks(_hashed(_blocks(source, first), inner))
    outer, size = hashlib.sha256(), 0
    with open(out, "wb") as dst:
        for chunk in packed():
            outer.update(chunk)
            dst.write(chunk)
            size += len(chunk)
    diff_id = None if inner is None else "sha256:" + inner.hexdigest()
    return _Layer(out, "sha256:" + outer.hexdigest(), size, media_type, diff_id)


def _inflate_into(inner, d, block: bytes) -> None:
    """Hash what a gzip block inflates to, at most CHUNK bytes at a time (a crafted layer
    cannot make one call return gigabytes)."""
    try:
        inner.update(d.decompress(block, CHUNK))
        while d.unconsumed_tail:
            inner.update(d.decompress(d.unconsumed_tail, CHUNK))
    except Exception as exc:          # zlib.error, isal's IsalError: a corrupt layer
        raise ReleaseError(f"a gzip layer of the engine's export is corrupt: {exc}") from None


def _small_json(data: bytes) -> bool:
    if not data[:1] in (b"{", b"["):
        return False
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def export_image(chunks: Iterable[bytes], workdir: Path, fmt: str, *, image_id: str | None = None,
                 diff_ids: Iterable[str] = (),
                 on_layer: Callable[[Blob], None] | None = None) -> PlatformImage:
    """A `docker save` stream of ONE image -> a PlatformImage (config, layers, manifest).

    `on_layer(blob)` gets, at most once per digest and as soon as each is ready, every
    layer whose diff_id is in `diff_ids` (the engine's RootFS.Layers) and the config
    blob when its digest is `image_id`.
    """
    fam = family(fmt)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    wanted = set(diff_ids)
    announced: set[str] = set()
    small: dict[str, bytes] = {}
    layers: dict[str, _Layer] = {}
    links: dict[str, str] = {}
    try:
        with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|", bufsize=CHUNK) as tar:
            for member in tar:
                name = member_name(member.name)
                if member.issym():
                    links[name] = os.path.normpath(str(PurePosixPath(name).parent / member.linkname))
                    continue
                if member.islnk():
                    links[name] = member_name(member.linkname)
                    continue
                if not member.isreg():
                    continue
                source = tar.extractfile(member)
                first = source.read(CHUNK)
                if member.size <= SMALL:
                    data = first + source.read() if member.size > len(first) else first
                    if _small_json(data) or PurePosixPath(name).name in ("VERSION", "oci-layout",
                                                                          "repositories"):
                        small[name] = data
                        if on_layer is not None and image_id and image_id not in announced \
                                and sha256(data) == image_id:
                            announced.add(image_id)
                            on_layer(Blob(image_id, len(data), fam.config, data=data))
                        continue
                    first, source = data, _Empty()
                try:
                    layer = _pack(source, first, workdir / f"{len(layers):05d}.layer",
                                  fam.layer_gzip)
                except OSError as exc:
                    raise ReleaseError(f"cannot write a layer to {workdir}: "
                                       f"{exc.strerror or exc}",
                                       hint="free space there, or set TMPDIR to a larger "
                                            "directory") from None
                layers[name] = layer
                if (on_layer is not None and layer.diff_id in wanted
                        and layer.digest not in announced):
                    announced.add(layer.digest)
                    on_layer(layer.blob())
    except tarfile.TarError as exc:
        raise ReleaseError(f"cannot read the engine's image export: {exc}") from None
    return _assemble(small, layers, links, fam, image_id)


class _Empty:
    def read(self, size: int = -1) -> bytes:
        return b""


def _resolve(name: str, layers: dict, links: dict) -> str:
    for _ in range(8):                    # links to links, bounded
        if name in layers or name not in links:
            break
        name = links[name]
    return name


def _assemble(small: dict[str, bytes], layers: dict[str, _Layer], links: dict[str, str], fam,
              image_id: str | None) -> PlatformImage:
    if "manifest.json" not in small:
        raise ReleaseError("the engine's image export has no manifest.json")
    try:
        (entry,) = json.loads(small["manifest.json"])
        config_name = _resolve(member_name(entry["Config"]), small, links)
        config_bytes = small[config_name]
        layer_names = [_resolve(member_name(p), layers, links) for p in entry.get("Layers") or []]
    except (ValueError, KeyError, TypeError) as exc:
        raise ReleaseError(f"unexpected layout of the engine's image export: {exc}") from None
    config_digest = sha256(config_bytes)
    if image_id and config_digest != image_id:
        raise ReleaseError(f"the engine exported config {config_digest[:19]}, expected the image "
                           f"{image_id[:19]}")
    config = json.loads(config_bytes)
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    if len(diff_ids) != len(layer_names):
        raise ReleaseError(f"the image config lists {len(diff_ids)} layers, the export "
                           f"{len(layer_names)}")
    blobs = []
    for name, diff_id in zip(layer_names, diff_ids):
        layer = layers.get(name)
        if layer is None:
            raise ReleaseError(f"the engine's image export lacks layer {name}")
        if layer.media_type == OCI_LAYER_ZSTD and fam.name != "oci":
            raise ReleaseError("the engine exported a zstd layer, which Docker v2 manifests cannot "
                               "carry", hint="use index_format: oci")
        if layer.diff_id is not None and layer.diff_id != diff_id:
            raise ReleaseError(f"layer {diff_id[:19]} of the export does not match its diff_id "
                               f"(got {layer.diff_id[:19]})")
        blobs.append(layer.blob())
    used = {b.path for b in blobs}
    for layer in layers.values():             # members no manifest refers to
        if layer.path not in used:
            layer.path.unlink(missing_ok=True)
    config_blob = Blob(config_digest, len(config_bytes), fam.config, data=config_bytes)
    manifest = image_manifest(config_blob, blobs, fam)
    return PlatformImage(from_image_config(config), config_digest, config_blob, tuple(blobs),
                         manifest, fam.manifest)
