"""The release plan: what will be built and pushed where, in which order. Pure data, no I/O.

Order is the safety rule of a release: the immutable tag (the full version)
goes to every selected registry first; floating tags (`1.2`, `1`, `latest`, ...)
move only once every registry holds the immutable tag.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.errors import UsageError
from pipeline.model.build_route import describe_route
from pipeline.model.tags.semver import parse_semver, precedence


@dataclass(frozen=True)
class Target:
    registry: str            # release.yml name
    type: str
    host: str
    repository: str
    immutable: str            # the version tag
    floating: tuple[str, ...]

    @property
    def image(self) -> str:
        return f"{self.host}/{self.repository}"

    def ref(self, tag: str) -> str:
        return f"{self.image}:{tag}"

    @property
    def tags(self) -> tuple[str, ...]:
        return (self.immutable, *self.floating)


@dataclass(frozen=True)
class BuildStep:
    context: str
    dockerfile: str
    target: str | None
    build_args: dict[str, str]
    local_ref: str
    builder: str = "auto"                     # image.builder
    secrets: tuple[str, ...] = ()             # secret ids (never values)
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        data = {"context": self.context, "dockerfile": self.dockerfile, "target": self.target,
                "build_args": sorted(self.build_args), "builder": self.builder}
        for key in ("secrets", "cache_from", "cache_to"):
            if getattr(self, key):
                data[key] = list(getattr(self, key))
        return data

    def describe_builder(self) -> str:
        """The plan's builder line; the engine is not asked, so `auto` says both outcomes."""
        return describe_route(self.builder, secrets=bool(self.secrets),
                              cache_from=self.cache_from, cache_to=self.cache_to)


@dataclass(frozen=True)
class Plan:
    version: str
    tags: tuple[str, ...]
    latest: bool
    local_ref: str
    latest_tag: str | None
    build: BuildStep | None
    targets: tuple[Target, ...] = field(default_factory=tuple)
    latest_if_highest: bool = False     # flavor latest=highest: decided per registry at push time
    platforms: tuple[str, ...] = ()     # image.platforms; () = the engine's own
    index_format: str = "oci"

    @property
    def multi_platform(self) -> bool:
        """Several platforms: one image each, pushed by digest, one index per registry."""
        return len(self.platforms) > 1

    @property
    def platform(self) -> str | None:
        """The one platform to pass to the build, when release.yml names exactly one."""
        return self.platforms[0] if len(self.platforms) == 1 else None

    def platform_ref(self, platform) -> str:
        """The local image of one platform: <name>:<version>-<os>-<arch>[-<variant>]."""
        return f"{self.local_ref}-{str(platform).replace('/', '-')}"

    def steps(self) -> list[dict]:
        """Every step in execution order (pushes inside one phase run in parallel)."""
        steps: list[dict] = []
        if self.multi_platform:
            for p in self.platforms:
                if self.build:
                    steps.append({"step": "build", "platform": p, "image": self.platform_ref(p),
                                  **self.build.to_dict()})
                else:
                    steps.append({"step": "use-local", "platform": p, "image": self.platform_ref(p)})
            steps.append({"step": "index", "format": self.index_format, "platforms": list(self.platforms),
                          "push": "each platform image by digest (no tag), then the index by digest"})
        elif self.build:
            steps.append({"step": "build", "image": self.local_ref, **self.build.to_dict()})
            if self.platform:
                steps[-1]["platform"] = self.platform
        else:
            steps.append({"step": "use-local", "image": self.local_ref})
        for t in self.targets:
            steps.append({"step": "push", "phase": "immutable", "registry": t.registry,
                          "ref": t.ref(t.immutable)})
        for t in self.targets:
            for tag in t.floating:
                steps.append({"step": "push", "phase": "floating", "registry": t.registry,
                              "ref": t.ref(tag)})
        steps.append({"step": "verify", "refs": [t.ref(tag) for t in self.targets for tag in t.tags]})
        return steps

    def to_dict(self) -> dict:
        data = {
            "version": self.version,
            "tags": list(self.tags),
            "latest": self.latest,
            "local_image": self.local_ref,
            "registries": {t.registry: [t.ref(tag) for tag in t.tags] for t in self.targets},
            "steps": self.steps(),
        }
        if self.platforms:
            data["platforms"] = list(self.platforms)
        if self.multi_platform:
            data["index_format"] = self.index_format
            data["local_images"] = {p: self.platform_ref(p) for p in self.platforms}
        return data


