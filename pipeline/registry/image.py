"""OCI image documents from blobs (pure), and pushing them by digest: the platform images of a
multi-platform release and their index.

The Docker SDK builds one platform per build and pushes only tags. So for a release with several
platforms each platform image is taken from the engine and turned into a registry manifest by
engine/export.py (config byte for byte, layers gzip-compressed once, checked against the config's
diff_ids); the manifest is OCI (`index_format: oci`) or Docker v2 (`docker`), so that the index
and every manifest in it belong to one media-type family.

Every blob is HEADed and uploaded if missing, the manifest is PUT by digest: no tag is created for
a platform image. The index lists the manifests in release.yml's platform order, each with the
`platform` its image config declares, and is PUT by digest as well, before any tag points at it.
Serialisation is fixed (compact JSON, fixed key order), so the same platform images always give
the same index digest. What each push sends (blob bytes as they go out, blobs sent / already
there) is added to the destination's tally of the open ledger (upload.py).
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline.errors import UsageError
from pipeline.model.platforms import Platform
from pipeline.model.status import Status
from pipeline.registry.digest import is_digest
from pipeline.registry.manifest import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
)
from pipeline.registry.stream import FileBody
from pipeline.registry.upload import Tally, metered, tally_for

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Family:
    name: str
    index: str
    manifest: str
    config: str
    layer_gzip: str


FORMATS = {
    "oci": Family("oci", OCI_INDEX, OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_GZIP),
    "docker": Family("docker", DOCKER_LIST, DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER_GZIP),
}


def family(fmt: str) -> Family:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise UsageError(f"unknown index format '{fmt}'", hint="oci or docker") from None


def format_of_manifest(media_type: str) -> str | None:
    """'oci' / 'docker' for an image manifest media type, None for anything else."""
    return next((f.name for f in FORMATS.values() if f.manifest == media_type), None)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def dump(doc: dict) -> bytes:
    """The one serialisation of our manifests and indexes (stable bytes, stable digest)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode()


# -- blobs and platform images ------------------------------------------------------------------

@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    media_type: str
    path: Path | None = None
    data: bytes | None = None

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}

    def source(self):
        """For RegistryClient.upload_blob: the bytes, or a function giving a fresh file body."""
        if self.data is not None:
            return self.data
        path, size, digest = self.path, self.size, self.digest
        return lambda: FileBody(path, size, digest)


@dataclass(frozen=True)
class PlatformImage:
    platform: Platform          # what the image config says
    image_id: str               # the engine's id (= digest of the config blob)
    config: Blob
    layers: tuple[Blob, ...]
    manifest: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def size(self) -> int:
        return len(self.manifest)

    @property
    def blobs(self) -> list[Blob]:
        seen: dict[str, Blob] = {}
        for b in (self.config, *self.layers):
            seen.setdefault(b.digest, b)
        return list(seen.values())

    def entry(self) -> "IndexEntry":
        return IndexEntry(self.media_type, self.digest, self.size, self.platform)


def image_manifest(config: Blob, layers, fam: Family) -> bytes:
    return dump({"schemaVersion": 2, "mediaType": fam.manifest, "config": config.descriptor(),
                 "layers": [layer.descriptor() for layer in layers]})


# -- the index ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class IndexEntry:
    media_type: str
    digest: str
    size: int
    platform: Platform

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size,
                "platform": self.platform.to_oci()}


@dataclass(frozen=True)
class Index:
    body: bytes
    media_type: str
    entries: tuple[IndexEntry, ...]

    @property
    def digest(self) -> str:
        return sha256(self.body)


def build_index(entries, fmt: str) -> Index:
    """One index of `entries`, in the order given (the order is part of the digest)."""
    fam = family(fmt)
    entries = tuple(entries)
    if not entries:
        raise UsageError("an index needs at least one platform image")
    for e in entries:
        if e.media_type != fam.manifest:
            raise UsageError(f"{e.platform} is a {e.media_type} manifest; an {fam.name} index "
                             f"holds {fam.manifest} only (one media-type family per index)")
        if not is_digest(e.digest):
            raise UsageError(f"{e.platform}: bad digest {e.digest!r}")
    for i, e in enumerate(entries):
        for other in entries[:i]:
            if e.platform.matches(other.platform):
                raise UsageError(f"two images for {e.platform} in one index "
                                 f"({other.digest[:19]}, {e.digest[:19]})")
    body = dump({"schemaVersion": 2, "mediaType": fam.index,
                 "manifests": [e.descriptor() for e in entries]})
    return Index(body, fam.index, entries)


# -- pushing by digest --------------------------------------------------------------------------

def put_by_digest(client, repository: str, body: bytes, media_type: str) -> Status:
    """PUT a manifest or index under its digest only (no tag): Status.PUSHED or ALREADY."""
    digest = sha256(body)
    existing = client.head_manifest(repository, digest)
    if existing is not None and existing.digest == digest:
        return Status.ALREADY
    client.put_manifest(repository, digest, body, media_type)
    return Status.PUSHED


def push_image(client, repository: str, image: PlatformImage, *, jobs: int = 4,
               on_blob: Callable[[Blob, Status], None] = lambda blob, status: None,
               tally: Tally | None = None) -> Status:
    """Blobs (HEAD, upload if missing) then the manifest by digest: Status.PUSHED or ALREADY.

    `tally`: where the blob traffic counts (default: the client's in the open ledger)."""
    tally = tally_for(client) if tally is None else tally
    existing = client.head_manifest(repository, image.digest)
    if existing is not None and existing.digest == image.digest:
        return Status.ALREADY

    def one(blob: Blob) -> None:
        if client.head_blob(repository, blob.digest) is not None:
            tally.add(blobs_present=1)
            on_blob(blob, Status.ALREADY)
            return
        with metered(tally):
            client.upload_blob(repository, blob.digest, blob.size, blob.source())
        tally.add(blobs_sent=1)
        on_blob(blob, Status.PUSHED)

    blobs = image.blobs
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(blobs))),
                            thread_name_prefix="platform-blob") as pool:
        list(pool.map(one, blobs))
    client.put_manifest(repository, image.digest, image.manifest, image.media_type)
    return Status.PUSHED
