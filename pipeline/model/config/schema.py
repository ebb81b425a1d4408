"""JSON Schema (draft 2020-12) of release.yml, for editors (completion and inline errors).

Built from the same constants as the loader (keys.py), so the two cannot drift apart on key
names, enums and patterns. The loader stays the authority: it also checks things a schema
cannot (files on disk, duplicate names, tag rule syntax, secrets in unknown keys).
"""

from __future__ import annotations

import copy
from typing import Any

from pipeline.model import build_options
from pipeline.model.config import keys as c
from pipeline.model.platforms import PLATFORM_PATTERN

SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"


def _string_map(description: str, *, names: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "description": description,
        "additionalProperties": {
            "type": ["string", "number", "boolean"],
            "description": "Numbers and booleans are used as written in the file.",
        },
    }
    if names:
        schema["propertyNames"] = {"pattern": names}
    else:
        schema["propertyNames"] = {"minLength": 1}
    return schema


def _rule_list(description: str, *, min_items: int) -> dict[str, Any]:
    return {
        "type": "array",
        "description": description,
        "minItems": min_items,
        "items": {"type": "string", "minLength": 1},
    }


_IMAGE: dict[str, Any] = {
    "type": "object",
    "description": "The image to build once (with the local Docker Engine).",
    "additionalProperties": False,
    "required": list(c.IMAGE_REQUIRED),
    "properties": {
        "name": {
            "type": "string",
            "description": "Local image name, lower-case, without registry or tag "
                           "(e.g. myapp or team/myapp).",
            "pattern": c.REPOSITORY_PATTERN,
            "maxLength": c.MAX_REPOSITORY_LENGTH,
        },
        "context": {
            "type": "string",
            "description": "Build context directory, relative to the directory of release.yml.",
            "minLength": 1,
            "default": c.DEFAULT_CONTEXT,
        },
        "dockerfile": {
            "type": "string",
            "description": "Path of the Dockerfile, relative to context.",
            "minLength": 1,
            "default": c.DEFAULT_DOCKERFILE,
        },
        "build_args": _string_map("Build arguments (--build-arg NAME=value).",
                                  names=c.BUILD_ARG_NAME_PATTERN),
        "target": {
            "type": "string",
            "description": "Build stage to stop at (--target).",
            "minLength": 1,
        },
        "labels": _string_map("Labels added to the image (--label key=value)."),
        "platforms": {
            "type": "array",
            "description": "Platforms to build (os/architecture[/variant], e.g. linux/amd64, "
                           "linux/arm64). Several: one image each, pushed by digest, and one "
                           "image index per registry. Default: the engine's own platform.",
            "minItems": 1,
            "items": {"type": "string", "pattern": PLATFORM_PATTERN},
        },
        "index_format": {
            "type": "string",
            "description": "With several platforms: oci (OCI image index and OCI manifests) or "
                           "docker (Docker manifest list and Docker v2 manifests).",
            "enum": list(c.INDEX_FORMATS),
            "default": c.DEFAULT_INDEX_FORMAT,
        },
        "builder": {
            "type": "string",
            "description": "auto: BuildKit when the engine has it, else the classic builder "
                           "with a note; buildkit: BuildKit or an error; classic: the legacy "
                           "builder.",
            "enum": list(build_options.BUILDERS),
            "default": build_options.DEFAULT_BUILDER,
        },
        "secrets": {
            "type": "array",
            "description": "Build secrets for RUN --mount=type=secret,id=ID (BuildKit).",
            "items": {
                "type": "object",
                "description": "One secret: its id, and env (a variable's name) or file (one of "
                               "the two).",
                "additionalProperties": False,
                "required": ["id"],
                "properties": {
                    "id": {"type": "string", "pattern": "^" + build_options.SECRET_ID.pattern[:-2] + "$",
                           "description": "The id= of RUN --mount=type=secret."},
                    "env": {"type": "string", "pattern": "^" + build_options.ENV_NAME.pattern[:-2] + "$",
                            "description": "NAME of the environment variable holding the secret."},
                    "file": {"type": "string", "minLength": 1,
                             "description": "File holding the secret, relative to release.yml."},
                },
            },
        },
        "cache_from": _rule_list("Cache sources: image references (their inline cache) or "
                                 "buildx specs type=registry|gha|local,...", min_items=0),
        "cache_to": _rule_list("Cache exports for docker buildx: type=registry|gha|local,... "
                               "(every image already carries inline cache).", min_items=0),
    },
}

