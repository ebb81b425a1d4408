"""A problem in someone's --templates DIR is an exit 2 naming the file and line, never
"internal error": broken versions.yml, a runtime error, an undefined name, a missing include."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from pipeline.cli.main import cli

INSTALL = "git+https://example.com/release.git@v1"


def project(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir(parents=True, exist_ok=True)
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "release.yml").write_text(
        "image: {name: app, context: app}\n"
        "registries:\n  - {name: corp, registry: registry.example.com, repository: app}\n")
    (tmp_path / "ci").mkdir()
    return tmp_path


def generate(root: Path, target: str = "github"):
    cwd = os.getcwd()
    os.chdir(root)
    try:
        return CliRunner().invoke(cli, ["ci", "generate", target, "--templates", "ci",
                                        "--install", INSTALL, "--output", "-"])
    finally:
        os.chdir(cwd)


def test_broken_versions_yml_names_its_file_line_and_column(tmp_path):
    root = project(tmp_path)
    (root / "ci" / "versions.yml").write_text("github:\n  checkout: actions/checkout@v5\n  login: [oops\n")
    result = generate(root)
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert "ci/versions.yml:4:1: not valid YAML" in result.output
    assert "hint: fix versions.yml" in result.output


def test_versions_yml_that_is_not_a_mapping(tmp_path):
    root = project(tmp_path)
    (root / "ci" / "versions.yml").write_text("- actions/checkout@v5\n")
    result = generate(root)
    assert result.exit_code == 2 and "versions.yml must be a mapping (github:, gitlab:)" in result.output


def test_a_runtime_error_in_a_template_names_its_line(tmp_path):
    root = project(tmp_path)
    (root / "ci" / "github.yml.j2").write_text("name: release\n# [= image =]\nx: [= 1 // 0 =]\n")
    result = generate(root)
    assert result.exit_code == 2
    assert "internal error" not in result.output and "Traceback" not in result.output
    assert "github.yml.j2:3: the template failed: ZeroDivisionError" in result.output


def test_an_undefined_name_names_its_line_and_where_names_are(tmp_path):
    root = project(tmp_path)
    (root / "ci" / "gitlab.yml.j2").write_text("stages: [build]\n\nx: [= no_such_name =]\n")
    result = generate(root, "gitlab")
    assert result.exit_code == 2
    assert "gitlab.yml.j2:3: 'no_such_name' is undefined" in result.output
    assert "pipeline/ci/context.py" in result.output


def test_a_missing_include_names_the_missing_template_and_the_line(tmp_path):
    root = project(tmp_path)
    (root / "ci" / "github.yml.j2").write_text("name: release\n[% include 'jobs/extra.yml.j2' %]\n")
    result = generate(root)
    assert result.exit_code == 2
    assert "github.yml.j2:2: template jobs/extra.yml.j2 not found" in result.output
    assert "template github.yml.j2 not found" not in result.output


def test_a_syntax_error_names_its_line(tmp_path):
    root = project(tmp_path)
    (root / "ci" / "github.yml.j2").write_text("name: release\n\n[% if image %]\n")
    result = generate(root)
    assert result.exit_code == 2 and "github.yml.j2:3:" in result.output
