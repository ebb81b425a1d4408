"""pipeline.ci.context and its parts (triggers, registries, runners): tag triggers from tag
rules, logins per registry type, permissions."""

import re

import pytest

from pipeline.ci.context import (
    build_context,
    cache_context,
    extras_for,
    gitlab_cache_ref,
    with_extras,
)
from pipeline.ci.registries import login_set, registry_context
from pipeline.ci.runners import PlatformJob, platform_jobs
from pipeline.ci.triggers import ANY_TAG, gitlab_regex, glob_from_regex, tag_triggers
from pipeline.model.config.loader import load_config
from pipeline.model.tags import parse_tag_rule
from pipeline.model.tags.jsregex import compile_js_regex


def github_glob_matches(glob: str, tag: str) -> bool:
    """GitHub's filter pattern rules, as documented: * (no /), ** (anything), + and ? apply to
    the preceding character, [..] one character; everything else is literal."""
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "[":
            end = glob.index("]", i)
            out.append(glob[i:end + 1])
            i = end + 1
            continue
        elif c in "+?":
            out.append(c)
        else:
            out.append(re.escape(c))
        i += 1
    return re.fullmatch("".join(out), tag) is not None


def gitlab_matches(literal: str, tag: str) -> bool:
    body, flags = literal[1:].rsplit("/", 1)
    body = body.replace("\\/", "/")
    return re.search(body, tag, re.IGNORECASE if "i" in flags else 0) is not None


def rules(*lines):
    return [parse_tag_rule(line, i) for i, line in enumerate(lines)]


SEMVER_TAGS = ["v1.2.3", "1.2.3", "v1.3.0-rc.1", "10.20.30+build.5"]
NOT_SEMVER = ["v1.2", "latest", "release-1", "V1.2.3x/y"]


def test_default_semver_rules_trigger_on_v_and_bare_versions():
    t = tag_triggers(rules("type=semver,pattern={{version}}", "type=semver,pattern={{major}}"))
    assert t.globs == ("v[0-9]+.[0-9]+.[0-9]+*", "[0-9]+.[0-9]+.[0-9]+*")
    assert len(t.regexes) == 1
    for tag in SEMVER_TAGS:
        assert any(github_glob_matches(g, tag) for g in t.globs), tag
        assert gitlab_matches(t.regexes[0], tag), tag
    for tag in ["v1.2", "latest", "release-1"]:
        assert not any(github_glob_matches(g, tag) for g in t.globs), tag
        assert not gitlab_matches(t.regexes[0], tag), tag


def test_prerelease_only_match_rule():
    t = tag_triggers(rules(r"type=match,pattern=^v(\d+\.\d+\.\d+-rc\.\d+)$,group=1"))
    assert t.globs == ("v[0-9]+.[0-9]+.[0-9]+-rc.[0-9]+",)
    assert t.regexes == (r"/^v(\d+\.\d+\.\d+-rc\.\d+)$/",)
    assert github_glob_matches(t.globs[0], "v1.2.3-rc.4")
    assert not github_glob_matches(t.globs[0], "v1.2.3")
    assert gitlab_matches(t.regexes[0], "v1.2.3-rc.4")
    assert not gitlab_matches(t.regexes[0], "v1.2.3")


def test_rules_that_read_no_tag_give_any_tag():
    t = tag_triggers(rules("type=sha", "type=edge", "type=raw,value=nightly"))
    assert t.globs == (ANY_TAG,) and t.regexes == ()
    t = tag_triggers(rules("type=semver,pattern={{version}}", "type=ref,event=tag"))
    assert t.globs == (ANY_TAG,) and t.regexes == ()


def test_disabled_and_fixed_value_rules_are_ignored():
    t = tag_triggers(rules("type=semver,pattern={{version}},enable=false",
                           "type=semver,pattern={{version}},value=1.0.0",
                           "type=pep440,pattern={{version}}"))
    assert t.globs == ("v[0-9]*", "[0-9]*")


