"""Load and validate release.yml (schema version 1).

Every problem becomes a ConfigError located as FILE:LINE:COL (1-based) at the offending
key or value, so editors and CI logs can jump to it. The loader checks the whole file and
raises the problem that comes first in the file; the others are on the exception's
`errors` attribute (a list of ConfigError in file order, the raised one first), and the CLI
prints them all (pipeline.errors.format_errors).

Messages never echo values of keys that look like secrets, nor a `*_env` value that does not
look like the name of an environment variable (env_name_is_plausible).

Limits: the file is at most MAX_CONFIG_BYTES (checked before YAML parsing); retry.attempts
1..MAX_ATTEMPTS, retry.max_delay in (0, MAX_MAX_DELAY] seconds; tag rules' regexes that can
backtrack catastrophically are refused (pipeline/model/tags/jsregex.py).
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pipeline.errors import ConfigError, TagRuleError, UsageError
from pipeline.model.config.yamlpos import (
    TAG_BOOL,
    TAG_FLOAT,
    TAG_INT,
    TAG_NULL,
    TAG_STR,
    Values,
    compose,
    describe,
    error_position,
    find_duplicate_keys,
    offset_position,
    position,
)

if TYPE_CHECKING:  # pipeline.model.tags is written in parallel; import it lazily at run time
    from pipeline.model.tags import Flavor, TagRule

SCHEMA_VERSION = 1

TOP_KEYS = ("version", "image", "tags", "flavor", "registries", "retry", "ci")
TOP_REQUIRED = ("image", "registries")
IMAGE_KEYS = ("name", "context", "dockerfile", "build_args", "target", "labels", "platforms",
              "index_format", "builder", "secrets", "cache_from", "cache_to")
IMAGE_REQUIRED = ("name",)
REGISTRY_KEYS = ("name", "type", "registry", "repository", "username_env", "password_env",
                 "ca_file", "insecure", "immutable", "region", "profile", "role_arn",
                 "create_repository", "key_file", "token_env")
# `registry` is required too, except for the types in DEFAULT_REGISTRY_HOSTS.
REGISTRY_REQUIRED = ("name", "repository")
RETRY_KEYS = ("attempts", "max_delay")
CI_KEYS = ("install",)  # `release ci generate` (pipeline/ci/install.py)
# ci.install as pipeline/model/config/schema.py can say it (the loader also checks the form, and what
# leads out of the repository): not empty, not an absolute path, not ../, not a pip option.
CI_INSTALL_PATTERN = r"^\s*(?![/\\~-]|[A-Za-z]:[/\\]|\.\.(?:[/\\]|$))\S"
REGISTRY_TYPES = ("generic", "dockerhub", "ecr", "gcr", "acr", "ghcr", "gitlab")
# Keys that only mean something for some registry types (pipeline/auth/cloud/).
TYPE_KEYS = {"region": ("ecr",), "profile": ("ecr",), "role_arn": ("ecr",),
             "create_repository": ("ecr",), "key_file": ("gcr",), "token_env": ("ghcr",)}
# `registry:` may be left out for these; gitlab: $CI_REGISTRY when set at load time.
DEFAULT_REGISTRY_HOSTS = {"dockerhub": "docker.io", "ghcr": "ghcr.io",
                          "gitlab": "registry.gitlab.com"}
AWS_REGION_PATTERN = r"^[a-z]{2,}(?:-[a-z]+)+-[0-9]+$"
ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$"

INDEX_FORMATS = ("oci", "docker")  # OCI image index / Docker manifest list (pipeline/app/index.py)
DEFAULT_INDEX_FORMAT = "oci"
DEFAULT_CONTEXT = "."
DEFAULT_DOCKERFILE = "Dockerfile"
DEFAULT_REGISTRY_TYPE = "generic"
DEFAULT_ATTEMPTS = 5
DEFAULT_MAX_DELAY = 30.0
MAX_ATTEMPTS = 20        # more only hides a registry that is down
MAX_MAX_DELAY = 600.0    # seconds; a longer wait between two tries looks like a hang
MAX_CONFIG_BYTES = 1_048_576  # release.yml is refused above 1 MB, before it is parsed
MAX_REPOSITORY_LENGTH = 255
MAX_HOST_LENGTH = 253

# Shared with pipeline/model/config/schema.py, so they are written to mean the same in Python and ECMA 262.
PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
REPOSITORY_PATTERN = rf"^{PATH_COMPONENT}(?:/{PATH_COMPONENT})*$"
REGISTRY_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
BUILD_ARG_NAME_PATTERN = r"^[^=\s]+$"
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PORT = (r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}"
         r"|[1-9][0-9]{0,3})")
# Looser than the Python check below (which also validates IP addresses and lengths).
REGISTRY_HOST_PATTERN = (rf"^(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[0-9A-Fa-f:.]+\])"
                         rf"(?::{_PORT})?$")

_REPOSITORY_RE = re.compile(REPOSITORY_PATTERN)
_REGISTRY_NAME_RE = re.compile(REGISTRY_NAME_PATTERN)
_AWS_REGION_RE = re.compile(AWS_REGION_PATTERN)
_ROLE_ARN_RE = re.compile(ROLE_ARN_PATTERN)
_BUILD_ARG_NAME_RE = re.compile(BUILD_ARG_NAME_PATTERN)
_HOST_LABEL_RE = re.compile(rf"^{_HOST_LABEL}$")
_SECRET_KEY_RE = re.compile(
    r"passw(?:or)?d|token|secret|credential|api[_-]?key|private[_-]?key|^pass$|^pwd$|^auth$",
    re.IGNORECASE,
)

SECRET_HINT = "put the secret in an environment variable and name it with password_env"
ENV_KEY_HINTS = {
    "username_env": "put the user name in an environment variable and name it with "
                    "username_env",
    "password_env": SECRET_HINT,
    "token_env": SECRET_HINT.replace("password_env", "token_env"),
    "env": "write the variable's NAME, e.g. env: NPM_TOKEN",
}
ENV_NAME_RULE = ("a name is letters, digits and '_', not starting with a digit; one that mixes "
                 "upper and lower case with digits, or has 20 letters and digits in a row, "
                 "counts as a secret unless such a variable is set")
QUOTE_HINT = "quote the value to make it a string"
NOT_FOUND_HINT = "create one (see README: release.yml reference) or pass -c PATH"

_REQUIRED_HINTS = {
    "image": "add an image: section with at least `name: myapp`",
    "registries": "add a registries: list with at least one `- name: ..., registry: ..., "
                  "repository: ...` entry",
    "image.name": "add `name: myapp` (the local image name) under image:",
    "name": "give the registry a unique name, e.g. `name: local`",
    "registry": "add the registry host, e.g. `registry: localhost:5000`",
    "repository": "add the repository path, e.g. `repository: team/myapp`",
}


# ---------------------------------------------------------------------------- data


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
    # ci.install: what the generated CI pip-installs to get release (pipeline/ci/install.py);
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
            hint=_did_you_mean(name, [r.name for r in self.registries]),
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
            hint = _did_you_mean(unknown[0], [r.name for r in self.registries])
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


# ---------------------------------------------------------------------------- loading


def load_config(path: str | os.PathLike[str], *, build: bool = True) -> Config:
    """Read, parse and validate release.yml. Raises ConfigError (FILE:LINE:COL).

    `build=False` is for commands that never build (tags, promote, prune, registry chores,
    manifest merge, login): the build context and Dockerfile need not exist on this machine.
    """
    file = os.fspath(path)
    try:
        text = _read(file)
        try:
            root = compose(text)
        except yaml.YAMLError as exc:
            line, col = error_position(exc, text)
            raise ConfigError(_yaml_message(exc), file=file, line=line, col=col,
                              hint=_yaml_hint(exc)) from None
        return _Loader(file, check_build_files=build).load(root)
    except ConfigError as exc:
        if not hasattr(exc, "errors"):
            exc.errors = [exc]  # type: ignore[attr-defined]
        raise


def _read(file: str) -> str:
    try:
        with open(file, "rb") as stream:
            # Never more than the limit (+1 to notice): a huge file is refused before YAML
            # parsing, which takes seconds per megabyte.
            raw = stream.read(MAX_CONFIG_BYTES + 1)
            if len(raw) > MAX_CONFIG_BYTES:
                try:
                    total = os.fstat(stream.fileno()).st_size
                except OSError:  # pragma: no cover
                    total = 0
                size = f"{total:,} bytes" if total > MAX_CONFIG_BYTES else "larger"
                raise ConfigError(
                    f"release.yml is too large ({size}); the limit is 1 MB "
                    f"({MAX_CONFIG_BYTES:,} bytes)", file=file,
                    hint="release.yml holds settings only; check that -c names the right file")
    except FileNotFoundError:
        raise ConfigError(f"release.yml not found at {file}", file=file,
                          hint=NOT_FOUND_HINT) from None
    except IsADirectoryError:
        raise ConfigError(f"{file} is a directory, not a release.yml file", file=file,
                          hint="pass the path of the file itself with -c PATH") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror or exc}", file=file) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        prefix = raw[: exc.start].decode("utf-8", errors="replace")
        line, col = offset_position(prefix, len(prefix))
        raise ConfigError("release.yml is not valid UTF-8 text", file=file, line=line, col=col,
                          hint="save the file as UTF-8") from None


def _yaml_message(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if problem:
        text = f"invalid YAML: {problem}"
        if context:
            text += f" ({context})"
        return text
    return f"invalid YAML: {exc}"


def _yaml_hint(exc: yaml.YAMLError) -> str | None:
    problem = getattr(exc, "problem", None) or ""
    if "'\\t'" in problem:
        return "YAML does not allow tabs for indentation; use spaces"
    if "expected a single document" in (getattr(exc, "context", None) or "") or \
            "expected a single document" in problem:
        return "release.yml holds one YAML document; remove the extra '---'"
    return None


class _Loader:
    """Walks the composed node graph, collecting ConfigErrors in file order."""

    def __init__(self, file: str, *, check_build_files: bool = True) -> None:
        self.file = file
        self.check_build_files = check_build_files
        self.base = Path(os.path.abspath(file)).parent
        self.values = Values()
        self.errors: list[ConfigError] = []
        self.locations: dict[tuple[str, int], tuple[int, int]] = {}

    # -- error helpers

    def error(self, at: Node | tuple[int, int], message: str, hint: str | None = None) -> None:
        line, col = position(at) if isinstance(at, Node) else at
        self.errors.append(ConfigError(message, file=self.file, line=line, col=col, hint=hint))

    def raise_first(self) -> None:
        if not self.errors:
            return
        ordered = sorted(self.errors, key=lambda e: (e.line or 0, e.col or 0))
        first = ordered[0]
        first.errors = ordered  # type: ignore[attr-defined]
        raise first

    # -- the file

    def load(self, root: Node | None) -> Config:
        if root is None:
            self.error((1, 1), "release.yml is empty",
                       hint="add image: and registries: (see README: release.yml reference)")
            self.raise_first()
        if not isinstance(root, MappingNode):
            self.error((1, 1), f"release.yml must be a mapping of keys (image:, registries:, "
                               f"...), got {describe(root)}")
            self.raise_first()

        for dup in find_duplicate_keys(root):
            first_line = position(dup.first)[0]
            self.error(dup.second, f"duplicate key '{dup.key}' (first defined on line "
                                   f"{first_line})",
                       hint="YAML keeps only the last value; remove one of them")

        top = self.mapping(root, "", TOP_KEYS, TOP_REQUIRED)
        if top is None:
            self.raise_first()
        assert top is not None

        if "version" in top:
            self.version(top["version"][1])

        image = self.image(*top["image"]) if "image" in top else None
        tag_lines, tags = self.tags(top.get("tags"))
        flavor_lines, flavor = self.flavor(top.get("flavor"))
        registries = self.registries(top["registries"][1]) if "registries" in top else None
        retry = self.retry(*top["retry"]) if "retry" in top else RetryConfig()
        ci_install, ci_at = self.ci(*top["ci"]) if "ci" in top else (None, None)

        self.raise_first()
        assert image is not None and registries is not None and retry is not None
        return Config(
            path=Path(os.path.abspath(self.file)),
            image=image,
            tag_lines=tag_lines,
            tags=tags,
            flavor_lines=flavor_lines,
            flavor=flavor,
            registries=registries,
            retry=retry,
            ci_install=ci_install,
            ci_install_line=ci_at[0] if ci_at else None,
            ci_install_col=ci_at[1] if ci_at else None,
            _locations=dict(self.locations),
            _display=self.file,
        )

    # -- generic shapes

    def mapping(self, node: Node, where: str, known: tuple[str, ...],
                required: tuple[str, ...], *, at: Node | None = None
                ) -> dict[str, tuple[Node, Node]] | None:
        """Known (key node, value node) entries of a fixed-schema mapping, or None if `node`
        is not a mapping. Reports unknown keys, secrets and missing required keys; the
        latter at `at` (the key that names the mapping) or else at the mapping itself."""
        label = where or "release.yml"
        if not isinstance(node, MappingNode):
            self.error(node, f"{label} must be a mapping, got {describe(node)}",
                       hint="indent its keys under it" if _is_null(node) else None)
            return None
        pairs = self.pairs(node)
        if pairs is None:
            return None
        entries: dict[str, tuple[Node, Node]] = {}
        misspelled: set[str] = set()  # known keys that an unknown key is a typo of
        for key_node, value_node in pairs:
            if not isinstance(key_node, ScalarNode):
                self.error(key_node, f"keys in {label} must be strings, got {describe(key_node)}")
                continue
            key = key_node.value
            if key in known:
                entries[key] = (key_node, value_node)
            elif _looks_secret(key):
                self.error(key_node, f"'{_join(where, key)}' looks like a secret; release.yml "
                                     f"must not contain passwords, tokens or other secrets",
                           hint=SECRET_HINT)
            else:
                hint = _unknown_key_hint(key, where, known)
                self.error(key_node, f"unknown key '{key}' in {label}", hint=hint)
                misspelled.update(k for k in known if hint == f"did you mean '{k}'?")
        for key in required:
            if key not in entries and key not in misspelled:  # a typo is reported once
                full = _join(where, key)
                self.error(at or node, f"{full} is required",
                           hint=_REQUIRED_HINTS.get(full) or _REQUIRED_HINTS.get(key))
        return entries

    def pairs(self, node: MappingNode) -> list[tuple[Node, Node]] | None:
        try:
            return self.values.pairs(node)
        except yaml.YAMLError as exc:
            line, col = error_position(exc)
            at = (line, col) if line is not None else position(node)
            self.error(at, _yaml_message(exc))  # type: ignore[arg-type]
            return None

    def string(self, node: Node, where: str) -> str | None:
        """A non-empty string scalar (the value is never echoed: it may be a secret)."""
        if not (isinstance(node, ScalarNode) and node.tag == TAG_STR):
            hint = _null_hint(node) or (QUOTE_HINT if isinstance(node, ScalarNode) else None)
            self.error(node, f"{where} must be a string, got {describe(node)}", hint=hint)
            return None
        if node.value == "":
            self.error(node, f"{where} must not be empty",
                       hint=f"remove {where.rsplit('.', 1)[-1]} to use the default"
                       if where in _OPTIONAL_WITH_DEFAULT else None)
            return None
        return node.value

    def env_name(self, node: Node, where: str, key: str) -> str | None:
        """A `*_env` value: the NAME of an environment variable. Anything else is refused
        without being echoed, since it may be the secret itself."""
        text = self.string(node, where)
        if text is not None and not env_name_is_plausible(text):
            self.error(node, f"{where} must name an environment variable; the value looks "
                             f"like a secret (not shown)",
                       hint=f"{ENV_KEY_HINTS.get(key, ENV_KEY_HINTS['env'])} ({ENV_NAME_RULE})")
            return None
        return text

    def boolean(self, node: Node, where: str) -> bool | None:
        if not (isinstance(node, ScalarNode) and node.tag == TAG_BOOL):
            self.error(node, f"{where} must be true or false, got {describe(node)}",
                       hint="write true or false without quotes"
                       if isinstance(node, ScalarNode) and node.tag == TAG_STR else None)
            return None
        return bool(self.scalar(node, where))

    def scalar(self, node: ScalarNode, where: str) -> Any:
        try:
            return self.values.scalar(node)
        except yaml.YAMLError as exc:
            self.error(node, f"{where}: {_yaml_message(exc)}")
            return None

    def string_map(self, node: Node, where: str, *, arg_names: bool = False
                   ) -> dict[str, str] | None:
        """A mapping of strings; numbers, booleans and dates keep the text written in YAML
        (`1.10` stays "1.10", `true` stays "true")."""
        if not isinstance(node, MappingNode):
            self.error(node, f"{where} must be a mapping of strings, got {describe(node)}",
                       hint=_null_hint(node) or
                       f"write it as {where.rsplit('.', 1)[-1]}: {{KEY: value}}")
            return None
        pairs = self.pairs(node)
        if pairs is None:
            return None
        result: dict[str, str] = {}
        for key_node, value_node in pairs:
            if not isinstance(key_node, ScalarNode) or key_node.tag == TAG_NULL \
                    or key_node.value == "":
                self.error(key_node, f"keys in {where} must be non-empty strings, "
                                     f"got {describe(key_node)}")
                continue
            key = key_node.value
            if arg_names and not _BUILD_ARG_NAME_RE.match(key):
                self.error(key_node, f"build arg name '{key}' must not contain '=' or spaces")
                continue
            if not isinstance(value_node, ScalarNode) or value_node.tag == TAG_NULL:
                self.error(value_node, f"{where} must be a mapping of strings, but "
                                       f"{where}.{key} is {describe(value_node)}",
                           hint='use "" for an empty value'
                           if value_node.tag == TAG_NULL else None)
                continue
            result[key] = value_node.value
        return result

    # -- sections

    def version(self, node: Node) -> None:
        if isinstance(node, ScalarNode) and node.tag == TAG_INT:
            value = self.scalar(node, "version")
            if value != SCHEMA_VERSION:
                self.error(node, f"unsupported release.yml version {node.value}; this release "
                                 f"understands version {SCHEMA_VERSION}",
                           hint="upgrade release, or write the file for version: 1")
            return
        self.error(node, f"version must be the integer {SCHEMA_VERSION}, got {describe(node)}",
                   hint="write `version: 1` (an unquoted integer)")

    def image(self, key_node: Node, node: Node) -> ImageConfig | None:
        entries = self.mapping(node, "image", IMAGE_KEYS, IMAGE_REQUIRED, at=key_node)
        if entries is None:
            return None
        ok = True

        name = None
        if "name" in entries:
            name = self.string(entries["name"][1], "image.name")
            if name is not None and not self.repository_name(entries["name"][1], name,
                                                             "image.name"):
                name = None
        ok &= name is not None

        context_node = entries.get("context", (None, None))[1]
        context: Path | None = None
        if context_node is not None:
            text = self.string(context_node, "image.context")
            if text is not None:
                context = self.resolve(text)
                if not self.check_build_files:
                    pass
                elif not context.exists():
                    self.error(context_node, f"image.context directory not found: {text} "
                                             f"(looked in {context})",
                               hint="image.context is relative to the directory of release.yml")
                    context = None
                elif not context.is_dir():
                    self.error(context_node, f"image.context is not a directory: {text}",
                               hint="image.context is the build context directory; point "
                                    "image.dockerfile at the Dockerfile")
                    context = None
        else:
            context = self.resolve(DEFAULT_CONTEXT)
        ok &= context is not None

        dockerfile_node = entries.get("dockerfile", (None, None))[1]
        dockerfile: str | None = DEFAULT_DOCKERFILE
        if dockerfile_node is not None:
            dockerfile = self.string(dockerfile_node, "image.dockerfile")
        if dockerfile is not None and context is not None and self.check_build_files:
            full = context / os.path.expanduser(dockerfile)
            if not full.is_file():
                at = dockerfile_node or context_node or key_node
                what = "not found" if not full.exists() else "is not a file"
                self.error(at, f"image.dockerfile {what}: {dockerfile} (in context {context})",
                           hint="image.dockerfile is relative to image.context"
                           if dockerfile_node is not None else
                           "add the Dockerfile, or set image.dockerfile to its path relative "
                           "to image.context")
                dockerfile = None
        ok &= dockerfile is not None

        build_args: dict[str, str] | None = {}
        if "build_args" in entries:
            build_args = self.string_map(entries["build_args"][1], "image.build_args",
                                         arg_names=True)
        ok &= build_args is not None

        target = None
        if "target" in entries:
            target = self.string(entries["target"][1], "image.target")
            ok &= target is not None

        labels: dict[str, str] | None = {}
        if "labels" in entries:
            labels = self.string_map(entries["labels"][1], "image.labels")
        ok &= labels is not None

        platforms: tuple[str, ...] | None = ()
        if "platforms" in entries:
            platforms = self.platforms(entries["platforms"][1])
        ok &= platforms is not None

        index_format: str | None = DEFAULT_INDEX_FORMAT
        if "index_format" in entries:
            index_format = self.string(entries["index_format"][1], "image.index_format")
            if index_format is not None and index_format not in INDEX_FORMATS:
                self.error(entries["index_format"][1],
                           f"image.index_format must be one of {', '.join(INDEX_FORMATS)}, "
                           f"got '{index_format}'",
                           hint=_did_you_mean(index_format, INDEX_FORMATS)
                           or "oci: an OCI image index (default); docker: a Docker manifest list")
                index_format = None
        ok &= index_format is not None

        build = self.build_options(entries)
        ok &= build is not None

        if not ok:
            return None
        assert name is not None and context is not None and dockerfile is not None
        assert build_args is not None and labels is not None
        assert platforms is not None and index_format is not None and build is not None
        return ImageConfig(name=name, context=context, dockerfile=dockerfile,
                           build_args=build_args, target=target, labels=labels,
                           platforms=platforms, index_format=index_format, **build)

    def build_options(self, entries: dict[str, tuple[Node, Node]]) -> dict | None:
        """image.builder, image.secrets, image.cache_from, image.cache_to."""
        from pipeline.engine.buildkit.options import (
            BUILDERS,
            OptionError,
            parse_cache_entry,
            relative_to,
        )

        result: dict = {}
        ok = True
        if "builder" in entries:
            node = entries["builder"][1]
            builder = self.string(node, "image.builder")
            if builder is not None and builder not in BUILDERS:
                self.error(node, f"image.builder must be one of {', '.join(BUILDERS)}, got "
                                 f"'{builder}'",
                           hint=_did_you_mean(builder, BUILDERS) or
                           "auto: BuildKit when the engine has it (default); classic: the "
                           "legacy builder")
                builder = None
            ok &= builder is not None
            result["builder"] = builder
        if "secrets" in entries:
            secrets = self.secrets(entries["secrets"][1])
            ok &= secrets is not None
            result["secrets"] = secrets
        for key in ("cache_from", "cache_to"):
            if key not in entries:
                continue
            lines = self.rule_list(entries[key][1], f"image.{key}", allow_empty=True)
            if lines is None:
                ok = False
                continue
            parsed = []
            for item, text in zip(entries[key][1].value, lines):
                try:
                    parsed.append(relative_to(parse_cache_entry(text, sink=key == "cache_to"),
                                              self.base))
                except OptionError as exc:
                    self.error(item, f"image.{exc.message}" if exc.message.startswith(key)
                               else exc.message, hint=exc.hint)
                    ok = False
            result[key] = tuple(parsed)
        return result if ok else None

    def secrets(self, node: Node) -> tuple | None:
        """image.secrets: [{id: ID, env: VAR} | {id: ID, file: PATH}, ...]."""
        from pipeline.engine.buildkit.options import BuildSecret, OptionError, check_secret_id

        if not isinstance(node, SequenceNode):
            self.error(node, f"image.secrets must be a list, got {describe(node)}",
                       hint="e.g. secrets: [{id: npmrc, env: NPM_TOKEN}, {id: key, file: key.pem}]")
            return None
        result, seen, ok = [], {}, True
        for i, item in enumerate(node.value):
            where = f"image.secrets[{i}]"
            before = len(self.errors)
            entries = self.mapping(item, where, ("id", "env", "file"), ("id",))
            if entries is None or len(self.errors) > before:   # a typo: reported once, there
                ok = False
                continue
            secret_id = self.string(entries["id"][1], f"{where}.id") if "id" in entries else None
            try:
                if secret_id is not None:
                    check_secret_id(secret_id)
            except OptionError as exc:
                self.error(entries["id"][1], exc.message, hint=exc.hint)
                secret_id = None
            if secret_id is not None and secret_id in seen:
                self.error(entries["id"][1], f"secret id '{secret_id}' is listed twice (first on "
                                             f"line {seen[secret_id]})", hint="remove one of them")
                secret_id = None
            if secret_id is not None:
                seen[secret_id] = position(entries["id"][1])[0]
            if ("env" in entries) == ("file" in entries):
                self.error(item, f"{where} needs exactly one of env: or file:",
                           hint="env: the NAME of an environment variable holding the secret; "
                                "file: a path relative to release.yml")
                ok = False
                continue
            env = path = None
            if "env" in entries:
                env = self.env_name(entries["env"][1], f"{where}.env", "env")
                ok &= env is not None
            else:
                text = self.string(entries["file"][1], f"{where}.file")
                if text is not None:
                    path = self.resolve(text)
                    if self.check_build_files and not path.is_file():
                        self.error(entries["file"][1],
                                   f"{where}.file not found: {text} (looked in {path})",
                                   hint="secret files are relative to the directory of release.yml")
                        path = None
                ok &= path is not None
            if secret_id is None:
                ok = False
            if ok:
                result.append(BuildSecret(secret_id, env=env, file=path))
        return tuple(result) if ok else None

    def platforms(self, node: Node) -> tuple[str, ...] | None:
        """image.platforms: a non-empty list of distinct os/arch[/variant] strings."""
        from pipeline.model.platforms import PlatformError, parse_platform

        if not isinstance(node, SequenceNode) or not node.value:
            self.error(node, f"image.platforms must be a non-empty list of platforms, got "
                             f"{describe(node)}",
                       hint=_null_hint(node) or "e.g. platforms: [linux/amd64, linux/arm64]; "
                                                "remove the key to build the engine's own platform")
            return None
        seen: dict = {}
        ok = True
        for item in node.value:
            text = self.string(item, "image.platforms[]")
            if text is None:
                ok = False
                continue
            try:
                platform = parse_platform(text)
            except PlatformError as exc:
                self.error(item, f"image.platforms: {exc.message}", hint=exc.hint)
                ok = False
                continue
            same = next((p for p in seen if p.matches(platform)), None)
            if same is not None:
                self.error(item, f"image.platforms lists {text} twice (same as {seen[same]})",
                           hint="remove one of them")
                ok = False
                continue
            seen[platform] = text
        return tuple(str(p) for p in seen) if ok else None

    def rule_list(self, node: Node, section: str, *, allow_empty: bool) -> list[str] | None:
        if not isinstance(node, SequenceNode):
            hint = f"write one rule per list item:\n    {section}:\n      - ..."
            if isinstance(node, ScalarNode) and node.tag == TAG_NULL:
                hint = f"remove {section}: to use the defaults, or list at least one rule"
            self.error(node, f"{section} must be a list of strings, got {describe(node)}",
                       hint=hint)
            return None
        if not node.value and not allow_empty:
            self.error(node, f"{section} must not be empty",
                       hint=f"remove {section}: to use the default rules")
            return None
        lines: list[str] = []
        ok = True
        for i, item in enumerate(node.value):
            self.locations[(section, i)] = position(item)
            text = self.string(item, f"{section}[{i}]")
            if text is None:
                ok = False
            else:
                lines.append(text)
        return lines if ok else None

    def tags(self, entry: tuple[Node, Node] | None) -> tuple[list[str], list[Any]]:
        from pipeline.model.tags import DEFAULT_TAG_LINES, parse_tag_rule

        if entry is None:
            lines = list(DEFAULT_TAG_LINES)
            return lines, [parse_tag_rule(line, i) for i, line in enumerate(lines)]
        node = entry[1]
        lines = self.rule_list(node, "tags", allow_empty=False)
        if lines is None:
            return [], []
        rules = []
        for i, line in enumerate(lines):
            try:
                rules.append(parse_tag_rule(line, i))
            except TagRuleError as exc:
                self.error(node.value[i], f"tags[{i}]: {exc.message}", hint=exc.hint)
        return lines, rules

    def flavor(self, entry: tuple[Node, Node] | None) -> tuple[list[str], Any]:
        from pipeline.model.tags import DEFAULT_FLAVOR_LINES, parse_flavor

        if entry is None:
            lines = list(DEFAULT_FLAVOR_LINES)
            return lines, parse_flavor(lines)
        key_node, node = entry
        lines = self.rule_list(node, "flavor", allow_empty=True)
        if lines is None:
            return [], None
        try:
            return lines, parse_flavor(lines)
        except TagRuleError as exc:
            index = exc.index
            if index is not None and 0 <= index < len(node.value):
                self.error(node.value[index], f"flavor[{index}]: {exc.message}", hint=exc.hint)
            else:
                self.error(key_node, f"flavor: {exc.message}", hint=exc.hint)
            return lines, None

    def registries(self, node: Node) -> list[RegistryConfig] | None:
        if not isinstance(node, SequenceNode):
            self.error(node, f"registries must be a list of registries, got {describe(node)}",
                       hint="write each registry as a list item: `- name: local`")
            return None
        if not node.value:
            self.error(node, "registries must list at least one registry",
                       hint="add `- name: ..., registry: ..., repository: ...`")
            return None
        result: list[RegistryConfig] = []
        ok = True
        first_by_name: dict[str, tuple[int, int]] = {}
        for i, item in enumerate(node.value):
            self.locations[("registries", i)] = position(item)
            reg = self.registry(item, i, first_by_name)
            if reg is None:
                ok = False
            else:
                result.append(reg)
        return result if ok else None

    def registry(self, node: Node, i: int, first_by_name: dict[str, tuple[int, int]]
                 ) -> RegistryConfig | None:
        where = f"registries[{i}]"
        entries = self.mapping(node, where, REGISTRY_KEYS, REGISTRY_REQUIRED)
        if entries is None:
            return None
        ok = True

        def value(key: str) -> Node | None:
            return entries[key][1] if key in entries else None

        name = None
        if (n := value("name")) is not None:
            name = self.string(n, f"{where}.name")
            if name is not None and not _REGISTRY_NAME_RE.match(name):
                self.error(n, f"{where}.name '{name}' is not a valid registry name",
                           hint="use lower-case letters, digits, '-' and '_', starting with "
                                "a letter or digit")
                name = None
            if name is not None:
                if name in first_by_name:
                    first_line = first_by_name[name][0]
                    self.error(n, f"duplicate registry name '{name}' (first used on line "
                                  f"{first_line})",
                               hint="registry names must be unique; rename one of them")
                    name = None
                else:
                    first_by_name[name] = position(n)
        ok &= name is not None

        rtype: str | None = DEFAULT_REGISTRY_TYPE
        if (n := value("type")) is not None:
            rtype = self.string(n, f"{where}.type")
            if rtype is not None and rtype not in REGISTRY_TYPES:
                self.error(n, f"{where}.type '{rtype}' is not a registry type; expected one "
                              f"of: {', '.join(REGISTRY_TYPES)}",
                           hint=_did_you_mean(rtype.lower(), REGISTRY_TYPES)
                           or f"use {DEFAULT_REGISTRY_TYPE} for any Docker Registry v2 API")
                rtype = None
        ok &= rtype is not None

        host = None
        if (n := value("registry")) is not None:
            host = self.string(n, f"{where}.registry")
            if host is not None:
                problem = check_registry_host(host)
                if problem:
                    self.error(n, f"{where}.registry '{host}' is not a valid registry host: "
                                  f"{problem[0]}", hint=problem[1])
                    host = None
        elif rtype in DEFAULT_REGISTRY_HOSTS:
            host = self.default_host(node, where, rtype)
        elif rtype is not None and not self.misspelled(node, "registry", REGISTRY_KEYS, where):
            self.error(node, f"{where}.registry is required",
                       hint=_REQUIRED_HINTS["registry"] + " (only dockerhub, ghcr and gitlab "
                            "registries have a default)")
        ok &= host is not None

        repo = None
        if (n := value("repository")) is not None:
            repo = self.string(n, f"{where}.repository")
            if repo is not None and not self.repository_name(n, repo, f"{where}.repository",
                                                             host=host):
                repo = None
        ok &= repo is not None

        env: dict[str, str | None] = {"username_env": None, "password_env": None}
        for key in env:
            if (n := value(key)) is not None:
                text = self.env_name(n, f"{where}.{key}", key)
                env[key] = text
                ok &= text is not None
        if ("username_env" in entries) != ("password_env" in entries):
            present, missing = (("username_env", "password_env") if "username_env" in entries
                                else ("password_env", "username_env"))
            if not self.misspelled(node, missing, REGISTRY_KEYS, where):  # reported once
                self.error(entries[present][0], f"{where}.{present} is set but {missing} is "
                                                f"not; username_env and password_env go "
                                                f"together",
                           hint=f"add {missing}: NAME_OF_ENV_VAR, or remove {present} to push "
                                f"without logging in")
            ok = False

        ca_file = None
        if (n := value("ca_file")) is not None:
            text = self.string(n, f"{where}.ca_file")
            if text is not None:
                ca_file = self.resolve(text)
                if not ca_file.is_file():
                    what = "not found" if not ca_file.exists() else "is not a file"
                    self.error(n, f"{where}.ca_file {what}: {text} (looked in {ca_file})",
                               hint="ca_file is relative to the directory of release.yml")
                    ca_file = None
            ok &= ca_file is not None

        insecure: bool | None = False
        if (n := value("insecure")) is not None:
            insecure = self.boolean(n, f"{where}.insecure")
        ok &= insecure is not None

        immutable: bool | None = True
        if (n := value("immutable")) is not None:
            immutable = self.boolean(n, f"{where}.immutable")
        ok &= immutable is not None

        extra = self.type_keys(entries, where, rtype, host)
        ok &= extra is not None

        if not ok:
            return None
        assert name and rtype and host and repo and insecure is not None and extra is not None
        assert immutable is not None
        locations = {key: "{}:{}:{}".format(self.file, *position(entries[key][1]))
                     for key in entries if key.endswith("_env")}
        return RegistryConfig(name=name, type=rtype, registry=host, repository=repo,
                              username_env=env["username_env"], password_env=env["password_env"],
                              ca_file=ca_file, insecure=insecure, immutable=immutable,
                              ca_file_text=text if ca_file is not None else None,
                              line=position(node)[0], key_locations=locations,
                              host_defaulted=value("registry") is None, **extra)

    def misspelled(self, node: Node, key: str, known: tuple[str, ...], where: str) -> bool:
        """Is there an unknown key in `node` that was reported as a typo of `key`?"""
        pairs = self.pairs(node) if isinstance(node, MappingNode) else None
        return any(isinstance(k, ScalarNode) and k.value not in known
                   and _unknown_key_hint(k.value, where, known) == f"did you mean '{key}'?"
                   for k, _ in pairs or [])

    def default_host(self, node: Node, where: str, rtype: str) -> str | None:
        """`registry:` left out: docker.io, ghcr.io, or $CI_REGISTRY (registry.gitlab.com)."""
        host = DEFAULT_REGISTRY_HOSTS[rtype]
        if rtype == "gitlab" and os.environ.get("CI_REGISTRY"):
            host = os.environ["CI_REGISTRY"]
            problem = check_registry_host(host)
            if problem:
                self.error(node, f"{where}: CI_REGISTRY '{host}' (the default registry of a "
                                 f"gitlab registry) is not a valid registry host: {problem[0]}",
                           hint="set registry: explicitly")
                return None
        return host

    def type_keys(self, entries: dict[str, tuple[Node, Node]], where: str, rtype: str | None,
                  host: str | None) -> dict[str, Any] | None:
        """The per-type keys (TYPE_KEYS): each only for its types, each checked."""
        out: dict[str, Any] = {}
        ok = True
        for key, types in TYPE_KEYS.items():
            if key not in entries:
                continue
            key_node, n = entries[key]
            if rtype is not None and rtype not in types:
                self.error(key_node, f"{where}.{key} applies to type {' or '.join(types)} only "
                                     f"(this registry is type {rtype})",
                           hint=f"remove {key}, or set type: {types[0]}")
                ok = False
                continue
            if key == "create_repository":
                value = self.boolean(n, f"{where}.{key}")
            elif key == "key_file":
                text = self.string(n, f"{where}.{key}")
                value = self.resolve(text) if text is not None else None
            elif key.endswith("_env"):
                value = self.env_name(n, f"{where}.{key}", key)
            else:
                value = self.string(n, f"{where}.{key}")
                if value is not None:
                    value = self.check_type_value(n, where, key, value)
            if value is None:
                ok = False
            else:
                out[key] = value
        if "token_env" in entries and "password_env" in entries:
            self.error(entries["token_env"][0], f"{where}: token_env and password_env both give "
                                                "the password",
                       hint="keep token_env (with GITHUB_ACTOR as user name), or "
                            "username_env/password_env")
            ok = False
        if ok and rtype == "ecr" and host is not None:
            ok = self.ecr_host(entries, where, host, out.get("region"))
        return out if ok else None

    def check_type_value(self, n: Node, where: str, key: str, value: str) -> str | None:
        if key == "region" and not _AWS_REGION_RE.match(value):
            self.error(n, f"{where}.region '{value}' is not an AWS region name",
                       hint="e.g. us-east-1, eu-central-1, cn-north-1, us-gov-west-1")
            return None
        if key == "role_arn" and not _ROLE_ARN_RE.match(value):
            self.error(n, f"{where}.role_arn is not an IAM role ARN",
                       hint="e.g. arn:aws:iam::123456789012:role/release-push")
            return None
        if key == "profile" and any(c.isspace() for c in value):
            self.error(n, f"{where}.profile '{value}' contains spaces",
                       hint="the name of a profile in ~/.aws/config")
            return None
        return value

    def ecr_host(self, entries: dict[str, tuple[Node, Node]], where: str, host: str,
                 region: str | None) -> bool:
        """An ecr registry's host must follow ECR's grammar, unless region: names an alias."""
        from pipeline.auth.cloud.ecr import HostError, parse_host

        at = entries["registry"][1] if "registry" in entries else None
        try:
            info = parse_host(host)
        except HostError as exc:
            if region:
                return True
            self.error(at or entries["repository"][1],
                       f"{where}.registry '{host}' is not an Amazon ECR host: {exc.problem}",
                       hint=exc.hint)
            return False
        if region and region != info.region:
            self.error(entries["region"][1], f"{where}.region {region} does not match the "
                                             f"region of {host} ({info.region})",
                       hint="remove region: (the host says which region)")
            return False
        return True

    def retry(self, key_node: Node, node: Node) -> RetryConfig | None:
        entries = self.mapping(node, "retry", RETRY_KEYS, (), at=key_node)
        if entries is None:
            return None
        attempts: int | None = DEFAULT_ATTEMPTS
        if "attempts" in entries:
            n = entries["attempts"][1]
            attempts = None
            if isinstance(n, ScalarNode) and n.tag == TAG_INT:
                value = self.scalar(n, "retry.attempts")
                if isinstance(value, int) and 1 <= value <= MAX_ATTEMPTS:
                    attempts = value
                elif value is not None:
                    self.error(n, f"retry.attempts must be at least 1 and at most "
                                  f"{MAX_ATTEMPTS}, got {n.value}",
                               hint="1 means try once, without retrying" if value < 1 else
                               f"more than {MAX_ATTEMPTS} tries only delays the report of a "
                               f"registry that is down; the default is {DEFAULT_ATTEMPTS}")
            else:
                self.error(n, f"retry.attempts must be an integer from 1 to {MAX_ATTEMPTS}, "
                              f"got {describe(n)}",
                           hint="write the number without quotes"
                           if isinstance(n, ScalarNode) and n.tag == TAG_STR else None)
        max_delay: float | None = DEFAULT_MAX_DELAY
        limit = f"{MAX_MAX_DELAY:g}"
        if "max_delay" in entries:
            n = entries["max_delay"][1]
            max_delay = None
            if isinstance(n, ScalarNode) and n.tag in (TAG_INT, TAG_FLOAT):
                value = self.scalar(n, "retry.max_delay")
                if isinstance(value, (int, float)) and math.isfinite(value) \
                        and 0 < value <= MAX_MAX_DELAY:
                    max_delay = float(value)
                elif value is not None:
                    self.error(n, f"retry.max_delay must be a number of seconds > 0 and "
                                  f"<= {limit}, got {n.value}",
                               hint=f"the longest wait between two tries; the default is "
                                    f"{DEFAULT_MAX_DELAY:g}")
            else:
                self.error(n, f"retry.max_delay must be a number of seconds > 0 and "
                              f"<= {limit}, got {describe(n)}")
        if attempts is None or max_delay is None:
            return None
        return RetryConfig(attempts=attempts, max_delay=max_delay)

    def ci(self, key_node: Node, node: Node) -> tuple[str | None, tuple[int, int] | None]:
        """`ci: {install: SPEC}`: (the spec, stripped, or None; its (line, col)). The spec is
        checked as far as it can be without the repository root (pipeline/ci/install.py);
        `release ci generate` checks the rest (a path that leads out through a symlink)."""
        example = "install: git+https://github.com/OWNER/release.git@v1.2.3"
        if not isinstance(node, MappingNode):
            self.error(node, f"ci must be a mapping, got {describe(node)}",
                       hint=f"write the spec under install:\n    ci:\n      {example}")
            return None, None
        entries = self.mapping(node, "ci", CI_KEYS, (), at=key_node)
        if not entries or "install" not in entries:
            return None, None
        from pipeline.ci.install import parse_spec
        from pipeline.errors import ValueProblem
        n = entries["install"][1]
        if not (isinstance(n, ScalarNode) and n.tag == TAG_STR):
            self.error(n, f"ci.install must be a string, got {describe(n)}",
                       hint=f"write one thing for pip to install, e.g. `{example}`"
                            + (", or remove install: to use the default" if _is_null(n) else ""))
            return None, None
        if not n.value.strip():
            self.error(n, "ci.install must not be empty",
                       hint="remove install: to use the default (where this release was "
                            f"installed from), or write what the CI pip-installs, e.g. `{example}`")
            return None, None
        text = n.value
        try:
            spec = parse_spec(text)
        except ValueProblem as exc:
            self.error(n, f"ci.install: {exc.message}", hint=exc.hint)
            return None, None
        return spec.text, position(n)

    # -- values

    def resolve(self, text: str) -> Path:
        """Absolute, normalized path for `text` relative to release.yml's directory."""
        return Path(os.path.normpath(self.base / os.path.expanduser(text)))

    def repository_name(self, node: Node, text: str, where: str, *,
                        host: str | None = None) -> bool:
        problem = check_repository(text, host=host, local=where == "image.name")
        if problem:
            self.error(node, f"{where} '{text}' is not a valid repository name: {problem[0]}",
                       hint=problem[1])
            return False
        return True


