"""What several command modules share: loading release.yml, deriving the tags and the plan,
the build options, the source-tree check, and printing a release report.

Imported only by command modules, which load when their command runs (cli/main.py's lazy
table): nothing here is paid for by `release --help`.
"""

from __future__ import annotations

import dataclasses
import json
import os

import click

from pipeline.app.sourceinfo import git, hygiene
from pipeline.ci.step import ci_system, neutralise, neutralise_json
from pipeline.errors import TagRuleError, UsageError
from pipeline.model.build_options import OptionError, parse_cache_entry
from pipeline.model.config.loader import load_config
from pipeline.model.plan import make_plan
from pipeline.model.tags import derive_tags, resolve_context, validate_release_version
from pipeline.ui.redact import redact
from pipeline.ui.summary import format_report

FORCE_HELP = ("Replace VERSION where a registry already holds another image under it, and move "
              "floating tags even to a lower version. Without it, both are refused.")


def load(ctx, *, build: bool = True):
    """release.yml of this invocation (-c); `build`: its build context must exist."""
    return load_config(ctx.obj["config_path"], build=build)


def emit_json(data) -> None:
    click.echo(redact(json.dumps(data, indent=2)))


def derive(config, version=None, ref=None, sha=None, event=None, default_branch=None):
    """The TagResult release.yml's rules give VERSION (or the ref from flags, CI or git)."""
    if version is not None:
        validate_release_version(version, config.tags)
    cwd = config.path.parent
    ctx = resolve_context(version=version, ref=ref, sha=sha, event=event, default_branch=default_branch,
                          env=os.environ, git=lambda args: git(args, cwd))
    try:
        return derive_tags(config.tags, config.flavor, ctx)
    except TagRuleError as exc:  # e.g. a rule that produced an invalid tag: point at its line
        raise config.rule_error(exc) from None


def plan_release(ctx, version, registries, build, overrides=None):
    """(config, Plan) of releasing VERSION to the selected registries (all when none);
    `overrides`: (builder, cache_from, cache_to) from build_options."""
    config = load(ctx, build=build)
    if overrides:
        config = with_build_options(config, *overrides)
    selected = config.select(list(registries))
    return config, make_plan(config, derive(config, version), selected, build=build)


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


def check_sources(config, version: str, *, strict: bool, quiet: bool) -> None:
    """Warn about a dirty tree or a VERSION that is not HEAD's tag; --strict refuses the first."""
    warnings, dirty = hygiene(config.path.parent, version)
    if dirty and strict:
        raise UsageError(f"--strict: {warnings[0].split(' (--strict', 1)[0]}",
                         hint="commit or stash the changes, or leave out --strict")
    for text in warnings if not quiet else []:
        click.echo(redact(f"warning: {text}"), err=True)


def print_report(ctx, report, *, as_json: bool, verb: str = "released") -> None:
    """The report on stdout (the table, or JSON); when the release is incomplete, with
    --json the table on stderr too, and exit 1. In GitHub Actions no line of it (registry
    errors included) can become a workflow command."""
    on_github = ci_system(os.environ) == "github"
    if as_json:
        text = redact(json.dumps(report.to_dict(), indent=2))
        click.echo(neutralise_json(text) if on_github else text)
    else:
        text = format_report(report, verb=verb)
        click.echo(neutralise(text) if on_github else text)
    if not report.ok:
        if as_json:
            text = redact(format_report(report))
            click.echo(neutralise(text) if on_github else text, err=True)
        ctx.exit(1)
