"""`release ci generate` (GitHub Actions / GitLab CI files from release.yml) and `release ci build`."""

from __future__ import annotations

import difflib
import os
import shlex
from pathlib import Path

import click

from pipeline import __version__
from pipeline.app.sourceinfo import revision, source_url
from pipeline.ci import install as ci_install
from pipeline.ci.context import build_context, extras_for
from pipeline.ci.reachability import findings
from pipeline.ci.references import action_reference, component_reference
from pipeline.ci.render import DEFAULT_OUTPUTS, load_versions, render
from pipeline.cli._common import build_options, with_build_options
from pipeline.engine.buildkit.builder import ImageBuilder
from pipeline.engine.client import Engine
from pipeline.errors import UsageError
from pipeline.model.config.loader import load_config
from pipeline.model.labels import oci_labels, reusable_created
from pipeline.ui.progress import make_reporter

PACKAGE = "release-pipeline"
TARGETS = ("github", "gitlab")


@click.group("ci")
def ci_group():
    """Generate the CI that runs release, and the CI-only steps it uses.

    \b
    release ci generate all            # .github/workflows/release.yml and .gitlab-ci.yml
    release ci generate all --check    # exit 1 and print a diff when they are out of date
    release ci build                   # pull requests: build the image, push nothing
    """


def default_install(root: Path, *, config=None, install: str | None = None,
                    warnings: list[str] | None = None) -> str:
    """What the generated CI pip-installs to get release, with the cloud extras `config`'s
    registries need (pipeline/ci/install.py): `install` (--install), else release.yml's
    ci.install, else `.` inside release's own repository, else where this release was installed
    from (its PEP 610 direct_url.json: a VCS commit, an archive URL). UsageError (exit 2) for a
    bad spec (ConfigError at ci.install's line) or an origin a runner cannot use (an editable or
    local checkout, a package index), saying what to set. Warnings are appended to `warnings`."""

    configured = getattr(config, "ci_install", None)
    at = (config.display_path, getattr(config, "ci_install_line", None),
          getattr(config, "ci_install_col", None)) if configured is not None else None
    spec, notes = ci_install.resolve(flag=install, configured=configured, configured_at=at,
                                     root=root,
                                     extras=extras_for(config) if config is not None else [],
                                     origin=ci_install.read_direct_url)
    if warnings is not None:
        warnings.extend(notes)
    return spec