_OPTIONAL_WITH_DEFAULT = {"image.context", "image.dockerfile"}


# ---------------------------------------------------------------------------- checks


_KNOWN_REGISTRY_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io", "ghcr.io",
                         "quay.io", "gcr.io", "registry.gitlab.com", "mcr.microsoft.com")
_KNOWN_REGISTRY_SUFFIXES = (".gcr.io", ".pkg.dev", ".amazonaws.com", ".azurecr.io")


def check_repository(text: str, *, host: str | None = None, local: bool = False
                     ) -> tuple[str, str] | None:
    """None if `text` is a valid distribution repository name, else (problem, hint).

    `host` is the registry the repository belongs to; `local` means a local image name."""
    if len(text) > MAX_REPOSITORY_LENGTH:
        return (f"longer than {MAX_REPOSITORY_LENGTH} characters",
                "shorten the repository path")
    first, _, rest = text.partition("/")
    if rest and (first in (host, (host or "").split(":")[0], "localhost") or ":" in first
                 or first.lower() in _KNOWN_REGISTRY_HOSTS
                 or first.lower().endswith(_KNOWN_REGISTRY_SUFFIXES)):
        if local:
            return ("it starts with a registry host",
                    "image.name is the local image name; registry hosts go in registries:")
        return ("it starts with a registry host",
                f"put the host in registry: and only the path in repository: "
                f"(repository: {rest})")
    if "@" in text or ":" in text:
        return ("it contains a tag or digest",
                "write the repository without ':tag' or '@digest'; tags come from tags:")
    if text != text.lower():
        example = f" (e.g. {text.lower()})" if _REPOSITORY_RE.match(text.lower()) else ""
        return ("it contains upper-case letters",
                f"repository names must be lower-case{example}")
    if text.startswith("/") or text.endswith("/") or "//" in text:
        return ("empty path component",
                "path components are separated by single '/', with none at either end")
    if not _REPOSITORY_RE.match(text):
        return ("each path component must be lower-case letters and digits, separated by "
                "'.', '_', '__' or '-'",
                "e.g. team/my-app; components cannot start or end with a separator")
    return None


