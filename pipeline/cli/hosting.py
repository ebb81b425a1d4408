"""`release registry up / down / gc / compose`: host a private registry (registry:2).

Registered on the `registry` group at the end of cli/chores.py. docker-py is imported when a
command first talks to the engine (pipeline/engine/client.py), not when this module loads.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import click

from pipeline.errors import ReleaseError, UsageError
from pipeline.hosting.compose import render_compose
from pipeline.hosting.deploy import (
    RegistryOptions,
    default_bind,
    default_config_dir,
    plan_deployment,
)
from pipeline.hosting.engine import docker_client
from pipeline.hosting.engine import down as do_down
from pipeline.hosting.engine import gc as do_gc
from pipeline.hosting.engine import up as do_up
from pipeline.registry.hosts import docker_allows_plain_http, is_loopback
from pipeline.ui.redact import redact, register

DEFAULT_IMAGE = "registry:2"
DEFAULT_UI_IMAGE = "joxit/docker-registry-ui:2"


def _deployment_options(f):
    """The options `up` and `compose` share (both describe the same deployment)."""
    opts = [
        click.option("--name", default="registry", show_default=True,
                     help="Container name; also names the data volume NAME-data."),
        click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True,
                     help="Host port of the registry."),
        click.option("--bind", metavar="IP",
                     help="Host address to publish on. Default: 0.0.0.0 (every interface) "
                          "with authentication and TLS, else 127.0.0.1 (this machine only)."),
        click.option("--host", "hosts", multiple=True, metavar="NAME",
                     help="Name clients use (repeatable; all go into the certificate). "
                          "Default: this machine's name; localhost with a loopback --bind."),
        click.option("--data", metavar="DIR|VOLUME",
                     help="Storage: a volume name (default NAME-data) or a directory "
                          "(/abs, ./rel, ~/dir)."),
        click.option("--user", metavar="NAME", help="Create a bcrypt htpasswd file for NAME."),
        click.option("--password-env", metavar="VAR",
                     help="Environment variable holding --user's password (never on the "
                          "command line, never printed)."),
        click.option("--htpasswd", type=click.Path(dir_okay=False), metavar="FILE",
                     help="Use this htpasswd file instead of --user."),
        click.option("--tls", is_flag=True,
                     help="HTTPS with a self-signed certificate (SAN: every --host, localhost, "
                          "127.0.0.1)."),
        click.option("--cert", type=click.Path(dir_okay=False), metavar="FILE",
                     help="HTTPS with this certificate (PEM; with --key)."),
        click.option("--key", type=click.Path(dir_okay=False), metavar="FILE",
                     help="Private key of --cert."),
        click.option("--mirror", metavar="URL",
                     help="Run as a pull-through cache of URL, e.g. https://registry-1.docker.io "
                          "(such a registry refuses pushes)."),
        click.option("--ui", is_flag=True, help="Also run a web UI (joxit/docker-registry-ui)."),
        click.option("--ui-port", type=click.IntRange(1, 65535), default=8080, show_default=True),
        click.option("--ui-image", default=DEFAULT_UI_IMAGE, show_default=True),
        click.option("--delete/--no-delete", default=True, show_default=True,
                     help="Allow deleting manifests (release prune, registry delete)."),
        click.option("--read-only", is_flag=True,
                     help="Maintenance mode: pulls work, pushes are refused."),
        click.option("--image", default=DEFAULT_IMAGE, show_default=True,
                     help="The registry image."),
        click.option("--network", metavar="NAME",
                     help="Join this existing Docker network (default: the bridge; with --ui a "
                          "network NAME-net of its own)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _options(kw: dict):
    """RegistryOptions from the CLI, checked; warns on stderr about a registry without
    authentication that --bind publishes beyond this machine."""
    bind = kw["bind"] or default_bind(auth=bool(kw["user"] or kw["htpasswd"]),
                                      tls=bool(kw["tls"] or kw["cert"]))
    opts = RegistryOptions(
        name=kw["name"], port=kw["port"], bind=bind, hosts=tuple(kw["hosts"]),
        image=kw["image"], data=kw["data"], user=kw["user"], password_env=kw["password_env"],
        htpasswd=kw["htpasswd"], tls=kw["tls"], cert=kw["cert"], key=kw["key"],
        mirror=kw["mirror"], ui=kw["ui"], ui_port=kw["ui_port"], ui_image=kw["ui_image"],
        delete=kw["delete"], read_only=kw["read_only"], network=kw["network"])
    opts.validate()
    if opts.open_to_the_network:
        can = "pull through it" if opts.mirror else "push and pull"
        click.echo(f"warning: no authentication on {opts.bind}: anyone who can reach port "
                   f"{opts.port} can {can} (add --user NAME --password-env VAR with --tls, or "
                   "leave out --bind to publish on 127.0.0.1 only)", err=True)
    return opts


def _password(opts) -> str | None:
    if not opts.password_env:
        return None
    value = os.environ.get(opts.password_env)
    if not value:
        raise UsageError(f"environment variable {opts.password_env} is not set (or is empty)",
                         hint=f"export {opts.password_env}=... with the password for "
                              f"{opts.user}; it is never taken from the command line")
    register(value)
    return value


def _up_report(result) -> dict:
    d = result.deployment
    trust = f"/etc/docker/certs.d/{d.address}/ca.crt" if d.tls else None
    return {
        "name": d.name, "url": d.url, "address": d.address, "image": d.registry.image,
        "containers": result.states, "container_id": result.container_id,
        "ready_seconds": round(result.ready_seconds or 0, 3),
        "data": {"kind": d.data.kind, "source": d.data.source},
        "config_dir": d.config_dir,
        "auth": ({"user": d.auth.get("user"), "password_env": d.auth.get("password_env"),
                  "htpasswd": d.auth.get("htpasswd")} if d.auth else None),
        "tls": ({"cert": d.tls["cert"], "self_signed": d.tls["self_signed"],
                 "names": d.tls["names"], "trust_path": trust} if d.tls else None),
        "mirror": d.mirror, "ui": d.ui_url, "delete": d.delete, "read_only": d.read_only,
        "network": d.network,
    }


def _print_up(result) -> None:
    d = result.deployment
    state = result.states.get(d.name, "?")
    verb = {"unchanged": "already running", "created": "created", "recreated": "recreated",
            "started": "started again"}.get(state, state)
    click.echo(f"registry {d.name!r} is up at {d.url}  (container {verb}, answered in "
               f"{result.ready_seconds or 0:.1f}s)")
    storage = (f"volume {d.data.source}" if d.data.kind == "volume"
               else f"directory {d.data.source}")
    click.echo(f"  storage   {storage}")
    if d.auth:
        if d.auth.get("user"):
            click.echo(f"  auth      htpasswd (bcrypt), user {d.auth['user']}, password from "
                       f"${d.auth['password_env']}; file {d.auth['htpasswd']}")
        else:
            click.echo(f"  auth      htpasswd file {d.auth['htpasswd']}")
    elif is_loopback(d.bind):
        click.echo("  auth      none (published on this machine only)")
    else:
        click.echo("  auth      none: anyone who reaches the port can push and pull")
    if d.tls:
        kind = "self-signed certificate" if d.tls["self_signed"] else "certificate"
        names = f" ({', '.join(d.tls['names'])})" if d.tls["names"] else ""
        click.echo(f"  tls       {kind} {d.tls['cert']}{names}")
    if d.mirror:
        click.echo(f"  mirror    pull-through cache of {d.mirror} (pushes are refused)")
    if d.read_only:
        click.echo("  mode      read-only (pushes are refused; `up` without --read-only ends it)")
    if d.ui:
        click.echo(f"  ui        {d.ui_url}  (container {d.ui.name}, image {d.ui.image}; "
                   f"{result.states.get(d.ui.name, '?')})")
    for name, st in result.states.items():
        if st == "removed":
            click.echo(f"  removed   container {name} (no --ui any more)")

    if d.tls:
        click.echo("\nTrust the certificate on every Docker host that pushes or pulls:")
        click.echo(f"  sudo mkdir -p /etc/docker/certs.d/{d.address}")
        click.echo(f"  sudo cp {shlex.quote(d.tls['cert'])} /etc/docker/certs.d/{d.address}/ca.crt")
    elif not d.auth and not docker_allows_plain_http(d.address):
        # Never with a password: it would cross the network in clear text (validate()
        # refuses auth over plain HTTP on a non-loopback --bind anyway).
        click.echo("\nPlain HTTP: Docker uses it only for registries listed as insecure. On "
                   "every Docker host add to /etc/docker/daemon.json")
        click.echo(f'  {{"insecure-registries": ["{d.address}"]}}')
        click.echo("and restart dockerd, or run `up` again with --tls.")
    if d.auth and d.auth.get("user"):
        click.echo("\nLog in:")
        click.echo(f'  echo "${d.auth["password_env"]}" | docker login {d.address} '
                   f'--username {d.auth["user"]} --password-stdin')
    if d.mirror:
        click.echo("\nUse it as a mirror: on each Docker host, in /etc/docker/daemon.json")
        click.echo(f'  {{"registry-mirrors": ["{d.url}"]}}')
    else:
        click.echo("\nIn release.yml:")
        click.echo("  registries:")
        click.echo("    - name: local")
        click.echo("      type: generic")
        click.echo(f"      registry: {d.address}")
        click.echo("      repository: team/app")
        if d.auth:
            click.echo("      username_env: REGISTRY_USER" + (
                f"        # export REGISTRY_USER={d.auth['user']}" if d.auth.get("user") else ""))
            click.echo(f"      password_env: {d.auth.get('password_env') or 'REGISTRY_PASSWORD'}")
        if d.tls:
            click.echo(f"      ca_file: {d.tls['cert']}")


@click.command("up")
@_deployment_options
@click.option("--config-dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Where the generated htpasswd and certificate go. "
                   "Default: ~/.config/release/registries/NAME.")
@click.option("--wait", "wait_seconds", type=click.FloatRange(1, 600), default=30.0,
              show_default=True, metavar="SECONDS", help="How long to wait for /v2/ to answer.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
def up(config_dir, wait_seconds, as_json, **kw):
    """Run a private registry (registry:2) with restart policy `always`: storage, htpasswd
    auth, TLS, pull-through mirror and web UI as asked. Running it again changes nothing
    (or replaces the container if an option changed; the data stays).

    Secure defaults: without authentication and TLS it is published on 127.0.0.1 only
    (an explicit non-loopback --bind without auth is warned about); a password over plain
    HTTP on a non-loopback address is refused.

    \b
    Examples:
      release registry up                                        # http://localhost:5000
      REG_PW=... release registry up --user admin --password-env REG_PW --tls --ui
      release registry up --name mirror --port 5001 --mirror https://registry-1.docker.io
    """

    opts = _options(kw)
    password = _password(opts)
    directory = config_dir or default_config_dir(opts.name)
    client = docker_client()
    dep = plan_deployment(opts, config_dir=directory, password=password)
    progress = (lambda s: None) if as_json else (lambda s: click.echo(s, err=True))
    result = do_up(client, dep, wait=wait_seconds, on_event=progress)
    if as_json:
        click.echo(redact(json.dumps(_up_report(result), indent=2)))
    else:
        _print_up(result)


@click.command("down")
@click.argument("name", default="registry")
@click.option("--purge", is_flag=True,
              help="Also delete the data volume and the generated htpasswd/certificate.")
@click.option("--config-dir", type=click.Path(file_okay=False), metavar="DIR",
              help="With --purge: the --config-dir `up` was given (needed once the containers, "
                   "which remember it, are gone).")
def down(name, purge, config_dir):
    """Stop and remove registry NAME (and its UI and network). The data stays unless --purge.

    \b
    Example:  release registry down registry
              release registry down registry --purge
              release registry down hub --purge --config-dir ./hub-config
    """


    if config_dir and not purge:
        raise click.UsageError("--config-dir goes with --purge")
    result = do_down(docker_client(), name, purge=purge,
                     config_dir=Path(config_dir) if config_dir else None)
    if not result.removed:
        click.echo(f"registry {name!r}: nothing to remove")
    for item in result.removed:
        click.echo(f"removed {item}")
    for item in result.kept:
        click.echo(f"kept    {item}")


@click.command("gc")
@click.argument("name", default="registry")
@click.option("--delete-untagged", is_flag=True,
              help="Also delete manifests no tag points at (careful with multi-arch indexes "
                   "pushed by digest).")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@click.option("--read-only/--no-read-only", default=True, show_default=True,
              help="Refuse pushes while collecting (the registry is re-run in read-only mode "
                   "and put back afterwards).")
@click.option("--config", "config_path", default="/etc/docker/registry/config.yml",
              show_default=True, help="The registry's config file inside the container.")
@click.option("-v", "--verbose", is_flag=True, help="Print the whole garbage-collect output.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def gc(ctx, name, delete_untagged, dry_run, read_only, config_path, verbose, as_json):
    """Delete the blobs no manifest uses any more: runs the registry's own `registry
    garbage-collect` in container NAME.

    Deleting a tag or manifest (release prune, release registry delete) frees no disk space
    by itself; this does. A push that runs during the collection can lose layers, so by
    default the registry is read-only meanwhile (pulls work, pushes get an error) and is
    restarted afterwards (its blob cache would otherwise still list deleted blobs).

    \b
    Example:  release registry gc registry --dry-run
              release registry gc registry --delete-untagged
    """

    if read_only and not dry_run:
        click.echo(f"warning: {name} is read-only while garbage-collect runs: pushes are "
                   "refused until it is done.", err=True)
    elif not dry_run:
        click.echo("warning: --no-read-only: a push running during the collection can lose "
                   "layers (its blobs are not referenced yet, so they are deleted). Make "
                   "sure nothing pushes.", err=True)
    progress = (lambda s: None) if as_json else (lambda s: click.echo(s, err=True))
    result = do_gc(docker_client(), name, delete_untagged=delete_untagged, dry_run=dry_run,
                   read_only=read_only, config_path=config_path, on_event=progress)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        if verbose or result.exit_code != 0:
            click.echo(result.output.rstrip(), err=result.exit_code != 0)
        if result.empty:
            click.echo("the registry holds no repository yet: nothing to collect")
        elif result.marked is not None:
            verb = "would be deleted" if dry_run else "deleted"
            click.echo(f"{result.marked} blobs in use; {result.blobs} blobs and "
                       f"{result.manifests} manifests {verb}")
    if result.exit_code != 0:
        raise ReleaseError(f"garbage-collect failed in {name} (exit code {result.exit_code})")


@click.command("compose")
@_deployment_options
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=".",
              show_default=True,
              help="Directory of the Compose file: the htpasswd and certificate are written "
                   "to DIR/auth and DIR/certs, and paths under DIR are written relative.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write to FILE instead of standard output.")
def compose(directory, output, **kw):
    """Print the Compose file equivalent to `release registry up` with the same options
    (registry, optional UI, volume), generating the htpasswd and certificate files.

    \b
    Example:
      REG_PW=... release registry compose --user admin --password-env REG_PW --tls \\
          --ui > docker-compose.yml && docker-compose up -d
    """


    opts = _options(kw)
    password = _password(opts)
    base = Path(directory).absolute()
    dep = plan_deployment(opts, config_dir=base, password=password, registry_dns="registry")
    text = render_compose(dep, base=base)
    if output:
        Path(output).write_text(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
    generated = []
    if dep.auth and dep.auth.get("generated"):
        generated.append(dep.auth["htpasswd"])
    if dep.tls and dep.tls.get("self_signed"):
        generated += [dep.tls["cert"], dep.tls["key"]]
    for path in generated:
        click.echo(f"using {path}", err=True)

