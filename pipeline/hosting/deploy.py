"""What `release registry up` asked for (RegistryOptions) -> what to run (Deployment).

A Deployment is plain data: the registry container (and the UI one) with image, REGISTRY_*
environment, ports, mounts, network, restart policy. `engine.py` runs it through the Docker
SDK, `compose.py` writes it as a Compose file. It round-trips through JSON (a label on the
registry container), so `gc` can re-run the very same deployment in read-only mode.

Layout in the container (the official registry:2 image's):
    /var/lib/registry                  storage: a named volume (default NAME-data) or a host dir
    /etc/docker/registry/config.yml    the image's own config; everything else comes as env
    /auth/htpasswd                     bcrypt htpasswd (REGISTRY_AUTH=htpasswd)
    /certs/domain.crt, domain.key      TLS (REGISTRY_HTTP_TLS_CERTIFICATE / _KEY)
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import UsageError
from pipeline.hosting import files
from pipeline.registry.hosts import is_loopback

DEFAULT_NAME = "registry"
DEFAULT_PORT = 5000
DEFAULT_IMAGE = "registry:2"
DEFAULT_UI_IMAGE = "joxit/docker-registry-ui:2"
DEFAULT_UI_PORT = 8080
CONTAINER_PORT = 5000
DATA_PATH = "/var/lib/registry"
CONFIG_PATH = "/etc/docker/registry/config.yml"
AUTH_DIR, CERTS_DIR = "/auth", "/certs"

LABEL = "org.release-pipeline.registry"                  # value: the registry's name
LABEL_ROLE = "org.release-pipeline.registry.role"        # registry | ui | data | network
LABEL_DEPLOYMENT = "org.release-pipeline.registry.deployment"
LABEL_HASH = "org.release-pipeline.registry.hash"
MARKER = ".release-registry"                             # in a config dir we created

_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
READ_ONLY_ENV = "REGISTRY_STORAGE_MAINTENANCE_READONLY"


def default_bind(*, auth: bool, tls: bool) -> str:
    """The address published on when --bind is not given: every interface only for a
    registry with both authentication and TLS, this machine only otherwise."""
    return "0.0.0.0" if auth and tls else "127.0.0.1"


@dataclass
class RegistryOptions:
    name: str = DEFAULT_NAME
    port: int = DEFAULT_PORT
    bind: str = "127.0.0.1"
    hosts: tuple[str, ...] = ()
    image: str = DEFAULT_IMAGE
    data: str | None = None
    user: str | None = None
    password_env: str | None = None
    htpasswd: str | None = None
    tls: bool = False
    cert: str | None = None
    key: str | None = None
    mirror: str | None = None
    ui: bool = False
    ui_port: int = DEFAULT_UI_PORT
    ui_image: str = DEFAULT_UI_IMAGE
    delete: bool = True
    read_only: bool = False
    network: str | None = None
    config_dir: str | None = None

    def validate(self) -> None:
        if not _NAME_RE.match(self.name):
            raise UsageError(f"--name {self.name!r}: use letters, digits, '_', '.', '-' "
                             "(a Docker container name)")
        for opt, port in (("--port", self.port), ("--ui-port", self.ui_port)):
            if not 1 <= int(port) <= 65535:
                raise UsageError(f"{opt} {port}: not a TCP port")
        try:
            ipaddress.ip_address(self.bind)
        except ValueError:
            raise UsageError(f"--bind {self.bind!r}: not an IP address") from None
        if self.user and self.htpasswd:
            raise UsageError("--user and --htpasswd exclude each other")
        if bool(self.user) != bool(self.password_env):
            raise UsageError("--user needs --password-env VAR (and the other way round)",
                             hint="the password is read from that environment variable, "
                                  "never from the command line")
        if self.password_env and not _ENV_RE.match(self.password_env):
            raise UsageError(f"--password-env {self.password_env!r}: not an environment "
                             "variable name (pass the NAME of the variable, not the password)")
        if self.tls and (self.cert or self.key):
            raise UsageError("--tls (self-signed) and --cert/--key exclude each other")
        if bool(self.cert) != bool(self.key):
            raise UsageError("--cert and --key go together")
        if self.auth_enabled and not self.tls_enabled and not is_loopback(self.bind):
            raise UsageError(
                f"{'--user' if self.user else '--htpasswd'} over plain HTTP on {self.bind}: "
                "the password would cross the network in clear text",
                hint="add --tls (a self-signed certificate) or --cert FILE --key FILE, or "
                     "publish on this machine only with --bind 127.0.0.1")
        for opt, path in (("--htpasswd", self.htpasswd), ("--cert", self.cert), ("--key", self.key)):
            if path and not Path(path).expanduser().is_file():
                raise UsageError(f"{opt} {path}: no such file")
        if self.mirror and not re.match(r"^https?://[^/\s]+", self.mirror):
            raise UsageError(f"--mirror {self.mirror!r}: give the upstream URL, "
                             "e.g. https://registry-1.docker.io")
        if self.ui and int(self.ui_port) == int(self.port):
            raise UsageError(f"--ui-port {self.ui_port} is the registry's --port too")
        if self.network and not _NAME_RE.match(self.network):
            raise UsageError(f"--network {self.network!r}: not a Docker network name")
        if self.data is not None and not is_host_path(self.data) and not _NAME_RE.match(self.data):
            raise UsageError(f"--data {self.data!r}: a volume name (letters, digits, '_.-') or a "
                             "directory (absolute, or starting with ./ or ~)")

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls or self.cert)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.user or self.htpasswd)

    @property
    def open_to_the_network(self) -> bool:
        """No authentication, published beyond this machine."""
        return not self.auth_enabled and not is_loopback(self.bind)


def is_host_path(value: str) -> bool:
    return value.startswith((".", "~")) or "/" in value or os.sep in value


def default_config_dir(name: str) -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "release" / "registries" / name


def default_hosts(bind: str) -> list[str]:
    """The name clients use: localhost for a loopback bind, else this machine's name."""
    if is_loopback(bind):
        return ["localhost"]
    if not ipaddress.ip_address(bind).is_unspecified:
        return [bind]
    for name in (socket.getfqdn(), socket.gethostname()):
        if name and not name.startswith("localhost"):
            return [name]
    return ["localhost"]