def check_registry_host(text: str) -> tuple[str, str] | None:
    """None if `text` is host[:port] (hostname, IPv4 or [IPv6]), else (problem, hint)."""
    if "://" in text:
        scheme, rest = text.split("://", 1)
        hint = f"write it without the scheme: registry: {rest.split('/', 1)[0]}"
        if scheme.lower() == "http":
            hint += " (and set insecure: true to use plain HTTP)"
        return (f"it has a scheme ({scheme}://)", hint)
    if any(c.isspace() for c in text):
        return ("it contains spaces", "write just host[:port], e.g. registry: localhost:5000")
    if "/" in text:
        host, path = text.split("/", 1)
        return ("it has a path",
                f"put the path in repository: (registry: {host}, repository: {path}/...)")
    host, port = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return ("unclosed '[' in IPv6 address", "write IPv6 addresses as [::1]:5000")
        host, rest = text[1:end], text[end + 1:]
        if rest and not rest.startswith(":"):
            return ("unexpected text after the IPv6 address", "write it as [::1]:5000")
        port = rest[1:] if rest else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return (f"'{host}' is not an IPv6 address", "write IPv6 addresses as [::1]:5000")
    else:
        if text.count(":") > 1:
            return ("too many ':'", "write IPv6 addresses in brackets, e.g. [::1]:5000")
        if ":" in text:
            host, port = text.split(":", 1)
        if not host:
            return ("the host is empty", "write host[:port], e.g. registry: localhost:5000")
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                return (f"'{host}' is not an IPv4 address",
                        "write host[:port], e.g. registry: 127.0.0.1:5000")
        else:
            labels = host.split(".")
            if len(host) > MAX_HOST_LENGTH or not all(
                    _HOST_LABEL_RE.match(label) and len(label) <= 63 for label in labels):
                return (f"'{host}' is not a valid hostname",
                        "hostnames use letters, digits, '-' and '.', e.g. registry.example.com")
    if port is not None:
        if not port.isdigit() or not port.isascii():
            return (f"port '{port}' is not a number", "write host:port, e.g. localhost:5000")
        if not 1 <= int(port) <= 65535 or (len(port) > 1 and port.startswith("0")):
            return (f"port {port} is out of range (1-65535)",
                    "write host:port, e.g. localhost:5000")
    return None


