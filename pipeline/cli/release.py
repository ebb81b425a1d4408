"""`release build-push`: the release itself (pipeline/app/release.py), or with --push-by-digest one
platform of a split build."""

from __future__ import annotations

import os

import click

from pipeline.app.release import Releaser
from pipeline.ci.step import check_output_paths, write_step_outputs
from pipeline.cli._common import (
    FORCE_HELP,
    build_options,
    check_sources,
    emit_json,
    plan_release,
    print_report,
)
from pipeline.cli.manifest import run_push_by_digest
from pipeline.model.plan import format_plan
from pipeline.ui.progress import make_reporter


@click.command("build-push")
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
    if (platform or metadata_file) and not push_by_digest:
        raise click.UsageError("--platform and --metadata-file go with --push-by-digest "
                               "(several platforms in one run: image.platforms in release.yml)")
    config, p = plan_release(ctx, version, registries, not no_build, (builder, cache_from, cache_to))
    if not no_build:
        check_sources(config, version, strict=strict, quiet=quiet)
    if push_by_digest:
        run_push_by_digest(ctx, config, p, platform=platform, no_build=no_build, dry_run=dry_run,
                           jobs=jobs, as_json=as_json, quiet=quiet, metadata_file=metadata_file,
                           preflight=not skip_preflight)
        return
    if dry_run:
        emit_json(p.to_dict()) if as_json else click.echo(format_plan(p))
        return
    # The release machinery (registry client, engine client, progress view) loads only for
    # a real run: `release tags`, `plan` and dry runs stay quick.

    reporter = make_reporter(quiet)
    releaser = Releaser(config, p, reporter, jobs=jobs, engine_push=engine_push, force=force)
    releaser.resolve_credentials()  # a missing env var is a usage error before any work
    check_output_paths(os.environ, dotenv)
    if not skip_preflight:
        releaser.preflight()        # every registry's credentials, before the build
    try:
        report = releaser.run(build=not no_build)   # the engine is connected to from here on
    finally:
        reporter.close()  # a CI log section must not fold the error away
    write_step_outputs(report, os.environ, dotenv)
    print_report(ctx, report, as_json=as_json)
