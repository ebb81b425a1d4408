"""Reading and validating generated CI files in tests: YAML 1.2 (ruamel keeps GitHub's `on:` a
string key, where PyYAML would make it True) and check-jsonschema's built-in schemas, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

_NO_NETWORK = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
               "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "NO_PROXY": ""}


def load(text: str):
    return YAML(typ="safe", pure=True).load(text)


def check_jsonschema(schema: str, files: list[Path], *extra: str) -> dict:
    """check-jsonschema with a built-in schema (`vendor.github-workflows`, ...), with proxies that
    refuse every connection: the vendored schema is used, never a download."""
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema,
                           *extra, "-o", "json", *map(str, files)],
                          capture_output=True, text=True, env={**os.environ, **_NO_NETWORK}, timeout=120)
    data = json.loads(proc.stdout)
    assert proc.returncode == (0 if data["status"] == "ok" else 1), proc.stderr
    return data
