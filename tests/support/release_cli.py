"""Run the `release` CLI as a user would (a subprocess) on a release.yml written for a test."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.support.images import write_context

RELEASE = [sys.executable, "-m", "pipeline"]


def run_release(config: Path, *args: str, env: dict | None = None, timeout: int = 300):
    """`release -c CONFIG ARGS...` with the test's extra env; never as a GitHub Actions step."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("GITHUB_ACTIONS", None)
    return subprocess.run([*RELEASE, "-c", str(config), *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=config.parent)


def registry_block(name: str, reg, repo: str, *, with_auth: bool = False) -> str:
    """One `registries:` entry for a LocalRegistry (or anything with .host and .ca_file)."""
    lines = [f"  - name: {name}", "    type: generic", f"    registry: {reg.host}", f"    repository: {repo}"]
    if with_auth:
        lines += ["    username_env: TEST_REG_USER", "    password_env: TEST_REG_PASS"]
    if getattr(reg, "ca_file", None):
        lines.append(f"    ca_file: {reg.ca_file}")
    return "\n".join(lines)


def write_release(tmp_path: Path, registries: list[str], *, retry: str = "", extra: str = "",
                  image_extra: str = "", content: str | None = None, name_prefix: str = "rtest") -> Path:
    """A FROM scratch context in tmp_path/app and a release.yml next to it.

    `extra` is top-level YAML (e.g. flavor:), `image_extra` goes under image: (e.g. platforms:).
    """
    write_context(tmp_path / "app", content or f"payload {uuid.uuid4()}")
    config = tmp_path / "release.yml"
    config.write_text(
        "image:\n"
        f"  name: {name_prefix}-{uuid.uuid4().hex[:8]}\n"
        "  context: app\n"
        f"{image_extra}"
        f"{extra}"
        "registries:\n" + "\n".join(registries) + "\n" + retry)
    return config


def image_name(config: Path) -> str:
    """The image.name a write_release config got."""
    return next(line.split()[-1] for line in config.read_text().splitlines() if line.startswith("  name: "))
