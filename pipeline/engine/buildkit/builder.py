"""Build the image for a release: choose the route once, check secrets and cache, then build.

The one entry point for build-push, `release ci build` and each platform of a
multi-platform release. Everything that can be wrong with the build's inputs (an unset
secret variable, a secret file that went missing, a forced builder the engine lacks, a
cache spec without buildx) is found by `prepare()`, before anything is built or pushed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping

from pipeline.auth import lookup as credentials
from pipeline.engine.buildkit.cli_build import build_via_cli, find_cli
from pipeline.engine.buildkit.dockerfile import base_images
from pipeline.engine.buildkit.engine_build import BuildKitFailed, build_via_engine
from pipeline.errors import UsageError
from pipeline.model.build_options import CacheEntry
from pipeline.model.build_route import BUILDX, CLASSIC, ENGINE, Route, choose_route
from pipeline.registry.client import RegistryClient
from pipeline.registry.reference import parse_reference
from pipeline.ui import redact


class ImageBuilder:
    def __init__(self, engine, image, reporter, *, env: Mapping[str, str] | None = None,
                 registry_for: Callable[[str], tuple] | None = None,
                 find_cli: Callable[[], object] | None = None):
        """`image` is config.ImageConfig; `registry_for(host)` gives (RegistryClient,
        Credentials) for a cache image's registry (build-push passes its own, so release.yml's
        credentials apply); `find_cli` finds the docker CLI (cli_build.find_cli)."""
        self.engine = engine
        self.image = image
        self.reporter = reporter
        self.env = os.environ if env is None else env
        self.registry_for = registry_for or self.registry_from_docker_config
        self._find_cli = find_cli
        self.route: Route | None = None
        self.cache_from: tuple[CacheEntry, ...] = tuple(image.cache_from)
        self._bases_done: set[tuple[str, str | None]] = set()

    # -- before anything is built -----------------------------------------------------------
    def prepare(self) -> Route:
        """Choose the route, check the secrets and the cache sources. Idempotent."""
        if self.route is not None:
            return self.route
        self._check_secrets()
        image = self.image
        entries = (*image.cache_from, *image.cache_to)
        needs_cli = image.builder != "classic" and (image.secrets or any(e.needs_buildx for e in entries))
        cli = None
        if needs_cli:
            cli = (self._find_cli or (lambda: find_cli(self.env)))()
        version = self.engine.version() if image.builder != "classic" else {}
        route = choose_route(image.builder, engine_version=version, secrets=bool(image.secrets),
                             cache_entries=entries, cli=cli)
        if route.note:
            self.reporter.message(route.note)
        self.route = route
        self.cache_from = self._usable_cache(route)
        return route

    def _check_secrets(self) -> None:
        for i, secret in enumerate(self.image.secrets):
            if secret.env:
                value = self.env.get(secret.env)
                if not value:
                    raise UsageError(f"image.secrets[{i}] ({secret.id}): environment variable "
                                     f"{secret.env} is not set",
                                     hint=f"export {secret.env}=... before running release")
                redact.register(value)
            elif secret.file is not None:
                if not Path(secret.file).is_file() or not os.access(secret.file, os.R_OK):
                    raise UsageError(f"image.secrets[{i}] ({secret.id}): file {secret.file} "
                                     f"not found or not readable",
                                     hint="secret files are relative to the directory of "
                                          "release.yml")
                try:
                    for line in Path(secret.file).read_text(errors="replace").splitlines():
                        redact.register(line.strip())
                except OSError:
                    pass

    def _usable_cache(self, route: Route) -> tuple[CacheEntry, ...]:
        """Image cache sources that exist; a missing one is a warning, never a failure.
        On the Engine API route (no session, so no registry credentials for BuildKit) an
        image on a registry that needs credentials is pulled first with ours: BuildKit then
        takes its inline cache from the local image."""
        usable = []
        for entry in self.image.cache_from:
            if entry.type != "image":
                usable.append(entry)
                continue
            ref = parse_reference(entry.ref)
            try:
                client, creds = self.registry_for(ref.host)
                found = client.head_manifest(ref.repository, ref.reference)
            except Exception as exc:   # noqa: BLE001 - any failure: the cache is optional
                self.reporter.message(f"warning: cache_from {entry.text} cannot be checked "
                                      f"({_first_line(exc)}); building without it")
                continue
            if found is None:
                self.reporter.message(f"warning: cache_from {entry.text} does not exist; "
                                      f"building without it")
                continue
            # the classic builder takes only local images; BuildKit without a session (and the
            # CLI's session, which knows only the Docker config) gets registry credentials
            # from nobody: a pull with ours puts the image where the engine's BuildKit looks.
            # By digest, so that no local tag is moved (the user's own `app:latest` stays).
            if route.way == CLASSIC or (route.way != BUILDX and not creds.anonymous):
                pinned = f"{ref.name}@{found.digest}"
                try:
                    self.engine.pull(ref.name, found.digest, creds.auth_config(ref.host))
                except Exception as exc:       # noqa: BLE001 - the cache is optional
                    self.reporter.message(f"warning: cache_from {entry.text} could not be "
                                          f"pulled ({_first_line(exc)}); building without it")
                    continue
                entry = CacheEntry(entry.text, "image", pinned)
            usable.append(entry)
        return tuple(usable)

    def pull_private_bases(self, platform: str | None) -> None:
        """Pull the FROM images that need credentials and are not here yet, with the ones
        release.yml or the Docker config give for their registry: the Engine API's BuildKit
        has no session to ask for them ("no active sessions"), and looks for local images
        first. Anonymous bases are left to BuildKit; a failed pull is a warning (the build
        then says why it cannot load the base)."""
        image = self.image
        for base in base_images(Path(image.context, image.dockerfile), image.build_args):
            if (base, platform) in self._bases_done:
                continue
            self._bases_done.add((base, platform))
            try:
                ref = parse_reference(base)
            except UsageError:
                continue                 # BuildKit will say what is wrong with it
            if self.engine.inspect(base) is not None:
                continue
            creds = self.registry_for(ref.host)[1]
            if creds.anonymous:
                continue
            self.reporter.message(f"pulling the base image {base} with the credentials for "
                                  f"{ref.host} ({creds.describe()})")
            try:
                self.engine.pull(ref.name, ref.digest or ref.tag or "latest",
                                 creds.auth_config(ref.host), platform=platform)
            except Exception as exc:       # noqa: BLE001 - BuildKit's own error follows
                self.reporter.message(f"warning: the base image {base} could not be pulled "
                                      f"({_first_line(exc)})")

    def registry_from_docker_config(self, host: str):
        creds = credentials.resolve(host, host, None, None, self.env)
        return RegistryClient(host, creds, retry_attempts=2), creds

    # -- the build --------------------------------------------------------------------------
    def build(self, *, tag: str, labels: dict[str, str], platform: str | None = None,
              nocache: bool = False, cache_from: list[str] | None = None,
              on_line: Callable[[str], None] | None = None) -> str:
        """Build and tag `tag`; return the image id. `cache_from`: extra local images (the
        classic builder's per-platform cache, see release.py)."""
        route = self.prepare()
        image = self.image
        on_line = on_line or self.reporter.build_line
        common = dict(context=image.context, dockerfile=image.dockerfile, tag=tag,
                      build_args=image.build_args, target=image.target, labels=labels,
                      platform=platform, nocache=nocache)
        refs = [e.ref for e in self.cache_from if e.type == "image"] + list(cache_from or ())
        if route.way != BUILDX:      # buildx may build elsewhere (a container driver)
            self.pull_private_bases(platform)
        if route.way == CLASSIC:     # docker-py's build, called as it always was
            extra = {k: v for k, v in (("platform", platform), ("nocache", nocache),
                                       ("cache_from", refs)) if v}
            return self.engine.build(on_line=on_line, context=image.context,
                                     dockerfile=image.dockerfile, tag=tag,
                                     build_args=image.build_args, target=image.target,
                                     labels=labels, **extra)
        earlier = self.engine.inspect(tag)
        try:
            if route.way == ENGINE:
                image_id = build_via_engine(self.engine.api, cache_from=refs, on_line=on_line,
                                            dockerfile_shown=image.dockerfile, **common)
            else:
                entries = list(self.cache_from) + [CacheEntry(r, "image", r)
                                                   for r in cache_from or ()]
                image_id = build_via_cli(route.cli, route.way, secrets=image.secrets,
                                         cache_from=entries, cache_to=list(image.cache_to),
                                         on_line=on_line, env=self.env,
                                         dockerfile_shown=image.dockerfile, **common)
        except BuildKitFailed as exc:
            if "exec format error" not in exc.message.lower():
                raise
            # a foreign binary ran: QEMU missing for that platform, or the wrong binary
            detail, hint = self.engine.explain_exec_format("", platform)
            raise BuildKitFailed(f"{exc.message}\n {detail.strip()}", hint=hint) from None
        return self._keep_earlier_if_equal(tag, earlier, image_id)

    def _keep_earlier_if_equal(self, tag: str, earlier: dict | None, image_id: str) -> str:
        """BuildKit (0.8, Engine 20.10) writes the inline cache records of the image config in
        no fixed order, so a fully cached rebuild can get a new image id that differs from the
        earlier build only there. Then the earlier image keeps the tag: sources built again
        give the same image, and a released version keeps its digest on a re-run."""
        if not earlier or earlier.get("Id") == image_id:
            return image_id
        now = self.engine.inspect(image_id)
        if now is None or _identity(earlier, self.engine.history(earlier["Id"])) != \
                _identity(now, self.engine.history(image_id)):
            return image_id
        repository, _, name = tag.rpartition(":")
        self.engine.tag(earlier["Id"], repository, name)
        self.engine.remove_if_untagged(image_id)
        return earlier["Id"]


def _first_line(exc: BaseException) -> str:
    """An exception as one short, redacted line, for a warning."""
    text = redact.redact(str(exc)).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:160]


def _identity(inspect: dict, history: list[dict]) -> tuple:
    """What an image is, short of the inline cache records: its config, layers, platform,
    creation time and history."""
    keys = ("Config", "Created", "RootFS", "Os", "Architecture", "Variant", "Author", "Comment")
    return (repr([inspect.get(k) for k in keys]),
            repr([(h.get("Created"), h.get("CreatedBy"), h.get("Comment"), h.get("Size"))
                  for h in history]))
