"""Records of split builds: one JSON file per platform (`make_record` / `write_record`, written by
`build-push --push-by-digest --metadata-file`); `release manifest merge` reads them back
(`read_records` / `check_records`) and assembles the index from what the registry holds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pipeline.errors import UsageError
from pipeline.model.platforms import Platform, PlatformError, parse_platform
from pipeline.registry.digest import is_digest
from pipeline.registry.image import PlatformImage

# -- records of split builds --------------------------------------------------------------------

RECORD_KIND = "release.platform-image"
RECORD_VERSION = 1
RECORD_KEYS = ("kind", "record_version", "version", "platform", "digest", "media_type", "size",
               "index_format", "registry", "host", "repository")


def make_record(*, version: str, platform: Platform, image: PlatformImage, index_format: str,
                registry: str, host: str, repository: str) -> dict:
    return {
        "kind": RECORD_KIND, "record_version": RECORD_VERSION, "version": version,
        "platform": str(platform), "digest": image.digest, "media_type": image.media_type,
        "size": image.size, "index_format": index_format, "registry": registry, "host": host,
        "repository": repository, "image_id": image.image_id,
        "ref": f"{host}/{repository}@{image.digest}",
    }


def write_record(path: Path, record: dict) -> None:
    """Write atomically (a half-written record must never be merged)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def read_records(directory: Path) -> list[tuple[Path, dict]]:
    """Every *.json under `directory` (artifact downloads may nest one folder per job)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(f"--from-metadata {directory}: not a directory",
                         hint="download every platform job's record into one directory first")
    found = []
    for path in sorted(p for p in directory.rglob("*.json") if p.is_file()):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: not a readable JSON record: {exc}") from None
        if not isinstance(record, dict) or record.get("kind") != RECORD_KIND:
            raise UsageError(f"{path}: not a platform record of `release build-push "
                             f"--push-by-digest` (no \"kind\": \"{RECORD_KIND}\")",
                             hint="keep only the records in the --from-metadata directory")
        found.append((path, record))
    if not found:
        raise UsageError(f"no platform records (*.json) in {directory}",
                         hint="each platform job runs `release build-push VERSION --platform P "
                              "--push-by-digest --metadata-file DIR/P.json`")
    return found


def check_records(found: list[tuple[Path, dict]], *, version: str, index_format: str,
                  platforms=()) -> list[dict]:
    """Validate and order the records: one per platform, same version, registry, format."""
    problems: list[str] = []
    by_platform: dict[Platform, tuple[Path, dict]] = {}
    for path, r in found:
        missing = [k for k in RECORD_KEYS if k not in r]
        if missing:
            problems.append(f"{path}: missing {', '.join(missing)}")
            continue
        if r["record_version"] != RECORD_VERSION:
            problems.append(f"{path}: record_version {r['record_version']} (this release reads "
                            f"{RECORD_VERSION})")
            continue
        if r["version"] != version:
            problems.append(f"{path}: is for version {r['version']}, not {version}")
        if r["index_format"] != index_format:
            problems.append(f"{path}: made for index_format {r['index_format']}, release.yml says "
                            f"{index_format}")
        if not is_digest(r["digest"]) or not isinstance(r["size"], int):
            problems.append(f"{path}: bad digest or size")
        try:
            platform = parse_platform(r["platform"])
        except PlatformError as exc:
            problems.append(f"{path}: {exc.message}")
            continue
        same = next((p for p in by_platform if p.matches(platform)), None)
        if same is not None:
            other_path, other = by_platform[same]
            if other["digest"] != r["digest"]:
                problems.append(f"two different images for {platform}: {other_path} "
                                f"({other['digest'][:19]}) and {path} ({r['digest'][:19]})")
            continue
        by_platform[platform] = (path, r)
    places = {(r["registry"], r["host"], r["repository"]) for _, r in by_platform.values()}
    if len(places) > 1:
        problems.append("the records name different registries: " + ", ".join(
            f"{name} ({host}/{repo})" for name, host, repo in sorted(places)))
    wanted = [parse_platform(p) for p in platforms]
    if wanted:
        absent = [str(p) for p in wanted if not any(p.matches(q) for q in by_platform)]
        extra = [str(q) for q in by_platform if not any(p.matches(q) for p in wanted)]
        if absent:
            problems.append(f"no record for {', '.join(absent)} (release.yml image.platforms "
                            f"lists it); did that platform's job finish and upload its record?")
        if extra:
            problems.append(f"records for {', '.join(extra)}, which image.platforms does not list")
    if problems:
        raise UsageError("cannot merge these platform records:\n  " + "\n  ".join(problems))
    if wanted:
        return [next(r for q, (_, r) in by_platform.items() if p.matches(q)) for p in wanted]
    return [r for _, (_, r) in sorted(by_platform.items(), key=lambda kv: str(kv[0]))]
