"""The `release` command line. Heavy imports (docker, requests, rich) happen inside commands."""

from __future__ import annotations

import json
import os
import sys

import click

from pipeline import __version__
from pipeline.errors import ReleaseError
from pipeline.ui.redact import redact

FORCE_HELP = ("Replace VERSION where a registry already holds another image under it, and move "
              "floating tags even to a lower version. Without it, both are refused.")
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# Subcommands whose modules load only when named (or listed by --help): start-up stays lean.
LAZY_COMMANDS = {
    "registry": ("chores", "registry_group"),
    "prune": ("chores", "prune"),
    "promote": ("chores", "promote"),
    "manifest": ("manifest", "manifest_group"),
    "login": ("login", "login"),
    "logout": ("login", "logout"),
    "ci": ("ci", "ci_group"),
}


class ReleaseGroup(click.Group):
    """Turns our errors into `error: ...` on stderr with the right exit code, never a traceback."""

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None and name in LAZY_COMMANDS:
            import importlib
            module, attr = LAZY_COMMANDS[name]
            command = getattr(importlib.import_module(f"{__package__}.{module}"), attr)
            self.add_command(command, name)
        return command

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ReleaseError as exc:
            from pipeline.errors import format_errors   # every problem of release.yml, up to 20
            click.echo(redact(format_errors(exc)), err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            from pipeline.engine.spool import Terminated
            if isinstance(exc, Terminated):      # SIGTERM/SIGHUP: cleaned up like Ctrl-C
                click.echo(f"terminated ({exc})", err=True)
                code = 128 + exc.signum
            else:
                click.echo("interrupted", err=True)
                code = 130
            global _EXIT_NOW
            _EXIT_NOW = code            # main() leaves without waiting for worker threads
            ctx.exit(code)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort, BrokenPipeError):
            raise
        except Exception as exc:  # a bug: say so without a traceback that could carry a secret
            if os.environ.get("RELEASE_DEBUG"):
                raise
            click.echo(redact(f"internal error: {type(exc).__name__}: {exc}\n"
                              "  hint: re-run with RELEASE_DEBUG=1 for a traceback and report it"), err=True)
            ctx.exit(1)


@click.group(cls=ReleaseGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="release")
@click.option("-c", "--config", "config_path", default="release.yml", show_default=True,
              envvar="RELEASE_CONFIG", help="Path to release.yml.")
@click.pass_context
def cli(ctx, config_path):
    """Build a container image once, tag it from a version, push it to every registry in
    release.yml and prove they all hold the same digest."""
    ctx.obj = {"config_path": config_path}


def _load(ctx, *, build: bool = True):
    from pipeline.model.config.loader import load_config
    return load_config(ctx.obj["config_path"], build=build)


def _emit_json(data) -> None:
    click.echo(redact(json.dumps(data, indent=2)))


@cli.command()
@click.pass_context
def validate(ctx):
    """Check release.yml and print a one-line summary; exit 2 listing every problem (up to 20,
    in file order)."""
    config = _load(ctx)
    names = ", ".join(r.name for r in config.registries)
    click.echo(f"{config.display_path}: ok (image {config.image.name}, "
               f"{len(config.tags)} tag rules, registries: {names})")


@cli.command()
def schema():
    """Print the JSON Schema of release.yml (for editors)."""
    from pipeline.model.config.schema import json_schema
    click.echo(json.dumps(json_schema(), indent=2))


def _derive(config, version=None, ref=None, sha=None, event=None, default_branch=None):
    from pipeline.app.sourceinfo import git
    from pipeline.model.tags import derive_tags, resolve_context, validate_release_version

    from pipeline.errors import TagRuleError

    if version is not None:
        validate_release_version(version, config.tags)
    cwd = config.path.parent
    ctx = resolve_context(version=version, ref=ref, sha=sha, event=event, default_branch=default_branch,
                          env=os.environ, git=lambda args: git(args, cwd))
    try:
        return derive_tags(config.tags, config.flavor, ctx)
    except TagRuleError as exc:  # e.g. a rule that produced an invalid tag: point at its line
        raise config.rule_error(exc) from None


