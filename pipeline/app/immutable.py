"""Step 2 of a release: the immutable tag (the version) on every registry, or on none.

A registry whose tag already holds this image is left alone. When none has it, the
caller's `push_all` puts it on all of them at once (the one-export fan-out), or its
`first_push` on the first registry that takes it; every other registry then gets a copy
through the registry API (same digest). A released version is never replaced: a registry
whose tag holds another image stops the release before anything is pushed anywhere, unless
--force (or `immutable: false` on that registry). Only when every registry holds the tag
does the release go on to the floating tags (floating.py).

What each registry is sent on the way is recorded (registry/upload.py's Ledger: the fan-out,
the platform pushes and the copies add to it) into `report.transfers`; a registry that the
first push reached without recording anything was pushed by the engine: not measured.
"""

from __future__ import annotations

import contextvars
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from pipeline.app.report import RefResult, Report
from pipeline.app.state import RunState
from pipeline.errors import ReleaseError
from pipeline.model.plan import Target
from pipeline.model.status import HELD, Status
from pipeline.registry.copy import copy_image
from pipeline.registry.errors import RegistryAPIError
from pipeline.registry.upload import Tally, recording


class ImmutableVersionError(ReleaseError):
    """The version tag already holds another image (exit 1)."""


def distribute(run: RunState, report: Report, targets: list[Target], *, known: set[str],
               first_push: Callable[[Target], RefResult] | None = None,
               existing: dict[str, str | None] | None = None,
               push_all: Callable[[list[Target]], dict[str, RefResult] | None] | None = None,
               ) -> Target | None:
    """Put the immutable tag on every target. Returns the source registry, or None on failure.

    `existing` (registry -> digest or None) is what the immutable tags hold now, if the
    caller already asked; a digest in `known` is ours and is left alone. When no target
    has it yet, `push_all(targets) -> {registry: RefResult}` puts it on all of them at
    once (None: it cannot, use `first_push`); `first_push(target) -> RefResult` puts it
    on one registry, every other gets a copy.
    """
    if existing is None:
        existing = {t.registry: None for t in targets}
        if known:   # only an image we pushed before can already be there
            with ThreadPoolExecutor(max_workers=run.jobs) as pool:
                existing = dict(zip(existing, pool.map(
                    lambda t: remote_digest(run, t, t.immutable), targets)))
    existing = check_immutable(run, report, targets, existing, known)
    with recording() as ledger:
        results, source, first = _put_everywhere(run, targets, existing, known, first_push,
                                                 push_all)
    report.transfers.update(_transfers(run, targets, ledger, first))
    report.results.extend(results.get(t.registry) or RefResult(t.registry, t.ref(t.immutable))
                          for t in targets)
    failed = [t.registry for t in targets if results.get(t.registry) is None
              or results[t.registry].status not in HELD]
    if failed:
        report.errors.append(f"the immutable tag {run.plan.version} did not reach: {', '.join(failed)}; "
                             "no floating tag was moved on any registry")
        return None
    digests = {results[t.registry].digest for t in targets}
    if len(digests) != 1:
        report.errors.append("registries hold different digests for the same version: "
                             + ", ".join(f"{t.registry}={results[t.registry].digest}" for t in targets))
        return None
    report.digest = digests.pop()
    return source


