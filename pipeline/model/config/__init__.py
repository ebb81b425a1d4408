"""release.yml: what it may say (keys), what it loads into (types), the loader and its JSON Schema.

    from pipeline.model.config import load_config, Config

load_config (loader.py) walks the file with image.py and registries.py for those two sections,
checks single values with checks.py and hosts.py, and keeps positions with yamlpos.py;
schema.py builds the JSON Schema from keys.py.
"""

from pipeline.model.config.checks import check_repository, env_name_is_plausible
from pipeline.model.config.hosts import check_registry_host
from pipeline.model.config.keys import (
    DEFAULT_REGISTRY_HOSTS,
    MAX_ATTEMPTS,
    MAX_CONFIG_BYTES,
    MAX_MAX_DELAY,
    REGISTRY_TYPES,
    SCHEMA_VERSION,
)
from pipeline.model.config.loader import load_config
from pipeline.model.config.types import Config, ImageConfig, RegistryConfig, RetryConfig

__all__ = [
    "Config", "DEFAULT_REGISTRY_HOSTS", "ImageConfig", "MAX_ATTEMPTS", "MAX_CONFIG_BYTES",
    "MAX_MAX_DELAY", "REGISTRY_TYPES", "RegistryConfig", "RetryConfig", "SCHEMA_VERSION",
    "check_registry_host", "check_repository", "env_name_is_plausible", "load_config",
]
