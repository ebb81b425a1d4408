"""Load and validate release.yml (schema version 1): load_config, and the walk over its nodes.

Every problem becomes a ConfigError located as FILE:LINE:COL (1-based) at the offending
key or value, so editors and CI logs can jump to it. The loader checks the whole file and
raises the problem that comes first in the file; the others are on the exception's
`errors` attribute (a list of ConfigError in file order, the raised one first), and the CLI
prints them all (pipeline.errors.format_errors).

Messages never echo values of keys that look like secrets, nor a `*_env` value that does not
look like the name of an environment variable (checks.env_name_is_plausible).

Limits: the file is at most MAX_CONFIG_BYTES (checked before YAML parsing); retry.attempts
1..MAX_ATTEMPTS, retry.max_delay in (0, MAX_MAX_DELAY] seconds; tag rules' regexes that can
backtrack catastrophically are refused (pipeline/model/tags/jsregex.py).

Here: the file, the generic shapes and the small sections. image.py and registries.py hold
the big two; keys.py says what the file may hold, types.py what it loads into.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pipeline.errors import ConfigError, TagRuleError, ValueProblem
from pipeline.model.config.checks import (
    ENV_KEY_HINTS,
    ENV_NAME_RULE,
    NOT_FOUND_HINT,
    QUOTE_HINT,
    REQUIRED_HINTS,
    SECRET_HINT,
    check_repository,
    env_name_is_plausible,
    is_null,
    join_key,
    looks_secret,
    null_hint,
    unknown_key_hint,
)
from pipeline.model.config.image import load_image
from pipeline.model.config.keys import (
    BUILD_ARG_NAME_PATTERN,
    CI_KEYS,
    DEFAULT_ATTEMPTS,
    DEFAULT_MAX_DELAY,
    MAX_ATTEMPTS,
    MAX_CONFIG_BYTES,
    MAX_MAX_DELAY,
    RETRY_KEYS,
    SCHEMA_VERSION,
    TOP_KEYS,
    TOP_REQUIRED,
)
from pipeline.model.config.registries import load_registries
from pipeline.model.config.types import Config, RetryConfig
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
    yaml_hint,
    yaml_message,
)
from pipeline.model.install_spec import parse_spec
from pipeline.model.tags import (
    DEFAULT_FLAVOR_LINES,
    DEFAULT_TAG_LINES,
    parse_flavor,
    parse_tag_rule,
)

_BUILD_ARG_NAME_RE = re.compile(BUILD_ARG_NAME_PATTERN)
_OPTIONAL_WITH_DEFAULT = {"image.context", "image.dockerfile"}  # empty: suggest the default


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
            raise ConfigError(yaml_message(exc), file=file, line=line, col=col,
                              hint=yaml_hint(exc)) from None
        return Loader(file, check_build_files=build).load(root)
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




class Loader:
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

        image = load_image(self, *top["image"]) if "image" in top else None
        tag_lines, tags = self.tags(top.get("tags"))
        flavor_lines, flavor = self.flavor(top.get("flavor"))
        registries = load_registries(self, top["registries"][1]) if "registries" in top else None
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
                       hint="indent its keys under it" if is_null(node) else None)
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
            elif looks_secret(key):
                self.error(key_node, f"'{join_key(where, key)}' looks like a secret; release.yml "
                                     f"must not contain passwords, tokens or other secrets",
                           hint=SECRET_HINT)
            else:
                hint = unknown_key_hint(key, where, known)
                self.error(key_node, f"unknown key '{key}' in {label}", hint=hint)
                misspelled.update(k for k in known if hint == f"did you mean '{k}'?")
        for key in required:
            if key not in entries and key not in misspelled:  # a typo is reported once
                full = join_key(where, key)
                self.error(at or node, f"{full} is required",
                           hint=REQUIRED_HINTS.get(full) or REQUIRED_HINTS.get(key))
        return entries

    def pairs(self, node: MappingNode) -> list[tuple[Node, Node]] | None:
        try:
            return self.values.pairs(node)
        except yaml.YAMLError as exc:
            line, col = error_position(exc)
            at = (line, col) if line is not None else position(node)
            self.error(at, yaml_message(exc))  # type: ignore[arg-type]
            return None

    def string(self, node: Node, where: str) -> str | None:
        """A non-empty string scalar (the value is never echoed: it may be a secret)."""
        if not (isinstance(node, ScalarNode) and node.tag == TAG_STR):
            hint = null_hint(node) or (QUOTE_HINT if isinstance(node, ScalarNode) else None)
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
            self.error(node, f"{where}: {yaml_message(exc)}")
            return None

    def string_map(self, node: Node, where: str, *, arg_names: bool = False
                   ) -> dict[str, str] | None:
        """A mapping of strings; numbers, booleans and dates keep the text written in YAML
        (`1.10` stays "1.10", `true` stays "true")."""
        if not isinstance(node, MappingNode):
            self.error(node, f"{where} must be a mapping of strings, got {describe(node)}",
                       hint=null_hint(node) or
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
        n = entries["install"][1]
        if not (isinstance(n, ScalarNode) and n.tag == TAG_STR):
            self.error(n, f"ci.install must be a string, got {describe(n)}",
                       hint=f"write one thing for pip to install, e.g. `{example}`"
                            + (", or remove install: to use the default" if is_null(n) else ""))
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
