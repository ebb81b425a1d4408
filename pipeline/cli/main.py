"""The `release` command line: the root group, the table of its commands, and `main()`.

Every command lives in a module of its own (cli/release.py, config.py, chores.py,
manifest.py, login.py, ci.py), imported only when that command runs; `release --help`
lists them from the table below without importing any, so it stays quick.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from pipeline import __version__
from pipeline.engine.spool import Terminated, terminate_like_interrupt
from pipeline.errors import ReleaseError, format_errors
from pipeline.ui.redact import redact

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# name -> (module in pipeline/cli, attribute, short help). The short help is the first
# sentence of the command's docstring, which `release --help` shows; it is kept here so
# that listing the commands imports none of them (tests/unit/test_cli.py checks that the
# two agree).
LAZY_COMMANDS = {
    "build-push": ("release", "build_push",
                   "Build once, push VERSION and its tags to every registry, verify the digests."),
    "plan": ("preview", "plan", "Print what build-push VERSION would do, touching nothing."),
    "tags": ("preview", "tags", "Print the tags release.yml gives for VERSION (or for the current "
                                "ref from flags, CI or git)."),
    "validate": ("config", "validate", "Check release.yml and print a one-line summary; exit 2 "
                                       "listing every problem (up to 20, in file order)."),
    "schema": ("config", "schema", "Print the JSON Schema of release.yml (for editors)."),
    "registry": ("chores", "registry_group",
                 "Look into a registry (catalog, tags, inspect, delete) or host one (up, down, "
                 "gc, compose)."),
    "prune": ("chores", "prune", "Delete old versions, keeping the N highest (semver order) and "
                                 "every tag still in use."),
    "promote": ("chores", "promote", "Copy the image released as VERSION on one registry to "
                                     "others, with every tag the rules give, digest unchanged: no "
                                     "rebuild, no Docker Engine."),
    "manifest": ("manifest", "manifest_group",
                 "Multi-platform indexes from split builds (one CI job per platform)."),
    "login": ("login", "login", "Get each registry's credentials (from env vars, the cloud SDK or "
                                "CLI, the Docker config) and prove them against its /v2/ "
                                "endpoint; print method, identity and expiry, never a secret."),
    "logout": ("login", "logout", "Remove the credentials `release login --docker-config` stored "
                                  "for these registries (all of release.yml's when none is "
                                  "named): the Docker config's `auths` entry, or the credential "
                                  "helper's entry."),
    "ci": ("ci", "ci_group", "Generate the CI that runs release, and the CI-only steps it uses."),
}


class ReleaseGroup(click.Group):
    """Loads each command from LAZY_COMMANDS when it is named; turns our errors into
    `error: ...` on stderr with the right exit code, never a traceback."""

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None and name in LAZY_COMMANDS:
            module, attr, _ = LAZY_COMMANDS[name]
            command = getattr(importlib.import_module(f"{__package__}.{module}"), attr)
            self.add_command(command, name)
        return command

    def format_commands(self, ctx, formatter):
        """As click lists commands, with the short help of the ones not loaded yet taken
        from LAZY_COMMANDS instead of their modules."""
        commands = []
        for name in self.list_commands(ctx):
            command = super().get_command(ctx, name) or click.Command(name, help=LAZY_COMMANDS[name][2])
            if not command.hidden:
                commands.append((name, command))
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit))
                                    for name, command in commands])

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ReleaseError as exc:    # every problem of release.yml, up to 20
            click.echo(redact(format_errors(exc)), err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
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


_EXIT_NOW: int | None = None


def main() -> None:
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