def env_name_is_plausible(name: str, env: Mapping[str, str] | None = None) -> bool:
    """May `name`, written where the NAME of an environment variable belongs (`*_env`), be
    shown in a message? Not when it may be the secret itself: it must be a variable name
    ([A-Za-z_][A-Za-z0-9_]*, buildkit.options.check_env_name), and, unless a variable of that
    name is set in `env` (os.environ), it must not look like a generated token: mixing upper-
    and lower-case letters with digits (`hunter2Xq9TzLw0rdS3cret`, `ghp_...`), or 20 letters
    and digits in a row holding both (`AKIAIOSFODNN7EXAMPLE`, hex digests)."""
    from pipeline.engine.buildkit.options import OptionError, check_env_name

    try:
        check_env_name(name)
    except OptionError:
        return False
    if name in (os.environ if env is None else env):
        return True   # the user's own variable, in the user's own casing
    if (any(c.isupper() for c in name) and any(c.islower() for c in name)
            and any(c.isdigit() for c in name)):
        return False
    return not any(any(c.isdigit() for c in run) and any(c.isalpha() for c in run)
                   for run in _TOKEN_RUN_RE.findall(name))


_TOKEN_RUN_RE = re.compile(r"[A-Za-z0-9]{20,}")


# ---------------------------------------------------------------------------- helpers


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _looks_secret(key: str) -> bool:
    return not key.lower().endswith("_env") and bool(_SECRET_KEY_RE.search(key))


