"""Registry chores: resolve a user's reference, inspect an image, list digests, prune, delete.

The user names a registry either by its release.yml name (`local`, `local:1.2.3`,
`local@sha256:...`: host, repository and credentials from the file) or by a full
reference (`ghcr.io/acme/app:1.2.3`: credentials from the Docker config, or from a
release.yml registry on the same host).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pipeline.auth import lookup as creds_mod
from pipeline.errors import UsageError
from pipeline.model.prune import ManifestLinks
from pipeline.registry.client import RegistryClient
from pipeline.registry.manifest import parse_manifest
from pipeline.registry.reference import Reference, parse_reference


@dataclass
class Target:
    client: RegistryClient
    ref: Reference
    name: str | None            # the release.yml registry name, if any


def client_for(registry, env=None) -> RegistryClient:
    """A client for a release.yml registry entry, with its credentials and retry policy."""
    creds = creds_mod.resolve(registry.name, registry.registry, registry.username_env,
                              registry.password_env, env, config=registry)
    return RegistryClient(registry.registry, creds, ca_file=registry.ca_file,
                          insecure=registry.insecure)


def resolve_target(text: str, config=None, *, env=None, need_repository: bool = True) -> Target:
    env = os.environ if env is None else env
    registries = {r.name: r for r in (config.registries if config else [])}
    name, sep, rest = text.partition("@") if "@" in text else text.partition(":")
    if name in registries:
        r = registries[name]
        ref = Reference(r.registry, r.repository)
        if sep and not rest:
            raise UsageError(f"'{text}': nothing after '{sep}'", hint=f"e.g. {name}:1.2.3 or {name}@sha256:...")
        if sep == ":":
            ref = ref.with_tag(rest)          # validated: a tag, not a path
        elif sep == "@":
            ref = ref.with_digest(rest)
        return Target(client_for(r, env), ref, r.name)
    if registries and "/" not in text and need_repository:
        # `aa:1.0.0` with a release.yml: almost surely a registry name with a typo, not Docker Hub
        raise UsageError(f"no registry named '{name}' in release.yml (known: {', '.join(registries)})",
                         hint=f"for Docker Hub, write the full name, e.g. docker.io/library/{text}")
    if not need_repository and "/" not in text:
        # a bare host for `catalog`
        host = text
        if not ("." in host or ":" in host or host == "localhost"):
            known = ", ".join(registries) or "none (no release.yml)"
            raise UsageError(f"no registry named '{host}' in release.yml, and it is not a host name",
                             hint=f"give a release.yml registry name ({known}) or HOST[:PORT]")
        same = next((r for r in registries.values() if r.registry == host), None)
        if same:
            return Target(client_for(same, env), Reference(host, ""), same.name)
        creds = creds_mod.resolve(host, host, None, None, env)
        return Target(RegistryClient(host, creds), Reference(host, ""), None)
    try:
        ref = parse_reference(text)
    except UsageError as exc:
        known = ", ".join(registries) or "none (no release.yml)"
        raise UsageError(f"{exc.message}", hint=f"give a full reference like localhost:5000/team/app:1.2.3 "
                                                 f"or a registry name from release.yml ({known})") from None
    same = next((r for r in registries.values() if r.registry == ref.host), None)
    if same:
        client = client_for(same, env)
    else:
        creds = creds_mod.resolve(ref.host, ref.host, None, None, env)
        client = RegistryClient(ref.api_host, creds)
    return Target(client, ref, same.name if same else None)


def inspect(target: Target) -> dict:
    """Digest, media type, size, layers, platforms and labels of one reference."""
    ref = target.ref
    body, info = target.client.get_manifest(ref.repository, ref.reference or "latest")
    manifest = parse_manifest(body, info.media_type)
    out = {"reference": str(ref), "digest": info.digest, "media_type": info.media_type, "size": info.size}
    if manifest.is_index:
        entries = manifest.data.get("manifests") or []
        out["platforms"] = [{"platform": _platform(e), "digest": e.get("digest"),
                             "media_type": e.get("mediaType"), "size": e.get("size")} for e in entries]
        return out
    config, *layers = manifest.blobs
    out["layers"] = [{"digest": l.digest, "size": l.size, "media_type": l.media_type} for l in layers]
    out["size"] = info.size + config.size + sum(l.size for l in layers)
    raw = target.client.get_blob(ref.repository, config.digest, config.size)
    try:
        image_config = json.loads(raw)
    except ValueError:
        image_config = None
    if not isinstance(image_config, dict):       # an OCI artifact, not a container image
        out.update(platforms=[], labels={}, created=None,
                   note=f"the config blob ({config.media_type}) is not an image config, so there "
                        f"is no platform or label to show (an artifact rather than an image?)")
        return out
    plat = "/".join(str(x) for x in (image_config.get("os"), image_config.get("architecture"),
                                     image_config.get("variant")) if x)
    out["platforms"] = [{"platform": plat or "unknown", "digest": info.digest}]
    settings = image_config.get("config")
    labels = settings.get("Labels") if isinstance(settings, dict) else None
    out["labels"] = labels if isinstance(labels, dict) else {}
    out["created"] = image_config.get("created")
    return out


def _platform(entry: dict) -> str:
    p = entry.get("platform") or {}
    if isinstance(p, dict) and p:
        return "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x)
    return "unknown"


def tag_digests(client: RegistryClient, repository: str, jobs: int = 4) -> dict[str, str]:
    """{tag: manifest digest} for every tag of a repository."""
    tags = client.list_tags(repository)

    def head(tag):
        info = client.head_manifest(repository, tag)
        return tag, info.digest if info else None

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return {t: d for t, d in pool.map(head, tags) if d}


def manifest_links(client: RegistryClient, repository: str, digests, jobs: int = 4):
    """What the manifests `digests` point at (prune.ManifestLinks): an index's children, a
    manifest's OCI 1.1 `subject`. One GET per distinct digest, `jobs` at a time."""

    def read(digest):
        body, info = client.get_manifest(repository, digest)
        manifest = parse_manifest(body, info.media_type)
        subject = manifest.data.get("subject")
        return (digest, tuple(c.digest for c in manifest.children) if manifest.is_index else (),
                subject.get("digest") if isinstance(subject, dict) else None)

    children, subjects = {}, {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for digest, kids, subject in pool.map(read, sorted(set(digests))):
            if kids:
                children[digest] = kids
            if isinstance(subject, str):
                subjects[digest] = subject
    return ManifestLinks(children=children, subjects=subjects)


GC_REMINDER = ("deleting manifests frees no disk by itself: run the registry's garbage collection "
               "(distribution: `registry garbage-collect /etc/docker/registry/config.yml`, "
               "registry in read-only mode or stopped)")
