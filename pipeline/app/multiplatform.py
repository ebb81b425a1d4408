"""The multi-platform half of a release (image.platforms; see pipeline/registry/image.py).

A collaborator of release.Releaser: it shares the Releaser's run state (registries,
reporter, what the registries hold) and image builds, and runs the same steps 2-4
(immutable.py, floating.py, verify.py). Step 1 builds each platform and turns it into a
registry manifest; step 2 pushes each platform manifest by digest (no tag) to the first
registry that takes them, PUTs the index by digest and only then tags it with the
version; the other registries get a copy of the index with its children (same digest
everywhere). `push_by_digest` and `merge` are the same two halves run apart (one CI job
per platform, one merge job).
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipeline.app import immutable
from pipeline.app.build import ImageBuild
from pipeline.app.records import make_record
from pipeline.app.report import RefResult, Report
from pipeline.app.state import RunState
from pipeline.app.verify import finish
from pipeline.engine import spool
from pipeline.engine.client import PushProgress
from pipeline.engine.export import export_image
from pipeline.errors import ReleaseError
from pipeline.model.plan import Target
from pipeline.model.platforms import from_image_config, parse_platform
from pipeline.model.status import Status
from pipeline.registry.copy import tag_image
from pipeline.registry.errors import RegistryAPIError
from pipeline.registry.image import (
    IndexEntry,
    build_index,
    family,
    push_image,
    put_by_digest,
)
from pipeline.registry.manifest import ManifestError, parse_manifest


class Platforms:
    def __init__(self, state: RunState, images: ImageBuild):
        self.state = state
        self.images = images

    @property
    def plan(self):
        return self.state.plan

    @property
    def reporter(self):
        return self.state.reporter

    @property
    def engine(self):
        return self.images.engine

    def _platform_images(self, platforms, *, build: bool, workdir: Path) -> list:
        """Build (or take) each platform's local image and turn it into a registry manifest."""
        return [self._export_platform(p, ref, image_id, workdir)
                for p, ref, image_id in self._local_platforms(platforms, build=build)]

    def _local_platforms(self, platforms, *, build: bool) -> list[tuple[str, str, str]]:
        """(platform, local ref, image id) of each platform, built first unless --no-build."""
        created = None
        if build:
            self.images.check_emulation(platforms)
            created = self.images.created_label(*[self.plan.platform_ref(p) for p in platforms])
        found = []
        for p in platforms:
            ref = self.plan.platform_ref(p)
            image_id = (self.images.build_image(ref, p, created) if build
                        else self.engine.require_image(ref))
            found.append((p, ref, image_id))
        return found

    def _export_platform(self, p: str, ref: str, image_id: str, workdir: Path):
        image = export_image(self.engine.export(ref), workdir / parse_platform(p).slug,
                             self.plan.index_format, image_id=image_id)
        if not image.platform.matches(parse_platform(p)):
            raise ReleaseError(f"local image {ref} is for {image.platform}, not {p}",
                               hint="rebuild it (run without --no-build)")
        self.reporter.message(f"{p}: {ref} -> manifest {image.digest} ({len(image.layers)} layers)")
        return image

    def _holding_index(self, target: Target, image_ids: list[str]):
        """(digest, bytes, {image id: child digest}) of the index under the immutable tag when
        its children are exactly these local images (by config digest, so whoever compressed
        the layers), in the media-type family release.yml asks for; (digest, bytes, None) when
        the tag holds something else; None when there is nothing."""
        found = self.state.tag_manifest(target)
        if found is None:
            return None
        body, info, index = found
        other = (info.digest, body, None)       # there, but not these images
        if not index.is_index or info.media_type != family(self.plan.index_format).index:
            return other
        client = self.state.client(target.registry)
        children = {}
        try:
            for child in index.children:
                child_body, child_info = client.get_manifest(target.repository, child.digest)
                manifest = parse_manifest(child_body, child_info.media_type)
                if manifest.is_index or not manifest.blobs:
                    return other
                children[manifest.blobs[0].digest] = child.digest
        except (RegistryAPIError, ManifestError):
            return other
        if sorted(children) != sorted(image_ids) or len(index.children) != len(image_ids):
            return other
        self.state.read_floating(target)
        return info.digest, body, children

    def _push_platforms(self, target: Target, images, index) -> RefResult:
        """Each platform manifest by digest, the index by digest, then the immutable tag."""
        ref = target.ref(target.immutable)
        result = RefResult(target.registry, ref)
        start = time.monotonic()
        self.reporter.push_started(target.registry, f"{ref} ({len(images)} platforms by digest)")

        def on_blob(blob, status):
            self.reporter.push_progress(target.registry, PushProgress(blob.digest[7:19], status,
                                                                       blob.size, blob.size))
        try:
            client = self.state.client(target.registry)
            for image in images:
                push_image(client, target.repository, image, jobs=self.state.jobs, on_blob=on_blob)
            put_by_digest(client, target.repository, index.body, index.media_type)
            tag_image(client, target.repository, index.body, [target.immutable])
            result.status, result.digest = Status.PUSHED, index.digest
        except RegistryAPIError as exc:
            result.status = Status.FAILED
            result.error = self.state.registries.error_text(target.registry, target.host, exc)
        result.seconds = time.monotonic() - start
        self.reporter.push_done(target.registry, ref, result.status, result.digest)
        return result

    def run_all(self, *, build: bool) -> Report:
        """build-push with several platforms: every platform built, one index, steps 2-4."""
        report = Report(self.plan)
        names = [t.registry for t in self.plan.targets]
        self.state.registries.resolve(names)
        workdir = spool.make_dir("platforms")
        try:
            local = self._local_platforms(self.plan.platforms, build=build)
            self.state.registries.refresh_expiring(names)     # the builds may have outlived a token
            targets = list(self.plan.targets)
            ids = [image_id for _, _, image_id in local]
            with ThreadPoolExecutor(max_workers=self.state.jobs) as pool:
                held = dict(zip([t.registry for t in targets],
                                pool.map(lambda t: self._holding_index(t, ids), targets)))
            ours = next((held[t.registry] for t in targets
                         if held[t.registry] and held[t.registry][2] is not None), None)
            if ours is not None:
                # Released before: the registries that hold it keep their index (no export),
                # the others get a copy of it.
                digest, body, children = ours
                self.state.manifests[digest] = body
                report.media_type = family(self.plan.index_format).index
                report.platforms = [{"platform": p, "digest": children[i], "image_id": i}
                                    for p, _, i in local]
                how = dict(known={digest},
                           existing={name: h[0] if h else None for name, h in held.items()})
            else:
                images = [self._export_platform(p, ref, i, workdir) for p, ref, i in local]
                index = build_index([i.entry() for i in images], self.plan.index_format)
                report.media_type = index.media_type
                report.platforms = [{"platform": str(i.platform), "digest": i.digest,
                                     "image_id": i.image_id} for i in images]
                how = dict(known={index.digest},
                           first_push=lambda t: self._push_platforms(t, images, index))
            self.reporter.start(targets)
            try:
                source = immutable.distribute(self.state, report, targets, **how)
                return finish(self.state, report, source, targets)
            finally:
                self.reporter.stop()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def push_by_digest(self, platform: str, *, build: bool) -> tuple[Report, dict | None]:
        """One platform of a split release: build it, push its manifest by digest (no tag) to
        the first selected registry, and return the record `merge` needs (None on failure).

        Only one registry, always the first: every platform job of a release must land in the
        same repository, and the merge job copies the index with its children to the others.
        """
        report = Report(self.plan)
        target = self.plan.targets[0]
        self.state.registries.resolve([target.registry])
        workdir = spool.make_dir("platform")
        try:
            (image,) = self._platform_images([platform], build=build, workdir=workdir)
            report.digest, report.media_type = image.digest, image.media_type
            report.platforms = [{"platform": str(image.platform), "digest": image.digest,
                                 "image_id": image.image_id}]
            ref = f"{target.image}@{image.digest}"
            res = RefResult(target.registry, ref)
            self.reporter.start([target])
            start = time.monotonic()
            try:
                self.reporter.push_started(target.registry, f"{ref} ({platform}, no tag)")
                res.status = push_image(self.state.client(target.registry), target.repository,
                                        image, jobs=self.state.jobs)
                res.digest = image.digest
            except RegistryAPIError as exc:
                res.status = Status.FAILED
                res.error = self.state.registries.error_text(target.registry, target.host, exc)
            finally:
                res.seconds = time.monotonic() - start
                self.reporter.push_done(target.registry, ref, res.status, res.digest)
                self.reporter.stop()
            report.results.append(res)
            if res.status == Status.FAILED:
                return report, None
            return report, make_record(version=self.plan.version, platform=parse_platform(platform),
                                       image=image, index_format=self.plan.index_format,
                                       registry=target.registry, host=target.host,
                                       repository=target.repository)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def merge(self, records: list[dict]) -> Report:
        """Assemble the index from split-build records and release it like build-push does."""
        report = Report(self.plan)
        first = records[0]
        name = first["registry"]
        r = self.state.registries.entries.get(name)
        where_defined = self.state.config.display_path
        if r is None:
            raise ReleaseError(f"the records were pushed to registry '{name}', which "
                               f"{where_defined} does not define")
        if (r.registry, r.repository) != (first["host"], first["repository"]):
            raise ReleaseError(f"the records were pushed to {first['host']}/{first['repository']}, but "
                               f"'{name}' in {where_defined} is {r.registry}/{r.repository}")
        self.state.registries.resolve([name, *[t.registry for t in self.plan.targets]])
        source = Target(registry=r.name, type=r.type, host=r.registry, repository=r.repository,
                        immutable=self.plan.version, floating=())
        client = self.state.client(name)
        fam = family(self.plan.index_format)
        entries = []
        try:
            for rec in records:
                where = f"{source.image}@{rec['digest']} ({rec['platform']})"
                if client.head_manifest(r.repository, rec["digest"]) is None:
                    raise ReleaseError(f"{where} is not on {name}",
                                       hint="re-run that platform's build-push --push-by-digest job")
                body, info = client.get_manifest(r.repository, rec["digest"])
                manifest = parse_manifest(body, info.media_type)
                if manifest.is_index or info.media_type != fam.manifest:
                    raise ReleaseError(f"{where} is a {info.media_type}; an {fam.name} index needs "
                                       f"{fam.manifest}")
                config_desc = manifest.blobs[0]
                config = json.loads(client.get_blob(r.repository, config_desc.digest, config_desc.size))
                platform = from_image_config(config)
                if not platform.matches(parse_platform(rec["platform"])):
                    raise ReleaseError(f"{where}: the image config says {platform}")
                entries.append(IndexEntry(info.media_type, info.digest, info.size, platform))
            index = build_index(entries, self.plan.index_format)
            put_by_digest(client, r.repository, index.body, index.media_type)
        except RegistryAPIError as exc:
            raise ReleaseError(f"[{name}] {exc}") from None
        report.media_type = index.media_type
        report.platforms = [{"platform": str(e.platform), "digest": e.digest} for e in entries]
        self.reporter.message(f"index {index.digest} of {', '.join(str(e.platform) for e in entries)} "
                              f"on {name}")

        def first_push(t: Target) -> RefResult:
            if t.registry != name:
                return immutable.copy_to(self.state, source, index.digest, t)
            res = RefResult(t.registry, t.ref(t.immutable))
            start = time.monotonic()
            try:
                status = tag_image(self.state.client(name), t.repository, index.body, [t.immutable])
                res.status = status[t.immutable]
                res.digest = index.digest
            except RegistryAPIError as exc:
                res.status, res.error = Status.FAILED, str(exc)
            res.seconds = time.monotonic() - start
            self.reporter.push_done(t.registry, res.ref, res.status, res.digest)
            return res

        targets = list(self.plan.targets)
        self.reporter.start(targets)
        try:
            got = immutable.distribute(self.state, report, targets, known={index.digest},
                                       first_push=first_push)
            return finish(self.state, report, got, targets)
        finally:
            self.reporter.stop()
