"""The image: section of release.yml: what to build, and how (see loader.py for the rest).

Each function takes the Loader, reports problems with loader.error, and returns None when
the section (or its part) has any.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from yaml.nodes import Node, SequenceNode

from pipeline.model.build_options import (
    BUILDERS,
    BuildSecret,
    OptionError,
    check_secret_id,
    parse_cache_entry,
    relative_to,
)
from pipeline.model.config.checks import did_you_mean, null_hint
from pipeline.model.config.keys import (
    DEFAULT_CONTEXT,
    DEFAULT_DOCKERFILE,
    DEFAULT_INDEX_FORMAT,
    IMAGE_KEYS,
    IMAGE_REQUIRED,
    INDEX_FORMATS,
)
from pipeline.model.config.types import ImageConfig
from pipeline.model.config.yamlpos import describe, position
from pipeline.model.platforms import PlatformError, parse_platform

if TYPE_CHECKING:  # loader.py imports this module
    from pipeline.model.config.loader import Loader


def load_image(loader: Loader, key_node: Node, node: Node) -> ImageConfig | None:
    """image: (at `key_node`) as an ImageConfig; None when any of it is wrong."""
    entries = loader.mapping(node, "image", IMAGE_KEYS, IMAGE_REQUIRED, at=key_node)
    if entries is None:
        return None
    ok = True

    name = None
    if "name" in entries:
        name = loader.string(entries["name"][1], "image.name")
        if name is not None and not loader.repository_name(entries["name"][1], name,
                                                           "image.name"):
            name = None
    ok &= name is not None

    context_node = entries.get("context", (None, None))[1]
    context: Path | None = None
    if context_node is not None:
        text = loader.string(context_node, "image.context")
        if text is not None:
            context = loader.resolve(text)
            if not loader.check_build_files:
                pass
            elif not context.exists():
                loader.error(context_node, f"image.context directory not found: {text} "
                                           f"(looked in {context})",
                             hint="image.context is relative to the directory of release.yml")
                context = None
            elif not context.is_dir():
                loader.error(context_node, f"image.context is not a directory: {text}",
                             hint="image.context is the build context directory; point "
                                  "image.dockerfile at the Dockerfile")
                context = None
    else:
        context = loader.resolve(DEFAULT_CONTEXT)
    ok &= context is not None

    dockerfile_node = entries.get("dockerfile", (None, None))[1]
    dockerfile: str | None = DEFAULT_DOCKERFILE
    if dockerfile_node is not None:
        dockerfile = loader.string(dockerfile_node, "image.dockerfile")
    if dockerfile is not None and context is not None and loader.check_build_files:
        full = context / os.path.expanduser(dockerfile)
        if not full.is_file():
            at = dockerfile_node or context_node or key_node
            what = "not found" if not full.exists() else "is not a file"
            loader.error(at, f"image.dockerfile {what}: {dockerfile} (in context {context})",
                         hint="image.dockerfile is relative to image.context"
                         if dockerfile_node is not None else
                         "add the Dockerfile, or set image.dockerfile to its path relative "
                         "to image.context")
            dockerfile = None
    ok &= dockerfile is not None

    build_args: dict[str, str] | None = {}
    if "build_args" in entries:
        build_args = loader.string_map(entries["build_args"][1], "image.build_args",
                                       arg_names=True)
    ok &= build_args is not None

    target = None
    if "target" in entries:
        target = loader.string(entries["target"][1], "image.target")
        ok &= target is not None

    labels: dict[str, str] | None = {}
    if "labels" in entries:
        labels = loader.string_map(entries["labels"][1], "image.labels")
    ok &= labels is not None

    platforms: tuple[str, ...] | None = ()
    if "platforms" in entries:
        platforms = _platforms(loader, entries["platforms"][1])
    ok &= platforms is not None

    index_format: str | None = DEFAULT_INDEX_FORMAT
    if "index_format" in entries:
        index_format = loader.string(entries["index_format"][1], "image.index_format")
        if index_format is not None and index_format not in INDEX_FORMATS:
            loader.error(entries["index_format"][1],
                         f"image.index_format must be one of {', '.join(INDEX_FORMATS)}, "
                         f"got '{index_format}'",
                         hint=did_you_mean(index_format, INDEX_FORMATS)
                         or "oci: an OCI image index (default); docker: a Docker manifest list")
            index_format = None
    ok &= index_format is not None

    build = _build_options(loader, entries)
    ok &= build is not None

    if not ok:
        return None
    assert name is not None and context is not None and dockerfile is not None
    assert build_args is not None and labels is not None
    assert platforms is not None and index_format is not None and build is not None
    return ImageConfig(name=name, context=context, dockerfile=dockerfile,
                       build_args=build_args, target=target, labels=labels,
                       platforms=platforms, index_format=index_format, **build)


def _build_options(loader: Loader, entries: dict[str, tuple[Node, Node]]) -> dict | None:
    """image.builder, image.secrets, image.cache_from, image.cache_to."""
    result: dict = {}
    ok = True
    if "builder" in entries:
        node = entries["builder"][1]
        builder = loader.string(node, "image.builder")
        if builder is not None and builder not in BUILDERS:
            loader.error(node, f"image.builder must be one of {', '.join(BUILDERS)}, got "
                               f"'{builder}'",
                         hint=did_you_mean(builder, BUILDERS) or
                         "auto: BuildKit when the engine has it (default); classic: the "
                         "legacy builder")
            builder = None
        ok &= builder is not None
        result["builder"] = builder
    if "secrets" in entries:
        secrets = _secrets(loader, entries["secrets"][1])
        ok &= secrets is not None
        result["secrets"] = secrets
    for key in ("cache_from", "cache_to"):
        if key not in entries:
            continue
        lines = loader.rule_list(entries[key][1], f"image.{key}", allow_empty=True)
        if lines is None:
            ok = False
            continue
        parsed = []
        for item, text in zip(entries[key][1].value, lines):
            try:
                parsed.append(relative_to(parse_cache_entry(text, sink=key == "cache_to"),
                                          loader.base))
            except OptionError as exc:
                loader.error(item, f"image.{exc.message}" if exc.message.startswith(key)
                             else exc.message, hint=exc.hint)
                ok = False
        result[key] = tuple(parsed)
    return result if ok else None


def _secrets(loader: Loader, node: Node) -> tuple | None:
    """image.secrets: [{id: ID, env: VAR} | {id: ID, file: PATH}, ...]."""
    if not isinstance(node, SequenceNode):
        loader.error(node, f"image.secrets must be a list, got {describe(node)}",
                     hint="e.g. secrets: [{id: npmrc, env: NPM_TOKEN}, {id: key, file: key.pem}]")
        return None
    result, seen, ok = [], {}, True
    for i, item in enumerate(node.value):
        where = f"image.secrets[{i}]"
        before = len(loader.errors)
        entries = loader.mapping(item, where, ("id", "env", "file"), ("id",))
        if entries is None or len(loader.errors) > before:   # a typo: reported once, there
            ok = False
            continue
        secret_id = loader.string(entries["id"][1], f"{where}.id") if "id" in entries else None
        try:
            if secret_id is not None:
                check_secret_id(secret_id)
        except OptionError as exc:
            loader.error(entries["id"][1], exc.message, hint=exc.hint)
            secret_id = None
        if secret_id is not None and secret_id in seen:
            loader.error(entries["id"][1], f"secret id '{secret_id}' is listed twice (first on "
                                           f"line {seen[secret_id]})", hint="remove one of them")
            secret_id = None
        if secret_id is not None:
            seen[secret_id] = position(entries["id"][1])[0]
        if ("env" in entries) == ("file" in entries):
            loader.error(item, f"{where} needs exactly one of env: or file:",
                         hint="env: the NAME of an environment variable holding the secret; "
                              "file: a path relative to release.yml")
            ok = False
            continue
        env = path = None
        if "env" in entries:
            env = loader.env_name(entries["env"][1], f"{where}.env", "env")
            ok &= env is not None
        else:
            text = loader.string(entries["file"][1], f"{where}.file")
            if text is not None:
                path = loader.resolve(text)
                if loader.check_build_files and not path.is_file():
                    loader.error(entries["file"][1],
                                 f"{where}.file not found: {text} (looked in {path})",
                                 hint="secret files are relative to the directory of release.yml")
                    path = None
            ok &= path is not None
        if secret_id is None:
            ok = False
        if ok:
            result.append(BuildSecret(secret_id, env=env, file=path))
    return tuple(result) if ok else None


def _platforms(loader: Loader, node: Node) -> tuple[str, ...] | None:
    """image.platforms: a non-empty list of distinct os/arch[/variant] strings."""
    if not isinstance(node, SequenceNode) or not node.value:
        loader.error(node, f"image.platforms must be a non-empty list of platforms, got "
                           f"{describe(node)}",
                     hint=null_hint(node) or "e.g. platforms: [linux/amd64, linux/arm64]; "
                                             "remove the key to build the engine's own platform")
        return None
    seen: dict = {}
    ok = True
    for item in node.value:
        text = loader.string(item, "image.platforms[]")
        if text is None:
            ok = False
            continue
        try:
            platform = parse_platform(text)
        except PlatformError as exc:
            loader.error(item, f"image.platforms: {exc.message}", hint=exc.hint)
            ok = False
            continue
        same = next((p for p in seen if p.matches(platform)), None)
        if same is not None:
            loader.error(item, f"image.platforms lists {text} twice (same as {seen[same]})",
                         hint="remove one of them")
            ok = False
            continue
        seen[platform] = text
    return tuple(str(p) for p in seen) if ok else None
