"""Split multi-platform releases: `build-push --platform P --push-by-digest` and `manifest merge`.

One CI job per platform (each on a runner of that platform, or under QEMU):

    release build-push 1.4.2 --platform linux/arm64 --push-by-digest \\
        --metadata-file release-metadata/linux-arm64.json

builds that platform, pushes its manifest by digest (no tag) to the first selected
registry and writes a JSON record (pipeline/registry/image.py: make_record). A last job gathers
the records into one directory and runs

    release manifest merge 1.4.2 --from-metadata release-metadata/

which checks the records against each other and against release.yml, reads each
platform manifest back from the registry, PUTs one index by digest, and tags it on
every registry exactly as build-push does (immutable tag first everywhere, floating
tags only then, `latest` last; verify).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from pipeline.app.records import check_records, read_records, write_record
from pipeline.app.release import Releaser
from pipeline.ci.step import check_output_paths, write_step_outputs
from pipeline.cli._common import plan_release, print_report
from pipeline.engine.client import Engine
from pipeline.errors import UsageError
from pipeline.model.platforms import PlatformError, parse_platform
from pipeline.ui.output import echo
from pipeline.ui.progress import make_reporter
from pipeline.ui.redact import redact
from pipeline.ui.summary import format_report


def resolve_platform(config, platform: str | None, engine_platform=None) -> str:
    """The platform a --push-by-digest job builds: --platform, else the only configured one."""
    configured = list(config.image.platforms)
    if platform is None:
        if len(configured) == 1:
            return configured[0]
        if configured:
            raise UsageError("--push-by-digest builds one platform: name it with --platform",
                             hint=f"one of: {', '.join(configured)}")
        if engine_platform is None:
            raise UsageError("--push-by-digest needs --platform (image.platforms is not set)")
        return str(engine_platform)
    try:
        wanted = parse_platform(platform)
    except PlatformError as exc:
        raise UsageError(f"--platform: {exc.message}", hint=exc.hint) from None
    if configured:
        match = next((c for c in configured if parse_platform(c).matches(wanted)), None)
        if match is None:
            raise UsageError(f"--platform {platform} is not in image.platforms of "
                             f"{config.display_path} ({', '.join(configured)})",
                             hint="add it to image.platforms, or build one of those")
        return match
    return str(wanted)


def run_push_by_digest(ctx, config, plan, *, platform, no_build, dry_run, jobs, as_json, quiet,
                       metadata_file, preflight: bool = True) -> None:
    """The body of `build-push --push-by-digest` (called from pipeline/cli/release.py)."""
    # The release machinery (registry client, engine client, progress view) loads only for
    # a real run: a dry run stays quick.

    if not plan.targets:
        raise UsageError("no registry selected")
    engine = None
    if platform is None and not config.image.platforms and not dry_run:
        engine = Engine()           # only it knows which platform it builds for
    chosen = resolve_platform(config, platform, engine.platform() if engine else None)
    target = plan.targets[0]
    local = plan.platform_ref(chosen)
    if dry_run:
        steps = {"version": plan.version, "platform": chosen,
                 "build": None if no_build else local, "use-local": local if no_build else None,
                 "push": f"{target.image}@<digest> (no tag) on {target.registry}",
                 "metadata_file": str(metadata_file) if metadata_file else None}
        if as_json:
            click.echo(redact(json.dumps(steps, indent=2)))
        else:
            click.echo(f"version {plan.version}  platform {chosen}\n"
                       f"1. {'use the local image' if no_build else 'build'} {local}\n"
                       f"2. push its manifest by digest (no tag) to [{target.registry}] {target.image}\n"
                       f"3. write the record for `release manifest merge` to "
                       f"{metadata_file or 'stdout (--json)'}")
        return
    reporter = make_reporter(quiet)
    # no engine yet (platform given): the Releaser connects to one when it builds
    releaser = Releaser(config, plan, reporter, engine=engine, jobs=jobs)
    releaser.resolve_credentials([target.registry])   # a missing env var: usage error, no work
    if preflight:
        releaser.preflight([target.registry])             # proven before the build
    try:
        report, record = releaser.push_by_digest(chosen, build=not no_build)
    finally:
        reporter.close()
    if record is not None and metadata_file:
        write_record(Path(metadata_file), record)
    if as_json:
        echo(json.dumps({**report.to_dict(), "record": record}, indent=2), is_json=True)
    else:
        echo(format_report(report, verb=f"pushed by digest ({chosen})"))
        if record is not None:
            where = f"record written to {metadata_file}" if metadata_file else "record (no --metadata-file)"
            click.echo(f"{where}: {record['platform']} {record['digest']}")
            if not metadata_file:
                click.echo(redact(json.dumps(record, indent=2)))
    if not report.ok:
        if as_json:
            echo(format_report(report), err=True)
        ctx.exit(1)


@click.group("manifest")
def manifest_group():
    """Multi-platform indexes from split builds (one CI job per platform).

    \b
    Per platform:  release build-push VERSION --platform linux/arm64 --push-by-digest \\
                       --metadata-file meta/linux-arm64.json
    At the end:    release manifest merge VERSION --from-metadata meta/
    """


@manifest_group.command()
@click.argument("version")
@click.option("--from-metadata", "directory", required=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory with the records of every platform job (searched recursively).")
@click.option("--registry", "registries", multiple=True, metavar="NAME",
              help="Only tag on this registry (repeatable). Default: all in release.yml.")
@click.option("--dry-run", is_flag=True, help="Check the records, print what would happen, stop.")
@click.option("--jobs", type=click.IntRange(1, 32), default=4, show_default=True,
              help="Registries handled in parallel.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead of the table.")
@click.option("-q", "--quiet", is_flag=True, help="Errors and summary only.")
@click.option("--dotenv", "dotenv", metavar="PATH",
              help="Also write a dotenv report (RELEASE_VERSION, RELEASE_DIGEST, RELEASE_TAGS, "
                   "RELEASE_OK), e.g. for GitLab's artifacts:reports:dotenv.")
@click.option("--force", is_flag=True, help="Replace VERSION where a registry holds another "
                                            "image; move floating tags even backwards.")
@click.pass_context
def merge(ctx, version, directory, registries, dry_run, jobs, as_json, quiet, dotenv, force):
    """Assemble one index from the platform records in DIR and release it as VERSION.

    Each record names a platform manifest already pushed by digest. The index (OCI
    image index, or Docker manifest list with `image.index_format: docker`) lists
    them in image.platforms order; it gets the same digest on every registry, the
    immutable tag first everywhere, then the floating tags.

    \b
    Example:  release manifest merge 1.4.2 --from-metadata release-metadata/
    Exit codes: 0 released, 1 a push failed, 2 bad records, configuration or usage.
    Needs no Docker Engine. In GitHub Actions it writes the step outputs version, digest
    (of the index) and tags, like build-push.
    """
    config, plan = plan_release(ctx, version, registries, False)
    records = check_records(read_records(directory), version=plan.version,
                            index_format=plan.index_format, platforms=config.image.platforms)
    if dry_run:
        data = {"version": plan.version, "index_format": plan.index_format,
                "source": f"{records[0]['registry']} ({records[0]['host']}/{records[0]['repository']})",
                "platforms": [{"platform": r["platform"], "digest": r["digest"]} for r in records],
                "plan": plan.to_dict()}
        if as_json:
            click.echo(redact(json.dumps(data, indent=2)))
        else:
            click.echo(f"index of {len(records)} platforms from {data['source']}:")
            for r in records:
                click.echo(f"  {r['platform']:<14} {r['digest']}")
            click.echo(f"then the immutable tag {plan.version} on every registry (index and "
                       f"children copied, same digest), then the floating tags, then verify:")
            for t in plan.targets:
                click.echo(f"  [{t.registry}] {', '.join(t.ref(tag) for tag in t.tags)}")
        return
    check_output_paths(os.environ, dotenv)
    # The release machinery loads only for a real run: a dry run stays quick.

    reporter = make_reporter(quiet)
    releaser = Releaser(config, plan, reporter, jobs=jobs, force=force)    # needs no engine
    try:
        report = releaser.merge(records)
    finally:
        reporter.close()
    write_step_outputs(report, os.environ, dotenv)
    print_report(ctx, report, as_json=as_json, verb="merged")
