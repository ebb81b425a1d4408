"""What the steps of one release share: the plan, the registries, the reporter, and what the
registries were found to hold (so no step asks twice)."""

from __future__ import annotations

from pipeline.app.ports import RegistryAPI, Reporter
from pipeline.app.registries import Registries
from pipeline.model.plan import Plan, Target
from pipeline.registry.errors import RegistryAPIError
from pipeline.registry.manifest import ManifestError, parse_manifest


class RunState:
    def __init__(self, config, plan: Plan, reporter: Reporter, registries: Registries, *,
                 jobs: int = 4, force: bool = False):
        """`force`: replace an existing version, move floating tags backwards."""
        self.config = config
        self.plan = plan
        self.reporter = reporter
        self.registries = registries
        self.jobs = max(1, jobs)
        self.force = force
        self.manifests: dict[str, bytes] = {}      # digest -> bytes we read or wrote this run
        self.current_tags: dict[tuple[str, str], str | None] = {}   # (registry, tag) -> digest

    def client(self, name: str) -> RegistryAPI:
        return self.registries.client(name)

    def manifest(self, target: Target, digest: str) -> bytes:
        """The bytes of manifest `digest`: written or read earlier in this run, else GET from
        `target`'s registry (RegistryAPIError when it cannot)."""
        body = self.manifests.get(digest)
        if body is None:
            body, _ = self.client(target.registry).get_manifest(target.repository, digest)
        return body

    def tag_manifest(self, target: Target):
        """(bytes, info, parsed) of what the immutable tag holds now, or None when it is
        absent, unreachable or refused (the push itself will say why)."""
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
