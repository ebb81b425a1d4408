"""`release registry ...`, `release prune` and `release promote`: the registry chores."""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click

from pipeline.app.chores import (
    GC_REMINDER,
    client_for,
    inspect,
    manifest_links,
    resolve_target,
    tag_digests,
)
from pipeline.app.release import Releaser
from pipeline.cli._common import derive
from pipeline.errors import ReleaseError
from pipeline.model.config.loader import load_config
from pipeline.model.plan import make_plan
from pipeline.model.prune import plan_prune
from pipeline.model.status import Status
from pipeline.registry.errors import RegistryAPIError
from pipeline.ui.output import echo
from pipeline.ui.progress import make_reporter
from pipeline.ui.summary import format_report


def _config(ctx, required: bool):
    """release.yml if present (needed for registry names); optional for full references."""
    path = ctx.obj["config_path"]
    if not required and not Path(path).exists():
        return None
    return load_config(path, build=False)      # no chore builds: the context need not exist


def _api_error(exc) -> ReleaseError:
    return ReleaseError(str(exc), hint=getattr(exc, "hint", None))


@click.group("registry")
def registry_group():
    """Look into a registry (catalog, tags, inspect, delete) or host one (up, down, gc, compose).

    REF is a full reference (localhost:5000/team/app:1.2.3) or a registry name from
    release.yml with an optional :TAG or @DIGEST (local:1.2.3), which brings its credentials.
    """


@registry_group.command()
@click.argument("registry")
@click.pass_context
def catalog(ctx, registry):
    """List the repositories of REGISTRY (a release.yml name or HOST[:PORT]).

    \b
    Example:  release registry catalog local
              release registry catalog localhost:5000
    """
    target = resolve_target(registry, _config(ctx, False), need_repository=False)
    try:
        for repo in target.client.catalog():
            echo(repo)
    except RegistryAPIError as exc:
        raise _api_error(exc) from None


@registry_group.command("tags")
@click.argument("ref")
@click.pass_context
def list_tags(ctx, ref):
    """List the tags of a repository.

    \b
    Example:  release registry tags local
              release registry tags localhost:5000/release/hello
    """
    target = resolve_target(ref, _config(ctx, False))
    try:
        for tag in target.client.list_tags(target.ref.repository):
            echo(tag)
    except RegistryAPIError as exc:
        raise _api_error(exc) from None


@registry_group.command("inspect")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def inspect_cmd(ctx, ref, as_json):
    """Digest, media type, size, layers, platforms and labels of REF.

    \b
    Example:  release registry inspect local:1.4.2
              release registry inspect localhost:5000/release/hello:latest --json
    """
    target = resolve_target(ref, _config(ctx, False))
    try:
        data = inspect(target)
    except RegistryAPIError as exc:
        raise _api_error(exc) from None
    if as_json:
        echo(json.dumps(data, indent=2), is_json=True)
        return
    echo(f"reference   {data['reference']}")
    echo(f"digest      {data['digest']}")
    echo(f"media type  {data['media_type']}")
    echo(f"size        {data['size']} bytes")
    for p in data.get("platforms", []):
        echo(f"platform    {p['platform']}  {p['digest']}")
    for layer in data.get("layers", []):
        echo(f"layer       {layer['digest']}  {layer['size']} bytes")
    for key, value in sorted((data.get("labels") or {}).items()):
        echo(f"label       {key}={value}")
    if data.get("note"):
        echo(f"note        {data['note']}")


@registry_group.command()
@click.argument("ref")
@click.option("--yes", is_flag=True, help="Really delete; without it, only show what would go.")
@click.pass_context
def delete(ctx, ref, yes):
    """Delete the manifest REF points at (and so every tag that shares its digest).

    \b
    Example:  release registry delete local:1.0.0          # shows what would be deleted
              release registry delete local:1.0.0 --yes
    """
    target = resolve_target(ref, _config(ctx, False))
    r = target.ref
    if not (r.tag or r.digest):
        raise ReleaseError(f"{ref}: name a tag or a digest to delete", hint="e.g. local:1.0.0")
    try:
        info = target.client.head_manifest(r.repository, r.reference)
        if info is None:
            raise ReleaseError(f"{ref} does not exist on {r.host}")
        sharing = sorted(t for t, d in tag_digests(target.client, r.repository).items() if d == info.digest)
        echo(f"{r.host}/{r.repository}@{info.digest}")
        echo(f"tags removed with it: {', '.join(sharing) or '(none)'}")
        if not yes:
            echo("dry run: add --yes to delete")
            return
        target.client.delete_manifest(r.repository, info.digest)
    except RegistryAPIError as exc:
        raise _api_error(exc) from None
    echo("deleted")
    echo(f"note: {GC_REMINDER}", err=True)


