"""Printing text that came from outside (registries, the engine): secrets masked, and in
GitHub Actions no line of it can become a workflow command."""

from __future__ import annotations

import os

import click

from pipeline.ci.step import ci_system, neutralise, neutralise_json
from pipeline.ui.redact import redact


def echo(text: str, *, err: bool = False, is_json: bool = False) -> None:
    text = redact(text)
    if ci_system(os.environ) == "github":
        text = neutralise_json(text) if is_json else neutralise(text)
    click.echo(text, err=err)
