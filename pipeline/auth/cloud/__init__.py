"""Cloud login adapters, one module per registry type: credentials from what the machine
already has (an SDK's default chain, a cloud CLI's login, a CI job's variables).

    adapter(registry.type).credentials(registry, env, cache=CACHE)   # -> Credentials
    adapter(registry.type).prepare_push(registry, env)               # only some types (ecr)

`credentials` raises NotConfigured when it finds nothing to log in with, CloudAuthError when
the cloud refuses. Where the adapters come in the lookup order, and what follows when one
finds nothing: pipeline/auth/lookup.py. An adapter module is imported on first use (a release
to Docker Hub never loads the ECR one), and the cloud SDKs (optional extras) only when it logs in.
"""

from __future__ import annotations

import importlib

from pipeline.auth.cloud.common import CloudAuthError, NotConfigured
from pipeline.errors import UsageError

__all__ = ["ADAPTERS", "NEEDS_CREDENTIALS", "CloudAuthError", "NotConfigured", "adapter"]

ADAPTERS = {
    "generic": "generic",
    "dockerhub": "dockerhub",
    "ecr": "ecr",
    "gcr": "gcr",
    "acr": "acr",
    "ghcr": "ghcr",
    "gitlab": "gitlab",
}

# Types whose registries never serve anyone without credentials (push or pull).
NEEDS_CREDENTIALS = frozenset({"ecr", "gcr", "acr"})


def adapter(registry_type: str):
    """The adapter module for `registry_type` (imported now, if it was not yet)."""
    try:
        name = ADAPTERS[registry_type]
    except KeyError:
        raise UsageError(f"unknown registry type {registry_type!r}",
                         hint=f"one of: {', '.join(ADAPTERS)}") from None
    return importlib.import_module(f"{__name__}.{name}")
