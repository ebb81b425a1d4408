"""The data the CI templates render: a pure function of Config (no I/O, no Jinja).

Everything a template needs is decided here, so the templates stay plain YAML with a few
loops: which registries need which login, which permissions the release job gets, which
git tags trigger a release (derived from the tag rules), which secrets and variables the
repository must define. Lists keep release.yml's order, so the output is deterministic.

The parts live next to it, one job each: registries.py (logins, secrets, loopback services),
triggers.py (git tags that start a release), runners.py (platform matrix, runners, QEMU),
references.py (--use-action / --use-component). Their public names are re-exported here.
"""

from __future__ import annotations

import re
import shlex

from pipeline.ci.references import action_reference, component_reference
from pipeline.ci.registries import (
    OIDC_TYPES,
    Registry,
    Setting,
    env_prefix,
    login_set,
    registry_context,
    var_name,
)
from pipeline.ci.runners import (
    GITHUB_RUNNERS,
    NATIVE_ARCHES,
    PlatformJob,
    architecture,
    emulated_arches,
    github_runner,
    platform_jobs,
)
from pipeline.ci.triggers import (
    ANY_TAG,
    TagTriggers,
    gitlab_regex,
    glob_from_regex,
    tag_triggers,
)

# Names of the modules above that importers of pipeline.ci.context use (kept importable here).
__all__ = ["ANY_TAG", "GITHUB_RUNNERS", "NATIVE_ARCHES", "OIDC_TYPES", "PlatformJob", "Registry",
           "Setting", "TagTriggers", "action_reference", "build_context", "cache_context",
           "component_reference", "emulated_arches", "env_prefix", "extras_for", "github_runner",
           "gitlab_cache_ref", "gitlab_regex", "glob_from_regex", "login_set", "platform_jobs",
           "registry_context", "tag_triggers", "var_name", "with_extras"]


def extras_for(config) -> list[str]:
    """The pip extras of release the CI needs: the SDK of each cloud it logs in to with OIDC
    (boto3 reads AWS web identity, google-auth an external-account file, azure-identity a
    federated token file)."""
    wanted = {"ecr": "aws", "gcr": "gcp", "acr": "azure"}
    logins = {registry_context(r).login for r in config.registries}
    return sorted(wanted[t] for t in logins if t in wanted)


def with_extras(spec: str, extras: list[str], package: str = "release-pipeline") -> str:
    """The install spec with the cloud extras, valid for pip in each form it can take:

    `.` -> `.[aws]`; `./vendor/release/` -> `./vendor/release[aws]`;
    `release-pipeline==1.0` -> `release-pipeline[aws]==1.0`;
    `release-pipeline @ https://x/r.whl` -> `release-pipeline[aws] @ https://x/r.whl`;
    `git+https://host/r.git@v1` -> `release-pipeline[aws] @ git+https://host/r.git@v1`
    (PEP 508: a URL gets its extras through a named direct reference)."""
    spec = spec.strip()
    if not extras:
        return spec
    extra = f"[{','.join(extras)}]"
    name, at, url = spec.partition(" @ ")
    if at:                                            # name @ URL
        if "[" in name:
            return spec
        return f"{name.strip()}{extra} @ {url.strip()}"
    if "://" in spec or spec.startswith(("git+", "hg+", "svn+", "bzr+")):   # a bare URL / VCS
        return f"{package}{extra} @ {spec}"
    if spec.startswith((".", "/", "~")) or "/" in spec or spec.endswith((".whl", ".tar.gz", ".zip")):
        if spec.endswith("]"):
            return spec
        return spec.rstrip("/") + extra                 # a local directory or archive
    if "[" in spec:
        return spec
    m = re.match(r"^([A-Za-z0-9._-]+)(.*)$", spec)
    if not m:
        return spec
    return f"{m.group(1)}{extra}{m.group(2)}"


# ---------------------------------------------------------------------------- build cache

GHA_CACHE_FROM = "type=gha"                # GitHub: the Actions cache, through buildx
GHA_CACHE_TO = "type=gha,mode=max,ignore-error=true"   # a cache service hiccup must not fail a release
CACHE_TAG = "latest"                       # GitLab: the image whose inline cache is imported


