"""Push one local image to several registries at once, through the registry API.

`docker push` compresses every layer again for every registry, and only one registry
at a time. Here the engine exports the image once (`docker save`), image_export.py
compresses each layer once, and every registry receives each layer the moment it is
packed: uploads of one layer overlap the compression of the next, and all registries
upload in parallel. Then each registry gets the config and the manifest under the
immutable tag. Compression is deterministic, so a layer a registry already holds (the
unchanged base of the previous release) is found by a HEAD and not sent again.

At most `jobs` blobs are in flight (the export waits for the uploads), and each spool
file is deleted as soon as every registry has it: the disk holds a few compressed
layers at a time, not the whole image.

A registry that fails is reported and left out while the others go on; the release
flow applies the all-or-nothing rule for floating tags. Blobs already uploaded to a
registry that then failed are harmless: no manifest refers to them.

Each outcome counts what went to its registry: the blob bytes of the upload bodies as they
went out (registry/upload.py's Tally; the manifest not included), the blobs sent and the
blobs it already had; the same counts go to the ledger of the run step, if one is open.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from pipeline.engine.export import export_image
from pipeline.model.status import Status
from pipeline.registry.errors import RegistryAPIError
from pipeline.registry.image import Blob, PlatformImage
from pipeline.registry.upload import Tally, metered, tally_for


@dataclass
class PushTarget:
    name: str                 # the registry's name in release.yml
    client: object            # RegistryClient
    repository: str
    tag: str


@dataclass
class PushOutcome:
    status: Status = Status.FAILED
    digest: str | None = None
    error: RegistryAPIError | None = None
    seconds: float = 0.0
    blobs_sent: int = 0
    blobs_present: int = 0
    blobs_mounted: int = 0          # always 0 here: there is no other repository to mount from
    bytes_sent: int = 0             # blob upload bodies (every attempt), manifest not included


@dataclass
class _State:
    target: PushTarget
    outcome: PushOutcome = field(default_factory=PushOutcome)
    futures: list[Future] = field(default_factory=list)
    failed: RegistryAPIError | None = None
    tally: Tally = field(default_factory=Tally)       # this push's traffic to the target

    def settle(self, ledger_tally: Tally) -> None:
        """The counts into the outcome, and into the run step's ledger."""
        counts = self.tally.to_dict()
        for name, value in counts.items():
            setattr(self.outcome, name, value)
        ledger_tally.add(**counts)


def _send(state: _State, blob: Blob, lock: threading.Lock, on_blob, done) -> None:
    try:
        _send_one(state, blob, lock, on_blob)
    finally:
        done(blob)


def _send_one(state: _State, blob: Blob, lock: threading.Lock, on_blob) -> None:
    if state.failed is not None:          # this registry already failed: do not load it further
        return
    t = state.target
    try:
        if t.client.head_blob(t.repository, blob.digest) is not None:
            state.tally.add(blobs_present=1)
            on_blob(t.name, blob, Status.ALREADY)
            return
        with metered(state.tally):          # the body bytes, counted as they go out
            t.client.upload_blob(t.repository, blob.digest, blob.size, blob.source())
    except RegistryAPIError as exc:
        with lock:
            state.failed = state.failed or exc
        abandon = getattr(t.client, "abandon", None)
        if abandon is not None:     # the blobs still retrying against it stop too
            abandon(exc)
        return
    state.tally.add(blobs_sent=1)
    on_blob(t.name, blob, Status.PUSHED)


def push_local_image(export: Iterable[bytes], targets: list[PushTarget], workdir: Path, *,
                     image_id: str, diff_ids: Iterable[str], jobs: int = 4,
                     on_blob: Callable[[str, Blob, Status], None] = lambda name, blob, status: None,
                     ) -> tuple[PlatformImage, dict[str, PushOutcome]]:
    """Export, compress once, upload everywhere, then PUT each target's manifest by its tag.

    `on_blob(target name, blob, status)`: Status.QUEUED when a blob is ready, then PUSHED
    or ALREADY (for progress views).

    Raises ReleaseError when the export itself is unusable (nothing is tagged then);
    registry failures end up in the outcomes, one per target name.
    """

    start = time.monotonic()
    lock = threading.Lock()
    states = [_State(t) for t in targets]
    ledger = [tally_for(t.client) for t in targets]     # the run step's, read in this thread
    sent: set[str] = set()
    waiting: dict[str, int] = {}              # digest -> registries still sending it
    # At most `jobs` blobs in flight: the export waits for the uploads (and the disk holds
    # no more than that many compressed layers, plus the one being compressed).
    in_flight = threading.BoundedSemaphore(max(1, jobs))

    def done(blob: Blob) -> None:
        """The last registry has the blob: its spool file is no longer needed (disk space)."""
        with lock:
            waiting[blob.digest] -= 1
            last = waiting[blob.digest] == 0
        if last:
            if blob.path is not None:
                blob.path.unlink(missing_ok=True)
            in_flight.release()

    workers = max(2, min(32, jobs * len(states)))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fanout")

    def fan_out(blob: Blob) -> None:
        sent.add(blob.digest)
        if not states:
            return
        in_flight.acquire()
        waiting[blob.digest] = len(states)
        for s in states:
            on_blob(s.target.name, blob, Status.QUEUED)
            s.futures.append(pool.submit(_send, s, blob, lock, on_blob, done))

    def finish(s: _State) -> None:
        t, out = s.target, s.outcome
        if s.failed is None:
            try:
                t.client.put_manifest(t.repository, t.tag, image.manifest, image.media_type)
                out.status, out.digest = Status.PUSHED, image.digest
            except RegistryAPIError as exc:
                s.failed = exc
        out.error = s.failed
        out.seconds = time.monotonic() - start

    try:
        image = export_image(export, workdir, "docker", image_id=image_id, diff_ids=diff_ids,
                             on_layer=fan_out)
        for blob in image.blobs:                  # the config, and anything not announced
            if blob.digest not in sent:
                fan_out(blob)
        for s in states:                          # uploads first (errors are in the states)
            for f in s.futures:
                f.result()
        for f in [pool.submit(finish, s) for s in states]:
            f.result()
    except BaseException:
        # The export failed, or Ctrl-C: nothing more goes out, nothing is tagged. Uploads
        # already running end by themselves; their blobs are harmless (no manifest).
        for s in states:
            s.failed = s.failed or RegistryAPIError("cancelled")
        pool.shutdown(wait=False, cancel_futures=True)
        for s, recorded in zip(states, ledger):
            s.settle(recorded)              # what went out so far
        raise
    pool.shutdown(wait=True)
    for s, recorded in zip(states, ledger):
        s.settle(recorded)
    return image, {s.target.name: s.outcome for s in states}
