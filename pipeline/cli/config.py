"""`release validate` and `release schema`: release.yml itself."""

from __future__ import annotations

import json

import click

from pipeline.cli._common import load
from pipeline.model.config.schema import json_schema


@click.command()
@click.pass_context
def validate(ctx):
    """Check release.yml and print a one-line summary; exit 2 listing every problem (up to 20,
    in file order)."""
    config = load(ctx)
    names = ", ".join(r.name for r in config.registries)
    click.echo(f"{config.display_path}: ok (image {config.image.name}, "
               f"{len(config.tags)} tag rules, registries: {names})")


@click.command()
def schema():
    """Print the JSON Schema of release.yml (for editors)."""
    click.echo(json.dumps(json_schema(), indent=2))
