"""Run a Plan: build once, push every registry at once through the registry API, tag, verify.

1. Build (or take the local image with --no-build): build.py.
2. Immutable tag (immutable.py): a registry whose tag already holds this image (its
   manifest's config is the local image id, whoever compressed the layers) is left alone.
   The others get the image all at once (registry/fanout.py): the engine exports it once,
   each layer is compressed once and uploaded to every registry in parallel, then the
   manifest is PUT under the immutable tag. If the export cannot be used, or with
   --engine-push, the engine pushes to the first registry that takes it and every other
   one gets a copy through the registry API (HEAD each blob, mount within a registry, else
   stream registry to registry).
3. Floating tags (floating.py), only if step 2 reached every registry: one manifest PUT of
   the same bytes per tag that does not already point at it, no blob traffic. `latest` last.
4. Verify (verify.py): each registry is asked what every reference we wrote resolves to.

`release promote` runs steps 2-4 with an existing registry as the source. Several
platforms (image.platforms) are multiplatform.py's part, a collaborator of the Releaser.
"""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Mapping

from pipeline.app import immutable
from pipeline.app.build import ImageBuild
from pipeline.app.fanout import PushTarget, push_local_image
from pipeline.app.multiplatform import Platforms
from pipeline.app.ports import ClientFactory, Reporter
from pipeline.app.registries import Registries
from pipeline.app.report import RefResult, Report
from pipeline.app.state import RunState
from pipeline.app.verify import finish
from pipeline.engine import spool
from pipeline.engine.client import (
    Engine,
    PushAuthError,
    PushError,
    PushProgress,
    PushTransientError,
)
from pipeline.errors import ReleaseError
from pipeline.model.plan import Plan, Target
from pipeline.model.status import Status
from pipeline.registry.errors import RegistryAPIError
from pipeline.registry.retry import retrying
from pipeline.ui.redact import redact


