"""What release.yml loads into: Config, with its ImageConfig, RegistryConfig and RetryConfig.

load_config (loader.py) builds them; everything after the loader reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from pipeline.errors import ConfigError, TagRuleError, UsageError
from pipeline.model.config.checks import did_you_mean
from pipeline.model.config.keys import (
    DEFAULT_ATTEMPTS,
    DEFAULT_DOCKERFILE,
    DEFAULT_INDEX_FORMAT,
    DEFAULT_MAX_DELAY,
)
from pipeline.model.tags import Flavor, TagRule


@dataclass(frozen=True)
class ImageConfig:
    name: str
    context: Path  # absolute
    dockerfile: str = DEFAULT_DOCKERFILE  # relative to context, as written in release.yml
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # os/arch[/variant] in release.yml order; () = the engine's own platform, one manifest
    platforms: tuple[str, ...] = ()
    index_format: str = DEFAULT_INDEX_FORMAT  # with several platforms: "oci" or "docker"
    builder: str = "auto"                   # auto | buildkit | classic (pipeline/engine/buildkit/)
    secrets: tuple = ()                     # buildkit.options.BuildSecret, for RUN --mount=type=secret
    cache_from: tuple = ()                  # buildkit.options.CacheEntry
    cache_to: tuple = ()                    # buildkit.options.CacheEntry (buildx specs only)


@dataclass(frozen=True)
class RegistryConfig:
    name: str
    type: str
    registry: str  # host[:port]
    repository: str
    username_env: str | None = None  # NAME of the env var, never the value
    password_env: str | None = None  # NAME of the env var, never the value
    ca_file: Path | None = None  # absolute
    ca_file_text: str | None = None  # as release.yml writes it (generated CI: a runner's paths differ)
    insecure: bool = False
    immutable: bool = True  # false: a version tag there may be replaced (with a note)
    line: int | None = None  # line of this entry in release.yml
    # `registry:` left out: `registry` is the type's default (for gitlab: $CI_REGISTRY at load
    # time, else registry.gitlab.com), so generated CI must not write it down.
    host_defaulted: bool = False
    # Per-type keys (TYPE_KEYS); names of env vars and files, never secrets.
    region: str | None = None  # ecr: only for a host that does not say (an alias)
    profile: str | None = None  # ecr: AWS shared-config profile
    role_arn: str | None = None  # ecr: role to assume first
    create_repository: bool = False  # ecr: create a missing repository before a push
    key_file: Path | None = None  # gcr: service-account JSON key (absolute)
    token_env: str | None = None  # ghcr: NAME of the env var holding the token
    # "username_env"/"password_env"/"token_env" -> "release.yml:LINE:COL" of the value, for
    # messages about an unset variable (pipeline/auth/lookup.py).
    key_locations: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def image_ref(self) -> str:
        return f"{self.registry}/{self.repository}"


@dataclass(frozen=True)
class RetryConfig:
    attempts: int = DEFAULT_ATTEMPTS
    max_delay: float = DEFAULT_MAX_DELAY


@dataclass(frozen=True)
class Config:
    path: Path  # absolute; errors name the file as the user gave it (display_path)
    image: ImageConfig
    tag_lines: list[str]
    tags: list[TagRule]
    flavor_lines: list[str]
    flavor: Flavor
    registries: list[RegistryConfig]
    retry: RetryConfig = RetryConfig()
    # ci.install: what the generated CI pip-installs to get release (pipeline/model/install_spec.py, pipeline/ci/install.py);
    # None: the default. Its line and column, for messages about it.
    ci_install: str | None = None
    ci_install_line: int | None = None
    ci_install_col: int | None = None
    # ("tags"|"flavor"|"registries", index) -> (line, col); empty for defaulted sections.
    _locations: dict[tuple[str, int], tuple[int, int]] = field(
        default_factory=dict, repr=False, compare=False)
    _display: str | None = field(default=None, repr=False, compare=False)

    @property
    def display_path(self) -> str:
        """The config path as the user gave it (for FILE:LINE:COL messages)."""
        return self._display or str(self.path)

    def registry(self, name: str) -> RegistryConfig:
        for reg in self.registries:
            if reg.name == name:
                return reg
        raise UsageError(
            f"no registry named {name} in {self.display_path}; known: {self._known_names}",
            hint=did_you_mean(name, [r.name for r in self.registries]),
        )

    def select(self, names: Iterable[str]) -> list[RegistryConfig]:
        """The registries called `names` in file order; all of them when `names` is empty."""
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return list(self.registries)
        known = {r.name for r in self.registries}
        unknown = [n for n in wanted if n not in known]
        if unknown:
            label = "registry named" if len(unknown) == 1 else "registries named"
            hint = did_you_mean(unknown[0], [r.name for r in self.registries])
            raise UsageError(
                f"no {label} {', '.join(unknown)} in {self.display_path}; "
                f"known: {self._known_names}",
                hint=hint,
            )
        chosen = set(wanted)
        return [r for r in self.registries if r.name in chosen]

    def location(self, section: str, index: int) -> tuple[int, int] | None:
        """(line, col) of tags[index] / flavor[index] / registries[index] in release.yml,
        or None when that section was not written in the file (defaults)."""
        return self._locations.get((section, index))

    def rule_error(self, exc: TagRuleError) -> ConfigError:
        """Turn a TagRuleError raised later (e.g. while deriving tags) into a located error."""
        section = exc.section or "tags"
        where = section if exc.index is None else f"{section}[{exc.index}]"
        loc = self.location(section, exc.index) if exc.index is not None else None
        if loc is None and exc.index is not None:
            where = f"default {where}"
        line, col = loc if loc else (None, None)
        return ConfigError(f"{where}: {exc.message}", file=self.display_path, line=line, col=col,
                           hint=exc.hint)

    @property
    def _known_names(self) -> str:
        return ", ".join(r.name for r in self.registries) or "(none)"
