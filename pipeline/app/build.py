"""Step 1 of a release: build the image (one per platform with image.platforms) on the Docker
Engine, labelled with the version, the commit and the source.

The engine is made the first time a build step needs it (`engine_factory`), so a run that
stops at the credentials or the pre-flight check never connects to it, and `promote` and
`manifest merge` never do.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import cached_property
from typing import Callable

from pipeline.app.ports import Reporter
from pipeline.app.registries import Registries
from pipeline.app.sourceinfo import revision as git_revision
from pipeline.app.sourceinfo import source_url
from pipeline.engine.client import BuildFailed, Engine
from pipeline.errors import ReleaseError
from pipeline.model.labels import oci_labels, reusable_created
from pipeline.model.plan import Plan
from pipeline.model.platforms import (
    Platform,
    dockerfile_has_scratch,
    emulation_problem,
    engine_is_local,
    parse_platform,
)


class ImageBuild:
    def __init__(self, config, plan: Plan, reporter: Reporter, registries: Registries, *,
                 env, engine=None, engine_factory: Callable[[], Engine] = Engine):
        self.config = config
        self.plan = plan
        self.reporter = reporter
        self.registries = registries
        self.env = env
        self._engine = engine
        self._engine_factory = engine_factory

    @cached_property
    def engine(self):
        """The Docker Engine: the one given, else made now (on first use)."""
        return self._engine if self._engine is not None else self._engine_factory()

    @cached_property
    def revision(self) -> str | None:
        """The git sha of the sources, asked once per run (it is a subprocess)."""
        return git_revision(self.config.path.parent, self.env)

    @cached_property
    def source(self) -> str | None:
        return source_url(self.config.path.parent, self.env)

    @cached_property
    def builder(self):
        """Builds every image of this run (pipeline/engine/buildkit/builder.py): BuildKit, or the
        classic builder when the engine has no BuildKit or release.yml asks for it."""
        # lazy: the BuildKit machinery (~12 ms of imports) only when this run builds; a re-run
        # or --no-build release never loads it
        from pipeline.engine.buildkit.builder import ImageBuilder
        return ImageBuilder(self.engine, self.config.image, self.reporter, env=self.env,
                            registry_for=self._registry_for_host)

    def _registry_for_host(self, host: str):
        """(client, credentials) for a cache image's registry: release.yml's entry for that
        host when there is one, so its credentials apply; else what `docker pull` would use."""
        return self.registries.for_host(host) or self.builder.registry_from_docker_config(host)

    def build(self) -> str:
        """The one image of a single-platform plan."""
        if self.plan.platform:
            self.check_emulation([self.plan.platform])
        return self.build_image(self.plan.local_ref, self.plan.platform)

    def build_image(self, ref: str, platform: str | None = None, created=None) -> str:
        """Build `ref`; for an explicit platform, check that the image really is for it."""
        image = self.config.image
        labels = oci_labels(version=self.plan.version, revision=self.revision, source=self.source,
                            created=created or self.created_label(ref), user=image.labels)
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
            raise BuildFailed(f"the engine built {ref} for {self._image_platform(image_id)}, "
                              f"not {platform}")
        return image_id

    def _image_platform(self, image_id: str) -> Platform:
        info = self.engine.inspect(image_id) or {}
        return Platform(info.get("Os") or "linux", info.get("Architecture") or "",
                        info.get("Variant") or None)

    def _built_platform_ok(self, image_id: str, platform: str) -> bool:
        return self._image_platform(image_id).matches(parse_platform(platform))

    def _platform_cache(self, ref: str, platform: str) -> dict:
        """Build-cache options that keep platforms apart.

        Engines before 25 match `FROM scratch` cache entries across platforms. For a
        Dockerfile with such a stage, use only this platform's previous build as the cache
        (cache_from: same image again when nothing changed), or no cache the first time.
        """
        image = self.config.image
        if not dockerfile_has_scratch(image.context / image.dockerfile, image.target):
            return {}
        if self.engine.image_id(ref) is not None and self._built_platform_ok(ref, platform):
            return {"cache_from": [ref]}
        return {"nocache": True}

    def check_emulation(self, platforms) -> None:
        """A RUN step for a foreign platform needs QEMU: say so before building."""
        if not engine_is_local(self.env):
            return          # the engine's kernel is elsewhere; a failing RUN still says why
        native = self.engine.platform()
        image = self.config.image
        problem = emulation_problem([parse_platform(p) for p in platforms], native,
                                    image.context / image.dockerfile, image.target)
        if problem:
            raise ReleaseError(problem[0], hint=problem[1])

    def created_label(self, ref: str | None = None, *more: str) -> datetime | str:
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
