"""Run a Plan: build once, push the immutable tag everywhere, then the floating tags, then verify.

All-or-nothing for floating tags: if the immutable tag did not reach every
selected registry, no floating tag moves anywhere. Re-running the same command
finishes a half-done release: references that already hold our digest are
left alone ("already there").
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import credentials as creds_mod
from .engine import Engine, PushAuthError, PushError, PushTransientError
from .labels import PREFIX, oci_labels
from .plan import Plan, Target
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
    digest: str | None = None
    image_id: str | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and all(r.status in (PUSHED, ALREADY) for r in self.results)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "version": self.plan.version, "digest": self.digest,
                "tags": list(self.plan.tags), "latest": self.plan.latest, "image_id": self.image_id,
                "results": [r.to_dict() for r in self.results], "errors": list(self.errors)}


class Releaser:
    def __init__(self, config, plan: Plan, reporter, *, engine: Engine | None = None, jobs: int = 4,
                 env=None):
        self.config = config
        self.plan = plan
        self.reporter = reporter
        self.engine = engine
        self.jobs = max(1, jobs)
        self.env = os.environ if env is None else env
        self.registries = {r.name: r for r in config.registries}
        self.credentials = {}
        self.clients: dict[str, RegistryClient] = {}

    # -- set-up -----------------------------------------------------------------------------
    def resolve_credentials(self) -> None:
        """Before touching anything: every selected registry's credentials (env vars must be set)."""
        for t in self.plan.targets:
            r = self.registries[t.registry]
            self.credentials[t.registry] = creds_mod.resolve(r.name, r.registry, r.username_env,
                                                             r.password_env, self.env)

    def client(self, name: str) -> RegistryClient:
        if name not in self.clients:
            r = self.registries[name]
            self.clients[name] = RegistryClient(r.registry, self.credentials[name], ca_file=r.ca_file,
                                                insecure=r.insecure)
        return self.clients[name]

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
        """Reuse the creation time of an earlier build of this same version.

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

    # -- push -------------------------------------------------------------------------------
    def _known_digests(self, image_id: str) -> set[str]:
        info = self.engine.inspect(image_id) or {}
        return {d.split("@", 1)[1] for d in info.get("RepoDigests") or [] if "@" in d}

    def _remote_digest(self, target: Target, tag: str) -> str | None:
        try:
            info = self.client(target.registry).head_manifest(target.repository, tag)
        except RegistryAPIError:
            return None
        return info.digest if info else None

    def _push_one(self, target: Target, tag: str, image_id: str, known: set[str]) -> RefResult:
        import tenacity

        ref = target.ref(tag)
        result = RefResult(target.registry, ref)
        start = time.monotonic()
        before = self._remote_digest(target, tag)
        if before and before in known:
            result.status, result.digest = ALREADY, before
            self.reporter.push_done(target.registry, ref, ALREADY, before)
            return result
        self.engine.tag(image_id, target.image, tag)
        creds = self.credentials[target.registry]
        auth = creds.auth_config(target.host)
        retry = self.config.retry

        def before_sleep(state):
            exc = state.outcome.exception()
            self.reporter.retrying(target.registry, ref, state.attempt_number, redact(str(exc)),
                                   state.next_action.sleep if state.next_action else 0)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(retry.attempts),
            wait=tenacity.wait_random_exponential(multiplier=0.5, max=retry.max_delay),
            retry=tenacity.retry_if_exception_type(PushTransientError),
            before_sleep=before_sleep, reraise=True)
        self.reporter.push_started(target.registry, ref)
        try:
            digest = retrying(self.engine.push, target.image, tag, auth,
                              lambda ev: self.reporter.push_progress(target.registry, ev))
        except PushAuthError as exc:
            result.status = FAILED
            result.error = (f"{exc.message} — credentials used: {creds.describe()}. "
                            f"Set username_env/password_env for '{target.registry}' in release.yml, "
                            f"or run `docker login {target.host}`")
        except PushError as exc:
            result.status = FAILED
            attempts = f" after {retry.attempts} attempts" if isinstance(exc, PushTransientError) else ""
            result.error = f"{exc.message}{attempts}"
        else:
            result.status = ALREADY if before == digest else PUSHED
            result.digest = digest
            known.add(digest)
        result.seconds = time.monotonic() - start
        self.reporter.push_done(target.registry, ref, result.status, result.digest)
        return result

    def _push_tags(self, target: Target, tags, image_id: str, known: set[str]) -> list[RefResult]:
        results = []
        for tag in tags:
            res = self._push_one(target, tag, image_id, known)
            results.append(res)
            if res.status == FAILED:
                # Leave the rest of this registry's tags alone; report them as skipped.
                results.extend(RefResult(target.registry, target.ref(t)) for t in tags[len(results):])
                break
        return results

    # -- verify -----------------------------------------------------------------------------
    def verify(self, report: Report) -> None:
        """Ask each registry (not the engine) what every reference resolves to."""
        expected = report.digest

        def check(res: RefResult) -> None:
            target = next(t for t in self.plan.targets if t.registry == res.registry)
            tag = res.ref.rsplit(":", 1)[1]
            try:
                info = self.client(res.registry).head_manifest(target.repository, tag)
            except RegistryAPIError as exc:
                report.errors.append(f"[{res.registry}] could not verify {res.ref}: {exc}")
                return
            if info is None:
                res.status = FAILED
                res.error = "not found on the registry after the push"
            elif info.digest != expected:
                res.status = FAILED
                res.error = f"registry holds {info.digest}, expected {expected}"
            res.digest = info.digest if info else res.digest

        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            list(pool.map(check, [r for r in report.results if r.status in (PUSHED, ALREADY)]))

    # -- the whole run ----------------------------------------------------------------------
    def run(self, *, build: bool) -> Report:
        report = Report(self.plan)
        self.resolve_credentials()
        if build:
            image_id = self.build()
        else:
            image_id = self.engine.require_image(self.plan.local_ref)
        report.image_id = image_id
        known = self._known_digests(image_id)
        targets = list(self.plan.targets)
        self.reporter.start(targets)
        try:
            with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                first = list(pool.map(lambda t: self._push_one(t, t.immutable, image_id, known), targets))
            report.results.extend(first)
            failed = [r for r in first if r.status == FAILED]
            if failed:
                names = ", ".join(r.registry for r in failed)
                report.errors.append(f"the immutable tag {self.plan.version} did not reach: {names}; "
                                     "no floating tag was moved on any registry")
                report.results.extend(RefResult(t.registry, t.ref(tag)) for t in targets for tag in t.floating)
                return report
            digests = {r.digest for r in first}
            if len(digests) != 1:
                report.errors.append("registries received different digests for the same image: "
                                     + ", ".join(f"{r.registry}={r.digest}" for r in first))
                return report
            report.digest = digests.pop()
            with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                rest = list(pool.map(lambda t: self._push_tags(t, list(t.floating), image_id, known),
                                     targets))
            for results in rest:
                report.results.extend(results)
        finally:
            self.reporter.stop()
        self.verify(report)
        return report
