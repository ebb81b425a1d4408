"""Manifest media types and what a manifest refers to (child manifests, blobs)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"

# All four in every Accept (no q= values): with only the single-image types, registries
# may answer an index request with one platform's manifest.
MANIFEST_TYPES = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join(MANIFEST_TYPES)
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})


class ManifestError(ValueError):
    pass


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()

    @property
    def non_distributable(self) -> bool:
        """Foreign / non-distributable layers are never pushed to registries (OCI image spec)."""
        mt = self.media_type
        return ".nondistributable." in mt or mt.endswith(".foreign.diff.tar.gzip")


@dataclass(frozen=True)
class Manifest:
    media_type: str
    children: tuple[Descriptor, ...] = ()     # index / list entries (manifests)
    blobs: tuple[Descriptor, ...] = ()        # config + layers of an image manifest
    data: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def _load(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ManifestError("manifest is not a JSON object")
    return data


def media_type_of(body: bytes, content_type: str | None = None) -> str:
    """The manifest's own `mediaType`, else a known Content-Type, else inferred from its shape."""
    data = _load(body)
    return _media_type(data, content_type)


def _media_type(data: dict, content_type: str | None) -> str:
    declared = data.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if data.get("schemaVersion") == 1:
        raise ManifestError("Docker schema 1 manifests are not supported")
    ct = (content_type or "").split(";", 1)[0].strip()
    if ct in MANIFEST_TYPES:
        return ct
    if "manifests" in data:
        return OCI_INDEX
    if "config" in data or "layers" in data:
        return OCI_MANIFEST
    raise ManifestError("cannot tell the manifest's media type (no mediaType field)")


def _descriptor(entry, where: str) -> Descriptor:
    if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
        raise ManifestError(f"{where}: descriptor without a digest")
    try:
        size = int(entry.get("size"))
    except (TypeError, ValueError):
        raise ManifestError(f"{where}: descriptor {entry.get('digest')} without a size") from None
    return Descriptor(str(entry.get("mediaType") or ""), entry["digest"], size,
                      tuple(entry.get("urls") or ()))


def parse_manifest(body: bytes, content_type: str | None = None) -> Manifest:
    data = _load(body)
    media_type = _media_type(data, content_type)
    if media_type in INDEX_TYPES:
        children = tuple(_descriptor(e, "index entry") for e in data.get("manifests") or ())
        return Manifest(media_type, children=children, data=data)
    blobs: list[Descriptor] = []
    if data.get("config") is not None:
        blobs.append(_descriptor(data["config"], "config"))
    blobs.extend(_descriptor(e, "layer") for e in data.get("layers") or ())
    return Manifest(media_type, blobs=tuple(blobs), data=data)
