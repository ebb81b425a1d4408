"""Which tags `release prune` may delete: pure logic over a {tag: digest} map.

A registry deletes manifests, not tags: deleting a digest removes every tag that
points at it. So a digest is deleted only when *no* kept tag uses it. Kept: the N
highest semantic versions (SemVer precedence, not string order) among the tags that
match `--match`, every tag that is not a version (`latest`, `1`, `1.2`, `main`, ...),
and every tag that does not match `--match`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .tags.semver import parse_semver, precedence


@dataclass(frozen=True)
class Deletion:
    digest: str
    tags: tuple[str, ...]     # every tag removed with this digest


@dataclass(frozen=True)
class PrunePlan:
    keep: tuple[str, ...]           # kept versions, highest first
    protected: tuple[str, ...]      # non-version, non-matching, or sharing a kept digest
    deletions: tuple[Deletion, ...] = field(default_factory=tuple)

    @property
    def deleted_tags(self) -> list[str]:
        return [t for d in self.deletions for t in d.tags]

    def to_dict(self) -> dict:
        return {"keep": list(self.keep), "protected": list(self.protected),
                "delete": [{"digest": d.digest, "tags": list(d.tags)} for d in self.deletions]}


def plan_prune(tags: dict[str, str], keep: int, match: str | None = None) -> PrunePlan:
    if keep < 0:
        raise ValueError("keep must be >= 0")
    pattern = re.compile(match) if match else None
    versions = []
    for tag in tags:
        v = parse_semver(tag)
        if v is not None and (pattern is None or pattern.search(tag)):
            versions.append((precedence(v), tag))
    versions.sort(reverse=True)
    kept = [t for _, t in versions[:keep]]
    candidates = {t for _, t in versions[keep:]}
    survivors = [t for t in tags if t not in candidates]
    protected_digests = {tags[t] for t in survivors}
    by_digest: dict[str, list[str]] = {}
    for tag in sorted(candidates, key=lambda t: precedence(parse_semver(t))):
        by_digest.setdefault(tags[tag], []).append(tag)
    deletions = []
    spared = []
    for digest, names in by_digest.items():
        if digest in protected_digests:
            spared.extend(names)          # a kept tag still needs this manifest
        else:
            # every tag on the digest goes with it; all of them are candidates here
            deletions.append(Deletion(digest, tuple(names)))
    protected = sorted(set(survivors) - set(kept)) + sorted(spared)
    return PrunePlan(keep=tuple(kept), protected=tuple(protected), deletions=tuple(deletions))
