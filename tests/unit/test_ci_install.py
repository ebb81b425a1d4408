"""What the generated CI installs to get release (pipeline/ci/install.py, issue 13 item 1):
every form of `ci.install` / `--install` with and without the cloud extras, the PEP 610 records
the default reads (direct_url.json), and the errors: exit 2, at ci.install's file:line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.requirements import Requirement

from pipeline import __version__
from pipeline.ci import install as ci_install
from pipeline.ci.install import (
    PACKAGE,
    Spec,
    in_repository,
    is_release_repository,
    notes,
    origin_spec,
    parse_spec,
    read_direct_url,
    resolve,
    with_cloud_extras,
)
from pipeline.cli.ci import generate_text
from pipeline.cli.main import cli
from pipeline.errors import ConfigError, UsageError, ValueProblem
from pipeline.model.config.loader import load_config

COMMIT = "4f0c2b1e9d8a7c6b5a4f3e2d1c0b9a8f7e6d5c4b"
SHA256 = "a" * 64
EXTRAS = ["aws", "gcp"]

VCS_RECORD = {"url": "https://github.com/acme/release.git",
              "vcs_info": {"vcs": "git", "commit_id": COMMIT, "requested_revision": "main"}}
ARCHIVE_RECORD = {"url": "https://files.example.com/release_pipeline-1.0-py3-none-any.whl",
                  "archive_info": {"hashes": {"sha256": SHA256}, "hash": f"sha256={SHA256}"}}
EDITABLE_RECORD = {"url": "file:///home/me/src/release", "dir_info": {"editable": True}}
DIR_RECORD = {"url": "file:///home/me/src/release", "dir_info": {}}


# ---------------------------------------------------------------------------- forms and extras


# (spec as written, its kind, what the CI installs with [aws,gcp], what it installs without)
FORMS = [
    ("release-pipeline", "name", "release-pipeline[aws,gcp]", "release-pipeline"),
    ("release-pipeline==1.2.3", "name", "release-pipeline[aws,gcp]==1.2.3", "release-pipeline==1.2.3"),
    ("release-pipeline>=1,<2", "name", "release-pipeline[aws,gcp]>=1,<2", "release-pipeline>=1,<2"),
    ('release-pipeline~=1.2; python_version >= "3.11"', "name",
     'release-pipeline[aws,gcp]~=1.2; python_version >= "3.11"',
     'release-pipeline~=1.2; python_version >= "3.11"'),
    ("release-pipeline[aws]==1", "name", "release-pipeline[aws]==1", "release-pipeline[aws]==1"),
    ("acme-release==2.0", "name", "acme-release[aws,gcp]==2.0", "acme-release==2.0"),
    ("release-pipeline @ https://example.com/r-1.0-py3-none-any.whl", "direct",
     "release-pipeline[aws,gcp] @ https://example.com/r-1.0-py3-none-any.whl",
     "release-pipeline @ https://example.com/r-1.0-py3-none-any.whl"),
    ("release-pipeline@git+https://example.com/acme/release.git@v1.2.3", "direct",
     "release-pipeline[aws,gcp] @ git+https://example.com/acme/release.git@v1.2.3",
     "release-pipeline @ git+https://example.com/acme/release.git@v1.2.3"),
    ("release-pipeline [azure] @ https://example.com/r.tar.gz#sha256=" + SHA256, "direct",
     "release-pipeline[azure] @ https://example.com/r.tar.gz#sha256=" + SHA256,
     "release-pipeline[azure] @ https://example.com/r.tar.gz#sha256=" + SHA256),
    ("git+https://example.com/acme/release.git@v1.2.3", "vcs",
     "release-pipeline[aws,gcp] @ git+https://example.com/acme/release.git@v1.2.3",
     "git+https://example.com/acme/release.git@v1.2.3"),
    ("git+ssh://git@example.com/acme/release.git@" + COMMIT, "vcs",
     "release-pipeline[aws,gcp] @ git+ssh://git@example.com/acme/release.git@" + COMMIT,
     "git+ssh://git@example.com/acme/release.git@" + COMMIT),
    ("git+https://example.com/mono.git@v1#subdirectory=tools/release", "vcs",
     "release-pipeline[aws,gcp] @ git+https://example.com/mono.git@v1#subdirectory=tools/release",
     "git+https://example.com/mono.git@v1#subdirectory=tools/release"),
    ("hg+https://example.com/release@v1", "vcs",
     "release-pipeline[aws,gcp] @ hg+https://example.com/release@v1", "hg+https://example.com/release@v1"),
    ("https://example.com/dist/release_pipeline-1.0-py3-none-any.whl", "archive",
     "release-pipeline[aws,gcp] @ https://example.com/dist/release_pipeline-1.0-py3-none-any.whl",
     "https://example.com/dist/release_pipeline-1.0-py3-none-any.whl"),
    ("https://example.com/acme/release/archive/refs/tags/v1.0.tar.gz", "archive",
     "release-pipeline[aws,gcp] @ https://example.com/acme/release/archive/refs/tags/v1.0.tar.gz",
     "https://example.com/acme/release/archive/refs/tags/v1.0.tar.gz"),
    (".", "path", ".[aws,gcp]", "."),
    ("./vendor/release/", "path", "./vendor/release[aws,gcp]", "./vendor/release/"),
    ("vendor/release", "path", "vendor/release[aws,gcp]", "vendor/release"),
    ("dist/release_pipeline-1.0-py3-none-any.whl", "path",
     "dist/release_pipeline-1.0-py3-none-any.whl[aws,gcp]", "dist/release_pipeline-1.0-py3-none-any.whl"),
    ("release_pipeline-1.0.tar.gz", "path", "release_pipeline-1.0.tar.gz[aws,gcp]",
     "release_pipeline-1.0.tar.gz"),
]


@pytest.mark.parametrize("text, kind, with_extras, without", FORMS, ids=[f[0] for f in FORMS])
def test_every_form_with_and_without_extras(text, kind, with_extras, without):
    spec = parse_spec(text)
    assert spec.kind == kind
    assert with_cloud_extras(spec, EXTRAS) == with_extras
    assert with_cloud_extras(spec, []) == without
    if kind == "path":                                  # pip's path syntax, not PEP 508
        return
    written = Requirement(text).extras if kind in ("name", "direct") else set()
    assert Requirement(with_extras).extras == (written or {"aws", "gcp"})
    Requirement(f"{PACKAGE} @ {without}" if kind in ("vcs", "archive") else without)


def test_extras_written_in_the_spec_are_kept():
    assert with_cloud_extras(parse_spec("release-pipeline[aws]==1"), ["gcp"]) == "release-pipeline[aws]==1"
    assert with_cloud_extras(parse_spec("./vendor/release[azure]"), ["gcp"]) == "./vendor/release[azure]"


@pytest.mark.parametrize("text, message", [
    ("", "must not be empty"),
    ("   ", "must not be empty"),
    ("/opt/release", "absolute path"),
    ("~/src/release", "absolute path"),
    ("C:\\src\\release", "absolute path"),
    ("\\\\server\\share\\release", "absolute path"),
    ("..", "leads out of the repository"),
    ("../release", "leads out of the repository"),
    ("vendor/../../release", "leads out of the repository"),
    ("-e .", "pip option"),
    ("--index-url https://example.com/simple release-pipeline", "pip option"),
    ("release-pipeline==1\nrm -rf /", "one line"),
    ("release pipeline", "not a requirement"),
    ("==1.0", "not a requirement"),
    ("release-pipeline @ ./vendor/r.whl", "is not a URL"),
    ("https://example.com/simple/release-pipeline/", "neither a VCS URL nor a wheel or sdist"),
    ("ftp://example.com/r-1.0.tar.gz", "not ftp"),
    ("svn+https://x/r@1 extra", "not a requirement"),
])
def test_bad_specs(text, message):
    with pytest.raises(ValueProblem) as info:
        parse_spec(text)
    assert message in info.value.message
    assert info.value.hint


def test_credentials_in_a_url_are_refused_and_not_echoed():
    for text in ("git+https://me:s3cr3t-token@example.com/acme/release.git@v1",
                 "git+https://s3cr3t-token@github.com/acme/release.git@v1",
                 "git+ssh://git:s3cr3t-token@example.com/acme/release.git@v1",
                 "release-pipeline @ https://me:s3cr3t-token@example.com/r-1.0.tar.gz"):
        with pytest.raises(ValueProblem) as info:
            parse_spec(text)
        assert "holds credentials" in info.value.message
        assert "s3cr3t" not in info.value.message + info.value.hint
    assert parse_spec("git+ssh://git@example.com/acme/release.git@v1").kind == "vcs"


def test_notes_for_what_works_but_may_not_be_meant():
    assert any("not pinned" in n for n in notes(parse_spec("git+https://example.com/r.git")))
    assert any("not pinned" in n
               for n in notes(parse_spec("release-pipeline @ git+https://example.com/r.git")))
    assert notes(parse_spec("git+https://example.com/r.git@v1")) == []
    assert any("path on this machine" in n for n in notes(parse_spec("git+file:///srv/r.git@v1")))
    assert any("path on this machine" in n for n in notes(parse_spec("file:///srv/r-1.0.tar.gz")))
    (unpublished,) = notes(parse_spec("release-pipeline==1.0"))
    assert "not published on PyPI" in unpublished
    assert notes(parse_spec("acme-release==1.0")) == []


def test_requirements_are_checked_by_packaging():
    assert parse_spec("release-pipeline>=1,<2").kind == "name"
    assert parse_spec("release-pipeline @ https://example.com/r.whl").kind == "direct"
    for bad in ("release pipeline", "==1", "release-pipeline>>1"):
        with pytest.raises(ValueProblem, match="not a requirement pip understands"):
            parse_spec(bad)


# ---------------------------------------------------------------------------- inside the repository


def test_paths_under_the_repository(tmp_path):
    root = tmp_path / "repo"
    (root / "vendor" / "release").mkdir(parents=True)
    (root / "vendor" / "release" / "pyproject.toml").write_text('[project]\nname = "release_pipeline"\n')
    (root / "vendor" / "other").mkdir()
    (root / "vendor" / "other" / "pyproject.toml").write_text('[project]\nname = "myapp"\n')
    (root / "vendor" / "empty").mkdir()
    assert in_repository(parse_spec("vendor/release"), root) == []
    assert in_repository(parse_spec("./vendor/release/[aws]"), root) == []
    (missing,) = in_repository(parse_spec("dist/release_pipeline-1.0-py3-none-any.whl"), root)
    assert "not in the repository here" in missing
    (other,) = in_repository(parse_spec("vendor/other"), root)
    assert "the project myapp, not release-pipeline" in other
    (empty,) = in_repository(parse_spec("vendor/empty"), root)
    assert "no pyproject.toml or setup.py" in empty
    assert in_repository(parse_spec("git+https://example.com/r.git@v1"), root) == []


def test_a_symlink_out_of_the_repository_is_refused(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "vendor").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueProblem) as info:
        in_repository(parse_spec("vendor/release"), root)
    assert "leads out of the repository" in info.value.message


def test_release_repository_is_read_from_pyproject(tmp_path):
    assert not is_release_repository(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "Release_Pipeline"\n')
    assert is_release_repository(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "myapp"\n# name = "release-pipeline"\n')
    assert not is_release_repository(tmp_path)
    (tmp_path / "pyproject.toml").write_text("not toml [")
    assert not is_release_repository(tmp_path)
    assert is_release_repository(Path(__file__).resolve().parents[2])


# ---------------------------------------------------------------------------- the origin (PEP 610)


def test_a_vcs_origin_is_pinned_to_its_commit():
    spec, warnings = origin_spec(json.dumps(VCS_RECORD))
    assert spec == f"git+https://github.com/acme/release.git@{COMMIT}"    # not @main
    assert warnings == []
    record = {**VCS_RECORD, "subdirectory": "tools/release"}
    assert origin_spec(json.dumps(record))[0] == \
        f"git+https://github.com/acme/release.git@{COMMIT}#subdirectory=tools/release"
    hg = {"url": "https://example.com/release", "vcs_info": {"vcs": "hg", "commit_id": "abc123"}}
    assert origin_spec(json.dumps(hg))[0] == "hg+https://example.com/release@abc123"


def test_an_archive_origin_keeps_its_hash():
    spec, warnings = origin_spec(json.dumps(ARCHIVE_RECORD))
    assert spec == f"{PACKAGE} @ {ARCHIVE_RECORD['url']}#sha256={SHA256}"
    assert warnings == []
    assert Requirement(spec).url.endswith(f"#sha256={SHA256}")
    legacy = {"url": ARCHIVE_RECORD["url"], "archive_info": {"hash": f"sha256={SHA256}"}}
    assert origin_spec(json.dumps(legacy))[0] == spec
    bare = {"url": ARCHIVE_RECORD["url"], "archive_info": {}}
    assert origin_spec(json.dumps(bare))[0] == f"{PACKAGE} @ {ARCHIVE_RECORD['url']}"


def test_a_file_origin_is_used_with_a_warning():
    vcs = {"url": "file:///srv/git/release", "vcs_info": {"vcs": "git", "commit_id": COMMIT}}
    spec, (warning,) = origin_spec(json.dumps(vcs))
    assert spec == f"git+file:///srv/git/release@{COMMIT}"
    assert "only a runner on this machine" in warning and "ci.install" in warning
    archive = {"url": "file:///srv/dist/release_pipeline-1.0-py3-none-any.whl",
               "archive_info": {"hashes": {"sha256": SHA256}}}
    spec, (warning,) = origin_spec(json.dumps(archive))
    assert spec == f"{PACKAGE} @ file:///srv/dist/release_pipeline-1.0-py3-none-any.whl#sha256={SHA256}"
    assert "only a runner on this machine" in warning


@pytest.mark.parametrize("record, reason", [
    (json.dumps(EDITABLE_RECORD), "editable checkout (/home/me/src/release)"),
    (json.dumps(DIR_RECORD), "the directory /home/me/src/release"),
    (None, "installed from a package index"),
    ("{not json", "not valid JSON"),
    ("", "not valid JSON"),
    ("[]", "has no URL"),
    (json.dumps({"vcs_info": {"vcs": "git", "commit_id": COMMIT}}), "has no URL"),
    (json.dumps({"url": "https://example.com/r.git", "vcs_info": {"vcs": "git"}}), "names no commit"),
    (json.dumps({"url": "https://example.com/r", "vcs_info": {"vcs": "cvs", "commit_id": "1"}}),
     "unknown VCS"),
    (json.dumps({"url": "https://example.com/r"}), "neither vcs_info, archive_info nor dir_info"),
    (json.dumps({"url": "https://me:pw@example.com/r.git",
                 "vcs_info": {"vcs": "git", "commit_id": COMMIT}}), "holds credentials"),
])
def test_an_origin_a_runner_cannot_use_stops_with_what_to_set(record, reason):
    with pytest.raises(UsageError) as info:
        origin_spec(record)
    error = info.value
    assert error.exit_code == 2
    assert reason in error.message
    assert "ci:" in error.hint and "install: git+https://" in error.hint
    assert "--install" in error.hint
    assert f"@v{__version__}" in error.hint                    # a VCS URL pinned to a tag
    assert f"{PACKAGE}==" not in str(error)


def test_resolve_order_flag_then_config_then_own_repository_then_origin(tmp_path):
    calls = []

    def origin():
        calls.append(1)
        return json.dumps(VCS_RECORD)

    flag = "git+https://example.com/flag.git@v1"
    configured = "git+https://example.com/config.git@v2"
    assert resolve(flag=flag, configured=configured, root=tmp_path, origin=origin) == (flag, [])
    assert resolve(flag=None, configured=configured, root=tmp_path, extras=["aws"], origin=origin) == \
        (f"{PACKAGE}[aws] @ {configured}", [])
    assert calls == []                                          # not read when not needed
    assert resolve(flag=None, configured=None, root=tmp_path, extras=["aws"], origin=origin) == \
        (f"{PACKAGE}[aws] @ git+https://github.com/acme/release.git@{COMMIT}", [])
    assert calls == [1]
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "release-pipeline"\n')
    assert resolve(flag=None, configured=None, root=tmp_path, extras=["aws"], origin=origin) == \
        (".[aws]", [])
    assert resolve(flag=None, configured=None, root=tmp_path, origin=None) == (".", [])
    assert calls == [1]


def test_resolve_places_errors_and_warnings(tmp_path):
    with pytest.raises(UsageError) as info:
        resolve(flag="/opt/release", configured=None, root=tmp_path)
    assert not isinstance(info.value, ConfigError)
    assert info.value.message.startswith("--install: '/opt/release' is an absolute path")
    with pytest.raises(ConfigError) as info:
        resolve(flag=None, configured="../release", root=tmp_path,
                configured_at=("deploy/release.yml", 7, 12))
    assert str(info.value).startswith("deploy/release.yml:7:12: ci.install: '../release' leads out")
    out, (warning,) = resolve(flag=None, configured="release-pipeline==1.0", root=tmp_path,
                              configured_at=("release.yml", 9, 12))
    assert out == "release-pipeline==1.0"
    assert warning.startswith("ci.install (release.yml:9): release-pipeline is not published")
    out, (warning,) = resolve(flag="git+https://example.com/r.git", configured=None, root=tmp_path)
    assert warning.startswith("--install: git+https://example.com/r.git is not pinned")
    with pytest.raises(UsageError, match="--install: must not be empty"):
        resolve(flag="", configured=None, root=tmp_path, origin=json.dumps(VCS_RECORD))


def test_the_default_never_names_the_unpublished_package(tmp_path):
    for record in (VCS_RECORD, ARCHIVE_RECORD):
        for extras in ([], ["aws"], ["aws", "gcp", "azure"]):
            out, _ = resolve(flag=None, configured=None, root=tmp_path, extras=extras,
                             origin=json.dumps(record))
            assert f"{PACKAGE}==" not in out


# ---------------------------------------------------------------------------- reading the record


def _dist(site: Path, suffix: str, record: dict | None, version: str = "9.9") -> Path:
    meta = site / f"release_pipeline-{version}.{suffix}"
    meta.mkdir(parents=True)
    (meta / ("METADATA" if suffix == "dist-info" else "PKG-INFO")).write_text(
        f"Metadata-Version: 2.1\nName: release-pipeline\nVersion: {version}\n")
    if record is not None:
        (meta / "direct_url.json").write_text(json.dumps(record))
    return meta


def test_read_direct_url_skips_the_egg_info_of_a_checkout(tmp_path, monkeypatch):
    """`python -m` from an editable checkout puts the checkout (and the .egg-info setuptools left
    there, which has no direct_url.json) first on sys.path: the dist-info is the record."""
    checkout, site = tmp_path / "checkout", tmp_path / "site"
    _dist(checkout, "egg-info", None)
    _dist(site, "dist-info", EDITABLE_RECORD)
    monkeypatch.setattr(sys, "path", [str(checkout), str(site)])
    assert json.loads(read_direct_url()) == EDITABLE_RECORD


def test_read_direct_url_prefers_the_install_that_holds_the_running_code(tmp_path, monkeypatch):
    import pipeline
    first, second = tmp_path / "first", tmp_path / "second"
    _dist(first, "dist-info", EDITABLE_RECORD)
    _dist(second, "dist-info", VCS_RECORD)
    (second / "pipeline").mkdir()
    monkeypatch.setattr(sys, "path", [str(first), str(second)])
    monkeypatch.setattr(pipeline, "__file__", str(second / "pipeline" / "__init__.py"))
    assert json.loads(read_direct_url()) == VCS_RECORD
    monkeypatch.setattr(pipeline, "__file__", str(tmp_path / "nowhere" / "pipeline" / "__init__.py"))
    assert json.loads(read_direct_url()) == EDITABLE_RECORD       # else the first one


def test_read_direct_url_without_a_record_or_an_install(tmp_path, monkeypatch):
    _dist(tmp_path / "site", "dist-info", None)
    monkeypatch.setattr(sys, "path", [str(tmp_path / "site")])
    assert read_direct_url() is None
    monkeypatch.setattr(sys, "path", [str(tmp_path / "empty")])
    assert read_direct_url() is None


# ---------------------------------------------------------------------------- release.yml and the CLI


REGISTRIES = {
    "generic": "  - {name: corp, registry: registry.example.com, repository: team/app}\n",
    "ecr": "  - {name: aws, type: ecr, registry: 123456789012.dkr.ecr.eu-west-1.amazonaws.com, "
           "repository: app}\n",
}


def project(root: Path, ci: str = "", registry: str = "generic") -> Path:
    (root / "app").mkdir(parents=True, exist_ok=True)
    (root / "app" / "Dockerfile").write_text("FROM scratch\n")
    (root / "release.yml").write_text(
        f"image:\n  name: app\n  context: app\nregistries:\n{REGISTRIES[registry]}{ci}")
    return root


@pytest.fixture
def origin(monkeypatch):
    """The PEP 610 record release was installed with: set `origin.record` (a dict, or None)."""
    class Origin:
        record: dict | None = VCS_RECORD
    holder = Origin()
    monkeypatch.setattr(ci_install, "read_direct_url",
                        lambda *_: None if holder.record is None else json.dumps(holder.record))
    return holder


def run(root: Path, *args: str):
    cwd = os.getcwd()
    os.chdir(root)
    try:
        return CliRunner().invoke(cli, ["ci", "generate", *args])
    finally:
        os.chdir(cwd)


def install_line(text: str) -> str:
    (line,) = {ln.strip() for ln in text.splitlines() if "pipx install" in ln or "pip install" in ln}
    return line


def test_config_loads_ci_install_with_its_position(tmp_path):
    root = project(tmp_path, "ci:\n  install: '  git+https://example.com/r.git@v1  '\n")
    config = load_config(root / "release.yml", build=False)
    assert config.ci_install == "git+https://example.com/r.git@v1"
    assert (config.ci_install_line, config.ci_install_col) == (7, 12)
    assert load_config(project(tmp_path / "b") / "release.yml", build=False).ci_install is None
    assert load_config(project(tmp_path / "c", "ci: {}\n") / "release.yml",
                       build=False).ci_install is None


@pytest.mark.parametrize("ci, location, message", [
    ("ci:\n  install: /opt/release\n", "release.yml:7:12", "absolute path"),
    ("ci:\n  install: ../release\n", "release.yml:7:12", "leads out of the repository"),
    ("ci:\n  install: ''\n", "release.yml:7:12", "ci.install must not be empty"),
    ("ci:\n  install: 3\n", "release.yml:7:12", "ci.install must be a string"),
    ("ci:\n  install: [git+https://x/r.git]\n", "release.yml:7:12", "ci.install must be a string"),
    ("ci:\n  install:\n", "release.yml:7:11", "ci.install must be a string"),
    ("ci:\n  instal: x\n", "release.yml:7:3", "unknown key 'instal' in ci"),
    ("ci: git+https://x/r.git@v1\n", "release.yml:6:5", "ci must be a mapping"),
])
def test_bad_ci_install_is_exit_2_at_its_line(tmp_path, origin, ci, location, message):
    root = project(tmp_path, ci)
    result = run(root, "github", "--output", "-")
    assert result.exit_code == 2, result.output
    assert f"error: {location}: " in result.output and message in result.output
    assert "hint: " in result.output
    with pytest.raises(ConfigError):
        load_config(root / "release.yml", build=False)


def test_a_ci_install_symlinked_out_of_the_repository_is_exit_2_at_its_line(tmp_path, origin):
    root = project(tmp_path / "repo", "ci:\n  install: vendor/release\n")
    (tmp_path / "outside").mkdir()
    (root / "vendor").mkdir()
    (root / "vendor" / "release").symlink_to(tmp_path / "outside")
    result = run(root, "github", "--output", "-")
    assert result.exit_code == 2
    assert "error: release.yml:7:12: ci.install: 'vendor/release' leads out of the repository" \
        in result.output


def test_ci_install_is_what_the_ci_installs_with_the_extras(tmp_path, origin):
    origin.record = None                                        # never read: ci.install is set
    root = project(tmp_path, "ci:\n  install: git+https://example.com/acme/release.git@v1.2.3\n",
                   registry="ecr")
    result = run(root, "github", "--output", "-")
    assert result.exit_code == 0, result.output
    assert install_line(result.stdout) == \
        "run: pipx install 'release-pipeline[aws] @ git+https://example.com/acme/release.git@v1.2.3'"
    assert result.stdout.startswith("# Generated by `release ci generate github` from release.yml.")
    result = run(root, "gitlab", "--output", "-")
    assert install_line(result.stdout) == ("- pip install --quiet --root-user-action=ignore "
                                           "'release-pipeline[aws] @ git+https://example.com/acme/"
                                           "release.git@v1.2.3'")


def test_install_flag_overrides_ci_install_and_is_in_the_header(tmp_path, origin):
    root = project(tmp_path, "ci:\n  install: /opt/never-checked-when-the-flag-is-given\n")
    assert run(root, "github", "-o", "-").exit_code == 2               # the loader refuses it
    root = project(tmp_path / "b", "ci:\n  install: git+https://example.com/config.git@v1\n")
    result = run(root, "github", "--output", "-", "--install", "vendor/release_pipeline-1.0.tar.gz")
    assert result.exit_code == 0, result.output
    assert install_line(result.stdout) == "run: pipx install vendor/release_pipeline-1.0.tar.gz"
    assert result.stdout.startswith("# Generated by `release ci generate github --install "
                                    "vendor/release_pipeline-1.0.tar.gz` from release.yml.")


@pytest.mark.parametrize("spec, message", [
    ("/opt/release", "--install: '/opt/release' is an absolute path"),
    ("../release", "--install: '../release' leads out of the repository"),
    ("", "--install: must not be empty"),
    ("-e .", "--install: '-e' is a pip option"),
])
def test_bad_install_flag_is_exit_2(tmp_path, origin, spec, message):
    result = run(project(tmp_path), "github", "--output", "-", "--install", spec)
    assert result.exit_code == 2
    assert f"error: {message}" in result.output


@pytest.mark.parametrize("record, reason", [
    (None, "installed from a package index"),
    (EDITABLE_RECORD, "editable checkout"),
    (DIR_RECORD, "installed from the directory"),
])
def test_no_usable_origin_is_exit_2_saying_what_to_set(tmp_path, origin, record, reason):
    origin.record = record
    root = project(tmp_path)
    result = run(root, "all")
    assert result.exit_code == 2
    assert "error: cannot tell what the generated CI should install to get release" in result.output
    assert reason in result.output
    assert "ci:\n        install: git+https://github.com/OWNER/release.git@v" in result.output
    assert "--install" in result.output
    assert not (root / ".github").exists() and not (root / ".gitlab-ci.yml").exists()


def test_the_default_is_the_origin_commit(tmp_path, origin):
    root = project(tmp_path, registry="ecr")
    result = run(root, "github", "--output", "-")
    assert result.exit_code == 0, result.output
    assert install_line(result.stdout) == \
        f"run: pipx install 'release-pipeline[aws] @ git+https://github.com/acme/release.git@{COMMIT}'"
    assert "release-pipeline==" not in result.stdout
    origin.record = ARCHIVE_RECORD
    result = run(root, "gitlab", "--output", "-")
    assert install_line(result.stdout).endswith(
        f"'release-pipeline[aws] @ {ARCHIVE_RECORD['url']}#sha256={SHA256}'")


def test_release_own_repository_installs_its_checkout(tmp_path, origin):
    origin.record = EDITABLE_RECORD                             # would be exit 2 elsewhere
    root = project(tmp_path, registry="ecr")
    (root / "pyproject.toml").write_text('[project]\nname = "release-pipeline"\n')
    result = run(root, "github", "--output", "-")
    assert result.exit_code == 0, result.output
    assert install_line(result.stdout) == "run: pipx install '.[aws]'"


def test_generate_text_hands_back_the_warnings(tmp_path, origin):
    origin.record = {"url": "file:///srv/git/release", "vcs_info": {"vcs": "git", "commit_id": COMMIT}}
    root = project(tmp_path)
    config = load_config(root / "release.yml", build=False)
    warnings: list[str] = []
    text, command = generate_text(config, "github", root=root, warnings=warnings)
    assert f"pipx install git+file:///srv/git/release@{COMMIT}\n" in text
    (warning,) = warnings
    assert "only a runner on this machine" in warning
    assert generate_text(config, "github", root=root)[0] == text      # the old call still works
    warnings.clear()
    generate_text(config, "github", root=root, install="git+https://example.com/r.git",
                  warnings=warnings)
    assert [w.split(":")[0] for w in warnings] == ["--install"]
    assert Spec(text=".", kind="path") == parse_spec(".")