@pytest.mark.parametrize("regex, samples_in, samples_out", [
    (r"^v(\d+\.\d+)$", ["v1.2"], ["v1", "x1.2"]),
    (r"^v(\d+)?$", ["v", "v12"], ["x"]),
    (r"^release-(.*)$", ["release-1", "release-a/b"], ["rel"]),
    (r"^app/v(\d+)$", ["app/v3"], ["app/x"]),
    (r"/^V(\d+)$/i", ["v3", "V3"], []),
    (r"^\d{0,3}$", ["", "12"], []),
    (r"v\d", ["v1", "xv1"], []),
    (r"^(?<ver>\d{1,3})\.x$", ["12.x"], ["a.x"]),
])
def test_glob_from_regex_over_approximates(regex, samples_in, samples_out):
    glob = glob_from_regex(regex)
    for tag in samples_in:  # every tag the regex matches, the glob matches too
        assert compile_js_regex(regex).match(tag) is not None
        assert github_glob_matches(glob, tag), (glob, tag)
    for tag in samples_out:
        assert not github_glob_matches(glob, tag), (glob, tag)


def test_gitlab_regex_translation():
    assert gitlab_regex(r"^app/v(\d+)$") == r"/^app\/v(\d+)$/"
    assert gitlab_regex(r"^(?<v>\d+)$") == r"/^(?P<v>\d+)$/"
    assert gitlab_regex(r"/^v\d/gi") == r"/^v\d/i"
    assert gitlab_regex(r"^v(?=\d)") is None          # lookahead: RE2 has none
    assert gitlab_regex(r"^(a)\1$") is None           # backreference


def test_extras_and_install_spec():
    assert with_extras(".", ["aws", "gcp"]) == ".[aws,gcp]"
    assert with_extras("release-pipeline==1.2.3", ["azure"]) == "release-pipeline[azure]==1.2.3"
    assert with_extras("release-pipeline[aws]==1", ["gcp"]) == "release-pipeline[aws]==1"
    assert with_extras(".", []) == "."


@pytest.mark.parametrize("spec, expected", [
    ("git+https://example.com/acme/release.git@v1.2.3",
     "release-pipeline[aws,gcp] @ git+https://example.com/acme/release.git@v1.2.3"),
    ("https://example.com/dist/release_pipeline-1.0-py3-none-any.whl",
     "release-pipeline[aws,gcp] @ https://example.com/dist/release_pipeline-1.0-py3-none-any.whl"),
    ("release-pipeline @ https://example.com/r.whl", "release-pipeline[aws,gcp] @ https://example.com/r.whl"),
    ("release-pipeline[aws] @ https://example.com/r.whl", "release-pipeline[aws] @ https://example.com/r.whl"),
    ("./vendor/release/", "./vendor/release[aws,gcp]"),
    ("vendor/release", "vendor/release[aws,gcp]"),
    ("/opt/release", "/opt/release[aws,gcp]"),
    ("dist/release_pipeline-1.0-py3-none-any.whl", "dist/release_pipeline-1.0-py3-none-any.whl[aws,gcp]"),
    ("release-pipeline>=1,<2", "release-pipeline[aws,gcp]>=1,<2"),
])
def test_extras_go_where_pip_accepts_them_for_every_kind_of_spec(spec, expected):
    """Issue 13: URL, VCS and path specs came out as git[aws]+https://... and .[aws]/vendor."""
    from packaging.requirements import Requirement
    got = with_extras(spec, ["aws", "gcp"])
    assert got == expected
    if got.startswith("release-pipeline"):           # named: a valid PEP 508 requirement
        req = Requirement(got)
        assert req.name == "release-pipeline"
        assert req.extras == ({"aws"} if spec.startswith("release-pipeline[aws]") else {"aws", "gcp"})


REGISTRIES = """\
  - {name: local, registry: "localhost:5000", repository: team/app}
  - {name: corp, registry: registry.example.com, repository: team/app}
  - {name: corp-env, registry: r2.example.com, repository: team/app, username_env: CORP_USER, password_env: CORP_PASS}
  - {name: dockerhub, type: dockerhub, registry: docker.io, repository: acme/app}
  - {name: aws, type: ecr, registry: 123456789012.dkr.ecr.eu-west-1.amazonaws.com, repository: app}
  - {name: gar, type: gcr, registry: europe-docker.pkg.dev, repository: proj/images/app}
  - {name: azure, type: acr, registry: acme.azurecr.io, repository: app}
  - {name: gh, type: ghcr, registry: ghcr.io, repository: acme/app}
  - {name: gl, type: gitlab, registry: registry.gitlab.com, repository: acme/app}
"""