class Releaser:
    def __init__(self, config, plan: Plan, reporter: Reporter, *, engine=None,
                 engine_factory: Callable[[], Engine] = Engine,
                 client_factory: ClientFactory | None = None, jobs: int = 4,
                 env: Mapping[str, str] | None = None, engine_push: bool = False,
                 force: bool = False):
        """`engine`: the Docker Engine; None: `engine_factory()` makes it when a step first
        needs it (after the credentials and the pre-flight check; promote and merge never
        do). `client_factory(registry, credentials, retry=, on_retry=, renew=)`: each
        registry's client (default: pipeline/registry/client.py's). `engine_push`: the engine
        pushes to the first registry (`docker push`, its own compression) and the others get
        copies, instead of one export for all. `force`: replace an existing version, move
        floating tags backwards."""
        self.config = config
        self.plan = plan
        self.reporter = reporter
        self.env = os.environ if env is None else env
        self.engine_push = engine_push
        self.registries = Registries(config, reporter, env=self.env, client_factory=client_factory)
        self.state = RunState(config, plan, reporter, self.registries, jobs=jobs, force=force)
        self.images = ImageBuild(config, plan, reporter, self.registries, env=self.env,
                                 engine=engine, engine_factory=engine_factory)
        self.platforms = Platforms(self.state, self.images)

    @property
    def engine(self):
        return self.images.engine

    @property
    def jobs(self) -> int:
        return self.state.jobs

    def _names(self, names=None) -> list[str]:
        return list(names or dict.fromkeys(t.registry for t in self.plan.targets))

    # -- set-up -----------------------------------------------------------------------------
    def resolve_credentials(self, names=None) -> None:
        """Before touching anything: every registry's credentials (a named env var must be set)
        and its client (an unreadable ca_file is a usage error now, not after half a release)."""
        self.registries.resolve(self._names(names))

    def preflight(self, names=None) -> None:
        """Prove every selected registry's credentials before anything is built or pushed."""
        self.registries.preflight(self._names(names), self.jobs)

    def build_image(self, ref: str, platform: str | None = None, created=None) -> str:
        return self.images.build_image(ref, platform, created)

    # -- whole runs -------------------------------------------------------------------------
    def run(self, *, build: bool) -> Report:
        """build-push: build (or take the local image), then steps 2-4."""
        if self.plan.multi_platform:
            return self.platforms.run_all(build=build)
        report = Report(self.plan)
        self.resolve_credentials()
        if build:
            image_id = self.images.build()
            info = self.engine.inspect(image_id) or {}
        else:
            info = self.engine.require_inspect(self.plan.local_ref)
            image_id = info["Id"]
        report.image_id = image_id
        self.registries.refresh_expiring(self._names())   # a long build may have outlived a token
        targets = list(self.plan.targets)
        self.reporter.start(targets)
        try:
            pushed_before = {d.split("@", 1)[1] for d in info.get("RepoDigests") or [] if "@" in d}
            with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                held = dict(zip([t.registry for t in targets],
                                pool.map(lambda t: self._holding(t, image_id, pushed_before),
                                         targets)))
            ours = next((held[t.registry] for t in targets
                         if held[t.registry] and held[t.registry][2]), None)
            known = set()
            if ours:
                known.add(ours[0])
                self.state.manifests[ours[0]] = ours[1]
            source = immutable.distribute(
                self.state, report, targets, known=known,
                existing={name: h[0] if h else None for name, h in held.items()},
                first_push=lambda t: self._engine_push(t, image_id),
                push_all=None if self.engine_push else lambda ts: self._push_local(ts, image_id, info))
            return finish(self.state, report, source, targets)
        finally:
            self.reporter.stop()

    def promote(self, source_name: str) -> Report:
        """promote: the image already released on `source_name` goes to the plan's targets."""
        report = Report(self.plan)
        self.resolve_credentials([source_name, *[t.registry for t in self.plan.targets]])
        r = self.registries.entries[source_name]
        source = Target(registry=r.name, type=r.type, host=r.registry, repository=r.repository,
                        immutable=self.plan.version, floating=())
        try:
            info = self.state.client(source_name).head_manifest(r.repository, self.plan.version)
        except RegistryAPIError as exc:
            raise ReleaseError(f"cannot read {source.ref(self.plan.version)}: {exc}") from None
        if info is None:
            raise ReleaseError(f"{source.ref(self.plan.version)} does not exist",
                               hint=f"release it there first: release build-push {self.plan.version} "
                                    f"--registry {source_name}")
        targets = list(self.plan.targets)
        self.reporter.start(targets)
        try:
            # the source's digest is "ours": a target that already holds it is left alone
            got = immutable.distribute(self.state, report, [source, *targets], known={info.digest})
            report.results = [x for x in report.results if x.registry != source_name]
            return finish(self.state, report, got, targets)
        finally:
            self.reporter.stop()

    def push_by_digest(self, platform: str, *, build: bool) -> tuple[Report, dict | None]:
        """One platform of a split release (multiplatform.py)."""
        return self.platforms.push_by_digest(platform, build=build)

    def merge(self, records: list[dict]) -> Report:
        """The index of a split release from its platform records (multiplatform.py)."""
        return self.platforms.merge(records)

    # -- step 2 for one local image ---------------------------------------------------------
    def _holding(self, target: Target, image_id: str,
                 pushed_before: set[str] = frozenset()) -> tuple[str, bytes, bool] | None:
        """(digest, bytes, ours) of the manifest under the immutable tag, None when there is
        none. Ours: its config is the local image, whoever compressed the layers; or the
        manifest is the local image id itself (containerd image store) or one the engine
        pushed (RepoDigests)."""
        found = self.state.tag_manifest(target)
        if found is None:
            return None
        body, info, manifest = found
        ours = info.digest == image_id or info.digest in pushed_before or bool(
            not manifest.is_index and manifest.blobs and manifest.blobs[0].digest == image_id)
        if ours:
            self.state.read_floating(target)
        return info.digest, body, ours

    def _push_local(self, targets: list[Target], image_id: str, info: dict) -> dict | None:
        """The local image to every target at once (registry/fanout.py). None when the engine's
        export cannot be turned into a manifest here: the engine then pushes it itself."""
        if self.engine.uses_containerd_store():
            self.reporter.message("the engine keeps images in its containerd store, where "
                                  "`docker push` sends the stored layers as they are: it pushes")
            return None
        for t in targets:
            self.reporter.push_started(t.registry, t.ref(t.immutable))

        def on_blob(name, blob, status):
            done = 0 if status == Status.QUEUED else blob.size
            self.reporter.push_progress(name, PushProgress(blob.digest[7:19], status, done,
                                                           blob.size))

        workdir = spool.make_dir("push")
        try:
            image, outcomes = push_local_image(
                self.engine.export(image_id),
                [PushTarget(t.registry, self.state.client(t.registry), t.repository, t.immutable)
                 for t in targets],
                workdir, image_id=image_id, diff_ids=(info.get("RootFS") or {}).get("Layers") or (),
                jobs=self.jobs, on_blob=on_blob)
        except ReleaseError as exc:
            self.reporter.message(f"cannot push {image_id[:19]} through the registry API "
                                  f"({exc.message}); the engine pushes it instead")
            return None
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        self.state.manifests[image.digest] = image.manifest
        results = {}
        for t in targets:
            out = outcomes[t.registry]
            res = RefResult(t.registry, t.ref(t.immutable), out.status, out.digest, out.seconds)
            if out.error is not None:
                res.status = Status.FAILED
                res.error = self.registries.error_text(t.registry, t.host, out.error)
            results[t.registry] = res
            self.reporter.push_done(t.registry, res.ref, res.status, res.digest)
        return results

    def _engine_push(self, target: Target, image_id: str) -> RefResult:
        """`docker push` of the immutable tag to one registry (the fall-back of _push_local)."""
        ref = target.ref(target.immutable)
        result = RefResult(target.registry, ref)
        start = time.monotonic()
        self.engine.tag(image_id, target.image, target.immutable)
        creds = self.registries.credentials[target.registry]
        retry = self.config.retry

        def on_retry(attempt, error, wait):
            self.reporter.retrying(target.registry, ref, attempt, redact(str(error)), wait)

        self.reporter.push_started(target.registry, ref)
        try:
            result.digest = retrying(retry.attempts, retry.max_delay, on_retry=on_retry)(
                self.engine.push, target.image, target.immutable, creds.auth_config(target.host),
                lambda ev: self.reporter.push_progress(target.registry, ev))
            result.status = Status.PUSHED
        except PushAuthError as exc:
            result.status = Status.FAILED
            result.error = f"{exc.message} — {self.registries.auth_hint(target.registry, target.host)}"
        except PushError as exc:
            attempts = f" after {retry.attempts} attempts" if isinstance(exc, PushTransientError) else ""
            result.status, result.error = Status.FAILED, f"{exc.message}{attempts}"
        result.seconds = time.monotonic() - start
        self.reporter.push_done(target.registry, ref, result.status, result.digest)
        return result
