"""Which tags `release prune` may delete: pure logic over a {tag: digest} map and the
references between manifests.

A registry deletes manifests, not tags: deleting a digest removes every tag that points at
it. Kept: the N highest semantic versions (SemVer precedence, not string order) among the
tags that match `--match`, every tag that is not a version (`latest`, `1`, `1.2`, `main`,
`sha256-<hex>.sig` ...), and every tag that does not match `--match`. Then everything a kept
manifest reaches is kept too, whatever its tags look like:

* the children of a kept index (a multi-platform version `2.0.0` whose per-platform
  manifests also carry tags such as `2.0.0-amd64`, which look like old prereleases);
* manifests that refer to a kept one through the OCI 1.1 `subject` field (signatures,
  attestations, SBOMs pushed as referrers);
* a digest a kept tag shares.

The closure runs to a fixed point (an index of indexes, a signature of an index).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from pipeline.model.tags.semver import parse_semver, precedence


@dataclass(frozen=True)
class Deletion:
    digest: str
    tags: tuple[str, ...]     # every tag removed with this digest


@dataclass(frozen=True)
class PrunePlan:
    keep: tuple[str, ...]           # kept versions, highest first
    protected: tuple[str, ...]      # every other tag that stays
    deletions: tuple[Deletion, ...] = field(default_factory=tuple)
    reasons: Mapping[str, str] = field(default_factory=dict)   # protected tag -> why

    @property
    def deleted_tags(self) -> list[str]:
        return [t for d in self.deletions for t in d.tags]

    def to_dict(self) -> dict:
        return {"keep": list(self.keep), "protected": list(self.protected),
                "reasons": {t: self.reasons[t] for t in self.protected if t in self.reasons},
                "delete": [{"digest": d.digest, "tags": list(d.tags)} for d in self.deletions]}


@dataclass(frozen=True)
class ManifestLinks:
    """What the manifests of a repository point at, as read from the registry."""
    children: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # index -> manifests
    subjects: Mapping[str, str] = field(default_factory=dict)             # manifest -> subject


def plan_prune(tags: dict[str, str], keep: int, match: str | None = None,
               links: ManifestLinks | None = None) -> PrunePlan:
    if keep < 0:
        raise ValueError("keep must be >= 0")
    links = links or ManifestLinks()
    pattern = re.compile(match) if match else None
    versions = []
    reasons: dict[str, str] = {}
    for tag in tags:
        v = parse_semver(tag)
        if v is None:
            reasons[tag] = "not a version"
        elif pattern is not None and not pattern.search(tag):
            reasons[tag] = "does not match --match"
        else:
            versions.append((precedence(v), tag))
    versions.sort(reverse=True)
    kept = [t for _, t in versions[:keep]]
    candidates = {t for _, t in versions[keep:]}
    survivors = [t for t in tags if t not in candidates]
    roots: dict[str, str] = {}            # digest -> the tag that keeps it, versions first
    for tag in kept + sorted(set(survivors) - set(kept)):
        roots.setdefault(tags[tag], tag)
    why = _reachable(roots, links)

    by_digest: dict[str, list[str]] = {}
    for tag in sorted(candidates, key=lambda t: precedence(parse_semver(t))):
        by_digest.setdefault(tags[tag], []).append(tag)
    deletions = []
    spared = []
    for digest, names in by_digest.items():
        if digest in why:
            spared.extend(names)          # a kept manifest still needs this one
            for name in names:
                reasons[name] = why[digest]
        else:
            # every tag on the digest goes with it; all of them are candidates here
            deletions.append(Deletion(digest, tuple(names)))
    protected = sorted(set(survivors) - set(kept)) + sorted(spared)
    return PrunePlan(keep=tuple(kept), protected=tuple(protected), deletions=tuple(deletions),
                     reasons={t: reasons[t] for t in protected if t in reasons})


def _reachable(roots: dict[str, str], links: ManifestLinks) -> dict[str, str]:
    """Every digest the kept tags reach, with why: {digest: reason}."""
    why = {digest: f"shares its digest with kept tag {tag}" for digest, tag in roots.items()}
    names = dict(roots)                   # digest -> the kept tag it is reached from
    referrers: dict[str, list[str]] = {}
    for manifest, subject in links.subjects.items():
        referrers.setdefault(subject, []).append(manifest)
    todo = list(roots)
    while todo:
        digest = todo.pop()
        origin = names[digest]
        for child in links.children.get(digest, ()):
            if child not in why:
                why[child] = f"in the index of kept tag {origin}"
                names[child] = origin
                todo.append(child)
        for referrer in referrers.get(digest, ()):
            if referrer not in why:
                why[referrer] = f"refers to kept tag {origin} (subject)"
                names[referrer] = origin
                todo.append(referrer)
    return why