@dataclass
class Mount:
    source: str          # volume name, or absolute host path
    target: str
    kind: str            # "volume" | "bind"
    read_only: bool = False


@dataclass
class ContainerPlan:
    name: str
    role: str            # "registry" | "ui"
    image: str
    environment: dict[str, str]
    ports: list[tuple[int, str, int]]     # (container port, host ip, host port)
    mounts: list[Mount] = field(default_factory=list)
    restart: str = "always"
    files: list[str] = field(default_factory=list)   # host files whose content matters (hash)


@dataclass
class Deployment:
    name: str
    host: str                      # the name clients use in references (first --host)
    hosts: list[str]
    port: int
    bind: str
    scheme: str                    # http | https
    registry: ContainerPlan
    ui: ContainerPlan | None
    data: Mount
    network: str | None
    network_owned: bool            # created (and removed) by us
    config_dir: str
    auth: dict | None              # {"user", "password_env"} or {"htpasswd": path}
    tls: dict | None               # {"cert", "key", "self_signed", "names"}
    mirror: str | None
    delete: bool
    read_only: bool
    ui_port: int | None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}"

    @property
    def ui_url(self) -> str | None:
        return f"http://{self.host}:{self.ui_port}" if self.ui else None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "Deployment":
        raw = json.loads(text)

        def plan(d):
            if d is None:
                return None
            d = dict(d)
            d["mounts"] = [Mount(**m) for m in d.get("mounts", [])]
            d["ports"] = [tuple(p) for p in d.get("ports", [])]
            return ContainerPlan(**d)

        raw["registry"] = plan(raw["registry"])
        raw["ui"] = plan(raw.get("ui"))
        raw["data"] = Mount(**raw["data"])
        return cls(**raw)

    def with_read_only(self, read_only: bool) -> "Deployment":
        """The same deployment with the registry in (or out of) read-only maintenance mode."""
        env = dict(self.registry.environment)
        env.pop(READ_ONLY_ENV, None)
        if read_only:
            env[READ_ONLY_ENV] = '{"enabled": true}'
        registry = dataclasses.replace(self.registry, environment=env)
        return dataclasses.replace(self, registry=registry, read_only=read_only)


def cors_headers(origin: str) -> dict[str, str]:
    """http.headers for a browser UI on another origin (the registry answers with them)."""
    prefix = "REGISTRY_HTTP_HEADERS_"
    return {
        prefix + "Access-Control-Allow-Origin": f"[{origin}]",
        prefix + "Access-Control-Allow-Methods": "[HEAD,GET,OPTIONS,DELETE]",
        prefix + "Access-Control-Allow-Credentials": "[true]",
        prefix + "Access-Control-Allow-Headers": "[Authorization,Accept,Cache-Control]",
        prefix + "Access-Control-Expose-Headers": "[Docker-Content-Digest]",
    }


