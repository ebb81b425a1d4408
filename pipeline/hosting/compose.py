"""Deployment -> docker-compose.yml, from pipeline/hosting/templates/docker-compose.yml.j2.

Host paths under the directory the Compose file is meant for (`base`, the current directory
by default) are written relative (./auth, ./certs, ./data), so the directory can be moved
or committed as it is; other paths stay absolute. The named data volume keeps its name
(`name:`), so Compose and `release registry up` use the same data.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import jinja2

from pipeline.hosting.deploy import CONFIG_PATH, Deployment


def _rel(path: str, base: Path) -> str:
    p = Path(path)
    try:
        rel = p.relative_to(base)
    except ValueError:
        return str(p)
    return "./" + rel.as_posix() if str(rel) != "." else "."


def template_text() -> str:
    return resources.files("pipeline.hosting").joinpath("templates/docker-compose.yml.j2").read_text()


def render_compose(dep: Deployment, *, base: Path | None = None) -> str:

    base = Path(base or os.getcwd()).absolute()
    mounts = []
    for m in dep.registry.mounts:
        source = "data" if m.kind == "volume" else _rel(m.source, base)
        mounts.append(f"{source}:{m.target}" + (":ro" if m.read_only else ""))
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)
    template = env.from_string(template_text())
    if dep.data.kind == "volume":
        data_desc = f"the volume {dep.data.source}"
    else:
        data_desc = _rel(dep.data.source, base)
    cert_path = _rel(dep.tls["cert"], base) if dep.tls else ""
    return template.render(d=dep, registry_mounts=mounts, data_desc=data_desc,
                           cert_path=cert_path, config_path=CONFIG_PATH)