@pytest.fixture
def config(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "release.yml").write_text("image: {name: app}\nregistries:\n" + REGISTRIES)
    return load_config(tmp_path / "release.yml")


def test_login_per_registry_type(config):
    logins = {r.name: registry_context(r) for r in config.registries}
    assert {n: r.login for n, r in logins.items()} == {
        "local": "none", "corp": "basic", "corp-env": "env", "dockerhub": "dockerhub", "aws": "ecr",
        "gar": "gcr", "azure": "acr", "gh": "ghcr", "gl": "gitlab"}
    assert logins["local"].loopback_port == 5000
    assert logins["dockerhub"].username.var == "DOCKERHUB_USERNAME"
    assert logins["dockerhub"].password_secret == "DOCKERHUB_TOKEN"
    assert logins["corp"].password_secret == "CORP_PASSWORD"
    assert logins["corp-env"].env == {"CORP_USER": "CORP_USER", "CORP_PASS": "CORP_PASS"}
    assert logins["aws"].region == "eu-west-1"
    assert extras_for(config) == ["aws", "azure", "gcp"]


def test_permissions_are_least_privilege(tmp_path, config):
    ctx = build_context(config, config_path="release.yml", versions={}, install=".")
    assert ctx["permissions"] == {"contents": "read", "packages": "write", "id-token": "write"}
    (tmp_path / "release.yml").write_text(
        "image: {name: app}\nregistries:\n  - {name: corp, registry: r.example.com, repository: a}\n")
    plain = build_context(load_config(tmp_path / "release.yml"), config_path="release.yml",
                          versions={}, install=".")
    assert plain["permissions"] == {"contents": "read"}
    assert plain["github_secrets"] == [("CORP_PASSWORD", "password or access token for corp")]
    assert plain["github_variables"] == [("CORP_USERNAME", "user name for corp")]


def test_context_names_every_secret_and_variable(config):
    ctx = build_context(config, config_path="ci/release.yml", versions={}, install=".")
    assert ctx["release"] == "release -c ci/release.yml"
    secrets = [n for n, _ in ctx["github_secrets"]]
    assert secrets == ["CORP_PASSWORD", "CORP_USER", "CORP_PASS", "DOCKERHUB_TOKEN", "GL_PASSWORD"]
    variables = [n for n, _ in ctx["github_variables"]]
    assert variables[:3] == ["CORP_USERNAME", "DOCKERHUB_USERNAME", "GL_USERNAME"]
    assert {"AWS_ROLE_ARN", "GCP_WORKLOAD_IDENTITY_PROVIDER", "GCP_SERVICE_ACCOUNT", "AZURE_CLIENT_ID",
            "AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID"} <= set(variables)
    assert "AWS_REGION" not in variables  # read from the ECR host name
    gitlab = [n for n, _ in ctx["gitlab_variables"]]
    assert "GL_PASSWORD" not in gitlab and "GH_PASSWORD" in gitlab  # GitLab's own: CI_REGISTRY_*


VERSIONS = {"github": {"runner": "ubuntu-24.04", "runner_arm64": "ubuntu-24.04-arm"}}


def test_platform_jobs_pick_native_runners_and_qemu():
    jobs = platform_jobs(["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/386", "linux/s390x"], VERSIONS)
    assert jobs == [
        PlatformJob("linux/amd64", "linux-amd64", "ubuntu-24.04", None, None),
        PlatformJob("linux/arm64", "linux-arm64", "ubuntu-24.04-arm", None, "arm64"),
        PlatformJob("linux/arm/v7", "linux-arm-v7", "ubuntu-24.04", "arm", "arm"),
        PlatformJob("linux/386", "linux-386", "ubuntu-24.04", None, None),
        PlatformJob("linux/s390x", "linux-s390x", "ubuntu-24.04", "s390x", "s390x")]
    # No arm64 runner in versions.yml: arm64 runs on the amd64 one under QEMU.
    (arm,) = platform_jobs(["linux/arm64"], {"github": {"runner": "x64", "runner_arm64": ""}})
    assert (arm.runner, arm.github_qemu) == ("x64", "arm64")