def plan_deployment(opts: RegistryOptions, *, config_dir: Path, password: str | None = None,
                    materialize: bool = True, registry_dns: str | None = None) -> Deployment:
    """Turn options into a Deployment; with materialize, write htpasswd/cert into config_dir.

    registry_dns: the name the UI container reaches the registry by (the container name for
    `up`, the service name for Compose).
    """

    opts.validate()
    config_dir = Path(config_dir).expanduser().absolute()
    hosts = list(dict.fromkeys(opts.hosts or default_hosts(opts.bind)))
    host = hosts[0]
    env: dict[str, str] = {
        "REGISTRY_HTTP_ADDR": f":{CONTAINER_PORT}",
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": DATA_PATH,
        "REGISTRY_STORAGE_DELETE_ENABLED": "true" if opts.delete else "false",
    }
    mounts: list[Mount] = []
    watched: list[str] = []

    # storage
    if opts.data and is_host_path(opts.data):
        data = Mount(str(Path(opts.data).expanduser().absolute()), DATA_PATH, "bind")
    else:
        data = Mount(opts.data or f"{opts.name}-data", DATA_PATH, "volume")
    mounts.append(data)

    # auth
    auth = None
    if opts.user:
        if password is None:
            raise UsageError(f"environment variable {opts.password_env} is not set",
                             hint=f"export {opts.password_env}=... (the registry password)")
        htpasswd = config_dir / "auth" / "htpasswd"
        if materialize:
            files.write_htpasswd(htpasswd, opts.user, password)
        mounts.append(Mount(str(htpasswd.parent), AUTH_DIR, "bind", read_only=True))
        watched.append(str(htpasswd))
        auth = {"user": opts.user, "password_env": opts.password_env, "htpasswd": str(htpasswd),
                "generated": True}
    elif opts.htpasswd:
        path = Path(opts.htpasswd).expanduser().absolute()
        mounts.append(Mount(str(path), f"{AUTH_DIR}/htpasswd", "bind", read_only=True))
        watched.append(str(path))
        auth = {"user": None, "password_env": None, "htpasswd": str(path), "generated": False}
    if auth:
        env.update({"REGISTRY_AUTH": "htpasswd",
                    "REGISTRY_AUTH_HTPASSWD_REALM": f"{opts.name} registry",
                    "REGISTRY_AUTH_HTPASSWD_PATH": f"{AUTH_DIR}/htpasswd"})

    # TLS
    tls = None
    if opts.tls:
        names = hosts + ["localhost", "127.0.0.1"]
        if not ipaddress.ip_address(opts.bind).is_unspecified:
            names.append(opts.bind)
        certs = config_dir / "certs"
        if materialize:
            files.self_signed_cert(certs, names)
        mounts.append(Mount(str(certs), CERTS_DIR, "bind", read_only=True))
        tls = {"cert": str(certs / "domain.crt"), "key": str(certs / "domain.key"),
               "self_signed": True, "names": files.san_entries(names)}
    elif opts.cert:
        cert = Path(opts.cert).expanduser().absolute()
        key = Path(opts.key).expanduser().absolute()
        mounts += [Mount(str(cert), f"{CERTS_DIR}/domain.crt", "bind", read_only=True),
                   Mount(str(key), f"{CERTS_DIR}/domain.key", "bind", read_only=True)]
        tls = {"cert": str(cert), "key": str(key), "self_signed": False, "names": []}
    if tls:
        watched += [tls["cert"], tls["key"]]
        env.update({"REGISTRY_HTTP_TLS_CERTIFICATE": f"{CERTS_DIR}/domain.crt",
                    "REGISTRY_HTTP_TLS_KEY": f"{CERTS_DIR}/domain.key"})

    if opts.mirror:
        env["REGISTRY_PROXY_REMOTEURL"] = opts.mirror.rstrip("/")

    network, owned = opts.network, False
    ui = None
    if opts.ui:
        if network is None:
            network, owned = f"{opts.name}-net", True
        env.update(cors_headers(f"http://{host}:{opts.ui_port}"))
        scheme = "https" if tls else "http"
        ui = ContainerPlan(
            name=f"{opts.name}-ui", role="ui", image=opts.ui_image,
            environment={
                "REGISTRY_TITLE": opts.name,
                "NGINX_PROXY_PASS_URL": f"{scheme}://{registry_dns or opts.name}:{CONTAINER_PORT}",
                "SINGLE_REGISTRY": "true",
                "DELETE_IMAGES": "true" if opts.delete else "false",
                "SHOW_CONTENT_DIGEST": "true",
                "PULL_URL": f"{host}:{opts.port}",
            },
            ports=[(80, opts.bind, int(opts.ui_port))])

    registry = ContainerPlan(name=opts.name, role="registry", image=opts.image, environment=env,
                             ports=[(CONTAINER_PORT, opts.bind, int(opts.port))], mounts=mounts,
                             files=watched)
    deployment = Deployment(
        name=opts.name, host=host, hosts=hosts, port=int(opts.port), bind=opts.bind,
        scheme="https" if tls else "http", registry=registry, ui=ui, data=data, network=network,
        network_owned=owned, config_dir=str(config_dir), auth=auth, tls=tls, mirror=opts.mirror,
        delete=opts.delete, read_only=False, ui_port=int(opts.ui_port) if opts.ui else None)
    if opts.read_only:
        deployment = deployment.with_read_only(True)
    return deployment