def gitlab_cache_ref(registries: list[Registry]) -> str | None:
    """The image the GitLab jobs import BuildKit inline cache from (`--cache-from "$CACHE_REF"`):
    the `latest` image of the first registry that outlives a job (a loopback registry:2 is a
    service that starts empty every time), or None. A GitLab registry is named through
    `$CI_REGISTRY`, its host in GitLab CI (release itself reads $CI_REGISTRY when release.yml
    leaves `registry:` out, so the host written here may be a stand-in)."""
    for r in registries:
        if r.loopback_port is not None:
            continue
        host = "$CI_REGISTRY" if r.type == "gitlab" else r.host
        return f"{host}/{r.repository}:{CACHE_TAG}"
    return None


def cache_context(registries: list[Registry], enabled: bool = True) -> dict:
    """What the templates need for the build cache (off: `release ci generate --no-cache`).

    GitHub: the jobs that build set up buildx and expose the Actions cache runtime, then pass
    `--cache-from type=gha --cache-to type=gha,mode=max` (per-platform jobs add `scope=SLUG`).
    GitLab: Docker-in-Docker, no buildx: `--cache-from "$CACHE_REF"`, a pushed image (every image
    release builds carries inline cache metadata), `gitlab_ref` below."""
    ref = gitlab_cache_ref(registries) if enabled else None
    return {"enabled": enabled, "gha_from": GHA_CACHE_FROM, "gha_to": GHA_CACHE_TO,
            "gitlab_ref": ref,
            "gitlab_source": next((r.name for r in registries if r.loopback_port is None), None)
            if ref else None}


# ---------------------------------------------------------------------------- the whole context