def test_login_set_is_least_privilege_per_job(config):
    regs = {r.name: registry_context(r) for r in config.registries}
    aws, gcp = object(), object()
    only_gh = login_set([regs["gh"]], aws, gcp, None)
    assert only_gh["permissions"] == {"contents": "read", "packages": "write"}
    assert (only_gh["aws"], only_gh["gcp"], only_gh["oidc"]) == (None, None, False)
    only_aws = login_set([regs["aws"]], aws, gcp, None)
    assert only_aws["permissions"] == {"contents": "read", "id-token": "write"}
    assert only_aws["aws"] is aws and only_aws["gcp"] is None
    assert login_set([regs["corp"]], aws, gcp, None)["permissions"] == {"contents": "read"}


def write_config(tmp_path, platforms, registries):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    lines = "".join(f"  - {r}\n" for r in registries)
    (tmp_path / "release.yml").write_text(
        f"image: {{name: app, platforms: [{', '.join(platforms)}]}}\nregistries:\n{lines}")
    return load_config(tmp_path / "release.yml")


def test_matrix_only_with_several_platforms_and_a_reachable_first_registry(tmp_path):
    ghcr = "{name: gh, type: ghcr, registry: ghcr.io, repository: a/b}"
    ecr = "{name: aws, type: ecr, registry: 123456789012.dkr.ecr.eu-west-1.amazonaws.com, repository: app}"
    loop = "{name: local, registry: 'localhost:5000', repository: a/b}"

    def ctx(platforms, registries):
        return build_context(write_config(tmp_path, platforms, registries), config_path="release.yml",
                             versions=VERSIONS, install=".")

    one = ctx(["linux/arm64"], [ghcr, ecr])
    assert not one["matrix"] and one["platform_jobs"] == [] and not one["matrix_blocked"]
    two = ctx(["linux/amd64", "linux/arm64"], [ghcr, ecr])
    assert two["matrix"] and [j.slug for j in two["platform_jobs"]] == ["linux-amd64", "linux-arm64"]
    assert two["first"].name == "gh"
    assert [r.name for r in two["platform_job"]["registries"]] == ["gh"]
    assert two["platform_job"]["permissions"] == {"contents": "read", "packages": "write"}
    assert two["release_job"]["permissions"] == {"contents": "read", "packages": "write", "id-token": "write"}
    assert two["permissions"] == two["release_job"]["permissions"]
    flipped = ctx(["linux/amd64", "linux/arm64"], [ecr, ghcr])
    assert flipped["platform_job"]["permissions"] == {"contents": "read", "id-token": "write"}
    assert flipped["platform_job"]["aws"] is flipped["aws"]
    blocked = ctx(["linux/amd64", "linux/arm64"], [loop, ghcr])
    assert not blocked["matrix"] and blocked["matrix_blocked"] and blocked["platform_jobs"] == []
    assert ctx(["linux/amd64", "linux/arm64"], [ghcr, loop])["matrix"]


def test_gitlab_cache_ref_is_latest_of_the_first_registry_that_outlives_a_job(config):
    regs = {r.name: registry_context(r) for r in config.registries}
    assert gitlab_cache_ref([regs["local"], regs["corp"]]) == "registry.example.com/team/app:latest"  # loopback skipped
    assert gitlab_cache_ref([regs["gl"], regs["corp"]]) == "$CI_REGISTRY/acme/app:latest"  # GitLab: its host in CI
    assert gitlab_cache_ref([regs["local"]]) is None and gitlab_cache_ref([]) is None
    on = cache_context([regs["local"], regs["dockerhub"]])
    assert on == {"enabled": True, "gha_from": "type=gha", "gha_to": "type=gha,mode=max,ignore-error=true",
                  "gitlab_ref": "docker.io/acme/app:latest", "gitlab_source": "dockerhub"}
    off = cache_context([regs["dockerhub"]], enabled=False)
    assert not off["enabled"] and off["gitlab_ref"] is None and off["gitlab_source"] is None
    ctx = build_context(config, config_path="release.yml", versions={}, install=".", cache=False)
    assert ctx["cache"]["enabled"] is False
    assert build_context(config, config_path="release.yml", versions={}, install=".")["cache"]["enabled"]
