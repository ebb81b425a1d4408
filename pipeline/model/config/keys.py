"""What release.yml may say: its keys, registry types, patterns, defaults and limits.

The loader (loader.py, image.py, registries.py) and the JSON Schema (schema.py) are both built
from these, so they cannot drift apart on key names, enums and patterns.
"""

from __future__ import annotations

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
AWS_REGION = r"[a-z]{2,}(?:-[a-z]+)+-[0-9]+"  # also the REGION of an ECR host (hosts.py)
AWS_REGION_PATTERN = rf"^{AWS_REGION}$"
ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$"

INDEX_FORMATS = ("oci", "docker")  # OCI image index / Docker manifest list (pipeline/registry/image.py)
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
HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PORT = (r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}"
         r"|[1-9][0-9]{0,3})")
# Looser than hosts.check_registry_host (which also validates IP addresses and lengths).
REGISTRY_HOST_PATTERN = (rf"^(?:{HOST_LABEL}(?:\.{HOST_LABEL})*|\[[0-9A-Fa-f:.]+\])"
                         rf"(?::{_PORT})?$")
