"""pipeline.ci.render: delimiters that leave CI syntax alone, StrictUndefined, YAML quoting,
user templates, the built-in template directory."""

import shutil

import pytest
import yaml

from pipeline.ci.render import (
    builtin_templates,
    load_versions,
    render,
    single_quoted,
    yaml_scalar,
)
from pipeline.errors import UsageError

CONTEXT = {"name": "app", "items": ["a", "b"]}


def write(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    return tmp_path


def test_ci_expressions_pass_through_untouched(tmp_path):
    template = ("# [= name =]\n"
                "a: ${{ matrix.runner }}\n"
                "b: $[[ inputs.stage ]]\n"
                "c: type=semver,pattern={{version}}\n"
                "d: '{% raw %} {# not jinja #}'\n"
                "base: &m {x: 1}\n"
                "e:\n  <<: *m\n"
                "f: ${VERSION#v} $(( 1 + 2 ))\n"
                "[% for i in items %]\n"
                "g[= i =]: [= i | yq =]\n"
                "[% endfor %]\n")
    write(tmp_path, "github.yml.j2", template)
    out = render("github", CONTEXT, tmp_path)
    assert out == ("# app\n"
                   "a: ${{ matrix.runner }}\n"
                   "b: $[[ inputs.stage ]]\n"
                   "c: type=semver,pattern={{version}}\n"
                   "d: '{% raw %} {# not jinja #}'\n"
                   "base: &m {x: 1}\n"
                   "e:\n  <<: *m\n"
                   "f: ${VERSION#v} $(( 1 + 2 ))\n"
                   "ga: a\n"
                   "gb: b\n")


def test_undefined_names_are_errors_not_empty_strings(tmp_path):
    write(tmp_path, "github.yml.j2", "runs-on: [= runner =]\n")
    with pytest.raises(UsageError, match="'runner' is undefined"):
        render("github", CONTEXT, tmp_path)


def test_template_syntax_and_yaml_errors_are_reported(tmp_path):
    write(tmp_path, "github.yml.j2", "a: [% if %]\n")
    with pytest.raises(UsageError, match="github.yml.j2:1"):
        render("github", CONTEXT, tmp_path)
    write(tmp_path, "github.yml.j2", "a: [b\n")
    with pytest.raises(UsageError, match="invalid YAML"):
        render("github", CONTEXT, tmp_path)


@pytest.mark.parametrize("value", ["main", "v1.2.3", "actions/checkout@v7", "1.10", "on", "yes", "null",
                                   "a: b", "#x", "[0-9]+", "*", "**", "x # y", "", "5000:5000",
                                   "${{ vars.X }}", "it's", "ünï"])
def test_scalars_read_back_as_the_same_string(value):
    for quoted in (yaml_scalar(value), single_quoted(value)):
        assert yaml.safe_load(f"k: {quoted}") == {"k": value}, quoted
    assert yaml_scalar("main") == "main"            # plain when safe
    assert yaml_scalar("1.10") == '"1.10"'          # never a float
    assert yaml_scalar("on") == '"on"'              # never a boolean


def test_user_templates_override_one_file_and_fall_back_for_the_rest(tmp_path):
    write(tmp_path, "gitlab.yml.j2", "# mine [= v.gitlab.image =]\nx: 1\n")
    assert render("gitlab", {"v": load_versions(tmp_path)}, tmp_path).startswith("# mine python:")
    (tmp_path / "versions.yml").write_text("gitlab: {image: 'alpine:3'}\n")
    assert render("gitlab", {"v": load_versions(tmp_path)}, tmp_path) == "# mine alpine:3\nx: 1\n"


def test_your_versions_file_is_laid_over_the_builtin_one(tmp_path):
    (tmp_path / "versions.yml").write_text("github: {checkout: 'actions/checkout@v6'}\nmine: 1\n")
    versions, builtin = load_versions(tmp_path), load_versions(None)
    assert versions["github"]["checkout"] == "actions/checkout@v6"
    assert versions["github"]["runner_arm64"] == builtin["github"]["runner_arm64"]
    assert versions["gitlab"] == builtin["gitlab"] and versions["mine"] == 1
    (tmp_path / "versions.yml").write_text("- a list\n")
    with pytest.raises(UsageError, match="must be a mapping"):
        load_versions(tmp_path)


def test_builtin_templates_are_found():
    base = builtin_templates()
    assert {p.name for p in base.iterdir()} >= {"github.yml.j2", "gitlab.yml.j2", "versions.yml"}
    versions = load_versions(None)
    assert versions["github"]["checkout"].startswith("actions/checkout@v")
    # the build cache's actions are pinned here too (the runtime's v4 is node24)
    assert versions["github"]["buildx"] == "docker/setup-buildx-action@v4"
    assert versions["github"]["github_runtime"] == "crazy-max/ghaction-github-runtime@v4"


def test_inline_macro_leaves_a_run_line_whole(tmp_path):
    """The templates append flags with an inline macro (`run: x[= flags() =]`): its output has no
    line break, and an empty one leaves nothing behind."""
    write(tmp_path, "github.yml.j2",
          "[% macro flags(on) %][% if on %] --cache-from \"type=gha,scope=$SLUG\"[% endif %][% endmacro %]\n"
          "a: x[= flags(true) =]\n"
          "b: x[= flags(false) =]\n")
    assert render("github", {}, tmp_path) == 'a: x --cache-from "type=gha,scope=$SLUG"\nb: x\n'


def test_output_ends_with_one_newline_and_no_trailing_spaces(tmp_path):
    write(tmp_path, "github.yml.j2", "a: 1   \n\n\n")
    assert render("github", {}, tmp_path) == "a: 1\n"


def test_copy_of_builtin_templates_renders_the_same(tmp_path):
    from pipeline.ci.context import build_context
    from pipeline.model.config.loader import load_config
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "release.yml").write_text(
        "image: {name: app}\nregistries:\n  - {name: r, registry: r.example.com, repository: a}\n")
    ctx = build_context(load_config(tmp_path / "release.yml"), config_path="release.yml",
                        versions=load_versions(None), install=".")
    copy = tmp_path / "tpl"
    shutil.copytree(builtin_templates(), copy)
    for target in ("github", "gitlab"):
        assert render(target, ctx, copy) == render(target, ctx, None)
