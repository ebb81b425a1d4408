"""`release tags` and `release plan`: what a version gives and what build-push would do, touching
nothing (model/ only: no engine, no registry)."""

from __future__ import annotations

import click

from pipeline.cli._common import build_options, derive, emit_json, load, plan_release
from pipeline.model.plan import format_plan


@click.command()
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
    config = load(ctx, build=False)
    result = derive(config, version, ref, sha, event, default_branch)
    if as_json:
        emit_json({"version": result.version, "tags": list(result.tags), "latest": result.latest,
                   "refs": {r.name: [f"{r.registry}/{r.repository}:{t}" for t in result.tags]
                            for r in config.registries}})
    else:
        for t in result.tags:
            click.echo(t)
        if not result.tags:
            click.echo("no tags for this ref", err=True)


@click.command()
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
    _, p = plan_release(ctx, version, registries, not no_build, (builder, cache_from, cache_to))
    if as_json:
        emit_json(p.to_dict())
    else:
        click.echo(format_plan(p))