def build_context(config, *, config_path: str, versions: dict, install: str,
                  default_branch: str = "main", command: str = "release ci generate",
                  cache: bool = True, use_action: str | None = None,
                  use_component: str | None = None) -> dict:
    """Template context for `config`. `config_path` is release.yml relative to the repository
    root (where the CI runs); `install` is what `pip install` gets to install release; `cache`
    False leaves the build cache out of the generated files.

    `use_action` (OWNER/REPO@REF): the GitHub release jobs run release through that GitHub
    Action (action.yml) instead of installing it themselves. `use_component`
    (HOST/GROUP/PROJECT/release@VERSION): the GitLab release job comes from that CI/CD
    component (templates/release.yml). Both are checked here (UsageError with a hint)."""
    action = action_reference(use_action) if use_action is not None else None
    component = component_reference(use_component) if use_component is not None else None
    registries = [registry_context(r) for r in config.registries]
    logins = sorted({r.login for r in registries})
    triggers = tag_triggers(config.tags)
    ghcr = "ghcr" in logins

    # One identity per cloud and job: the SDKs read one AWS chain, one Google ADC file, one
    # Azure login. A registry in another account: role_arn (ECR) or grant that identity access.
    ecr = [r for r in registries if r.login == "ecr"]
    aws_region = next((r.region for r in ecr if r.region), None)
    aws = None
    if ecr:
        aws = {"role": Setting(var="AWS_ROLE_ARN", purpose="IAM role the job assumes with OIDC"),
               "region": Setting(var="AWS_REGION", value=aws_region, purpose="AWS region for STS")}
    gcp = {"provider": Setting(var="GCP_WORKLOAD_IDENTITY_PROVIDER",
                               purpose="workload identity provider, projects/NUMBER/locations/global/"
                                       "workloadIdentityPools/POOL/providers/PROVIDER"),
           "service_account": Setting(var="GCP_SERVICE_ACCOUNT",
                                      purpose="service account the job impersonates")} \
        if "gcr" in logins else None
    azure = {"client_id": Setting(var="AZURE_CLIENT_ID",
                                  purpose="client id of the app registration with a federated credential"),
             "tenant_id": Setting(var="AZURE_TENANT_ID", purpose="Microsoft Entra tenant id"),
             "subscription_id": Setting(var="AZURE_SUBSCRIPTION_ID", purpose="Azure subscription id")} \
        if "acr" in logins else None

    gh_secrets: list[tuple[str, str]] = []
    gh_vars: list[tuple[str, str]] = []
    gl_vars: list[tuple[str, str]] = []
    for r in registries:
        for name in r.env.values():
            gh_secrets.append((name, f"named in release.yml for {r.name}"))
            if r.type != "gitlab":  # on GitLab these come from CI_REGISTRY_USER / _PASSWORD
                gl_vars.append((name, f"named in release.yml for {r.name} (masked)"))
        if r.login in ("dockerhub", "basic", "gitlab"):
            gh_vars.append((r.username.var, r.username.purpose))
            gh_secrets.append((r.password_secret, f"password or access token for {r.name}"))
        if r.login in ("dockerhub", "basic", "ghcr"):
            gl_vars.append((r.username.var, r.username.purpose))
            gl_vars.append((r.password_secret, f"password or access token for {r.name} (masked)"))
    for cloud, gitlab_keys in ((aws, ("role",)), (gcp, ("provider", "service_account")),
                               (azure, ("client_id", "tenant_id"))):
        for key, setting in (cloud or {}).items():
            if not setting.is_literal:
                gh_vars.append((setting.var, setting.purpose))
                if key in gitlab_keys:
                    gl_vars.append((setting.var, setting.purpose))

    platforms = [str(p) for p in (getattr(config.image, "platforms", ()) or ())]
    emulated = emulated_arches(platforms)
    runner, github_qemu = github_runner(platforms, versions)
    release_job = login_set(registries, aws, gcp, azure)
    # Several platforms: one job per platform pushes it by digest to the first registry (logged
    # in there only), a merge job assembles the index and releases it everywhere. Not when the
    # first registry is a loopback service: each job would get its own empty registry:2.
    loopback_first = bool(registries) and registries[0].loopback_port is not None
    matrix = len(platforms) > 1 and bool(registries) and not loopback_first
    release_cmd = "release" if config_path == "release.yml" else f"release -c {shlex.quote(config_path)}"
    loopback_ports = sorted({r.loopback_port for r in registries if r.loopback_port is not None})
    return {
        "command": command,
        "config_path": config_path,
        "release": release_cmd,
        "install": install,
        "image": config.image.name,
        "default_branch": default_branch,
        "registries": registries,
        "logins": logins,
        "tag_globs": list(triggers.globs),
        "tag_regexes": list(triggers.regexes),
        "tag_sources": list(triggers.sources),
        "platforms": platforms,
        "emulated_arches": emulated,          # need QEMU on an amd64 runner
        "matrix": matrix,                     # per-platform jobs + a merge job
        "matrix_blocked": len(platforms) > 1 and loopback_first,
        "platform_jobs": platform_jobs(platforms, versions) if matrix else [],
        "first": registries[0] if registries else None,
        "platform_job": login_set(registries[:1], aws, gcp, azure),   # first registry only
        "release_job": release_job,                                   # release / merge: all
        "permissions": release_job["permissions"],
        "oidc": release_job["oidc"],
        "ghcr": ghcr,
        "aws": aws,
        "gcp": gcp,
        "azure": azure,
        "role_arns": [r for r in ecr if r.role_arn],
        "loopback_ports": loopback_ports,
        "cache": cache_context(registries, cache),
        "github_secrets": list(dict.fromkeys(gh_secrets)),
        "github_variables": list(dict.fromkeys(gh_vars)),
        "gitlab_variables": list(dict.fromkeys(gl_vars)),
        "v": versions,
        # GitHub jobs that build every platform themselves (build; release without the matrix):
        # a single platform with a native runner (linux/arm64) runs there, without QEMU.
        "runner": runner,
        "github_emulated": github_qemu,
        "native_platform": platforms[0] if len(platforms) == 1 and not github_qemu
        and GITHUB_RUNNERS.get(architecture(platforms[0]), "runner") != "runner" else None,
        "gitlab_ci_registries": [r for r in registries if r.ci_registry],
        "extras": extras_for(config),                 # the action's / component's `extras` input
        "action": action,                             # uses: OWNER/REPO@REF, or None
        "component": component,                       # include: component: ..., or None
    }
