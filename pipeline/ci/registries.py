"""How the generated CI gives release each registry's credentials, and what a job logs in to.

One `Registry` per release.yml entry (`registry_context`): its login (none, env, ghcr,
dockerhub, basic, gitlab, or OIDC for ecr / gcr / acr), the CI secrets and variables that
login reads, and for a loopback registry (registry/hosts.py's rule) the port of the registry:2
service that stands in for it in CI. `login_set` is what one job logs in to and the
permissions that takes. Pure: no I/O.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from pipeline.registry.hosts import is_loopback, split_host_port

# Registry types the CI logs in to with OIDC (a short-lived identity, no stored secret); release's
# cloud adapters then read that identity (AWS chain, Google ADC, Azure login) themselves.
OIDC_TYPES = ("ecr", "gcr", "acr")

_ECR_HOST = re.compile(r"^(\d{12})\.dkr[.-]ecr(?:-fips)?\.([a-z]{2,}(?:-[a-z]+)+-[0-9]+)\.")  # its region
_DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")
GITLAB_COM_REGISTRY = "registry.gitlab.com"   # type gitlab without `registry:`, outside GitLab CI


@dataclass(frozen=True)
class Setting:
    """A value the CI needs: written in release.yml (`value`), else a CI variable named `var`."""
    var: str
    value: str | None = None
    purpose: str = ""

    @property
    def is_literal(self) -> bool:
        return self.value is not None


@dataclass
class Registry:
    name: str
    type: str
    host: str
    repository: str
    prefix: str                   # for the names of its CI secrets and variables
    login: str                    # none | env | ghcr | dockerhub | basic | gitlab | ecr | gcr | acr
    loopback_port: int | None = None
    env: dict[str, str] = field(default_factory=dict)       # env var -> secret of the same name
    username_env: str | None = None
    password_env: str | None = None
    username: Setting | None = None                          # basic / dockerhub / gitlab / ghcr
    password_secret: str | None = None
    region: str | None = None                                # ecr
    role_arn: str | None = None                              # ecr: release assumes it itself
    # type gitlab without `registry:` in release.yml: `host` is registry.gitlab.com (what release
    # uses outside GitLab CI, e.g. on GitHub), and GitLab CI names it `$CI_REGISTRY` at run time,
    # whatever CI_REGISTRY was where the file was generated.
    ci_registry: bool = False

    @property
    def image(self) -> str:
        return f"{self.host}/{self.repository}"

    @property
    def gitlab_host(self) -> str:
        """The host as a shell word of a GitLab CI script: `"$CI_REGISTRY"` for a GitLab
        registry release.yml leaves to the job (expanded at run time), else the host quoted."""
        return '"$CI_REGISTRY"' if self.ci_registry else shlex.quote(self.host)

    @property
    def docker_hub(self) -> bool:
        return self.host in _DOCKER_HUB_HOSTS

    @property
    def oidc(self) -> bool:
        return self.login in OIDC_TYPES


def env_prefix(name: str) -> str:
    """Registry name -> the prefix of its CI variables: `docker-hub` -> `DOCKER_HUB`."""
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def var_name(prefix: str, suffix: str) -> str:
    """`HUB` + `USERNAME` -> `HUB_USERNAME`; `DOCKERHUB` + `DOCKERHUB_TOKEN` -> `DOCKERHUB_TOKEN`."""
    return suffix if suffix.startswith(prefix + "_") else f"{prefix}_{suffix}"


def _ecr_region(reg) -> str | None:
    configured = getattr(reg, "region", None)
    if isinstance(configured, str) and configured:
        return configured
    if reg.registry in ("public.ecr.aws", "ecr-public.aws.com"):
        return "us-east-1"
    m = _ECR_HOST.match(reg.registry)
    return m.group(2) if m else None


def registry_context(reg) -> Registry:
    """How the CI gives release the credentials of one registry."""
    prefix = env_prefix(reg.name)
    # `registry:` left out of a gitlab entry: the loader took $CI_REGISTRY from the environment
    # that generates the file (else registry.gitlab.com). Neither may be baked in: GitLab CI reads
    # its own $CI_REGISTRY at run time, anything else (GitHub) registry.gitlab.com.
    ci_registry = reg.type == "gitlab" and getattr(reg, "host_defaulted", False) is True
    out = Registry(name=reg.name, type=reg.type,
                   host=GITLAB_COM_REGISTRY if ci_registry else reg.registry,
                   repository=reg.repository, prefix=prefix, login="none", ci_registry=ci_registry)
    if reg.username_env or reg.password_env:
        out.login = "env"
        out.env = {n: n for n in (reg.username_env, reg.password_env) if n}
        out.username_env, out.password_env = reg.username_env, reg.password_env
        return out
    if is_loopback(reg.registry):
        # a plain registry:2 service stands in for it; not for a TLS one (ca_file): the service
        # speaks HTTP, and no CI service has its certificate (ci/reachability.py says so)
        if getattr(reg, "ca_file", None) is None:
            out.loopback_port = split_host_port(reg.registry)[1] or 80
        return out
    if reg.type in OIDC_TYPES:
        out.login = reg.type
        if reg.type == "ecr":
            out.region = _ecr_region(reg)
            role = getattr(reg, "role_arn", None)
            out.role_arn = role if isinstance(role, str) and role else None
        return out
    if reg.type == "ghcr" or reg.registry == "ghcr.io":
        out.login = "ghcr"
    elif reg.type == "gitlab":
        out.login = "gitlab"
    elif reg.type == "dockerhub" or out.docker_hub:
        out.login = "dockerhub"
    else:
        out.login = "basic"
    out.username = Setting(var=var_name(prefix, "USERNAME"), purpose=f"user name for {reg.name}")
    out.password_secret = var_name(prefix, "TOKEN" if out.login == "dockerhub" else "PASSWORD")
    return out


def login_set(registries: list[Registry], aws, gcp, azure) -> dict:
    """What one job logs in to: its registries, the clouds those need, and the permissions that
    takes (packages: write for GHCR, id-token: write for an OIDC login; contents: read always)."""
    logins = {r.login for r in registries}
    oidc = any(r.oidc for r in registries)
    permissions = {"contents": "read"}
    if "ghcr" in logins:
        permissions["packages"] = "write"
    if oidc:
        permissions["id-token"] = "write"
    return {"registries": registries, "permissions": permissions, "oidc": oidc,
            "aws": aws if "ecr" in logins else None,
            "gcp": gcp if "gcr" in logins else None,
            "azure": azure if "acr" in logins else None}
