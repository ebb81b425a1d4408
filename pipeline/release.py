"""Run a Plan: build once, push once through the engine, copy and tag through the registry API.

1. Build (or take the local image with --no-build).
2. Immutable tag: references that already hold our digest are left alone. Otherwise the
   engine pushes once, to the first registry that takes it; every other registry gets a
   copy from that one through the registry API (HEAD each blob, mount within a registry,
   else stream registry to registry) — the layers are compressed once, not per registry.
3. Floating tags, only if step 2 reached every registry: one manifest PUT of the same
   bytes per tag, no blob traffic. `latest` last.
4. Verify: each registry is asked what every reference resolves to.

`release promote` runs steps 2–4 with an existing registry as the source.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import credentials as creds_mod
from .engine import PushAuthError, PushError, PushTransientError
from .errors import ReleaseError
from .labels import PREFIX, oci_labels
from .plan import Plan, Target, latest_moves
from .redact import redact
from .registry.client import RegistryAPIError, RegistryClient
from .sourceinfo import revision as git_revision, source_url

PUSHED, ALREADY, FAILED, SKIPPED = "pushed", "already there", "failed", "skipped"


@dataclass
class RefResult:
    registry: str
    ref: str
    status: str = SKIPPED
    digest: str | None = None
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict:
        return {"registry": self.registry, "ref": self.ref, "status": self.status, "digest": self.digest,
                "seconds": round(self.seconds, 3), **({"error": self.error} if self.error else {})}


@dataclass
class Report:
    plan: Plan
    results: list[RefResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    digest: str | None = None
    image_id: str | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and all(r.status in (PUSHED, ALREADY) for r in self.results)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "version": self.plan.version, "digest": self.digest,
                "tags": list(self.plan.tags), "latest": self.plan.latest, "image_id": self.image_id,
                "results": [r.to_dict() for r in self.results], "errors": list(self.errors),
                "notes": list(self.notes)}


def docker_certs_d_ca(host: str) -> Path | None:
    """The CA dockerd itself trusts for `host` (/etc/docker/certs.d/HOST/ca.crt), if any."""
    path = Path("/etc/docker/certs.d") / host / "ca.crt"
    return path if path.is_file() else None


class Releaser:
    def __init__(self, config, plan: Plan, reporter, *, engine=None, jobs: int = 4, env=None):
        self.config = config
        self.plan = plan
        self.reporter = reporter
        self.engine = engine
        self.jobs = max(1, jobs)
        self.env = os.environ if env is None else env
        self.registries = {r.name: r for r in config.registries}
        self.credentials: dict = {}
        self.clients: dict[str, RegistryClient] = {}

    # -- set-up -----------------------------------------------------------------------------
    def resolve_credentials(self, names=None) -> None:
        """Before touching anything: every registry's credentials (a named env var must be set)."""
        for name in names or [t.registry for t in self.plan.targets]:
            if name not in self.credentials:
                r = self.registries[name]
                self.credentials[name] = creds_mod.resolve(r.name, r.registry, r.username_env,
                                                           r.password_env, self.env)

    def client(self, name: str) -> RegistryClient:
        if name not in self.clients:
            r = self.registries[name]

            def on_retry(what, attempt, error, wait, name=name):
                self.reporter.retrying(name, what, attempt, redact(str(error)), wait)

            self.clients[name] = RegistryClient(
                r.registry, self.credentials[name], ca_file=r.ca_file or docker_certs_d_ca(r.registry),
                insecure=r.insecure, retry_attempts=self.config.retry.attempts,
                retry_max_delay=self.config.retry.max_delay, on_retry=on_retry)
        return self.clients[name]

    def _auth_hint(self, name: str, host: str) -> str:
        return (f"credentials used: {self.credentials[name].describe()}. Set username_env/password_env "
                f"for '{name}' in release.yml, or run `docker login {host}`")

    # -- build ------------------------------------------------------------------------------
    def build(self) -> str:
        image = self.config.image
        cwd = self.config.path.parent
        labels = oci_labels(version=self.plan.version, revision=git_revision(cwd, self.env),
                            source=source_url(cwd, self.env), created=self._created_label(),
                            user=image.labels)
        self.reporter.message(f"building {self.plan.local_ref} from {image.context}")
        return self.engine.build(context=image.context, dockerfile=image.dockerfile,
                                 tag=self.plan.local_ref, build_args=image.build_args,
                                 target=image.target, labels=labels, on_line=self.reporter.build_line)

    def _created_label(self) -> datetime | str:
        """Reuse the creation time of an earlier build of this same version and commit.

        With the same label values the engine's build cache gives the same image, so
        re-running a release (after a failure or success) pushes the same digest
        instead of a new one with a new timestamp.
        """
        existing = self.engine.inspect(self.plan.local_ref)
        labels = ((existing or {}).get("Config") or {}).get("Labels") or {}
        same_source = labels.get(PREFIX + "revision") == git_revision(self.config.path.parent, self.env)
        if (labels.get(PREFIX + "version") == self.plan.version and same_source
                and labels.get(PREFIX + "created")):
            return labels[PREFIX + "created"]
        return datetime.now(timezone.utc)

    # -- step 2: the immutable tag ----------------------------------------------------------
    def _remote_digest(self, target: Target, tag: str) -> str | None:
        try:
            info = self.client(target.registry).head_manifest(target.repository, tag)
        except RegistryAPIError:
            return None     # unreachable or refused: the push itself will say why
        return info.digest if info else None

    def _engine_push(self, target: Target, image_id: str) -> RefResult:
        import tenacity

        ref = target.ref(target.immutable)
        result = RefResult(target.registry, ref)
        start = time.monotonic()
        self.engine.tag(image_id, target.image, target.immutable)
        creds = self.credentials[target.registry]
        retry = self.config.retry

        def before_sleep(state):
            self.reporter.retrying(target.registry, ref, state.attempt_number,
                                   redact(str(state.outcome.exception())),
                                   state.next_action.sleep if state.next_action else 0)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(retry.attempts),
            wait=tenacity.wait_random_exponential(multiplier=0.5, max=retry.max_delay),
            retry=tenacity.retry_if_exception_type(PushTransientError),
            before_sleep=before_sleep, reraise=True)
        self.reporter.push_started(target.registry, ref)
        try:
            result.digest = retrying(self.engine.push, target.image, target.immutable,
                                     creds.auth_config(target.host),
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
        from .registry.copy import copy_image

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
                             image_id: str | None) -> Target | None:
        """Put the immutable tag on every target. Returns the source registry, or None on failure."""
        existing: dict[str, str | None] = {t.registry: None for t in targets}
        if known:   # only an image we pushed before can already be there
            with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                existing = dict(zip(existing, pool.map(lambda t: self._remote_digest(t, t.immutable),
                                                       targets)))
        results: dict[str, RefResult] = {}
        for t in targets:
            if existing[t.registry] and existing[t.registry] in known:
                results[t.registry] = RefResult(t.registry, t.ref(t.immutable), ALREADY,
                                                existing[t.registry])
                self.reporter.push_done(t.registry, t.ref(t.immutable), ALREADY, existing[t.registry])
        source = next((t for t in targets if t.registry in results), None)
        if source is None and image_id is not None:
            for t in targets:           # push through the engine once, to the first that takes it
                results[t.registry] = self._engine_push(t, image_id)
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

    # -- step 3: floating tags --------------------------------------------------------------
    def _floating_tags(self, target: Target, report: Report) -> list[str]:
        tags = list(target.floating)
        latest = self.plan.latest_tag
        if latest and latest in tags and self.plan.latest_if_highest:
            try:
                existing = self.client(target.registry).list_tags(target.repository)
            except RegistryAPIError as exc:
                report.errors.append(f"[{target.registry}] cannot list tags to decide on {latest}: {exc}")
                return []
            moves, highest = latest_moves(self.plan.version, existing)
            if not moves:
                tags.remove(latest)
                report.notes.append(f"[{target.registry}] {latest} stays on {highest}: "
                                    f"{self.plan.version} is not the highest release (flavor latest=highest)")
        return tags

    def _tag(self, target: Target, manifest: bytes, report: Report) -> list[RefResult]:
        from .registry.copy import tag_image

        tags = self._floating_tags(target, report)
        start = time.monotonic()
        results = [RefResult(target.registry, target.ref(t)) for t in tags]
        if not tags:
            return results
        try:
            statuses = tag_image(self.client(target.registry), target.repository, manifest, tags)
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
            manifest, _ = self.client(source.registry).get_manifest(source.repository, report.digest)
        except RegistryAPIError as exc:
            report.errors.append(f"[{source.registry}] cannot read the manifest {report.digest}: {exc}")
            return
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            for results in pool.map(lambda t: self._tag(t, manifest, report), targets):
                report.results.extend(results)

    # -- step 4: verify ---------------------------------------------------------------------
    def verify(self, report: Report) -> None:
        """Ask each registry (not the engine) what every pushed reference resolves to."""
        targets = {t.registry: t for t in self.plan.targets}

        def check(res: RefResult) -> None:
            target = targets[res.registry]
            tag = res.ref.rsplit(":", 1)[1]
            try:
                info = self.client(res.registry).head_manifest(target.repository, tag)
            except RegistryAPIError as exc:
                res.status, res.error = FAILED, f"could not verify: {exc}"
                return
            if info is None:
                res.status, res.error = FAILED, "not found on the registry after the push"
            elif info.digest != report.digest:
                res.status, res.error = FAILED, f"registry holds {info.digest}, expected {report.digest}"
            else:
                res.digest = info.digest

        # "already there" was just read from the registry itself; what we wrote is re-read here.
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            list(pool.map(check, [r for r in report.results if r.status == PUSHED]))

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
        report = Report(self.plan)
        self.resolve_credentials()
        image_id = self.build() if build else self.engine.require_image(self.plan.local_ref)
        report.image_id = image_id
        info = self.engine.inspect(image_id) or {}
        known = {d.split("@", 1)[1] for d in info.get("RepoDigests") or [] if "@" in d}
        targets = list(self.plan.targets)
        self.reporter.start(targets)
        try:
            source = self.distribute_immutable(report, targets, known=known, image_id=image_id)
            return self._finish(report, source, targets)
        finally:
            self.reporter.stop()

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
