"""`release login`: get each registry's credentials the way a push would, and prove them;
`release logout`: remove what `release login --docker-config` stored."""

from __future__ import annotations

import json
import os

import click

from pipeline.auth.dockerconfig import erase
from pipeline.auth.dockerconfig import store as store_creds
from pipeline.auth.lookup import credentials_for, unexpected_error
from pipeline.auth.prove import prove
from pipeline.errors import ReleaseError
from pipeline.model.config.loader import load_config
from pipeline.model.status import Status
from pipeline.ui.redact import redact
from pipeline.ui.summary import table


def _expiry(creds) -> str | None:
    return creds.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ") if creds and creds.expires_at else None


def login_one(registry, env, *, store: bool = False) -> dict:
    """One registry: credentials, proof, optional storing. Never raises for a registry's own
    failure (it becomes `ok: false` with an error and a hint)."""

    entry = {"name": registry.name, "type": registry.type, "host": registry.registry,
             "repository": registry.repository, "method": None, "source": None,
             "identity": None, "expires_at": None, "ok": False, "status": Status.FAILED,
             "detail": None, "hint": None, "config_error": False}

    def failed(exc: ReleaseError) -> dict:
        # a configuration error (exit 2 elsewhere) says so: `release login` exits 2 for it
        entry.update(detail=exc.message, hint=exc.hint, config_error=exc.exit_code == 2)
        return entry

    try:
        creds = credentials_for(registry, env)
    except ReleaseError as exc:
        return failed(exc)
    except Exception as exc:            # credentials_for turns SDK surprises into errors already
        if os.environ.get("RELEASE_DEBUG"):
            raise
        return failed(unexpected_error(registry, exc))
    entry.update(method=creds.method or creds.source, source=creds.source,
                 identity=None if creds.anonymous else creds.identity,
                 expires_at=_expiry(creds))
    try:
        proof = prove(registry, creds)
    except ReleaseError as exc:                 # e.g. an unreadable ca_file
        return failed(exc)
    except Exception as exc:
        if os.environ.get("RELEASE_DEBUG"):
            raise
        return failed(unexpected_error(registry, exc, "checking the credentials"))
    entry.update(ok=proof.ok, status=Status.OK if proof.ok else Status.FAILED, detail=proof.detail,
                 hint=proof.hint)
    if proof.ok and store:
        try:
            entry["stored"] = store_creds(registry.registry, creds, env)
        except (OSError, RuntimeError) as exc:
            entry.update(ok=False, status=Status.FAILED,
                         detail=f"could not store in the Docker config: {exc}",
                         hint="check the Docker config file and its credential helper")
    return entry


def format_login(entries: list[dict]) -> str:

    rows = [[e["name"], e["host"], e["method"] or "-", e["identity"] or "-",
             (e["expires_at"] or "-").replace("T", " "), e["status"]] for e in entries]
    text = table(rows, ["REGISTRY", "HOST", "METHOD", "IDENTITY", "EXPIRES", "STATUS"])
    notes = []
    for e in entries:
        if e["ok"]:
            line = f"  {e['name']}: {e['detail']}"
            if e.get("stored"):
                line += f"; stored in {e['stored']}"
        else:
            line = f"  {e['name']}: {e['detail']}"
            if e["hint"]:
                line += f"\n    hint: {e['hint']}"
        notes.append(line)
    if notes:
        text += "\n\n" + "\n".join(notes)
    failed = [e["name"] for e in entries if not e["ok"]]
    text += ("\n\nlogin failed for: " + ", ".join(failed)) if failed else \
        f"\n\nlogged in to {len(entries)} registr{'y' if len(entries) == 1 else 'ies'}"
    return redact(text)


@click.command("login")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@click.option("--docker-config", "docker_config", is_flag=True,
              help="Also store the credentials in the Docker config (or its credential helper) "
                   "for your own `docker` CLI. Off by default: nothing is written to disk.")
@click.pass_context
def login(ctx, names, as_json, docker_config):
    """Get each registry's credentials (from env vars, the cloud SDK or CLI, the Docker config)
    and prove them against its /v2/ endpoint; print method, identity and expiry, never a secret.

    \b
    Example:  release login                  # every registry in release.yml
              release login ecr ghcr --json
              release login hub --docker-config
    Exit codes: 0 all logged in, 1 a login failed, 2 bad configuration (release.yml, an
    env var it names that is not set, nothing to log in with). Every registry is shown.
    """

    config = load_config(ctx.obj["config_path"], build=False)
    selected = config.select(list(names))
    entries = [login_one(r, os.environ, store=docker_config) for r in selected]
    if as_json:
        click.echo(redact(json.dumps({"ok": all(e["ok"] for e in entries), "registries": entries},
                                     indent=2)))
    else:
        click.echo(format_login(entries))
    if any(e["config_error"] for e in entries):
        ctx.exit(2)
    if not all(e["ok"] for e in entries):
        ctx.exit(1)


def logout_one(registry, env) -> dict:
    """Remove what `release login --docker-config` stored for one registry."""

    entry = {"name": registry.name, "host": registry.registry, "removed": [], "ok": True,
             "detail": None}
    try:
        entry["removed"] = erase(registry.registry, env)
    except (OSError, RuntimeError) as exc:
        entry.update(ok=False, detail=f"could not update the Docker config: {exc}")
    return entry


def format_logout(entries: list[dict]) -> str:
    lines = []
    for e in entries:
        if not e["ok"]:
            lines.append(f"{e['name']}: {e['detail']}")
        elif e["removed"]:
            lines.extend(f"{e['name']}: removed {what}" for what in e["removed"])
        else:
            lines.append(f"{e['name']}: nothing stored for {e['host']}")
    return redact("\n".join(lines))


@click.command("logout")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@click.pass_context
def logout(ctx, names, as_json):
    """Remove the credentials `release login --docker-config` stored for these registries
    (all of release.yml's when none is named): the Docker config's `auths` entry, or the
    credential helper's entry. Prints what was removed.

    \b
    Example:  release logout                 # every registry in release.yml
              release logout hub ghcr
    Exit codes: 0 done (also when nothing was stored), 1 the Docker config or its helper
    could not be updated, 2 bad configuration or an unknown registry name.
    """

    config = load_config(ctx.obj["config_path"], build=False)
    selected = config.select(list(names))
    entries = [logout_one(r, os.environ) for r in selected]
    if as_json:
        click.echo(redact(json.dumps({"ok": all(e["ok"] for e in entries), "registries": entries},
                                     indent=2)))
    else:
        click.echo(format_logout(entries))
    if not all(e["ok"] for e in entries):
        ctx.exit(1)
