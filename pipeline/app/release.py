"""Run a Plan: build once, push every registry at once through the registry API, tag, verify.

1. Build (or take the local image with --no-build).
2. Immutable tag: a registry whose tag already holds this image (its manifest's config
   is the local image id, whoever compressed the layers) is left alone. The others get
   the image all at once (fanout_push.py): the engine exports it once, each layer is
   compressed once and uploaded to every registry in parallel, then the manifest is PUT
   under the immutable tag. If the export cannot be used, or with --engine-push, the
   engine pushes to the first registry that takes it and every other one gets a copy
   through the registry API (HEAD each blob, mount within a registry, else stream
   registry to registry).
3. Floating tags, only if step 2 reached every registry: one manifest PUT of the same
   bytes per tag that does not already point at it, no blob traffic. `latest` last.
4. Verify: each registry is asked what every reference we wrote resolves to.

`release promote` runs steps 2-4 with an existing registry as the source. Several
platforms (image.platforms) are release_platforms.py's part of the Releaser.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from datetime import datetime, timezone

from pipeline.engine import spool
from pipeline.auth import lookup as creds_mod
from pipeline.engine.client import PushAuthError, PushError, PushTransientError
from pipeline.errors import ReleaseError
from pipeline.model.labels import PREFIX, oci_labels, reusable_created
from pipeline.model.plan import Plan, Target, floating_moves
from pipeline.model.tags.semver import parse_semver, precedence
from pipeline.ui.redact import redact
from pipeline.registry.client import RegistryAPIError, RegistryClient
from pipeline.registry.retry import retrying
from pipeline.app.multiplatform import PlatformSteps
from pipeline.app.report import ALREADY, FAILED, PUSHED, SKIPPED, RefResult, Report  # noqa: F401 (re-exported)
from pipeline.app.sourceinfo import revision as git_revision, source_url


class ImmutableVersionError(ReleaseError):
    """The version tag already holds another image (exit 1)."""


class Releaser(PlatformSteps):
    def __init__(self, config, plan: Plan, reporter, *, engine=None, jobs: int = 4, env=None,
                 engine_push: bool = False, force: bool = False):
        """`engine_push`: the engine pushes to the first registry (`docker push`, its own
        compression) and the others get copies, instead of fanout_push.py's one export."""
        self.engine_push = engine_push
        self.force = force          # replace an existing version, move floating tags backwards
        self.config = config
        self.plan = plan
        self.reporter = reporter
        self.engine = engine
        self.jobs = max(1, jobs)
        self.env = os.environ if env is None else env
        self.registries = {r.name: r for r in config.registries}
        self.credentials: dict = {}
        self.clients: dict[str, RegistryClient] = {}
        self.manifests: dict[str, bytes] = {}      # digest -> bytes we read or wrote this run
        self.current_tags: dict[tuple[str, str], str | None] = {}   # (registry, tag) -> digest
        self._retries_shown: dict[str, int] = {}    # registry -> highest attempt reported
        self._retry_lock = threading.Lock()

    # -- set-up -----------------------------------------------------------------------------
    def resolve_credentials(self, names=None) -> None:
        """Before touching anything: every registry's credentials (a named env var must be set)
        and its client (an unreadable ca_file is a usage error now, not after half a release)."""
        for name in names or [t.registry for t in self.plan.targets]:
            if name not in self.credentials:
                r = self.registries[name]
                self.credentials[name] = creds_mod.resolve(r.name, r.registry, r.username_env,
                                                           r.password_env, self.env, config=r,
                                                           push=True)
            self.client(name)

    def client(self, name: str) -> RegistryClient:
        if name not in self.clients:
            r = self.registries[name]

            def on_retry(what, attempt, error, wait, name=name):
                # one line per attempt and registry, not one per layer retrying in parallel
                with self._retry_lock:
                    if attempt <= self._retries_shown.get(name, 0):
                        return
                    self._retries_shown[name] = attempt
                self.reporter.retrying(name, what, attempt, redact(str(error)), wait)

            def renew(name=name):
                """A refused token (expired while we worked): ask its source once more."""
                from pipeline.auth.cloud import refresh
                self.credentials[name] = refresh(self.registries[name], self.credentials[name],
                                                 self.env)
                return self.credentials[name]

            self.clients[name] = RegistryClient(
                r.registry, self.credentials[name], ca_file=r.ca_file,
                insecure=r.insecure, retry_attempts=self.config.retry.attempts,
                retry_max_delay=self.config.retry.max_delay, on_retry=on_retry, renew=renew)
        return self.clients[name]

    def refresh_expiring(self, names=None) -> None:
        """Short-lived cloud tokens (Artifact Registry 1 h, ACR ~3 h) fetched before a long
        build may be close to expiry by the push: fetch them again now (within 5 minutes of
        expiry), and give that registry a new client."""
        from pipeline.auth.cloud import expiring, refresh
        for name in names or dict.fromkeys(t.registry for t in self.plan.targets):
            creds = self.credentials.get(name)
            if creds is None or not expiring(creds):
                continue
            self.credentials[name] = refresh(self.registries[name], creds, self.env)
            client = self.clients.pop(name, None)
            if client is not None:
                client.close()
            self.reporter.message(f"[{name}] its token was about to expire: fetched a new one")

    def preflight(self, names=None) -> None:
        """Before anything is built or pushed: prove every selected registry's credentials
        (push scope where the registry issues tokens), all at once, as `release login` does.
        One that fails stops the run here (exit 1), naming it, with nothing built or pushed."""
        from pipeline.auth.prove import prove
        names = list(names or dict.fromkeys(t.registry for t in self.plan.targets))
        self.resolve_credentials(names)
        with ThreadPoolExecutor(max_workers=max(1, min(self.jobs, len(names)))) as pool:
            proofs = dict(zip(names, pool.map(
                lambda n: prove(self.registries[n], self.credentials[n]), names)))
        failed = {n: p for n, p in proofs.items() if not p.ok}
        if not failed:
            return
        lines = [f"[{n}] {self.registries[n].registry}: {redact(p.detail)}"
                 + (f"\n    hint: {redact(p.hint)}" if p.hint else "") for n, p in failed.items()]
        raise ReleaseError(f"{len(failed)} of {len(names)} registries failed the check before "
                           f"the build, so nothing was built or pushed:\n  " + "\n  ".join(lines),
                           hint="fix the credentials or the registry, or pass --skip-preflight "
                                "to try anyway")

    def _auth_hint(self, name: str, host: str) -> str:
        return (f"credentials used: {self.credentials[name].describe()}. Set username_env/password_env "
                f"for '{name}' in release.yml, or run `docker login {host}`")

    # -- build ------------------------------------------------------------------------------
    @cached_property
    def revision(self) -> str | None:
        """The git sha of the sources, asked once per run (it is a subprocess)."""
        return git_revision(self.config.path.parent, self.env)

    @cached_property
    def source(self) -> str | None:
        return source_url(self.config.path.parent, self.env)

    def build(self) -> str:
        if self.plan.platform:
            self.check_emulation([self.plan.platform])
        return self.build_image(self.plan.local_ref, self.plan.platform)

    @cached_property
    def builder(self):
        """Builds every image of this run (pipeline/engine/buildkit/builder.py): BuildKit, or the
        classic builder when the engine has no BuildKit or release.yml asks for it."""
        from pipeline.engine.buildkit.builder import ImageBuilder
        return ImageBuilder(self.engine, self.config.image, self.reporter, env=self.env,
                            registry_for=self._registry_for_host)

    def _registry_for_host(self, host: str):
        """(client, credentials) for a cache image's registry: release.yml's entry for that
        host when there is one, so its credentials apply; else what `docker pull` would use."""
        from pipeline.registry.reference import normalize_host
        for r in self.config.registries:
            if normalize_host(r.registry) == normalize_host(host):
                self.resolve_credentials([r.name])
                return self.client(r.name), self.credentials[r.name]
        return self.builder.registry_from_docker_config(host)

    def build_image(self, ref: str, platform: str | None = None, created=None) -> str:
        """Build `ref`; for an explicit platform, check that the image really is for it."""
        image = self.config.image
        labels = oci_labels(version=self.plan.version, revision=self.revision, source=self.source,
                            created=created or self._created_label(ref), user=image.labels)
        route = self.builder.prepare()
        self.reporter.message(f"building {ref}{f' for {platform}' if platform else ''} from "
                              f"{image.context} ({route.describe()})")
        if platform is None:            # the engine's own platform
            return self.builder.build(tag=ref, labels=labels)
        # The classic builder's cache (before Engine 25) ignores the platform of `FROM scratch`
        # stages and may hand back another platform's image; BuildKit keeps platforms apart.
        cache = self._platform_cache(ref, platform) if not route.buildkit else {}
        image_id = self.builder.build(tag=ref, labels=labels, platform=platform, **cache)
        if self._built_platform_ok(image_id, platform):
            return image_id
        self.reporter.message(f"the build cache gave an image for another platform; rebuilding "
                              f"{ref} for {platform} without cache")
        image_id = self.builder.build(tag=ref, labels=labels, platform=platform, nocache=True)
        if not self._built_platform_ok(image_id, platform):
            from pipeline.engine.client import BuildFailed
            raise BuildFailed(f"the engine built {ref} for {self._image_platform(image_id)}, "
                              f"not {platform}")
        return image_id

    def _image_platform(self, image_id: str):
        from pipeline.model.platforms import Platform
        info = self.engine.inspect(image_id) or {}
        return Platform(info.get("Os") or "linux", info.get("Architecture") or "",
                        info.get("Variant") or None)

    def _built_platform_ok(self, image_id: str, platform: str) -> bool:
        from pipeline.model.platforms import parse_platform
        return self._image_platform(image_id).matches(parse_platform(platform))

    def _platform_cache(self, ref: str, platform: str) -> dict:
        """Build-cache options that keep platforms apart.

        Engines before 25 match `FROM scratch` cache entries across platforms. For a
        Dockerfile with such a stage, use only this platform's previous build as the cache
        (cache_from: same image again when nothing changed), or no cache the first time.
        """
        from pipeline.model.platforms import dockerfile_has_scratch
        image = self.config.image
        if not dockerfile_has_scratch(image.context / image.dockerfile, image.target):
            return {}
        if self.engine.image_id(ref) is not None and self._built_platform_ok(ref, platform):
            return {"cache_from": [ref]}
        return {"nocache": True}

    def check_emulation(self, platforms) -> None:
        """A RUN step for a foreign platform needs QEMU: say so before building."""
        from pipeline.model.platforms import emulation_problem, engine_is_local, parse_platform
        if not engine_is_local(self.env):
            return          # the engine's kernel is elsewhere; a failing RUN still says why
        native = self.engine.platform()
        image = self.config.image
        problem = emulation_problem([parse_platform(p) for p in platforms], native,
                                    image.context / image.dockerfile, image.target)
        if problem:
            raise ReleaseError(problem[0], hint=problem[1])

    def _created_label(self, ref: str | None = None, *more: str) -> datetime | str:
        """Reuse the creation time of an earlier build of this same version and commit.

        With the same label values the engine's build cache gives the same image, so
        re-running a release (after a failure or success) pushes the same digest
        instead of a new one with a new timestamp. With several platforms, the first
        of their local images that has one gives it to all.
        """
        found = reusable_created((((self.engine.inspect(c) or {}).get("Config") or {}).get("Labels")
                                  for c in (ref or self.plan.local_ref, *more)),
                                 version=self.plan.version, revision=self.revision)
        if found:
            return found
        return datetime.now(timezone.utc)

    # -- step 2: the immutable tag ----------------------------------------------------------
    def _remote_digest(self, target: Target, tag: str) -> str | None:
        try:
            info = self.client(target.registry).head_manifest(target.repository, tag)
        except RegistryAPIError:
            return None     # unreachable or refused: the push itself will say why
        return info.digest if info else None

    def _engine_push(self, target: Target, image_id: str) -> RefResult:
        ref = target.ref(target.immutable)
        result = RefResult(target.registry, ref)
        start = time.monotonic()
        self.engine.tag(image_id, target.image, target.immutable)
        creds = self.credentials[target.registry]
        retry = self.config.retry

        def on_retry(attempt, error, wait):
            self.reporter.retrying(target.registry, ref, attempt, redact(str(error)), wait)

        self.reporter.push_started(target.registry, ref)
        try:
            result.digest = retrying(retry.attempts, retry.max_delay, on_retry=on_retry)(
                self.engine.push, target.image, target.immutable, creds.auth_config(target.host),
                lambda ev: self.reporter.push_progress(target.registry, ev))
            result.status = PUSHED
        except PushAuthError as exc:
            result.status, result.error = FAILED, f"{exc.message} — {self._auth_hint(target.registry, target.host)}"
        except PushError as exc:
            attempts = f" after {retry.attempts} attempts" if isinstance(exc, PushTransientError) else ""
            result.status, result.error = FAILED, f"{exc.message}{attempts}"
        result.seconds = time.monotonic() - start
        self.reporter.push_done(target.registry, ref, result.status, result.digest)
        return result

    def _copy(self, source: Target, digest: str, target: Target) -> RefResult:
        from pipeline.registry.copy import copy_image

        ref = target.ref(target.immutable)
        result = RefResult(target.registry, ref)
        start = time.monotonic()
        self.reporter.push_started(target.registry, f"{ref} (copy from {source.registry})")
        try:
            copied = copy_image(self.client(source.registry), source.repository, digest,
                                self.client(target.registry), target.repository,
                                tags=[target.immutable], jobs=self.jobs)
            result.digest = copied.digest
            result.status = PUSHED if copied.tags[target.immutable] == "pushed" else ALREADY
        except RegistryAPIError as exc:
            result.status = FAILED
            result.error = str(exc) + (f" — {self._auth_hint(target.registry, target.host)}" if exc.auth else "")
        result.seconds = time.monotonic() - start
        self.reporter.push_done(target.registry, ref, result.status, result.digest)
        return result

    def distribute_immutable(self, report: Report, targets: list[Target], *, known: set[str],
                             image_id: str | None, first_push=None, existing=None,
                             push_all=None) -> Target | None:
        """Put the immutable tag on every target. Returns the source registry, or None on failure.

        `existing` (registry -> digest or None) is what the immutable tags hold now, if the
        caller already asked; a digest in `known` is ours and is left alone. When no target
        has it yet, `push_all(targets) -> {registry: RefResult}` puts it on all of them at
        once (None: it cannot, use `first_push`); `first_push(target) -> RefResult` puts it
        on one registry (default: the engine pushes `image_id`), every other gets a copy.
        """
        if first_push is None and image_id is not None:
            first_push = lambda t: self._engine_push(t, image_id)   # noqa: E731
        if existing is None:
            existing = {t.registry: None for t in targets}
            if known:   # only an image we pushed before can already be there
                with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                    existing = dict(zip(existing, pool.map(
                        lambda t: self._remote_digest(t, t.immutable), targets)))
        existing = self._check_immutable(report, targets, existing, known)
        results: dict[str, RefResult] = {}
        for t in targets:
            if existing.get(t.registry) and existing[t.registry] in known:
                results[t.registry] = RefResult(t.registry, t.ref(t.immutable), ALREADY,
                                                existing[t.registry])
                self.reporter.push_done(t.registry, t.ref(t.immutable), ALREADY, existing[t.registry])
        source = next((t for t in targets if t.registry in results), None)
        if source is None and push_all is not None:
            pushed = push_all(targets)
            if pushed is not None:
                results.update(pushed)
                source = next((t for t in targets if results[t.registry].status == PUSHED), None)
                first_push = None               # a registry failure: the engine would fail too
        if source is None and first_push is not None:
            for t in targets:           # push through the engine once, to the first that takes it
                results[t.registry] = first_push(t)
                if results[t.registry].status == PUSHED:
                    source = t
                    break
        if source is not None:
            digest = results[source.registry].digest
            rest = [t for t in targets if t.registry not in results]
            with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                for r in pool.map(lambda t: self._copy(source, digest, t), rest):
                    results[r.registry] = r
        report.results.extend(results.get(t.registry) or RefResult(t.registry, t.ref(t.immutable))
                              for t in targets)
        failed = [t.registry for t in targets if results.get(t.registry) is None
                  or results[t.registry].status not in (PUSHED, ALREADY)]
        if failed:
            report.errors.append(f"the immutable tag {self.plan.version} did not reach: {', '.join(failed)}; "
                                 "no floating tag was moved on any registry")
            return None
        digests = {results[t.registry].digest for t in targets}
        if len(digests) != 1:
            report.errors.append("registries hold different digests for the same version: "
                                 + ", ".join(f"{t.registry}={results[t.registry].digest}" for t in targets))
            return None
        report.digest = digests.pop()
        return source

    def _check_immutable(self, report: Report, targets: list[Target], existing: dict,
                         known: set[str]) -> dict:
        """A released version is never replaced: a target whose immutable tag holds another
        image stops the release before anything is pushed anywhere (exit 1), unless --force
        (or `immutable: false` on that registry), which replaces it and says so. Returns
        `existing` with the replaced ones cleared."""
        others = {t.registry: existing[t.registry] for t in targets
                  if existing.get(t.registry) and existing[t.registry] not in known}
        if not others:
            return existing
        mine = next(iter(known), None) or report.image_id
        where = ", ".join(f"{name} holds {digest}" for name, digest in others.items())
        refused = {n: d for n, d in others.items()
                   if getattr(self.registries.get(n), "immutable", True)}
        if refused and not self.force:
            held = ", ".join(f"{name} holds {digest}" for name, digest in refused.items())
            raise ImmutableVersionError(
                f"version {self.plan.version} is already released as another image ({held}); "
                f"this one is {mine or 'a different image'}. Nothing was pushed",
                hint=f"a released version is never replaced: release a new version, or pass "
                     f"--force to replace {self.plan.version}")
        why = "--force" if self.force and refused else "immutable: false"
        report.notes.append(f"{why}: replaced {self.plan.version} ({where})")
        return {**existing, **{name: None for name in others}}

    # -- step 3: floating tags --------------------------------------------------------------
    def _floating_tags(self, target: Target, report: Report) -> list[str]:
        """The floating tags that move on this registry: each only forward. A tag stays when
        the registry holds a higher version that the tag rules give it too (`40` and `latest`
        belong to 40.2.0 once 40.2.0 is there, even if 40.1.0 runs later or at the same time),
        or when it points at an image of a higher version. The summary says why; --force
        moves it all the same."""
        if self.force:
            return list(target.floating)
        owners = self._higher_owners(target)
        tags = []
        for tag in target.floating:
            owner = owners.get(tag)
            held = None if owner else self._held_version(target, tag, report)
            if owner or (held and not floating_moves(self.plan.version, held)):
                report.notes.append(f"[{target.registry}] {tag} stays on {owner or held}: "
                                    f"{self.plan.version} is lower, and floating tags only "
                                    f"move forward (--force moves it)")
            else:
                tags.append(tag)
        return tags

    def _higher_owners(self, target: Target) -> dict[str, str]:
        """{floating tag: the highest version on the registry above ours whose tags, by the
        rules of release.yml, include it}."""
        mine = parse_semver(self.plan.version)
        if mine is None or not target.floating:
            return {}
        try:
            existing = self.client(target.registry).list_tags(target.repository)
        except RegistryAPIError:
            return {}                 # the PUTs will say what is wrong with the registry
        higher = sorted(((precedence(v), t) for t in existing
                         if (v := parse_semver(t)) is not None and precedence(v) > precedence(mine)),
                        reverse=True)
        owners: dict[str, str] = {}
        for _, version in higher:
            for tag in self._tags_for(version) & set(target.floating):
                owners.setdefault(tag, version)
        return owners

    def _tags_for(self, version: str) -> frozenset[str]:
        """The tags release.yml's rules give `version` (git and CI left out: semver rules)."""
        from pipeline.model.tags import derive_tags, resolve_context
        try:
            ctx = resolve_context(version=version, env={}, git=lambda args: None)
            return frozenset(derive_tags(self.config.tags, self.config.flavor, ctx).tags)
        except Exception:      # noqa: BLE001 - a rule that needs git or CI: no opinion
            return frozenset()

    def _held_version(self, target: Target, tag: str, report: Report) -> str | None:
        """The version of the image `tag` points at now, None when absent, ours or unknown."""
        key = (target.registry, tag)
        if key not in self.current_tags:
            try:
                found = self.client(target.registry).head_manifest(target.repository, tag)
            except RegistryAPIError:
                return None
            self.current_tags[key] = found.digest if found else None
        current = self.current_tags[key]
        if current is None or current == report.digest:
            return None
        return self._version_at(target, current)

    def _version_at(self, target: Target, digest: str) -> str | None:
        """The version of the image `digest` is: its org.opencontainers.image.version label
        (the first platform's, for an index), else a version tag that shares the digest."""
        import json

        from pipeline.registry.manifest import ManifestError, parse_manifest

        client = self.client(target.registry)
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

    def _tag(self, target: Target, manifest: bytes, report: Report) -> list[RefResult]:
        from pipeline.registry.copy import tag_image

        tags = self._floating_tags(target, report)
        start = time.monotonic()
        results = [RefResult(target.registry, target.ref(t)) for t in tags]
        if not tags:
            return results
        current = {t: self.current_tags[(target.registry, t)] for t in tags
                   if (target.registry, t) in self.current_tags}
        try:
            statuses = tag_image(self.client(target.registry), target.repository, manifest, tags,
                                 current=current)
        except RegistryAPIError as exc:
            for r in results:
                r.status, r.error = FAILED, str(exc)
            return results
        for r, tag in zip(results, tags):
            r.status = PUSHED if statuses[tag] == "pushed" else ALREADY
            r.digest = report.digest
            r.seconds = time.monotonic() - start
            self.reporter.push_done(target.registry, r.ref, r.status, r.digest)
        return results

    def distribute_floating(self, report: Report, source: Target, targets: list[Target]) -> None:
        try:
            manifest = self.manifests.get(report.digest)
            if manifest is None:
                manifest, _ = self.client(source.registry).get_manifest(source.repository,
                                                                        report.digest)
        except RegistryAPIError as exc:
            report.errors.append(f"[{source.registry}] cannot read the manifest {report.digest}: {exc}")
            return
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            for results in pool.map(lambda t: self._tag(t, manifest, report), targets):
                report.results.extend(results)

    # -- step 4: verify ---------------------------------------------------------------------
    def verify(self, report: Report) -> None:
        """Ask each registry (not the engine) what every pushed reference resolves to.

        Another release running at the same time may have moved a floating tag since: onto a
        higher version, that is the rule (a note, not a failure); onto a lower one, it is put
        back on this version once (floating tags only move forward)."""
        targets = {t.registry: t for t in self.plan.targets}
        moved_on: list[RefResult] = []

        def check(res: RefResult, repair: bool = True) -> None:
            target = targets[res.registry]
            tag = res.ref.rsplit(":", 1)[1]
            try:
                info = self.client(res.registry).head_manifest(target.repository, tag)
            except RegistryAPIError as exc:
                res.status, res.error = FAILED, f"could not verify: {exc}"
                return
            if info is None:
                res.status, res.error = FAILED, "not found on the registry after the push"
            elif info.digest == report.digest:
                res.digest = info.digest
            elif tag in target.floating and not self.force:
                held = self._version_at(target, info.digest)
                if held and not floating_moves(self.plan.version, held):
                    moved_on.append(res)
                    report.notes.append(f"[{res.registry}] {tag} moved on to {held} (a newer "
                                        f"release) while this one ran")
                elif repair and self._put_back(target, tag, report):
                    check(res, repair=False)
                else:
                    res.status, res.error = FAILED, (f"registry holds {info.digest}, expected "
                                                     f"{report.digest}")
            else:
                res.status, res.error = FAILED, f"registry holds {info.digest}, expected {report.digest}"

        # "already there" was just read from the registry itself; what we wrote is re-read here.
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            list(pool.map(check, [r for r in report.results if r.status == PUSHED]))
        gone = {id(r) for r in moved_on}
        report.results = [r for r in report.results if id(r) not in gone]

    def _put_back(self, target: Target, tag: str, report: Report) -> bool:
        """A floating tag an older release moved back while this one ran: put it on this
        version again."""
        from pipeline.registry.copy import tag_image
        manifest = self.manifests.get(report.digest)
        try:
            if manifest is None:
                manifest, _ = self.client(target.registry).get_manifest(target.repository,
                                                                        report.digest)
            tag_image(self.client(target.registry), target.repository, manifest, [tag])
        except RegistryAPIError:
            return False
        report.notes.append(f"[{target.registry}] {tag} was moved back by an older release "
                            f"running at the same time; put back on {self.plan.version}")
        return True

    # -- whole runs -------------------------------------------------------------------------
    def _finish(self, report: Report, source: Target | None, targets: list[Target]) -> Report:
        if source is None:
            report.results.extend(RefResult(t.registry, t.ref(tag)) for t in targets for tag in t.floating)
            return report
        self.distribute_floating(report, source, targets)
        self.verify(report)
        return report

    def run(self, *, build: bool) -> Report:
        """build-push: build (or take the local image), then steps 2-4."""
        if self.plan.multi_platform:
            return self._run_platforms(build=build)
        report = Report(self.plan)
        self.resolve_credentials()
        if build:
            image_id = self.build()
            info = self.engine.inspect(image_id) or {}
        else:
            info = self.engine.require_inspect(self.plan.local_ref)
            image_id = info["Id"]
        report.image_id = image_id
        self.refresh_expiring()          # a long build may have outlived a short-lived token
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
                self.manifests[ours[0]] = ours[1]
            source = self.distribute_immutable(
                report, targets, known=known, image_id=image_id,
                existing={name: h[0] if h else None for name, h in held.items()},
                push_all=None if self.engine_push else lambda ts: self._push_local(ts, image_id, info))
            return self._finish(report, source, targets)
        finally:
            self.reporter.stop()

    def tag_manifest(self, target: Target):
        """(bytes, info, parsed) of what the immutable tag holds now, or None when it is
        absent, unreachable or refused (the push itself will say why)."""
        from pipeline.registry.manifest import ManifestError, parse_manifest

        try:
            body, info = self.client(target.registry).get_manifest(target.repository,
                                                                   target.immutable)
            return body, info, parse_manifest(body, info.media_type)
        except (RegistryAPIError, ManifestError):
            return None

    def read_floating(self, target: Target) -> None:
        """What each floating tag points at now, for step 3 (which then only PUTs the tags
        that differ); asked when the immutable tag is found to be ours."""
        client = self.client(target.registry)
        for tag in target.floating:
            try:
                found = client.head_manifest(target.repository, tag)
            except RegistryAPIError:
                continue    # step 3 asks again
            self.current_tags[(target.registry, tag)] = found.digest if found else None

    def _holding(self, target: Target, image_id: str,
                 pushed_before: set[str] = frozenset()) -> tuple[str, bytes, bool] | None:
        """(digest, bytes, ours) of the manifest under the immutable tag, None when there is
        none. Ours: its config is the local image, whoever compressed the layers; or the
        manifest is the local image id itself (containerd image store) or one the engine
        pushed (RepoDigests)."""
        found = self.tag_manifest(target)
        if found is None:
            return None
        body, info, manifest = found
        ours = info.digest == image_id or info.digest in pushed_before or bool(
            not manifest.is_index and manifest.blobs and manifest.blobs[0].digest == image_id)
        if ours:
            self.read_floating(target)
        return info.digest, body, ours

    def _push_local(self, targets: list[Target], image_id: str, info: dict) -> dict | None:
        """The local image to every target at once (fanout_push.py). None when the engine's
        export cannot be turned into a manifest here: the engine then pushes it itself."""
        from pipeline.engine.client import PushProgress
        from pipeline.registry.fanout import PushTarget, push_local_image

        if self.engine.uses_containerd_store():
            self.reporter.message("the engine keeps images in its containerd store, where "
                                  "`docker push` sends the stored layers as they are: it pushes")
            return None
        for t in targets:
            self.reporter.push_started(t.registry, t.ref(t.immutable))

        def on_blob(name, blob, status):
            done = 0 if status == "queued" else blob.size
            self.reporter.push_progress(name, PushProgress(blob.digest[7:19], status, done,
                                                           blob.size))

        workdir = spool.make_dir("push")
        try:
            image, outcomes = push_local_image(
                self.engine.export(image_id),
                [PushTarget(t.registry, self.client(t.registry), t.repository, t.immutable)
                 for t in targets],
                workdir, image_id=image_id, diff_ids=(info.get("RootFS") or {}).get("Layers") or (),
                jobs=self.jobs, on_blob=on_blob)
        except ReleaseError as exc:
            self.reporter.message(f"cannot push {image_id[:19]} through the registry API "
                                  f"({exc.message}); the engine pushes it instead")
            return None
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        self.manifests[image.digest] = image.manifest
        results = {}
        for t in targets:
            out = outcomes[t.registry]
            res = RefResult(t.registry, t.ref(t.immutable), out.status, out.digest, out.seconds)
            if out.error is not None:
                res.status = FAILED
                res.error = str(out.error) + (f" — {self._auth_hint(t.registry, t.host)}"
                                              if out.error.auth else "")
            results[t.registry] = res
            self.reporter.push_done(t.registry, res.ref, res.status, res.digest)
        return results

    def promote(self, source_name: str) -> Report:
        """promote: the image already released on `source_name` goes to the plan's targets."""
        report = Report(self.plan)
        self.resolve_credentials([source_name, *[t.registry for t in self.plan.targets]])
        r = self.registries[source_name]
        source = Target(registry=r.name, type=r.type, host=r.registry, repository=r.repository,
                        immutable=self.plan.version, floating=())
        try:
            info = self.client(source_name).head_manifest(r.repository, self.plan.version)
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
            got = self.distribute_immutable(report, [source, *targets], known={info.digest}, image_id=None)
            report.results = [x for x in report.results if x.registry != source_name]
            return self._finish(report, got, targets)
        finally:
            self.reporter.stop()
