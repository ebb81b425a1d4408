"""Run a Deployment through the Docker SDK: `up` (idempotent), `down`, `gc`.

Idempotence: every container carries a hash of what it was created from (image id,
environment, ports, mounts, network, and the content of the htpasswd/cert files it mounts).
`up` with the same inputs finds the same hash and leaves the container alone (starting it if
it was stopped); with other inputs it replaces the container, keeping the data volume. A
container with the name that `up` did not create is never touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import ipaddress
import json
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from pipeline.engine.client import Engine
from pipeline.errors import ReleaseError, UsageError
from pipeline.hosting.deploy import (
    CONFIG_PATH,
    LABEL,
    LABEL_DEPLOYMENT,
    LABEL_HASH,
    LABEL_ROLE,
    MARKER,
    ContainerPlan,
    Deployment,
    default_config_dir,
)
from pipeline.registry.hosts import is_loopback
from pipeline.registry.session import HTTPError, Session

GC_SUMMARY = re.compile(r"(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion")
EMPTY_REGISTRY = "Path not found: /docker/registry/v2/repositories"
PORT_TAKEN = ("port is already allocated", "address already in use")


class PortInUse(ReleaseError):
    pass


@dataclass
class UpResult:
    deployment: Deployment
    states: dict[str, str] = field(default_factory=dict)   # container name -> created|...
    container_id: str | None = None
    ready_seconds: float | None = None

    @property
    def changed(self) -> bool:
        return any(s != "unchanged" for s in self.states.values())


def docker_client():
    return Engine(timeout=300).client   # connects with a clear error when no engine answers


def _errors():
    # lazy: docker-py takes ~0.2 s to import; only engine calls need it
    import docker.errors
    return docker.errors


def _labels(dep: Deployment, role: str, digest: str | None = None) -> dict[str, str]:
    labels = {LABEL: dep.name, LABEL_ROLE: role}
    if digest:
        labels[LABEL_HASH] = digest
    if role == "registry":
        labels[LABEL_DEPLOYMENT] = dep.to_json()
    return labels


def plan_hash(plan: ContainerPlan, image_id: str, network: str | None) -> str:
    data = dataclasses.asdict(plan)
    data.pop("files")
    data.update(image_id=image_id, network=network)
    h = hashlib.sha256(json.dumps(data, sort_keys=True).encode())
    for path in plan.files:
        try:
            content = Path(path).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from None
        h.update(path.encode() + b"\0" + hashlib.sha256(content).digest())
    return "sha256:" + h.hexdigest()


def ensure_image(client, ref: str, on_event: Callable[[str], None]) -> str:
    errors = _errors()
    try:
        return client.images.get(ref).id
    except errors.ImageNotFound:
        pass
    on_event(f"pulling {ref} ...")
    try:
        return client.images.pull(ref).id
    except (errors.APIError, errors.DockerException) as exc:
        raise ReleaseError(f"image {ref} is not on this Docker Engine and could not be pulled: "
                           f"{getattr(exc, 'explanation', None) or exc}",
                           hint="load it (docker load / docker pull on a machine that can), "
                                "or pass --image / --ui-image") from None


def _is_local_daemon(client) -> bool:
    base = getattr(client.api, "base_url", "") or ""
    if base.startswith(("http+unix://", "http+docker://")):
        return True
    return is_loopback(urlparse(base).hostname or "")


def _daemon_host(client) -> str | None:
    base = getattr(client.api, "base_url", "") or ""
    if base.startswith(("http+unix://", "http+docker://")):
        return None
    return urlparse(base).hostname


def _overlaps(a: str, b: str) -> bool:
    wildcard = ("", "0.0.0.0", "::")
    return a in wildcard or b in wildcard or a == b


def port_holder(client, bind: str, port: int, exclude: set[str]) -> str | None:
    """Name of a running container that publishes bind:port, if any."""
    for container in client.containers.list():
        if container.name in exclude:
            continue
        ports = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
        for bindings in ports.values():
            for b in bindings or []:
                if str(b.get("HostPort")) == str(port) and _overlaps(b.get("HostIp", ""), bind):
                    return container.name
    return None


def host_port_in_use(bind: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((bind, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def check_port(client, bind: str, port: int, exclude: set[str], what: str) -> None:
    holder = port_holder(client, bind, port, exclude)
    if holder:
        raise PortInUse(f"port {port} is already published by container {holder!r}",
                        hint=f"pick another {what} (e.g. {what} {port + 1}), or stop that container")
    if _is_local_daemon(client) and host_port_in_use(bind, port):
        raise PortInUse(f"port {port} on {bind} is already in use by another program",
                        hint=f"pick another {what}, or find it with: ss -ltnp 'sport = :{port}'")


def _get_container(client, name: str):
    errors = _errors()
    try:
        return client.containers.get(name)
    except errors.NotFound:
        return None


def _ours(container, name: str, role: str) -> bool:
    labels = container.labels or {}
    return labels.get(LABEL) == name and labels.get(LABEL_ROLE) == role


def _ensure_network(client, dep: Deployment, on_event) -> None:
    if not dep.network:
        return
    errors = _errors()
    try:
        client.networks.get(dep.network)
        return
    except errors.NotFound:
        pass
    if not dep.network_owned:
        raise UsageError(f"--network {dep.network}: no such Docker network",
                         hint=f"docker network create {dep.network}")
    client.networks.create(dep.network, driver="bridge",
                           labels={LABEL: dep.name, LABEL_ROLE: "network"})
    on_event(f"created network {dep.network}")


def _ensure_volume(client, dep: Deployment, on_event) -> None:
    if dep.data.kind == "bind":
        Path(dep.data.source).mkdir(parents=True, exist_ok=True)
        return
    errors = _errors()
    try:
        client.volumes.get(dep.data.source)
    except errors.NotFound:
        client.volumes.create(dep.data.source, labels={LABEL: dep.name, LABEL_ROLE: "data"})
        on_event(f"created volume {dep.data.source}")


def _create_kwargs(plan: ContainerPlan, labels: dict, network: str | None) -> dict:
    return dict(
        image=plan.image, name=plan.name, detach=True, environment=dict(plan.environment),
        ports={f"{cport}/tcp": (ip, hport) for cport, ip, hport in plan.ports},
        volumes={m.source: {"bind": m.target, "mode": "ro" if m.read_only else "rw"}
                 for m in plan.mounts},
        labels=labels, restart_policy={"Name": plan.restart}, network=network)


def _ensure_container(client, dep: Deployment, plan: ContainerPlan, on_event) -> tuple[object, str]:
    errors = _errors()
    image_id = ensure_image(client, plan.image, on_event)
    digest = plan_hash(plan, image_id, dep.network)
    existing = _get_container(client, plan.name)
    state = "created"
    if existing is not None:
        if not _ours(existing, dep.name, plan.role):
            raise UsageError(f"a container named {plan.name!r} already exists and was not made by "
                             "`release registry up`; it is left alone",
                             hint="pick another --name, or remove it: docker rm -f " + plan.name)
        if (existing.labels or {}).get(LABEL_HASH) == digest:
            if existing.status == "running":
                return existing, "unchanged"
            for _, ip, port in plan.ports:
                check_port(client, ip, port, {plan.name}, "--port" if plan.role == "registry" else "--ui-port")
            _start(existing, plan)
            return existing, "started"
        on_event(f"replacing container {plan.name} (its settings changed; the data stays)")
        existing.remove(force=True)
        state = "recreated"
    for _, ip, port in plan.ports:
        check_port(client, ip, port, {plan.name}, "--port" if plan.role == "registry" else "--ui-port")
    try:
        container = client.containers.create(**_create_kwargs(plan, _labels(dep, plan.role, digest),
                                                              dep.network))
    except errors.APIError as exc:
        if exc.status_code == 409:
            raise ReleaseError(f"container {plan.name} was created by someone else meanwhile",
                               hint="run the command again") from None
        raise ReleaseError(f"cannot create container {plan.name}: {exc.explanation or exc}") from None
    _start(container, plan)
    return container, state


def _start(container, plan: ContainerPlan) -> None:
    errors = _errors()
    try:
        container.start()
    except errors.APIError as exc:
        text = str(exc.explanation or exc)
        with contextlib.suppress(errors.APIError):
            container.remove(force=True)
        ports = ", ".join(str(p[2]) for p in plan.ports)
        if any(p in text.lower() for p in PORT_TAKEN):
            raise PortInUse(f"port {ports} is already in use: {text}",
                            hint="pick another --port") from None
        raise ReleaseError(f"container {plan.name} did not start: {text}") from None
    container.reload()


def probe_url(client, dep: Deployment) -> str:
    host = dep.bind
    if ipaddress.ip_address(dep.bind).is_unspecified:
        host = _daemon_host(client) or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{dep.scheme}://{host}:{dep.port}/v2/"


def logs_tail(container, lines: int = 20) -> str:
    with contextlib.suppress(Exception):
        return container.logs(tail=lines).decode(errors="replace").rstrip()
    return "(no logs)"


def wait_ready(client, container, dep: Deployment, timeout: float) -> float:
    """Wait until GET /v2/ answers 200 or 401; raise with the container's logs if it dies."""
    with Session(pool_size=1) as session:
        return _poll(session, client, container, dep, timeout)