def _relative(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _command(target: str, *, config_path: str, output: str | None, templates: str | None,
             default_branch: str, install: str | None, cache: bool = True,
             use_action: str | None = None, use_component: str | None = None) -> str:
    """The command that regenerates one file, as the file's header shows it."""
    words = ["release"]
    if config_path != "release.yml":
        words += ["-c", config_path]
    words += ["ci", "generate", target]
    for flag, value in (("--output", None if output == "-" else output), ("--templates", templates),
                        ("--default-branch", None if default_branch == "main" else default_branch),
                        ("--install", install),
                        ("--use-action", use_action if target == "github" else None),
                        ("--use-component", use_component if target == "gitlab" else None)):
        if value is not None:
            words += [flag, value]
    if not cache:
        words.append("--no-cache")
    return " ".join(shlex.quote(w) for w in words)


def generate_text(config, target: str, *, root: Path, output: str | None = None,
                  templates: Path | None = None, default_branch: str = "main",
                  install: str | None = None, cache: bool = True,
                  warnings: list[str] | None = None, use_action: str | None = None,
                  use_component: str | None = None,
                  resolved_install: str | None = None) -> tuple[str, str]:
    """(the file `release ci generate TARGET` writes, the command that regenerates it).

    Pure apart from reading the templates and finding what the CI installs (default_install:
    pyproject.toml, paths under `root`, this release's direct_url.json). Warnings about the
    install (a path only this machine has, an unpinned VCS URL, ...) are appended to
    `warnings` when given. `resolved_install`: the spec default_install already gave (the
    command resolves it once for every file)."""

    config_path = _relative(config.path, root)
    command = _command(target, config_path=config_path, output=output,
                       templates=_relative(templates, root) if templates else None,
                       default_branch=default_branch, install=install, cache=cache,
                       use_action=use_action, use_component=use_component)
    context = build_context(config, config_path=config_path, versions=load_versions(templates),
                            install=resolved_install or default_install(
                                root, config=config, install=install, warnings=warnings),
                            default_branch=default_branch,
                            command=command, cache=cache,
                            use_action=use_action if target == "github" else None,
                            use_component=use_component if target == "gitlab" else None)
    return render(target, context, templates), command


@ci_group.command("generate")
@click.argument("target", type=click.Choice(["github", "gitlab", "all"]))
@click.option("-o", "--output", metavar="PATH",
              help="Where to write (github/gitlab only; '-' for stdout). "
                   "Default: .github/workflows/release.yml, .gitlab-ci.yml.")
@click.option("--templates", type=click.Path(exists=True, file_okay=False, path_type=Path), metavar="DIR",
              help="Your own Jinja2 templates (github.yml.j2, gitlab.yml.j2, versions.yml); "
                   "a file missing there comes from the built-in ones.")
@click.option("--check", is_flag=True,
              help="Write nothing: exit 1 and print a diff when a file differs from what release.yml "
                   "gives, 0 when up to date (a drift check for pre-commit or CI).")
@click.option("--default-branch", default="main", show_default=True, metavar="NAME",
              help="The branch whose pushes build the image (GitHub; GitLab uses $CI_DEFAULT_BRANCH).")
@click.option("--install", metavar="SPEC",
              help="What the CI pip-installs to get release: a VCS URL pinned to a tag "
                   f"(git+https://HOST/OWNER/REPO.git@v{__version__}), a wheel/sdist URL, NAME @ URL, "
                   "NAME==VERSION, or a path inside the repository. Default: ci.install in "
                   "release.yml, else '.' inside release's own repository, else where this "
                   "release was installed from (a VCS commit, an archive URL); exit 2 when that "
                   "is a local or editable checkout or a package index. Plus the extras [aws] "
                   "[gcp] [azure] for ECR, GCR and ACR registries.")
@click.option("--no-cache", "no_cache", is_flag=True,
              help="Generate CI without a build cache: no buildx / Actions cache runtime steps and "
                   "no --cache-from/--cache-to on GitHub, no --cache-from \"$CACHE_REF\" on GitLab.")
@click.option("--strict", is_flag=True,
              help="Treat every warning (a registry a hosted runner cannot reach, an install spec "
                   "only this machine can use) as an error: exit 2, write nothing.")
@click.option("--use-action", metavar="OWNER/REPO@REF",
              help="GitHub: the release jobs run release through its GitHub Action "
                   "(action.yml of that repository at REF) instead of installing it themselves.")
@click.option("--use-component", metavar="HOST/GROUP/PROJECT/release@VERSION",
              help="GitLab: the release job comes from release's CI/CD component "
                   "(templates/release.yml of that project), e.g. "
                   "'$CI_SERVER_FQDN/tools/release/release@1.0.0'.")
@click.pass_context
def generate(ctx, target, output, templates, check, default_branch, install, no_cache, strict,
             use_action, use_component):
    """Generate GitHub Actions / GitLab CI files from release.yml.

    Paths are relative to the current directory, the repository root the CI runs in.
    The output is deterministic and starts with a comment naming this command.

    \b
    Example:  release ci generate all
              release ci generate github --output - | less
              release ci generate all --check          # exit 1 + diff when out of date
              release ci generate all --no-cache       # no build cache in the CI
              release ci generate all --strict         # exit 2 on any registry a runner can't reach
              release ci generate github --use-action OWNER/release@v1
              release ci generate gitlab --use-component '$CI_SERVER_FQDN/tools/release/release@1.0.0'
    """

    targets = list(TARGETS) if target == "all" else [target]
    if output and target == "all":
        raise UsageError("--output names one file: use it with github or gitlab, not all")
    if output == "-" and check:
        raise UsageError("--check compares with a file: --output - (stdout) cannot be checked")
    config = load_config(ctx.obj["config_path"], build=False)
    root = Path.cwd()
    spec = _check_before_writing(config, root, install=install, strict=strict,
                                 use_action=use_action, use_component=use_component)
    drift = False
    for t in targets:
        path = output or DEFAULT_OUTPUTS[t]
        text, command = generate_text(config, t, root=root, output=output, templates=templates,
                                      default_branch=default_branch, install=install,
                                      cache=not no_cache, use_action=use_action,
                                      use_component=use_component, resolved_install=spec)
        if path == "-":
            click.echo(text, nl=False)
            continue
        file = Path(path)
        try:
            current = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if check:
            if current == text:
                click.echo(f"{path}: up to date", err=True)
                continue
            drift = True
            diff = difflib.unified_diff((current or "").splitlines(keepends=True),
                                        text.splitlines(keepends=True),
                                        fromfile=f"{path} (on disk{'' if current is not None else ': missing'})",
                                        tofile=f"{path} (from {_relative(config.path, root)})")
            click.echo("".join(diff), nl=False)
            click.echo(f"{path}: out of date; run: {command}", err=True)
            continue
        if current == text:
            click.echo(f"{path}: up to date")
            continue
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")
        click.echo(f"wrote {path}")
    if drift:
        ctx.exit(1)


def _check_before_writing(config, root: Path, *, install: str | None, strict: bool,
                          use_action: str | None, use_component: str | None) -> str:
    """Everything that can stop the generator, before anything is written: --use-action and
    --use-component, the install spec (pipeline/ci/install.py: a bad spec or an origin no runner
    can use is exit 2), then what cannot work on a hosted runner (pipeline/ci/reachability.py).
    Warnings go to stderr; errors, and any warning with --strict, are exit 2 with nothing written.
    Returns the install spec, resolved once for every file."""
    if use_action is not None:
        action_reference(use_action)
    if use_component is not None:
        component_reference(use_component)
    install_notes: list[str] = []
    spec = default_install(root, config=config, install=install, warnings=install_notes)
    found = findings(config, root)
    for note in install_notes:
        click.echo(f"release ci generate: warning: {note}", err=True)
    for finding in found:
        click.echo(f"release ci generate: {finding.render()}", err=True)
    errors = [f for f in found if f.level == "error"]
    warnings = len(install_notes) + len(found) - len(errors)
    if errors or (strict and warnings):
        what = "error" if errors else "warning"
        count = len(errors) if errors else warnings
        raise UsageError(f"{count} {what}{'s' if count > 1 else ''} above: nothing written",
                         hint="fix release.yml as the hints say" if errors else
                              "fix release.yml as the hints say, or drop --strict to generate anyway")
    return spec


@ci_group.command("build")
@click.option("-q", "--quiet", is_flag=True, help="No build output; errors only.")
@build_options
@click.pass_context
def ci_build(ctx, quiet, builder, cache_from, cache_to):
    """Build the image as build-push would, and push nothing.

    The pull-request and default-branch step of the generated CI: proves the image builds,
    needs no credentials. Tags the result <image.name>:ci (per platform with image.platforms).

    \b
    Example:  release ci build --cache-from type=gha --cache-to type=gha,mode=max
    """

    config = with_build_options(load_config(ctx.obj["config_path"]), builder, cache_from, cache_to)
    image = config.image
    cwd = config.path.parent
    commit = revision(cwd)
    platforms = list(getattr(image, "platforms", ()) or ()) or [None]
    reporter = make_reporter(quiet)
    engine = Engine()
    images = ImageBuilder(engine, image, reporter)
    built = []
    try:
        route = images.prepare()
        for platform in platforms:
            tag = f"{image.name}:ci" + (f"-{platform.replace('/', '-')}" if len(platforms) > 1 else "")
            # the same commit built again gives the same image (see labels.reusable_created)
            earlier = ((engine.inspect(tag) or {}).get("Config") or {}).get("Labels")
            labels = oci_labels(version="ci", revision=commit, source=source_url(cwd),
                                created=reusable_created([earlier], version="ci", revision=commit),
                                user=image.labels)
            reporter.message(f"building {tag}{f' for {platform}' if platform else ''} from "
                             f"{image.context} ({route.describe()})")
            image_id = images.build(tag=tag, labels=labels, platform=platform)
            built.append((tag, image_id))
    finally:
        reporter.close()
    for tag, image_id in built:
        click.echo(f"built {tag} ({image_id}); nothing pushed")
