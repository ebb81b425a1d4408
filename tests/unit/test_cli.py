"""The CLI's pure commands and its error handling, without an engine or a registry."""

import json

import pytest
from click.testing import CliRunner

from pipeline.cli.main import cli

CONFIG = """\
image:
  name: myapp
  context: app
registries:
  - name: local
    registry: localhost:5000
    repository: team/myapp
  - name: other
    registry: registry.example.com
    repository: team/myapp
    username_env: OTHER_USER
    password_env: OTHER_PASS
"""


@pytest.fixture
def project(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "release.yml").write_text(CONFIG)
    return tmp_path


def run(project, *args, env=None):
    return CliRunner().invoke(cli, ["-c", str(project / "release.yml"), *args], env=env or {})


def test_version_and_help_are_fast_paths():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and "release, version" in result.output
    result = CliRunner().invoke(cli, ["--help"])
    assert "build-push" in result.output


def test_validate_ok(project):
    result = run(project, "validate")
    assert result.exit_code == 0
    assert "registries: local, other" in result.output


def test_tags_json_has_version_tags_latest_and_refs(project):
    result = run(project, "tags", "v1.4.2", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["version"] == "1.4.2"
    assert data["tags"] == ["1.4.2", "1.4", "1", "latest"]
    assert data["latest"] is True
    assert data["refs"]["other"][-1] == "registry.example.com/team/myapp:latest"


def test_tags_from_github_environment(project):
    env = {"GITHUB_REF": "refs/tags/v2.0.0", "GITHUB_SHA": "a" * 40, "GITHUB_EVENT_NAME": "push"}
    result = run(project, "tags", env=env)
    assert result.output.split() == ["2.0.0", "2.0", "2", "latest"]


def test_plan_json_orders_immutable_before_floating(project):
    result = run(project, "plan", "1.2.3", "--json", "--registry", "local")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert list(plan["registries"]) == ["local"]
    phases = [s["phase"] for s in plan["steps"] if s["step"] == "push"]
    assert phases == ["immutable", "floating", "floating", "floating"]


def test_unknown_registry_is_exit_2(project):
    result = run(project, "plan", "1.2.3", "--registry", "nope")
    assert result.exit_code == 2
    assert "nope" in result.output


def test_bad_version_is_exit_2_saying_what_is_accepted(project):
    result = run(project, "plan", "1.2")
    assert result.exit_code == 2
    assert "MAJOR.MINOR.PATCH" in result.output


def test_invalid_produced_tag_points_at_the_rule_line(project):
    text = CONFIG.replace("registries:", "tags:\n  - type=semver,pattern={{version}}\n  - type=raw,value=-bad\nregistries:")
    (project / "release.yml").write_text(text)
    result = run(project, "tags", "1.0.0")
    assert result.exit_code == 2
    assert "release.yml:6:5" in result.output
    assert "-bad" in result.output


def test_dry_run_touches_nothing_and_needs_no_engine(project, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    result = run(project, "build-push", "1.2.3", "--dry-run", "--registry", "local",
                 env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert result.exit_code == 0, result.output
    assert "localhost:5000/team/myapp:latest" in result.output


def test_missing_credentials_env_is_exit_2_before_any_work(project):
    result = run(project, "build-push", "1.2.3", "--registry", "other",
                 env={"DOCKER_HOST": "unix:///nonexistent.sock", "OTHER_USER": "u"})
    assert result.exit_code == 2
    assert "OTHER_PASS is not set" in result.output


def test_schema_is_json_with_registry_types(project):
    result = CliRunner().invoke(cli, ["schema"])
    schema = json.loads(result.output)
    text = json.dumps(schema)
    assert "ghcr" in text and "username_env" in text


def test_commands_that_never_build_do_not_need_the_build_context(project):
    import shutil
    shutil.rmtree(project / "app")
    assert run(project, "tags", "1.2.3").exit_code == 0
    assert run(project, "plan", "1.2.3", "--no-build").exit_code == 0
    building = run(project, "plan", "1.2.3")
    assert building.exit_code == 2 and "image.context directory not found" in building.output
    assert run(project, "validate").exit_code == 2


def test_catalog_of_an_unknown_name_is_a_usage_error(project):
    result = run(project, "registry", "catalog", "nosuch")
    assert result.exit_code == 2
    assert "no registry named 'nosuch'" in result.output


@pytest.mark.parametrize("ref, phrase", [
    ("local@sha256:bad", "invalid digest"),
    ("local:../../x", "invalid tag"),
    ("local:", "nothing after"),
    ("lokal:1.0.0", "no registry named 'lokal'"),
])
def test_bad_registry_references_are_usage_errors_before_any_request(project, ref, phrase):
    result = run(project, "registry", "inspect", ref)
    assert result.exit_code == 2
    assert phrase in result.output


def test_shell_completion_lists_lazy_commands_and_options():
    """click's completion, documented in the README: lazy command groups complete too."""
    import os
    import subprocess
    import sys

    def complete(words: str, cword: int) -> list[str]:
        env = {**os.environ, "COMP_WORDS": words, "COMP_CWORD": str(cword),
               "_RELEASE_COMPLETE": "bash_complete"}
        out = subprocess.run([sys.executable, "-m", "pipeline"], env=env, capture_output=True,
                             text=True, timeout=30).stdout
        return [line.split(",", 1)[1] for line in out.splitlines() if "," in line]

    assert "build-push" in complete("release bu", 1)
    assert {"catalog", "tags", "inspect", "delete", "up"} <= set(complete("release registry ", 2))
    assert complete("release build-push 1.0.0 --cache", 3) == ["--cache-from", "--cache-to"]
    for shell in ("bash", "zsh", "fish"):
        script = subprocess.run([sys.executable, "-m", "pipeline"], capture_output=True, text=True,
                                env={**os.environ, "_RELEASE_COMPLETE": f"{shell}_source"},
                                timeout=30).stdout
        assert "_RELEASE_COMPLETE" in script


# -- the command table (pipeline/cli/main.py) --------------------------------------------------

def test_help_lists_every_command_from_the_table_without_importing_one():
    import subprocess
    import sys

    code = ("import sys; from click.testing import CliRunner; from pipeline.cli.main import cli; "
            "out = CliRunner().invoke(cli, ['--help']).output; "
            "print(sorted(m for m in sys.modules if m.startswith('pipeline.cli.') "
            "and m != 'pipeline.cli.main')); print(out)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded, help_text = out.stdout.split("\n", 1)
    assert loaded == "[]"
    from pipeline.cli.main import LAZY_COMMANDS
    listed = [line.split()[0] for line in help_text.split("Commands:\n", 1)[1].splitlines() if line]
    assert listed == sorted(LAZY_COMMANDS)


@pytest.mark.parametrize("limit", [20, 45, 74, 200])
def test_the_tables_short_help_is_each_commands_own(limit):
    """`release --help` shows the table's text; `release COMMAND --help` the docstring's."""
    import click

    from pipeline.cli.main import LAZY_COMMANDS, ReleaseGroup

    group = ReleaseGroup()
    for name, (_, _, short) in LAZY_COMMANDS.items():
        command = group.get_command(None, name)           # imports its module
        assert command.name == name
        assert click.Command(name, help=short).get_short_help_str(limit) == \
            command.get_short_help_str(limit), name


def test_the_help_is_the_same_with_every_command_loaded():
    from pipeline.cli.main import LAZY_COMMANDS, ReleaseGroup, cli

    lazy = CliRunner().invoke(cli, ["--help"]).output
    loaded = ReleaseGroup(name=cli.name, params=cli.params, callback=cli.callback, help=cli.help,
                          context_settings=cli.context_settings)
    for name in LAZY_COMMANDS:
        loaded.get_command(None, name)
    assert set(loaded.commands) == set(LAZY_COMMANDS)
    assert CliRunner().invoke(loaded, ["--help"]).output == lazy


def test_command_modules_do_not_import_the_root():
    """cli/main.py imports the command modules (lazily); none of them imports it back."""
    import ast
    from pathlib import Path

    import pipeline.cli

    for path in Path(pipeline.cli.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for a in node.names}
        assert "pipeline.cli.main" not in imported, path.name