def _poll(session: Session, client, container, dep: Deployment, timeout: float) -> float:
    url = probe_url(client, dep)
    t0 = time.monotonic()
    container.reload()
    restarts = container.attrs.get("RestartCount", 0)
    last = "no answer"
    while True:
        container.reload()
        state = container.attrs.get("State") or {}
        if (state.get("Status") in ("exited", "dead") or state.get("Restarting")
                or container.attrs.get("RestartCount", 0) > restarts):
            raise ReleaseError(f"the registry container {container.name} stopped "
                               f"(exit code {state.get('ExitCode')}); its last log lines:\n"
                               f"{logs_tail(container)}",
                               hint=f"docker logs {container.name}")
        try:
            status = session.get(url, verify=False, timeout=2).status_code   # any cert is fine
            if status in (200, 401):
                return time.monotonic() - t0
            last = f"HTTP {status}"
        except HTTPError as exc:
            last = type(exc).__name__
        if time.monotonic() - t0 > timeout:
            raise ReleaseError(f"{url} did not answer within {timeout:.0f}s (last: {last}); "
                               f"the container's last log lines:\n{logs_tail(container)}",
                               hint=f"docker logs {container.name}")
        time.sleep(0.2)


GENERATED = ("auth/htpasswd", "certs/domain.crt", "certs/domain.key", "certs/.san", MARKER)