@cli.command()
@click.argument("version", required=False)
@click.option("--ref", help="Git ref, e.g. refs/tags/v1.2.3 or refs/heads/main.")
@click.option("--sha", help="Commit sha (for type=sha rules and labels).")
@click.option("--event", help="CI event name: push, pull_request, schedule, ...")
@click.option("--default-branch", help="The repository's default branch (for edge / is_default_branch).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_context
def tags(ctx, version, ref, sha, event, default_branch, as_json):
    """Print the tags release.yml gives for VERSION (or for the current ref from flags, CI or git).

    \b
    Example:  release tags 1.4.2        ->  1.4.2 1.4 1 latest
              release tags --ref refs/heads/main --json
    """
    config = _load(ctx, build=False)
    result = _derive(config, version, ref, sha, event, default_branch)
    if as_json:
        _emit_json({"version": result.version, "tags": list(result.tags), "latest": result.latest,
                    "refs": {r.name: [f"{r.registry}/{r.repository}:{t}" for t in result.tags]
                             for r in config.registries}})
    else:
        for t in result.tags:
            click.echo(t)
        if not result.tags:
            click.echo("no tags for this ref", err=True)


def build_options(function):
    """--builder, --cache-from, --cache-to: laid over image.* of release.yml for this run."""
    function = click.option("--cache-to", "cache_to", multiple=True, metavar="SPEC",
                            help="Export the build cache (buildx spec, e.g. type=gha,mode=max); "
                                 "repeatable, replaces image.cache_to.")(function)
    function = click.option("--cache-from", "cache_from", multiple=True, metavar="REF|SPEC",
                            help="Import build cache from an image (its inline cache) or a buildx "
                                 "spec (type=gha, type=registry,ref=...); repeatable, replaces "
                                 "image.cache_from.")(function)
    return click.option("--builder", type=click.Choice(["auto", "buildkit", "classic"]),
                        help="Override image.builder.")(function)


def with_build_options(config, builder=None, cache_from=(), cache_to=()):
    """The config with the command line's build options laid over image.*."""
    import dataclasses
    from pipeline.engine.buildkit.options import OptionError, parse_cache_entry
    changes = {}
    if builder:
        changes["builder"] = builder
    try:
        if cache_from:
            changes["cache_from"] = tuple(parse_cache_entry(t, sink=False) for t in cache_from)
        if cache_to:
            changes["cache_to"] = tuple(parse_cache_entry(t, sink=True) for t in cache_to)
    except OptionError as exc:
        raise click.BadParameter(exc.message + (f" ({exc.hint})" if exc.hint else ""),
                                 param_hint="--cache-from/--cache-to") from None
    if not changes:
        return config
    return dataclasses.replace(config, image=dataclasses.replace(config.image, **changes))


def _check_sources(config, version: str, *, strict: bool, quiet: bool) -> None:
    """Warn about a dirty tree or a VERSION that is not HEAD's tag; --strict refuses the first."""
    from pipeline.errors import UsageError
    from pipeline.app.sourceinfo import hygiene
    warnings, dirty = hygiene(config.path.parent, version)
    if dirty and strict:
        raise UsageError(f"--strict: {warnings[0].split(' (--strict', 1)[0]}",
                         hint="commit or stash the changes, or leave out --strict")
    for text in warnings if not quiet else []:
        click.echo(redact(f"warning: {text}"), err=True)


def _plan(ctx, version, registries, build, overrides=None):
    from pipeline.model.plan import make_plan
    config = _load(ctx, build=build)
    if overrides:
        config = with_build_options(config, *overrides)
    selected = config.select(list(registries))
    result = _derive(config, version)
    return config, make_plan(config, result, selected, build=build)


@cli.command()
@click.argument("version")
@click.option("--registry", "registries", multiple=True, metavar="NAME", help="Only these registries.")
@click.option("--no-build", is_flag=True, help="Plan pushes of the existing local image.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@build_options
@click.pass_context
def plan(ctx, version, registries, no_build, as_json, builder, cache_from, cache_to):
    """Print what build-push VERSION would do, touching nothing.

    \b
    Example:  release plan 1.4.2
    """
    from pipeline.model.plan import format_plan
    _, p = _plan(ctx, version, registries, not no_build, (builder, cache_from, cache_to))
    if as_json:
        _emit_json(p.to_dict())
    else:
        click.echo(format_plan(p))


@cli.command("build-push")
@click.argument("version")
@click.option("--registry", "registries", multiple=True, metavar="NAME",
              help="Only push to this registry (repeatable). Default: all in release.yml.")
@click.option("--no-build", is_flag=True, help="Push the local image <image.name>:<version> instead of building.")
@click.option("--dry-run", is_flag=True, help="Print the plan and stop.")
@click.option("--jobs", type=click.IntRange(1, 32), default=4, show_default=True,
              help="Registries pushed in parallel.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead of the table.")
@click.option("-q", "--quiet", is_flag=True, help="No build output or progress; errors and summary only.")
@click.option("--engine-push", is_flag=True,
              help="Let the engine push (`docker push`) to the first registry and copy from there, "
                   "instead of exporting the image once and uploading it to all registries at once. "
                   "Slower; the digest is then the one a plain `docker push` gives.")
@click.option("--platform", metavar="OS/ARCH", help="With --push-by-digest: the one platform to build.")
@click.option("--push-by-digest", is_flag=True,
              help="Build one platform and push it by digest (no tag) to the first registry; "
                   "`release manifest merge` tags it later.")
@click.option("--metadata-file", type=click.Path(dir_okay=False, path_type=str), metavar="FILE",
              help="With --push-by-digest: write the platform record here (JSON).")
@click.option("--dotenv", "dotenv", metavar="PATH",
              help="Also write a dotenv report (RELEASE_VERSION, RELEASE_DIGEST, RELEASE_TAGS, RELEASE_OK), "
                   "e.g. for GitLab's artifacts:reports:dotenv.")
@build_options
@click.option("--force", is_flag=True, help=FORCE_HELP)
@click.option("--skip-preflight", is_flag=True,
              help="Do not prove every registry's credentials before building.")
@click.option("--strict", is_flag=True,
              help="Refuse to build from a working tree with uncommitted changes.")
@click.pass_context
def build_push(ctx, version, registries, no_build, dry_run, jobs, as_json, quiet, engine_push,
               platform, push_by_digest, metadata_file, dotenv, builder, cache_from, cache_to,
               force, skip_preflight, strict):
    """Build once, push VERSION and its tags to every registry, verify the digests.

    With several image.platforms: one build per platform, each pushed by digest, one
    image index per registry (same digest everywhere) carrying the tags.

    \b
    Example:  release build-push 1.4.2
              release -c ci/release.yml build-push 1.4.2 --registry local --no-build
              release build-push 1.4.2 --platform linux/arm64 --push-by-digest \\
                  --metadata-file meta/linux-arm64.json     # then: release manifest merge
    Exit codes: 0 released, 1 a build or push failed, 2 bad configuration or usage.
    In GitHub Actions it also writes the step outputs version, digest and tags ($GITHUB_OUTPUT)
    and a summary table ($GITHUB_STEP_SUMMARY); logs are folded into groups/sections.
    """
    from pipeline.model.plan import format_plan
    if (platform or metadata_file) and not push_by_digest:
        raise click.UsageError("--platform and --metadata-file go with --push-by-digest "
                               "(several platforms in one run: image.platforms in release.yml)")
    config, p = _plan(ctx, version, registries, not no_build, (builder, cache_from, cache_to))
    if not no_build:
        _check_sources(config, version, strict=strict, quiet=quiet)
    if push_by_digest:
        from pipeline.cli.manifest import run_push_by_digest
        run_push_by_digest(ctx, config, p, platform=platform, no_build=no_build, dry_run=dry_run,
                           jobs=jobs, as_json=as_json, quiet=quiet, metadata_file=metadata_file,
                           preflight=not skip_preflight)
        return
    if dry_run:
        _emit_json(p.to_dict()) if as_json else click.echo(format_plan(p))
        return
    from pipeline.engine.client import Engine
    from pipeline.ui.progress import make_reporter
    from pipeline.app.release import Releaser
    from pipeline.ui.summary import format_report

    reporter = make_reporter(quiet)
    releaser = Releaser(config, p, reporter, engine=None, jobs=jobs, engine_push=engine_push,
                        force=force)
    releaser.resolve_credentials()  # a missing env var is a usage error before any work
    from pipeline.ci.step import check_output_paths
    check_output_paths(os.environ, dotenv)
    if not skip_preflight:
        releaser.preflight()        # every registry's credentials, before the build
    releaser.engine = Engine()
    try:
        report = releaser.run(build=not no_build)
    finally:
        reporter.close()  # a CI log section must not fold the error away
    from pipeline.ci.step import ci_system, neutralise, neutralise_json, write_step_outputs
    write_step_outputs(report, os.environ, dotenv)
    on_github = ci_system(os.environ) == "github"  # registry errors must not run workflow commands
    if as_json:
        text = redact(json.dumps(report.to_dict(), indent=2))
        click.echo(neutralise_json(text) if on_github else text)
    else:
        text = format_report(report)
        click.echo(neutralise(text) if on_github else text)
    if not report.ok:
        if as_json:
            text = redact(format_report(report))
            click.echo(neutralise(text) if on_github else text, err=True)
        ctx.exit(1)


_EXIT_NOW: int | None = None


def main() -> None:
    from pipeline.engine.spool import terminate_like_interrupt
    terminate_like_interrupt()
    try:
        cli(prog_name="release")
    except SystemExit:
        if _EXIT_NOW is not None:
            # Interrupted or terminated: every `finally` has run (spool removed, CLI children
            # stopped). Uploads still in flight on worker threads go nowhere (no manifest names
            # their blobs), so the interpreter does not wait for them at exit.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(_EXIT_NOW)
        raise
    except BrokenPipeError:
        # `release registry tags local | head -1`: the reader left; that is not an error.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