def _did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return f"did you mean '{lowered[word.lower()]}'?"
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


_SECTION_OF = {
    **{k: "retry" for k in RETRY_KEYS},
    **{k: "an entry of registries" for k in REGISTRY_KEYS},
    **{k: "image" for k in IMAGE_KEYS},
}

_ALIASES = {
    "host": "registry", "url": "registry", "server": "registry", "repo": "repository",
    "image": "repository", "ca": "ca_file", "cacert": "ca_file", "ca_cert": "ca_file",
    "tls_verify": "insecure", "skip_tls_verify": "insecure", "file": "dockerfile",
    "args": "build_args", "stage": "target", "retries": "attempts", "delay": "max_delay",
}


def _unknown_key_hint(key: str, where: str, known: tuple[str, ...]) -> str:
    if key in ("username", "user") and "username_env" in known:
        return "put the user name in an environment variable and name it with username_env"
    if where == "" and key in _SECTION_OF:
        return f"'{key}' belongs under {_SECTION_OF[key]}:"
    hint = _did_you_mean(key, known)
    if hint:
        return hint
    if _ALIASES.get(key.lower()) in known:
        return f"did you mean '{_ALIASES[key.lower()]}'?"
    return f"known keys: {', '.join(known)}"


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == TAG_NULL


def _null_hint(node: Node) -> str | None:
    if _is_null(node):
        return "the value is empty: give it a value, or remove the key to leave it unset"
    return None