def write_marker(dep: Deployment) -> None:
    """Mark the config dir as holding files `up` generated (what `down --purge` removes)."""
    d = Path(dep.config_dir)
    if d.is_dir() and not (d / MARKER).exists():
        (d / MARKER).write_text(json.dumps({"name": dep.name, "files": list(GENERATED[:-1])}) + "\n")


def remove_generated(config_dir: Path) -> bool:
    """Remove the files `up` generated in config_dir (only those), then the emptied dirs."""
    if not (config_dir / MARKER).exists():
        return False
    for rel in GENERATED:
        (config_dir / rel).unlink(missing_ok=True)
    for d in (config_dir / "auth", config_dir / "certs", config_dir):
        with contextlib.suppress(OSError):
            d.rmdir()   # only if empty: anything else in there stays
    return True


def up(client, dep: Deployment, *, wait: float = 30.0,
       on_event: Callable[[str], None] = lambda s: None) -> UpResult:
    result = UpResult(deployment=dep)
    for plan in (dep.registry, dep.ui):   # every image first: no half-done deployment
        if plan is not None:
            ensure_image(client, plan.image, on_event)
    if dep.auth and dep.auth.get("generated") or dep.tls and dep.tls.get("self_signed"):
        write_marker(dep)
    _ensure_network(client, dep, on_event)
    _ensure_volume(client, dep, on_event)
    container, state = _ensure_container(client, dep, dep.registry, on_event)
    result.states[dep.registry.name] = state
    result.container_id = container.id
    result.ready_seconds = wait_ready(client, container, dep, wait)
    if dep.ui:
        _, ui_state = _ensure_container(client, dep, dep.ui, on_event)
        result.states[dep.ui.name] = ui_state
    else:
        stale = _get_container(client, f"{dep.name}-ui")
        if stale is not None and _ours(stale, dep.name, "ui"):
            stale.remove(force=True)
            result.states[stale.name] = "removed"
    return result


def find_deployment(client, name: str) -> tuple[object | None, Deployment | None]:
    """The registry container `name` made by `up` and its Deployment (None, None if absent)."""
    container = _get_container(client, name)
    if container is None:
        return None, None
    if not _ours(container, name, "registry"):
        raise UsageError(f"container {name!r} was not made by `release registry up`; "
                         "it is left alone")
    raw = (container.labels or {}).get(LABEL_DEPLOYMENT)
    return container, Deployment.from_json(raw) if raw else None