def _put_everywhere(run: RunState, targets: list[Target], existing: dict, known: set[str],
                    first_push, push_all):
    """Step 2 itself, inside the caller's ledger: (registry -> RefResult, the source target or
    None, registry -> the tally its first push recorded, None when it recorded nothing)."""
    results: dict[str, RefResult] = {}
    first: dict[str, Tally | None] = {}
    for t in targets:
        if existing.get(t.registry) and existing[t.registry] in known:
            results[t.registry] = RefResult(t.registry, t.ref(t.immutable), Status.ALREADY,
                                            existing[t.registry])
            run.reporter.push_done(t.registry, t.ref(t.immutable), Status.ALREADY,
                                   existing[t.registry])
    source = next((t for t in targets if t.registry in results), None)
    if source is None and push_all is not None:
        pushed = push_all(targets)
        if pushed is not None:
            results.update(pushed)
            source = next((t for t in targets if results[t.registry].status == Status.PUSHED), None)
            first_push = None               # a registry failure: the engine would fail too
    if source is None and first_push is not None:
        for t in targets:           # push through the engine once, to the first that takes it
            with recording() as own:        # the engine's `docker push` records nothing
                results[t.registry] = first_push(t)
            first[t.registry] = own.get(run.client(t.registry))
            if results[t.registry].status == Status.PUSHED:
                source = t
                break
    if source is not None:
        digest = results[source.registry].digest
        rest = [t for t in targets if t.registry not in results]
        with ThreadPoolExecutor(max_workers=run.jobs) as pool:
            # each copy records into this thread's ledger: it runs in a copy of the context
            futures = [pool.submit(contextvars.copy_context().run, copy_to, run, source, digest, t)
                       for t in rest]
            for f in futures:
                r = f.result()
                results[r.registry] = r
    return results, source, first


def _transfers(run: RunState, targets: list[Target], ledger, first: dict) -> dict:
    """Registry -> its Tally for this step (zero when nothing went there), or None when its
    first push recorded nothing: the engine pushed it, what it sent is not known."""
    out: dict[str, Tally | None] = {}
    for t in targets:
        if t.registry in first and first[t.registry] is None:
            out[t.registry] = None
            continue
        total = Tally()
        for part in (ledger.get(run.client(t.registry)), first.get(t.registry)):
            if part is not None:
                total.add(**part.to_dict())
        out[t.registry] = total
    return out


def check_immutable(run: RunState, report: Report, targets: list[Target], existing: dict,
                    known: set[str]) -> dict:
    """A released version is never replaced: a target whose immutable tag holds another
    image stops the release before anything is pushed anywhere (exit 1), unless --force
    (or `immutable: false` on that registry), which replaces it and says so. Returns
    `existing` with the replaced ones cleared."""
    others = {t.registry: existing[t.registry] for t in targets
              if existing.get(t.registry) and existing[t.registry] not in known}
    if not others:
        return existing
    version = run.plan.version
    mine = next(iter(known), None) or report.image_id
    where = ", ".join(f"{name} holds {digest}" for name, digest in others.items())
    refused = {n: d for n, d in others.items()
               if getattr(run.registries.entries.get(n), "immutable", True)}
    if refused and not run.force:
        held = ", ".join(f"{name} holds {digest}" for name, digest in refused.items())
        raise ImmutableVersionError(
            f"version {version} is already released as another image ({held}); "
            f"this one is {mine or 'a different image'}. Nothing was pushed",
            hint=f"a released version is never replaced: release a new version, or pass "
                 f"--force to replace {version}")
    why = "--force" if run.force and refused else "immutable: false"
    report.notes.append(f"{why}: replaced {version} ({where})")
    return {**existing, **{name: None for name in others}}


def remote_digest(run: RunState, target: Target, tag: str) -> str | None:
    try:
        info = run.client(target.registry).head_manifest(target.repository, tag)
    except RegistryAPIError:
        return None     # unreachable or refused: the push itself will say why
    return info.digest if info else None


def copy_to(run: RunState, source: Target, digest: str, target: Target) -> RefResult:
    """The image `digest` from the source registry to `target`, under its immutable tag."""
    ref = target.ref(target.immutable)
    result = RefResult(target.registry, ref)
    start = time.monotonic()
    run.reporter.push_started(target.registry, f"{ref} (copy from {source.registry})")
    try:
        copied = copy_image(run.client(source.registry), source.repository, digest,
                            run.client(target.registry), target.repository,
                            tags=[target.immutable], jobs=run.jobs)
        result.digest = copied.digest
        result.status = copied.tags[target.immutable]
    except RegistryAPIError as exc:
        result.status = Status.FAILED
        result.error = run.registries.error_text(target.registry, target.host, exc)
    result.seconds = time.monotonic() - start
    run.reporter.push_done(target.registry, ref, result.status, result.digest)
    return result