def make_plan(config, result, registries, *, build: bool = True) -> Plan:
    """Turn a config, a TagResult and the selected registries into a Plan."""
    if not result.tags or not result.version:
        raise UsageError(
            "the tag rules produced no tag for this version",
            hint="check `tags:` in release.yml with `release tags VERSION`; semver rules need a "
                 "version like 1.2.3")
    version = result.version
    floating = tuple(t for t in result.tags if t != version)
    local_ref = f"{config.image.name}:{version}"
    step = None
    if build:
        image = config.image
        step = BuildStep(context=str(image.context), dockerfile=image.dockerfile, target=image.target,
                         build_args=dict(image.build_args), local_ref=local_ref,
                         builder=getattr(image, "builder", "auto") or "auto",
                         secrets=tuple(s.id for s in getattr(image, "secrets", ())),
                         cache_from=tuple(c.text for c in getattr(image, "cache_from", ())),
                         cache_to=tuple(c.text for c in getattr(image, "cache_to", ())))
    targets = tuple(Target(registry=r.name, type=r.type, host=r.registry, repository=r.repository,
                           immutable=version, floating=floating) for r in registries)
    return Plan(version=version, tags=(version, *floating), latest=result.latest, local_ref=local_ref,
                latest_tag=result.tags[-1] if result.latest else None, build=step, targets=targets,
                latest_if_highest=getattr(result, "latest_if_highest", False),
                platforms=tuple(getattr(config.image, "platforms", ()) or ()),
                index_format=getattr(config.image, "index_format", "oci") or "oci")


INDEX_NAMES = {"oci": "OCI image index", "docker": "Docker manifest list"}


def format_plan(plan: Plan) -> str:
    lines = [f"version {plan.version}  tags: {', '.join(plan.tags)}"]
    if plan.multi_platform:
        if plan.build:
            target = f" (target {plan.build.target})" if plan.build.target else ""
            lines.append(f"1. build {len(plan.platforms)} platforms from "
                         f"{plan.build.context}/{plan.build.dockerfile}{target}, one build each")
            lines.append(f"     {plan.build.describe_builder()}")
        else:
            lines.append(f"1. use the local images of {len(plan.platforms)} platforms (--no-build)")
        lines += [f"     {p:<14} {plan.platform_ref(p)}" for p in plan.platforms]
        name = INDEX_NAMES.get(plan.index_format, plan.index_format)
        lines.append(f"2. push each platform image by digest (no tag) and one {name} of them, "
                     f"then the immutable tag {plan.version} on the index (registries in parallel)")
    else:
        if plan.build:
            target = f" (target {plan.build.target})" if plan.build.target else ""
            platform = f" for {plan.platform}" if plan.platform else ""
            lines.append(f"1. build {plan.local_ref}{platform} from "
                         f"{plan.build.context}/{plan.build.dockerfile}{target}")
            lines.append(f"     {plan.build.describe_builder()}")
        else:
            lines.append(f"1. use the local image {plan.local_ref} (--no-build)")
        lines.append(f"2. push the immutable tag {plan.version} (registries in parallel)")
    lines += [f"     [{t.registry}] {t.ref(t.immutable)}" for t in plan.targets]
    if any(t.floating for t in plan.targets):
        lines.append("3. move the floating tags, only once step 2 succeeded on every registry")
        lines += [f"     [{t.registry}] {t.ref(tag)}" for t in plan.targets for tag in t.floating]
    else:
        lines.append("3. no floating tags for this version")
    lines.append("4. verify that every reference resolves to the same digest on its registry")
    return "\n".join(lines)


def floating_moves(version: str, held: str | None) -> bool:
    """Does a floating tag that points at an image of version `held` move to `version`?

    Only forward: `1` on 1.3.0 does not go back to 1.2.5 (a backport, or a re-run of an
    older release). When either side is not a semantic version (`held` unknown: no label,
    no version tag) it moves, as it always did.
    """

    mine = parse_semver(version)
    theirs = parse_semver(held) if held else None
    if mine is None or theirs is None:
        return True
    return precedence(mine) >= precedence(theirs)
