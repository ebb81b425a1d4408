"""Step 3 of a release: the floating tags (`1.2`, `1`, `latest`, ...), once step 2 put the
immutable tag on every registry (immutable.py returns no source otherwise, and this step
does not run).

Each tag is one manifest PUT of the same bytes, no blob traffic, and only where it does not
already point at the image; in the plan's order, so `latest` comes last. A floating tag
only moves forward: it stays where the registry holds a higher version that the tag rules
give it too, or where it points at an image of a higher version (--force moves it anyway).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from pipeline.app.report import RefResult, Report
from pipeline.app.state import RunState
from pipeline.model.labels import PREFIX
from pipeline.model.plan import Target, floating_moves
from pipeline.model.status import Status
from pipeline.model.tags import derive_tags, resolve_context
from pipeline.model.tags.semver import parse_semver, precedence
from pipeline.registry.copy import tag_image
from pipeline.registry.errors import RegistryAPIError
from pipeline.registry.manifest import ManifestError, parse_manifest


def distribute(run: RunState, report: Report, source: Target, targets: list[Target]) -> None:
    """Move the floating tags on every target to the image `report.digest` (all registries
    at once, each registry's tags in order)."""
    try:
        manifest = run.manifest(source, report.digest)
    except RegistryAPIError as exc:
        report.errors.append(f"[{source.registry}] cannot read the manifest {report.digest}: {exc}")
        return
    with ThreadPoolExecutor(max_workers=run.jobs) as pool:
        for results in pool.map(lambda t: _tag(run, t, manifest, report), targets):
            report.results.extend(results)


def _tag(run: RunState, target: Target, manifest: bytes, report: Report) -> list[RefResult]:
    tags = moving_tags(run, target, report)
    start = time.monotonic()
    results = [RefResult(target.registry, target.ref(t)) for t in tags]
    if not tags:
        return results
    current = {t: run.current_tags[(target.registry, t)] for t in tags
               if (target.registry, t) in run.current_tags}
    try:
        statuses = tag_image(run.client(target.registry), target.repository, manifest, tags,
                             current=current)
    except RegistryAPIError as exc:
        for r in results:
            r.status, r.error = Status.FAILED, str(exc)
        return results
    for r, tag in zip(results, tags):
        r.status = statuses[tag]
        r.digest = report.digest
        r.seconds = time.monotonic() - start
        run.reporter.push_done(target.registry, r.ref, r.status, r.digest)
    return results


def moving_tags(run: RunState, target: Target, report: Report) -> list[str]:
    """The floating tags that move on this registry: each only forward. A tag stays when
    the registry holds a higher version that the tag rules give it too (`40` and `latest`
    belong to 40.2.0 once 40.2.0 is there, even if 40.1.0 runs later or at the same time),
    or when it points at an image of a higher version. The summary says why; --force
    moves it all the same."""
    if run.force:
        return list(target.floating)
    owners = higher_owners(run, target)
    tags = []
    for tag in target.floating:
        owner = owners.get(tag)
        held = None if owner else held_version(run, target, tag, report)
        if owner or (held and not floating_moves(run.plan.version, held)):
            report.notes.append(f"[{target.registry}] {tag} stays on {owner or held}: "
                                f"{run.plan.version} is lower, and floating tags only "
                                f"move forward (--force moves it)")
        else:
            tags.append(tag)
    return tags


def higher_owners(run: RunState, target: Target) -> dict[str, str]:
    """{floating tag: the highest version on the registry above ours whose tags, by the
    rules of release.yml, include it}."""
    mine = parse_semver(run.plan.version)
    if mine is None or not target.floating:
        return {}
    try:
        existing = run.client(target.registry).list_tags(target.repository)
    except RegistryAPIError:
        return {}                 # the PUTs will say what is wrong with the registry
    higher = sorted(((precedence(v), t) for t in existing
                     if (v := parse_semver(t)) is not None and precedence(v) > precedence(mine)),
                    reverse=True)
    owners: dict[str, str] = {}
    for _, version in higher:
        for tag in tags_for(run.config, version) & set(target.floating):
            owners.setdefault(tag, version)
    return owners


def tags_for(config, version: str) -> frozenset[str]:
    """The tags release.yml's rules give `version` (git and CI left out: semver rules)."""
    try:
        ctx = resolve_context(version=version, env={}, git=lambda args: None)
        return frozenset(derive_tags(config.tags, config.flavor, ctx).tags)
    except Exception:      # noqa: BLE001 - a rule that needs git or CI: no opinion
        return frozenset()


def held_version(run: RunState, target: Target, tag: str, report: Report) -> str | None:
    """The version of the image `tag` points at now, None when absent, ours or unknown."""
    key = (target.registry, tag)
    if key not in run.current_tags:
        try:
            found = run.client(target.registry).head_manifest(target.repository, tag)
        except RegistryAPIError:
            return None
        run.current_tags[key] = found.digest if found else None
    current = run.current_tags[key]
    if current is None or current == report.digest:
        return None
    return version_at(run, target, current)


def version_at(run: RunState, target: Target, digest: str) -> str | None:
    """The version of the image `digest` is: its org.opencontainers.image.version label
    (the first platform's, for an index), else a version tag that shares the digest."""
    client = run.client(target.registry)
    try:
        body, info = client.get_manifest(target.repository, digest)
        manifest = parse_manifest(body, info.media_type)
        if manifest.is_index and manifest.children:
            body, info = client.get_manifest(target.repository, manifest.children[0].digest)
            manifest = parse_manifest(body, info.media_type)
        if not manifest.is_index and manifest.blobs:
            config = manifest.blobs[0]
            raw = client.get_blob(target.repository, config.digest, config.size)
            labels = ((json.loads(raw) or {}).get("config") or {}).get("Labels") or {}
            version = labels.get(PREFIX + "version")
            if isinstance(version, str) and parse_semver(version) is not None:
                return version
        for tag in client.list_tags(target.repository):
            if parse_semver(tag) is not None:
                found = client.head_manifest(target.repository, tag)
                if found is not None and found.digest == digest:
                    return tag
    except (RegistryAPIError, ManifestError, ValueError, AttributeError):
        pass
    return None