@click.command()
@click.option("--registry", "registries", multiple=True, metavar="NAME", help="Only these registries.")
@click.option("--keep", type=click.IntRange(0), required=True, help="How many versions to keep.")
@click.option("--match", metavar="REGEX", help="Only versions matching REGEX are candidates.")
@click.option("--yes", is_flag=True, help="Really delete; without it, only list.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def prune(ctx, registries, keep, match, yes, as_json):
    """Delete old versions, keeping the N highest (semver order) and every tag still in use.

    Kept: the N highest versions, every floating tag (latest, 1, 1.2, main...), every tag
    not matching --match, and every digest a kept tag shares — deleting a digest deletes
    all its tags, so it is never done while a kept tag needs it.

    \b
    Example:  release prune --keep 5                # list what would be deleted
              release prune --keep 5 --registry local --yes
    """
    if match:
        try:
            re.compile(match)
        except re.error as exc:
            raise click.BadParameter(f"not a regular expression: {exc}", param_hint="--match")
    config = _config(ctx, True)
    selected = config.select(list(registries))
    # registries at once; within one, `jobs` requests at a time (HEADs, GETs, then DELETEs)
    with ThreadPoolExecutor(max_workers=max(1, len(selected))) as pool:
        outcomes = list(pool.map(lambda r: _prune_registry(r, keep, match, yes), selected))
    report, failed = {}, False
    for r, (plan, entry, error) in zip(selected, outcomes):
        if error is not None:
            raise error
        report[r.name] = entry
        failed |= bool(entry.get("errors"))
        if not as_json:
            echo(f"[{r.name}] {r.registry}/{r.repository}: keep {', '.join(plan.keep) or '-'}")
            for d in plan.deletions:
                state = "deleted" if d.digest in entry["deleted"] else ("FAILED" if yes else "would delete")
                echo(f"  {state:12} {', '.join(d.tags)}  ({d.digest[:19]})")
            for tag in plan.protected:
                echo(f"  kept         {tag}  ({plan.reasons.get(tag, 'kept')})")
            for err in entry.get("errors", []):
                echo(f"  error: {err}", err=True)
    if as_json:
        echo(json.dumps(report, indent=2), is_json=True)
    elif not yes and any(v["delete"] for v in report.values()):
        echo("dry run: add --yes to delete")
    if yes and any(v["deleted"] for v in report.values()):
        echo(f"note: {GC_REMINDER}", err=True)
    if failed:
        ctx.exit(1)


def _prune_registry(r, keep: int, match: str | None, yes: bool, jobs: int = 4):
    """(plan, report entry, error) for one registry; the error is raised by the caller, so
    one registry's failure to list does not hide what the others did."""
    client = client_for(r)
    try:
        tags = tag_digests(client, r.repository, jobs)
        plan = plan_prune(tags, keep, match, manifest_links(client, r.repository,
                                                            tags.values(), jobs))
    except RegistryAPIError as exc:
        return None, None, _api_error(exc)
    entry = plan.to_dict()
    entry["deleted"] = []
    if not yes:
        return plan, entry, None
    refused = threading.Event()       # a registry that refuses one delete refuses them all

    def delete(d):
        if refused.is_set():
            return d.digest, Status.SKIPPED
        try:
            client.delete_manifest(r.repository, d.digest)
            return d.digest, Status.DELETED
        except RegistryAPIError as exc:
            refused.set()
            return d.digest, str(exc)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for digest, outcome in pool.map(delete, plan.deletions):
            if outcome == Status.DELETED:
                entry["deleted"].append(digest)
            elif outcome != Status.SKIPPED:
                entry.setdefault("errors", []).append(outcome)
    return plan, entry, None


@click.command()
@click.argument("version")
@click.option("--from", "source", required=True, metavar="NAME", help="Registry that has VERSION.")
@click.option("--to", "dests", required=True, multiple=True, metavar="NAME", help="Registry to copy to (repeatable).")
@click.option("--jobs", type=click.IntRange(1, 32), default=4, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("-q", "--quiet", is_flag=True)
@click.option("--force", is_flag=True, help="Replace VERSION where a target holds another image; "
                                            "move floating tags even backwards.")
@click.pass_context
def promote(ctx, version, source, dests, jobs, as_json, quiet, force):
    """Copy the image released as VERSION on one registry to others, with every tag the
    rules give, digest unchanged: no rebuild, no Docker Engine.

    \b
    Example:  release promote 1.4.2 --from staging --to prod --to mirror
    """
    config = _config(ctx, True)
    config.registry(source)
    if source in dests:
        raise click.BadParameter("a registry cannot be both --from and --to", param_hint="--to")
    selected = config.select(list(dests))
    plan = make_plan(config, derive(config, version), selected, build=False)
    releaser = Releaser(config, plan, make_reporter(quiet), jobs=jobs, force=force)
    report = releaser.promote(source)
    echo(json.dumps(report.to_dict(), indent=2), is_json=True) if as_json else echo(format_report(report, verb="promoted"))
    if not report.ok:
        ctx.exit(1)


# `release registry up / down / gc / compose`: host a registry (pipeline/cli/hosting.py).
from pipeline.cli.hosting import compose, down, gc, up  # noqa: E402

for _command in (up, down, gc, compose):
    registry_group.add_command(_command)