_REGISTRY: dict[str, Any] = {
    "type": "object",
    "description": "A registry to push the image to.",
    "additionalProperties": False,
    "required": list(c.REGISTRY_REQUIRED),
    "properties": {
        "name": {
            "type": "string",
            "description": "Unique name of this registry, used by --registry.",
            "pattern": c.REGISTRY_NAME_PATTERN,
        },
        "type": {
            "type": "string",
            "description": "Kind of registry (decides how to log in); generic is any "
                           "Docker Registry HTTP API v2.",
            "enum": list(c.REGISTRY_TYPES),
            "default": c.DEFAULT_REGISTRY_TYPE,
        },
        "registry": {
            "type": "string",
            "description": "Registry host[:port]: a hostname, IPv4 address or [IPv6] "
                           "address; no scheme, no path. Required, except for dockerhub "
                           "(default docker.io), ghcr (ghcr.io) and gitlab ($CI_REGISTRY, "
                           "else registry.gitlab.com). ecr: ACCOUNT.dkr.ecr.REGION.amazonaws.com "
                           "(FIPS, dual-stack, China, GovCloud forms too) or public.ecr.aws.",
            "pattern": c.REGISTRY_HOST_PATTERN,
            "maxLength": c.MAX_HOST_LENGTH + 8,
        },
        "repository": {
            "type": "string",
            "description": "Repository path in the registry, lower-case (e.g. team/myapp).",
            "pattern": c.REPOSITORY_PATTERN,
            "maxLength": c.MAX_REPOSITORY_LENGTH,
        },
        "username_env": {
            "type": "string",
            "description": "NAME of the environment variable that holds the user name "
                           "(requires password_env).",
            "pattern": c.ENV_NAME_PATTERN,
        },
        "password_env": {
            "type": "string",
            "description": "NAME of the environment variable that holds the password or "
                           "token (requires username_env). Never put the secret itself here.",
            "pattern": c.ENV_NAME_PATTERN,
        },
        "ca_file": {
            "type": "string",
            "description": "PEM file of CA certificates to trust, relative to the directory "
                           "of release.yml; must exist.",
            "minLength": 1,
        },
        "insecure": {
            "type": "boolean",
            "description": "Allow plain HTTP and unverified TLS (loopback registries may "
                           "always use plain HTTP).",
            "default": False,
        },
        "immutable": {
            "type": "boolean",
            "description": "false: a version tag that already holds another image may be "
                           "replaced on this registry (a note says so). Default true: refused.",
            "default": True,
        },
        "region": {
            "type": "string",
            "description": "type ecr only: the AWS region, for a registry host that does not "
                           "say (an alias of an ECR registry); must match the host otherwise.",
            "pattern": c.AWS_REGION_PATTERN,
        },
        "profile": {
            "type": "string",
            "description": "type ecr only: AWS shared-config profile to use (else the standard "
                           "AWS credential chain: env, AWS_PROFILE, SSO, web identity, "
                           "container or instance role).",
            "minLength": 1,
        },
        "role_arn": {
            "type": "string",
            "description": "type ecr only: IAM role to assume (sts:AssumeRole) before "
                           "asking ECR for a token.",
            "pattern": c.ROLE_ARN_PATTERN,
        },
        "create_repository": {
            "type": "boolean",
            "description": "type ecr only: create the repository before a push if ECR does "
                           "not have it.",
            "default": False,
        },
        "key_file": {
            "type": "string",
            "description": "type gcr only: a service-account JSON key file, relative to the "
                           "directory of release.yml, sent as user _json_key (else Google "
                           "application default credentials, else gcloud).",
            "minLength": 1,
        },
        "token_env": {
            "type": "string",
            "description": "type ghcr only: NAME of the environment variable holding the token "
                           "(default GITHUB_TOKEN, then GH_TOKEN); the user name comes from "
                           "GITHUB_ACTOR.",
            "pattern": c.ENV_NAME_PATTERN,
        },
    },
    "dependentRequired": {
        "username_env": ["password_env"],
        "password_env": ["username_env"],
    },
}

_SCHEMA: dict[str, Any] = {
    "$schema": SCHEMA_URI,
    "title": "release.yml",
    "description": "Configuration of `release`: build a container image once, push it to "
                   "every registry, prove the digests match.",
    "type": "object",
    "additionalProperties": False,
    "required": list(c.TOP_REQUIRED),
    "properties": {
        "version": {
            "type": "integer",
            "description": "Schema version of this file.",
            "const": c.SCHEMA_VERSION,
        },
        "image": _IMAGE,
        "tags": _rule_list(
            "Tag rules, one per item, in the syntax of docker/metadata-action "
            "(e.g. type=semver,pattern={{version}}). Default: the semver rules.",
            min_items=1,
        ),
        "flavor": _rule_list(
            "Flavor options as in docker/metadata-action (latest=auto|true|false|highest, "
            "prefix=..., suffix=...). Default: latest=auto.",
            min_items=0,
        ),
        "registries": {
            "type": "array",
            "description": "Registries to push to, in order.",
            "minItems": 1,
            "items": _REGISTRY,
        },
        "retry": {
            "type": "object",
            "description": "Retries of registry operations (exponential backoff).",
            "additionalProperties": False,
            "properties": {
                "attempts": {
                    "type": "integer",
                    "description": f"Total attempts per operation (1 = no retry, at most "
                                   f"{c.MAX_ATTEMPTS}).",
                    "minimum": 1,
                    "maximum": c.MAX_ATTEMPTS,
                    "default": c.DEFAULT_ATTEMPTS,
                },
                "max_delay": {
                    "type": "number",
                    "description": f"Longest wait between attempts, in seconds (at most "
                                   f"{c.MAX_MAX_DELAY:g}).",
                    "exclusiveMinimum": 0,
                    "maximum": c.MAX_MAX_DELAY,
                    "default": c.DEFAULT_MAX_DELAY,
                },
            },
        },
        "ci": {
            "type": "object",
            "description": "The CI that `release ci generate` writes.",
            "additionalProperties": False,
            "properties": {
                "install": {
                    "type": "string",
                    "description": "What the generated CI pip-installs to get release: a VCS "
                                   "URL pinned to a tag (git+https://HOST/OWNER/REPO.git@v1.2.3), "
                                   "a wheel or sdist URL, NAME @ URL, a requirement (NAME==VERSION, "
                                   "from the runners' package index) or a path inside the "
                                   "repository (not absolute, not outside it). The extras [aws] "
                                   "[gcp] [azure] are added for ECR, GCR and ACR registries. "
                                   "--install overrides it. Default: where the running release "
                                   "was installed from (a VCS commit or an archive URL), or '.' "
                                   "in release's own repository.",
                    "minLength": 1,
                    "pattern": c.CI_INSTALL_PATTERN,
                },
            },
        },
    },
}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of release.yml (a fresh copy each call)."""
    return copy.deepcopy(_SCHEMA)
