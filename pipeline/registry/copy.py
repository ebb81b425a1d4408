"""Copy an image (or a whole index) between repositories/registries, and add tags cheaply.

copy_image (what crane, regclient and skopeo do):
  1. GET the source manifest once (exact bytes); for an index/list, every child
     manifest by digest, recursively.
  2. Every blob (config + layers, de-duplicated; non-distributable layers skipped):
     HEAD at the destination -> skipped; same registry -> cross-repo mount;
     otherwise stream src GET -> dst upload, never touching the disk, verified
     against the digest on the way. In parallel, `jobs` at a time.
  3. PUT child manifests by digest (bottom-up), then the top manifest by digest,
     then each tag with the same bytes: HEAD first, skip when it already has the digest.
  The destination digest is therefore identical to the source digest.
  What went to the destination (bytes of the upload bodies, blobs copied / mounted / already
  there) is in the CopyResult and in the destination's tally of the open ledger (upload.py).

tag_image: one GET (or the bytes you already have), then per tag HEAD + PUT; no blob traffic.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from pipeline.errors import UsageError
from pipeline.model.status import Status
from pipeline.registry.client import ManifestInfo, RegistryClient
from pipeline.registry.digest import is_digest, sha256_digest
from pipeline.registry.errors import RegistryAPIError
from pipeline.registry.limits import LIMITER
from pipeline.registry.manifest import (
    Descriptor,
    ManifestError,
    media_type_of,
    parse_manifest,
)
from pipeline.registry.reference import validate_tag
from pipeline.registry.upload import Tally, metered, tally_for

MAX_DEPTH = 4


@dataclass
class CopyResult:
    digest: str
    media_type: str
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_skipped: int = 0
    bytes_copied: int = 0              # the sizes of the blobs copied
    bytes_sent: int = 0                # the upload bodies as they went out (every attempt)
    manifests_pushed: int = 0          # child + top manifests PUT by digest
    manifests_skipped: int = 0         # ... already present at the destination
    tags: dict[str, Status] = field(default_factory=dict)   # tag -> PUSHED | ALREADY


@dataclass
class _Tree:
    manifests: list[tuple[str, bytes, str]] = field(default_factory=list)   # children first
    blobs: dict[str, Descriptor] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)


def copy_image(src: RegistryClient, src_repo: str, src_ref: str, dst: RegistryClient,
               dst_repo: str, *, tags=(), jobs: int = 4) -> CopyResult:
    tags = [validate_tag(t) for t in tags]
    recorded = tally_for(dst)           # in the caller's thread: the ledger of its context
    body, info = src.get_manifest(src_repo, src_ref)
    tree = _Tree()
    _collect(src, src_repo, body, info, tree, depth=0)
    result = CopyResult(info.digest, info.media_type)

    tally = Tally()
    try:
        _copy_blobs(src, src_repo, dst, dst_repo, list(tree.blobs.values()), result, jobs, tally)
    finally:
        result.bytes_sent = tally.bytes_sent
        recorded.add(**tally.to_dict())

    for digest, manifest_body, media_type in tree.manifests:      # the top one comes last
        existing = dst.head_manifest(dst_repo, digest)
        if existing is not None and existing.digest == digest:
            result.manifests_skipped += 1
            continue
        stored = dst.put_manifest(dst_repo, digest, manifest_body, media_type)
        if stored.digest != digest:     # put_manifest already checks; keep the invariant explicit
            raise RegistryAPIError(f"{dst.host}: {dst_repo}@{digest} stored as {stored.digest}")
        result.manifests_pushed += 1

    for tag in tags:
        result.tags[tag] = _put_tag(dst, dst_repo, tag, body, info)
    return result


def tag_image(client: RegistryClient, repository: str, digest_or_manifest: str | bytes,
              tags, *, current: dict[str, str | None] | None = None) -> dict[str, Status]:
    """Point extra tags of `repository` at a manifest: one GET (none if you pass its bytes),
    then per tag a HEAD and, unless it already has the digest, a PUT of the same bytes.

    `current` (tag -> digest, None for absent): what the caller just read; those tags
    are not asked again."""
    tags = [validate_tag(t) for t in tags]
    tally_for(client)           # recorded: no blob went to this registry
    if isinstance(digest_or_manifest, (bytes, bytearray)):
        body = bytes(digest_or_manifest)
        try:
            info = ManifestInfo(sha256_digest(body), media_type_of(body), len(body))
        except ManifestError as exc:
            raise UsageError(f"tag_image: {exc}") from None
    else:
        body, info = client.get_manifest(repository, digest_or_manifest)
    return {tag: _put_tag(client, repository, tag, body, info, current or {}) for tag in tags}


# -- internals ---------------------------------------------------------------------------------

def _collect(src: RegistryClient, repo: str, body: bytes, info: ManifestInfo, tree: _Tree, *,
             depth: int) -> None:
    """Post-order walk: children (and their blobs) before the manifest that lists them."""
    if info.digest in tree.seen:
        return
    tree.seen.add(info.digest)
    try:
        manifest = parse_manifest(body, info.media_type)
    except ManifestError as exc:
        raise RegistryAPIError(f"{src.host}: {repo}@{info.digest}: {exc}") from None
    if manifest.is_index:
        if depth >= MAX_DEPTH:
            raise RegistryAPIError(f"{src.host}: {repo}@{info.digest}: indexes nested deeper than "
                                   f"{MAX_DEPTH} levels")
        for child in manifest.children:
            if not is_digest(child.digest):
                raise RegistryAPIError(f"{src.host}: {repo}@{info.digest}: bad child digest {child.digest!r}")
            child_body, child_info = src.get_manifest(repo, child.digest)
            if child_info.size != child.size:
                raise RegistryAPIError(f"{src.host}: {repo}@{child.digest}: index says {child.size} "
                                       f"bytes, manifest has {child_info.size}")
            _collect(src, repo, child_body, child_info, tree, depth=depth + 1)
    else:
        for blob in manifest.blobs:
            if not blob.non_distributable:
                tree.blobs.setdefault(blob.digest, blob)
    tree.manifests.append((info.digest, body, info.media_type))


def _copy_blobs(src, src_repo, dst, dst_repo, blobs: list[Descriptor], result: CopyResult,
                jobs: int, tally: Tally) -> None:
    if not blobs:
        return
    same_registry = src.registry_key == dst.registry_key
    lock = threading.Lock()

    def one(blob: Descriptor) -> None:
        # Slots on both hosts, in a fixed order, for the whole transfer (limits.py).
        with LIMITER.hold(src.api_host, dst.api_host), metered(tally):
            outcome = _copy_blob(src, src_repo, dst, dst_repo, blob, same_registry)
        with lock:
            if outcome == Status.SKIPPED:
                result.blobs_skipped += 1
                tally.add(blobs_present=1)
            elif outcome == Status.MOUNTED:
                result.blobs_mounted += 1
                tally.add(blobs_mounted=1)
            else:
                result.blobs_copied += 1
                result.bytes_copied += blob.size
                tally.add(blobs_sent=1)

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(blobs))),
                            thread_name_prefix="blob-copy") as pool:
        futures = [pool.submit(one, b) for b in blobs]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        for f in futures:
            if f.done() and not f.cancelled() and f.exception() is not None:
                raise f.exception()
        for f in futures:
            if not f.cancelled():
                f.result()


def _copy_blob(src, src_repo, dst, dst_repo, blob: Descriptor, same_registry: bool) -> Status:
    size = dst.head_blob(dst_repo, blob.digest)
    if size is not None:
        return Status.SKIPPED
    if same_registry and src_repo != dst_repo and dst.mount_blob(dst_repo, blob.digest, src_repo):
        return Status.MOUNTED
    dst.upload_blob(dst_repo, blob.digest, blob.size,
                    lambda: src.open_blob(src_repo, blob.digest, size=blob.size))
    return Status.COPIED


def _put_tag(client: RegistryClient, repo: str, tag: str, body: bytes, info: ManifestInfo,
             known=None) -> Status:
    """`known`: tag -> digest the caller just read (not asked again)."""
    known = known or {}
    if tag in known:
        if known[tag] == info.digest:
            return Status.ALREADY
    else:
        try:
            current = client.head_manifest(repo, tag)
        except RegistryAPIError as exc:
            if exc.status != 403:        # some registries answer 403 for a missing tag (crane)
                raise
            current = None
        if current is not None and current.digest == info.digest:
            return Status.ALREADY
    client.put_manifest(repo, tag, body, info.media_type)
    return Status.PUSHED