@dataclass
class DownResult:
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def down(client, name: str, *, purge: bool = False, config_dir: Path | None = None) -> DownResult:
    """`config_dir`: where `up --config-dir` put the generated files, for a purge after the
    containers (which remember it) are already gone."""
    errors = _errors()
    result = DownResult()
    _, dep = find_deployment(client, name)
    for container in client.containers.list(all=True, filters={"label": f"{LABEL}={name}"}):
        container.remove(force=True)
        result.removed.append(f"container {container.name}")
    for network in client.networks.list(filters={"label": f"{LABEL}={name}"}):
        with contextlib.suppress(errors.APIError):
            network.remove()
            result.removed.append(f"network {network.name}")
    data_volume = dep.data.source if dep and dep.data.kind == "volume" else None
    if purge:
        for volume in client.volumes.list(filters={"label": f"{LABEL}={name}"}):
            volume.remove(force=True)
            result.removed.append(f"volume {volume.name}")
        config_dir = Path(config_dir) if config_dir else \
            Path(dep.config_dir) if dep else default_config_dir(name)
        if remove_generated(config_dir):
            result.removed.append(f"generated htpasswd/certificate in {config_dir}")
        if dep and dep.data.kind == "bind":
            result.kept.append(f"data directory {dep.data.source} (remove it yourself)")
        elif data_volume and f"volume {data_volume}" not in result.removed:
            result.kept.append(f"volume {data_volume} (not created by `release registry up`)")
    else:
        if dep:
            what = (f"volume {dep.data.source}" if dep.data.kind == "volume"
                    else f"data directory {dep.data.source}")
            later = "" if Path(dep.config_dir) == default_config_dir(name) else \
                f" --config-dir {dep.config_dir}"
            result.kept.append(f"{what} and {dep.config_dir} (remove them with `release registry "
                               f"down {name} --purge{later}`)")
    return result


@dataclass
class GcResult:
    exit_code: int
    output: str
    marked: int | None = None
    blobs: int | None = None
    manifests: int | None = None
    empty: bool = False
    read_only: bool = True
    dry_run: bool = False

    def to_dict(self) -> dict:
        return {"exit_code": self.exit_code, "blobs_marked": self.marked,
                "blobs_eligible": self.blobs, "manifests_eligible": self.manifests,
                "empty": self.empty, "read_only": self.read_only, "dry_run": self.dry_run}


def gc(client, name: str, *, delete_untagged: bool = False, dry_run: bool = False,
       read_only: bool = True, config_path: str = CONFIG_PATH, wait: float = 30.0,
       on_event: Callable[[str], None] = lambda s: None) -> GcResult:
    """Run `registry garbage-collect` in the registry container.

    read_only: first re-run the deployment in read-only maintenance mode (pushes are refused,
    pulls work), collect, then put it back as it was. Without it the collection runs next to
    live pushes, which can lose the layers of a push in flight. Either way the registry is
    restarted afterwards: its in-memory blob cache would still claim deleted blobs exist.
    """
    container = _get_container(client, name)
    if container is None:
        raise ReleaseError(f"no registry container named {name!r}",
                           hint=f"start it with: release registry up --name {name}")
    labels = container.labels or {}
    raw = labels.get(LABEL_DEPLOYMENT) if _ours(container, name, "registry") else None
    if read_only and not dry_run and raw is None:
        raise UsageError(f"container {name!r} was not made by `release registry up`, so it "
                         "cannot be switched to read-only mode here",
                         hint="stop the pushes yourself and add --no-read-only")
    dep = Deployment.from_json(raw) if raw else None
    argv = ["/bin/registry", "garbage-collect", config_path]
    if delete_untagged:
        argv.append("--delete-untagged")
    if dry_run:
        argv.append("--dry-run")
    switched = ran = False
    try:
        if read_only and not dry_run and not dep.read_only:
            on_event(f"switching {name} to read-only mode for the collection ...")
            switched = True   # from here on, put it back whatever happens
            container = client.containers.get(
                up(client, dep.with_read_only(True), wait=wait).container_id)
        elif container.status != "running":
            raise ReleaseError(f"registry container {name!r} is not running ({container.status})")
        exit_code, output = container.exec_run(argv, demux=False)
        ran = True
        text = (output or b"").decode(errors="replace")
    finally:
        if switched:
            on_event(f"switching {name} back to read-write ...")
            up(client, dep, wait=wait)
        elif ran and not dry_run:
            restarted = _get_container(client, name)
            if restarted is not None and dep is not None:
                restarted.restart()
                wait_ready(client, restarted, dep, wait)
            elif restarted is not None:
                restarted.restart()
    result = GcResult(exit_code=exit_code, output=text, read_only=switched or bool(dep and dep.read_only),
                      dry_run=dry_run)
    m = GC_SUMMARY.search(text)
    if m:
        result.marked, result.blobs, result.manifests = (int(g) for g in m.groups())
    elif exit_code != 0 and EMPTY_REGISTRY in text:
        result.empty, result.exit_code = True, 0
        result.marked = result.blobs = result.manifests = 0
    return result
