"""The registries: section of release.yml: where to push, and how to log in there (see
loader.py for the rest).

Each function takes the Loader, reports problems with loader.error, and returns None when
the entry (or its part) has any.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pipeline.model.config.checks import REQUIRED_HINTS, did_you_mean, unknown_key_hint
from pipeline.model.config.hosts import (
    EcrHostError,
    check_registry_host,
    parse_ecr_host,
)
from pipeline.model.config.keys import (
    AWS_REGION_PATTERN,
    DEFAULT_REGISTRY_HOSTS,
    DEFAULT_REGISTRY_TYPE,
    REGISTRY_KEYS,
    REGISTRY_NAME_PATTERN,
    REGISTRY_REQUIRED,
    REGISTRY_TYPES,
    ROLE_ARN_PATTERN,
    TYPE_KEYS,
)
from pipeline.model.config.types import RegistryConfig
from pipeline.model.config.yamlpos import describe, position

if TYPE_CHECKING:  # loader.py imports this module
    from pipeline.model.config.loader import Loader

_REGISTRY_NAME_RE = re.compile(REGISTRY_NAME_PATTERN)
_AWS_REGION_RE = re.compile(AWS_REGION_PATTERN)
_ROLE_ARN_RE = re.compile(ROLE_ARN_PATTERN)


def load_registries(loader: Loader, node: Node) -> list[RegistryConfig] | None:
    """registries: as RegistryConfigs in file order; None when any entry is wrong."""
    if not isinstance(node, SequenceNode):
        loader.error(node, f"registries must be a list of registries, got {describe(node)}",
                     hint="write each registry as a list item: `- name: local`")
        return None
    if not node.value:
        loader.error(node, "registries must list at least one registry",
                     hint="add `- name: ..., registry: ..., repository: ...`")
        return None
    result: list[RegistryConfig] = []
    ok = True
    first_by_name: dict[str, tuple[int, int]] = {}
    for i, item in enumerate(node.value):
        loader.locations[("registries", i)] = position(item)
        reg = _registry(loader, item, i, first_by_name)
        if reg is None:
            ok = False
        else:
            result.append(reg)
    return result if ok else None


def _registry(loader: Loader, node: Node, i: int, first_by_name: dict[str, tuple[int, int]]
              ) -> RegistryConfig | None:
    """registries[i]; `first_by_name` holds the names seen so far (and where)."""
    where = f"registries[{i}]"
    entries = loader.mapping(node, where, REGISTRY_KEYS, REGISTRY_REQUIRED)
    if entries is None:
        return None
    ok = True

    def value(key: str) -> Node | None:
        return entries[key][1] if key in entries else None

    name = None
    if (n := value("name")) is not None:
        name = loader.string(n, f"{where}.name")
        if name is not None and not _REGISTRY_NAME_RE.match(name):
            loader.error(n, f"{where}.name '{name}' is not a valid registry name",
                         hint="use lower-case letters, digits, '-' and '_', starting with "
                              "a letter or digit")
            name = None
        if name is not None:
            if name in first_by_name:
                first_line = first_by_name[name][0]
                loader.error(n, f"duplicate registry name '{name}' (first used on line "
                                f"{first_line})",
                             hint="registry names must be unique; rename one of them")
                name = None
            else:
                first_by_name[name] = position(n)
    ok &= name is not None

    rtype: str | None = DEFAULT_REGISTRY_TYPE
    if (n := value("type")) is not None:
        rtype = loader.string(n, f"{where}.type")
        if rtype is not None and rtype not in REGISTRY_TYPES:
            loader.error(n, f"{where}.type '{rtype}' is not a registry type; expected one "
                            f"of: {', '.join(REGISTRY_TYPES)}",
                         hint=did_you_mean(rtype.lower(), REGISTRY_TYPES)
                         or f"use {DEFAULT_REGISTRY_TYPE} for any Docker Registry v2 API")
            rtype = None
    ok &= rtype is not None

    host = None
    if (n := value("registry")) is not None:
        host = loader.string(n, f"{where}.registry")
        if host is not None:
            problem = check_registry_host(host)
            if problem:
                loader.error(n, f"{where}.registry '{host}' is not a valid registry host: "
                                f"{problem[0]}", hint=problem[1])
                host = None
    elif rtype in DEFAULT_REGISTRY_HOSTS:
        host = _default_host(loader, node, where, rtype)
    elif rtype is not None and not _misspelled(loader, node, "registry", REGISTRY_KEYS, where):
        loader.error(node, f"{where}.registry is required",
                     hint=REQUIRED_HINTS["registry"] + " (only dockerhub, ghcr and gitlab "
                          "registries have a default)")
    ok &= host is not None

    repo = None
    if (n := value("repository")) is not None:
        repo = loader.string(n, f"{where}.repository")
        if repo is not None and not loader.repository_name(n, repo, f"{where}.repository",
                                                           host=host):
            repo = None
    ok &= repo is not None

    env: dict[str, str | None] = {"username_env": None, "password_env": None}
    for key in env:
        if (n := value(key)) is not None:
            text = loader.env_name(n, f"{where}.{key}", key)
            env[key] = text
            ok &= text is not None
    if ("username_env" in entries) != ("password_env" in entries):
        present, missing = (("username_env", "password_env") if "username_env" in entries
                            else ("password_env", "username_env"))
        if not _misspelled(loader, node, missing, REGISTRY_KEYS, where):  # reported once
            loader.error(entries[present][0], f"{where}.{present} is set but {missing} is "
                                              f"not; username_env and password_env go "
                                              f"together",
                         hint=f"add {missing}: NAME_OF_ENV_VAR, or remove {present} to push "
                              f"without logging in")
        ok = False

    ca_file = None
    if (n := value("ca_file")) is not None:
        text = loader.string(n, f"{where}.ca_file")
        if text is not None:
            ca_file = loader.resolve(text)
            if not ca_file.is_file():
                what = "not found" if not ca_file.exists() else "is not a file"
                loader.error(n, f"{where}.ca_file {what}: {text} (looked in {ca_file})",
                             hint="ca_file is relative to the directory of release.yml")
                ca_file = None
        ok &= ca_file is not None

    insecure: bool | None = False
    if (n := value("insecure")) is not None:
        insecure = loader.boolean(n, f"{where}.insecure")
    ok &= insecure is not None

    immutable: bool | None = True
    if (n := value("immutable")) is not None:
        immutable = loader.boolean(n, f"{where}.immutable")
    ok &= immutable is not None

    extra = _type_keys(loader, entries, where, rtype, host)
    ok &= extra is not None

    if not ok:
        return None
    assert name and rtype and host and repo and insecure is not None and extra is not None
    assert immutable is not None
    locations = {key: "{}:{}:{}".format(loader.file, *position(entries[key][1]))
                 for key in entries if key.endswith("_env")}
    return RegistryConfig(name=name, type=rtype, registry=host, repository=repo,
                          username_env=env["username_env"], password_env=env["password_env"],
                          ca_file=ca_file, insecure=insecure, immutable=immutable,
                          ca_file_text=text if ca_file is not None else None,
                          line=position(node)[0], key_locations=locations,
                          host_defaulted=value("registry") is None, **extra)


def _misspelled(loader: Loader, node: Node, key: str, known: tuple[str, ...], where: str
                ) -> bool:
    """Is there an unknown key in `node` that was reported as a typo of `key`?"""
    pairs = loader.pairs(node) if isinstance(node, MappingNode) else None
    return any(isinstance(k, ScalarNode) and k.value not in known
               and unknown_key_hint(k.value, where, known) == f"did you mean '{key}'?"
               for k, _ in pairs or [])


def _default_host(loader: Loader, node: Node, where: str, rtype: str) -> str | None:
    """`registry:` left out: docker.io, ghcr.io, or $CI_REGISTRY (registry.gitlab.com)."""
    host = DEFAULT_REGISTRY_HOSTS[rtype]
    if rtype == "gitlab" and os.environ.get("CI_REGISTRY"):
        host = os.environ["CI_REGISTRY"]
        problem = check_registry_host(host)
        if problem:
            loader.error(node, f"{where}: CI_REGISTRY '{host}' (the default registry of a "
                               f"gitlab registry) is not a valid registry host: {problem[0]}",
                         hint="set registry: explicitly")
            return None
    return host


def _type_keys(loader: Loader, entries: dict[str, tuple[Node, Node]], where: str,
               rtype: str | None, host: str | None) -> dict[str, Any] | None:
    """The per-type keys (TYPE_KEYS): each only for its types, each checked."""
    out: dict[str, Any] = {}
    ok = True
    for key, types in TYPE_KEYS.items():
        if key not in entries:
            continue
        key_node, n = entries[key]
        if rtype is not None and rtype not in types:
            loader.error(key_node, f"{where}.{key} applies to type {' or '.join(types)} only "
                                   f"(this registry is type {rtype})",
                         hint=f"remove {key}, or set type: {types[0]}")
            ok = False
            continue
        if key == "create_repository":
            value = loader.boolean(n, f"{where}.{key}")
        elif key == "key_file":
            text = loader.string(n, f"{where}.{key}")
            value = loader.resolve(text) if text is not None else None
        elif key.endswith("_env"):
            value = loader.env_name(n, f"{where}.{key}", key)
        else:
            value = loader.string(n, f"{where}.{key}")
            if value is not None:
                value = _check_type_value(loader, n, where, key, value)
        if value is None:
            ok = False
        else:
            out[key] = value
    if "token_env" in entries and "password_env" in entries:
        loader.error(entries["token_env"][0], f"{where}: token_env and password_env both give "
                                              "the password",
                     hint="keep token_env (with GITHUB_ACTOR as user name), or "
                          "username_env/password_env")
        ok = False
    if ok and rtype == "ecr" and host is not None:
        ok = _ecr_host(loader, entries, where, host, out.get("region"))
    return out if ok else None


def _check_type_value(loader: Loader, n: Node, where: str, key: str, value: str) -> str | None:
    if key == "region" and not _AWS_REGION_RE.match(value):
        loader.error(n, f"{where}.region '{value}' is not an AWS region name",
                     hint="e.g. us-east-1, eu-central-1, cn-north-1, us-gov-west-1")
        return None
    if key == "role_arn" and not _ROLE_ARN_RE.match(value):
        loader.error(n, f"{where}.role_arn is not an IAM role ARN",
                     hint="e.g. arn:aws:iam::123456789012:role/release-push")
        return None
    if key == "profile" and any(c.isspace() for c in value):
        loader.error(n, f"{where}.profile '{value}' contains spaces",
                     hint="the name of a profile in ~/.aws/config")
        return None
    return value


def _ecr_host(loader: Loader, entries: dict[str, tuple[Node, Node]], where: str, host: str,
              region: str | None) -> bool:
    """An ecr registry's host must follow ECR's grammar, unless region: names an alias."""
    at = entries["registry"][1] if "registry" in entries else None
    try:
        info = parse_ecr_host(host)
    except EcrHostError as exc:
        if region:
            return True
        loader.error(at or entries["repository"][1],
                     f"{where}.registry '{host}' is not an Amazon ECR host: {exc.problem}",
                     hint=exc.hint)
        return False
    if region and region != info.region:
        loader.error(entries["region"][1], f"{where}.region {region} does not match the "
                                           f"region of {host} ({info.region})",
                     hint="remove region: (the host says which region)")
        return False
    return True
