"""Where the generated CI builds each platform: GitHub runners, QEMU, the per-platform matrix.

A platform whose architecture has a native GitHub runner (versions.yml: runner, runner_arm64)
builds there; any other builds on the amd64 runner under QEMU. On GitLab the default runner is
taken to be amd64, with binfmt for anything but amd64/386. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

NATIVE_ARCHES = ("amd64", "386")      # what the amd64 runners run without QEMU
# GitHub-hosted runners by architecture (keys of versions.yml's `github:`). A platform whose
# architecture is not here runs on the amd64 runner under QEMU.
GITHUB_RUNNERS = {"amd64": "runner", "386": "runner", "arm64": "runner_arm64"}


@dataclass(frozen=True)
class PlatformJob:
    """One leg of the per-platform matrix (several image.platforms): `release build-push VERSION
    --platform P --push-by-digest --metadata-file release-metadata/SLUG.json`."""
    platform: str                 # as release.yml writes it: linux/arm/v7
    slug: str                     # linux-arm-v7: artifact and record file names
    runner: str                   # GitHub runs-on: a native runner, else the amd64 one
    github_qemu: str | None       # GitHub: setup-qemu-action platforms (no native runner)
    gitlab_qemu: str | None       # GitLab: binfmt --install on the default (amd64) runner


def platform_jobs(platforms: list[str], versions: dict) -> list[PlatformJob]:
    """One matrix leg per platform, in release.yml's order: on GitHub a native runner where
    there is one (versions.yml: runner, runner_arm64), else the amd64 runner with QEMU; on
    GitLab the default runner (taken to be amd64), with binfmt for anything but amd64/386."""
    github = versions.get("github") if isinstance(versions, dict) else None
    github = github if isinstance(github, dict) else {}
    out = []
    for platform in platforms:
        arch = architecture(platform)
        key = GITHUB_RUNNERS.get(arch)
        native = key is not None and bool(github.get(key))
        out.append(PlatformJob(platform=platform, slug=platform.replace("/", "-"),
                               runner=github[key] if native else github.get("runner"),
                               github_qemu=None if native else arch,
                               gitlab_qemu=None if arch in NATIVE_ARCHES else arch))
    return out


def architecture(platform: str) -> str:
    """`linux/arm/v7` -> `arm`; a bare architecture stays as it is."""
    parts = platform.split("/")
    return parts[1] if len(parts) > 1 else parts[0]


def emulated_arches(platforms: list[str]) -> list[str]:
    """The architectures of `platforms` an amd64 runner runs under QEMU, in order, once each."""
    arches = (p.split("/")[1] for p in platforms if len(p.split("/")) > 1)
    return list(dict.fromkeys(a for a in arches if a not in NATIVE_ARCHES))


def github_runner(platforms: list[str], versions: dict) -> tuple[str | None, list[str]]:
    """(runs-on, setup-qemu-action platforms) of a GitHub job that builds every platform itself:
    the build job, and the release job when there is no per-platform matrix.

    One platform with a native runner (linux/arm64 and versions.yml's runner_arm64) runs there,
    without QEMU: emulation is many times slower. Anything else runs on the amd64 runner, with
    QEMU for the foreign architectures."""
    if len(platforms) == 1:
        (job,) = platform_jobs(platforms, versions)
        return job.runner, [job.github_qemu] if job.github_qemu else []
    github = versions.get("github") if isinstance(versions, dict) else None
    return (github if isinstance(github, dict) else {}).get("runner"), emulated_arches(platforms)
