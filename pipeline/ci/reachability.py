"""What in release.yml cannot work on a hosted CI runner: pure, from Config and the repository root.

A release.yml written for one machine often names that machine: a registry on loopback (the
quick start's `localhost:5000`, a TLS registry from `release registry up`), a registry on a
private network, a `ca_file` under the home directory. The generated CI would keep them and fail
on the runner, or worse, appear to work (a loopback registry becomes a throwaway service).
`release ci generate` prints these findings; `--strict` turns warnings into exit 2, and a
`ca_file` a runner cannot have is always refused.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.ci.registries import registry_context
from pipeline.registry.hosts import is_loopback, split_host_port

# Names public DNS does not answer for (RFC 6761/6762/8375, ICANN's .internal, common habits).
_PRIVATE_SUFFIXES = (".local", ".localdomain", ".internal", ".intranet", ".lan", ".home",
                     ".home.arpa", ".corp", ".private", ".test", ".example", ".invalid")


@dataclass(frozen=True)
class Finding:
    level: str             # "warning" (printed; exit 2 under --strict) | "error" (always exit 2)
    registry: str
    where: str             # "release.yml:LINE" (or the file alone)
    message: str           # what cannot work, and what the generator did with it
    hint: str              # what to do

    def render(self) -> str:
        return f"{self.where}: {self.level}: registry '{self.registry}': {self.message}\n  hint: {self.hint}"


def host_kind(registry: str) -> str:
    """`loopback` (registry/hosts.py's rule), `private` (an address or name a hosted runner
    cannot reach) or `public`."""
    if is_loopback(registry):
        return "loopback"
    host = split_host_port(registry)[0].lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if "." not in host or host.endswith(_PRIVATE_SUFFIXES):
            return "private"
        return "public"
    if address.is_private or address.is_link_local or address.is_reserved or address.is_unspecified:
        return "private"
    return "public"


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def findings(config, root: Path) -> list[Finding]:
    """Every registry the generated CI cannot use as it is, in release.yml's order."""
    out: list[Finding] = []
    file = os.path.relpath(config.path, root)
    for reg in config.registries:
        where = f"{file}:{reg.line}" if reg.line else file
        context = registry_context(reg)
        kind = host_kind(reg.registry)
        tls_or_auth = reg.ca_file is not None or bool(reg.username_env or reg.password_env)
        if kind == "loopback" and context.loopback_port is not None and not tls_or_auth:
            out.append(Finding(
                "warning", reg.name, where,
                f"{reg.registry} is this machine's loopback; the generated CI runs a throwaway "
                f"registry:2 service on port {context.loopback_port} of the release job, so what it "
                f"pushes there is gone when the job ends",
                "fine for trying the CI out; to publish, use a registry the runner can reach "
                "(a public host name, or a self-hosted runner that runs this registry)"))
        elif kind == "loopback":
            what = "TLS and a login" if reg.ca_file is not None and (reg.username_env or reg.password_env) \
                else "TLS" if reg.ca_file is not None else "a login"
            out.append(Finding(
                "warning", reg.name, where,
                f"{reg.registry} is this machine's loopback and needs {what}: no CI service can "
                f"stand in for it, so it is left in the release job as it is, and the release fails "
                f"there on a hosted runner",
                "give it a name the runner can reach (`release registry up --tls --host NAME`), run "
                "the job on a self-hosted runner that hosts it, or generate the CI from a release.yml "
                "without it (`release -c ci/release.yml ci generate all`)"))
        elif kind == "private":
            out.append(Finding(
                "warning", reg.name, where,
                f"{reg.registry} is a private address or name: GitHub- and GitLab-hosted runners "
                f"cannot reach it; it is left in the release job as it is",
                "run the release job on a self-hosted runner inside that network, or use a public "
                "host name"))
        if reg.ca_file is not None:
            text = reg.ca_file_text or str(reg.ca_file)
            absolute = os.path.isabs(os.path.expanduser(text))
            if absolute or not _inside(reg.ca_file, root):
                why = "an absolute path" if absolute else "outside the repository"
                out.append(Finding(
                    "error", reg.name, where,
                    f"ca_file {text} is {why}: a runner checks out only the repository, so "
                    f"`release validate` exits 2 there",
                    "a CA certificate is public: commit it (e.g. certs/registry-ca.crt next to "
                    "release.yml) and set ca_file to that relative path; to keep it out of git, add "
                    "that path to .gitignore and have the job write it from a CI secret (GitHub: "
                    "`printf '%s' \"$REGISTRY_CA\" > certs/registry-ca.crt` with env REGISTRY_CA: "
                    "${{ secrets.REGISTRY_CA }}; GitLab: a File-type CI/CD variable copied there) "
                    "before release runs"))
    return out
