"""Local OCI registries for the tests: the real CNCF distribution v2.8 (`docker-registry serve`).

    reg = LocalRegistry(tmp_path / "reg", auth=("alice", "pw"), pki=pki).start()
    reg.host          "localhost:41234"    (TLS)  /  "127.0.0.1:41234" (plain http)
    reg.url           "https://localhost:41234"
    reg.username, reg.password, reg.auth_config ({"username","password"} or None)
    reg.ca_file       Path of the CA certificate, or None
    reg.ref("team/app", "1.0.0") -> "localhost:41234/team/app:1.0.0"
    reg.manifest_digest("team/app", "1.0.0") -> "sha256:..." or None
    reg.tags("team/app") -> ["1.0.0", ...]  ([] if the repository does not exist)
    reg.skopeo_digest("team/app:1.0.0") -> "sha256:..." or None   (second independent client)
    reg.restart()     same port, same storage ("registry is down, then back")
    with reg.stopped(): ...   down for the duration of the block
    reg.stop()

The checks here use only `requests` and `skopeo`, never the product code in pipeline/.

Host names and TLS (measured with Docker 20.10 on Debian 12):
  * The daemon treats 127.0.0.0/8 as insecure registries (hard-coded, cannot be turned off)
    and resolves "localhost" into it. For such hosts it tries HTTPS *without verifying the
    certificate*, then plain HTTP. So a TLS registry on localhost/127.0.0.1 works with or
    without /etc/docker/certs.d/HOST:PORT/ca.crt, even with a wrong CA there. We still
    install the CA (realistic, and what a user would do), under "localhost:PORT", the name
    that matches the DNS SAN of the cert; requests and skopeo do verify it.
  * To test real CA verification by the daemon use strict_tls=True: the registry then
    binds to STRICT_TLS_IP (default 192.0.2.10, TEST-NET-1), an address we add to `lo`
    (needs root and `ip` from iproute2), which the daemon treats as a secure registry:
    without the CA in certs.d the push fails with "x509: certificate signed by unknown
    authority"; with it, the push succeeds. The PKI must include that IP in its SAN.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from .locks import SharedUse
from .pki import PKI

MANIFEST_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
ACCEPT_MANIFESTS = ", ".join(MANIFEST_MEDIA_TYPES)

STRICT_TLS_IP = os.environ.get("RELEASE_TEST_STRICT_TLS_IP", "192.0.2.10")
CERTS_D = Path(os.environ.get("RELEASE_TEST_DOCKER_CERTS_D", "/etc/docker/certs.d"))


class RegistryError(RuntimeError):
    pass


def free_port(ip: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def _binary(name: str, package: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    if not path:
        raise RegistryError(f"`{name}` is not installed (apt-get install -y {package})")
    return path


# --- a loopback alias outside 127.0.0.0/8, for strict TLS (shared across sessions) ------

def _lo_has(ip: str) -> bool:
    out = subprocess.run(["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True,
                         text=True, check=True).stdout
    return f" {ip}/" in out


def _acquire_alias(ip: str) -> SharedUse:
    """Make sure `ip` is on lo; the returned handle is one user of it (see locks.py)."""
    shared = SharedUse(f"lo-alias-{ip}")
    with shared.mutex():
        shared.join()
        if not _lo_has(ip):
            proc = subprocess.run(["ip", "addr", "add", f"{ip}/32", "dev", "lo"],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                shared.leave()
                raise RegistryError(f"cannot add {ip} to lo for a strict-TLS registry "
                                    f"(needs root and iproute2): {proc.stderr.strip()}")
            shared.write_state({"ip": ip, "added_by_tests": True})
    return shared


def _release_alias(shared: SharedUse, ip: str) -> None:
    """Leave; the last user removes the address if a test session added it."""
    with shared.mutex():
        if shared.leave() and (shared.read_state() or {}).get("added_by_tests"):
            subprocess.run(["ip", "addr", "del", f"{ip}/32", "dev", "lo"], capture_output=True)
            shared.clear_state()


_running: set["LocalRegistry"] = set()


@atexit.register
def _stop_leftovers() -> None:
    """Safety net: registries still running when the interpreter exits are stopped."""
    for reg in list(_running):
        reg.stop()


# --- the registry ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Manifest:
    media_type: str
    digest: str          # Docker-Content-Digest header (checked against sha256 of the body)
    body: bytes

    def json(self) -> dict:
        import json
        return json.loads(self.body)


class LocalRegistry:
    """One `docker-registry serve` process with its own config, storage and port."""

    def __init__(self, workdir: Path, *, name: str = "registry",
                 auth: tuple[str, str] | bool | None = None, pki: PKI | None = None,
                 strict_tls: bool = False, host_name: str | None = None,
                 port: int | None = None, install_ca: bool = True, delete: bool = True,
                 start_timeout: float = 20.0, verify_ready: bool = True):
        """`verify_ready=False`: the readiness check does not verify the certificate (for
        registries serving a deliberately bad one: wrong name, expired, unknown CA)."""
        self.name = name
        self.verify_ready = verify_ready
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage_dir = self.workdir / "storage"
        self.config_path = self.workdir / "config.yml"
        self.log_path = self.workdir / "registry.log"
        self.htpasswd_path = self.workdir / "htpasswd"
        if auth is True:
            auth = ("release-test", secrets.token_urlsafe(12))
        self.username, self.password = auth if auth else (None, None)
        if strict_tls and pki is None:
            raise ValueError("strict_tls needs a pki")
        if strict_tls and STRICT_TLS_IP not in pki.ip_addresses:
            raise ValueError(f"strict_tls: the server cert must have IP:{STRICT_TLS_IP} in its SAN")
        self.pki = pki
        self.tls = pki is not None
        self.strict_tls = strict_tls
        self.bind_ip = STRICT_TLS_IP if strict_tls else "127.0.0.1"
        self.host_name = host_name or (STRICT_TLS_IP if strict_tls else
                                       "localhost" if self.tls else "127.0.0.1")
        self._fixed_port = port is not None
        self.port = port or free_port()
        self.should_install_ca = install_ca and self.tls
        self.delete = delete
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen | None = None
        self._ca_installed: Path | None = None
        self._alias: SharedUse | None = None

    # -- addresses and credentials --------------------------------------------------------
    @property
    def host(self) -> str:
        return f"{self.host_name}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def ca_file(self) -> Path | None:
        return self.pki.ca_cert if self.pki else None

    @property
    def cert_dir(self) -> Path | None:
        """A directory with only the CA (for skopeo --cert-dir)."""
        return self.pki.ca_dir if self.pki else None

    @property
    def auth_config(self) -> dict | None:
        """For docker-py: client.api.push(..., auth_config=reg.auth_config)."""
        if self.username is None:
            return None
        return {"username": self.username, "password": self.password}

    @property
    def certs_d_dir(self) -> Path:
        return CERTS_D / self.host

    def ref(self, repo: str, tag: str | None = "latest") -> str:
        return f"{self.host}/{repo}" + (f":{tag}" if tag else "")

    def __repr__(self) -> str:
        return (f"<LocalRegistry {self.name} {self.url} auth={self.username is not None} "
                f"running={self.running}>")

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _write_config(self) -> None:
        http: dict = {"addr": f"{self.bind_ip}:{self.port}",
                      "secret": secrets.token_hex(16),
                      "headers": {"X-Content-Type-Options": ["nosniff"]}}
        if self.tls:
            http["tls"] = {"certificate": str(self.pki.server_cert), "key": str(self.pki.server_key)}
        config: dict = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "fields": {"registry": self.name}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage_dir)},
                        "delete": {"enabled": bool(self.delete)},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": http,
            "health": {"storagedriver": {"enabled": False}},
        }
        if self.username is not None:
            if not self.htpasswd_path.exists():
                out = subprocess.run([_binary("htpasswd", "apache2-utils"), "-Bbn",
                                      self.username, self.password],
                                     capture_output=True, text=True, check=True).stdout
                self.htpasswd_path.write_text(out.strip() + "\n")
            config["auth"] = {"htpasswd": {"realm": f"{self.name}-realm",
                                           "path": str(self.htpasswd_path)}}
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def install_ca(self) -> None:
        """Put the CA at /etc/docker/certs.d/HOST:PORT/ca.crt (the daemon reads it per push)."""
        if not self.tls:
            return
        self.certs_d_dir.mkdir(parents=True, exist_ok=True)
        target = self.certs_d_dir / "ca.crt"
        shutil.copyfile(self.pki.ca_cert, target)
        self._ca_installed = target

    def uninstall_ca(self) -> None:
        target = self._ca_installed or self.certs_d_dir / "ca.crt"
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        with contextlib.suppress(OSError):
            target.parent.rmdir()  # only if empty
        self._ca_installed = None

    def start(self) -> "LocalRegistry":
        if self.running:
            return self
        if self.strict_tls and self._alias is None:
            self._alias = _acquire_alias(self.bind_ip)
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        if self.should_install_ca:
            self.install_ca()
        for attempt in range(3):
            self._write_config()
            self._spawn()
            try:
                self._wait_ready()
                _running.add(self)
                return self
            except RegistryError:
                log = self.log_tail()
                self._kill()
                if "address already in use" in log and not self._fixed_port and attempt < 2:
                    self.port = free_port(self.bind_ip)   # lost the race for the port: retry
                    if self.should_install_ca:
                        self.uninstall_ca()
                        self.install_ca()
                    continue
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "OTEL_"))}
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== start {time.strftime('%H:%M:%S')} on {self.host} ====\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                [_binary("docker-registry", "docker-registry"), "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RegistryError(f"{self.name}: docker-registry exited with code "
                                    f"{self._proc.returncode}:\n{self.log_tail()}")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")         # InsecureRequestWarning
                    r = requests.get(f"{self.url}/v2/", timeout=2,
                                     verify=self._verify() if self.verify_ready else False)
                if r.status_code in (200, 401):
                    return
                last = f"HTTP {r.status_code}"
            except requests.RequestException as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise RegistryError(f"{self.name}: {self.url}/v2/ did not answer 200/401 within "
                            f"{self.start_timeout:.0f}s (last: {last}):\n{self.log_tail()}")

    def _kill(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def stop(self) -> None:
        """Stop the process, remove the CA from certs.d; storage and port are kept."""
        _running.discard(self)
        self._kill()
        if self._ca_installed:
            self.uninstall_ca()
        if self._alias is not None:
            _release_alias(self._alias, self.bind_ip)
            self._alias = None

    def restart(self) -> "LocalRegistry":
        self.stop()
        return self.start()

    @contextlib.contextmanager
    def stopped(self):
        """`with reg.stopped(): ...` the registry is down inside the block, back after it."""
        self.stop()
        try:
            yield self
        finally:
            self.start()

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> "LocalRegistry":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- independent checks over the registry HTTP API -------------------------------------
    def _verify(self):
        return str(self.ca_file) if self.ca_file else True

    def _auth(self):
        return (self.username, self.password) if self.username is not None else None

    def _get(self, path: str, **kw) -> requests.Response:
        return requests.get(f"{self.url}{path}", auth=self._auth(), verify=self._verify(),
                            timeout=kw.pop("timeout", 15), **kw)

    def manifest(self, repo: str, ref: str) -> Manifest | None:
        """GET /v2/REPO/manifests/REF with all four manifest media types; None on 404."""
        r = self._get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT_MANIFESTS})
        if r.status_code == 404:
            return None
        r.raise_for_status()
        header = r.headers.get("Docker-Content-Digest")
        computed = "sha256:" + hashlib.sha256(r.content).hexdigest()
        if header and header != computed:
            raise RegistryError(f"{self.name}: {repo}:{ref}: Docker-Content-Digest {header} "
                                f"!= sha256 of the body {computed} (manifest was converted?)")
        return Manifest(media_type=r.headers.get("Content-Type", ""), digest=header or computed,
                        body=r.content)

    def manifest_digest(self, repo: str, ref: str) -> str | None:
        m = self.manifest(repo, ref)
        return m.digest if m else None

    def tags(self, repo: str) -> list[str]:
        """All tags of `repo` (sorted; follows pagination); [] if the repository is unknown."""
        found: list[str] = []
        path = f"/v2/{repo}/tags/list?n=1000"
        while path:
            r = self._get(path)
            if r.status_code == 404:
                return []
            r.raise_for_status()
            found.extend(r.json().get("tags") or [])
            link = r.links.get("next", {}).get("url")
            path = link if link and link.startswith("/") else None
        return sorted(found)

    def catalog(self) -> list[str]:
        r = self._get("/v2/_catalog?n=1000")
        r.raise_for_status()
        return sorted(r.json().get("repositories") or [])

    def delete_manifest(self, repo: str, digest: str) -> None:
        r = requests.delete(f"{self.url}/v2/{repo}/manifests/{digest}", auth=self._auth(),
                            verify=self._verify(), timeout=15)
        r.raise_for_status()

    def skopeo_digest(self, ref: str) -> str | None:
        """Digest via skopeo of "repo:tag" / "repo@sha256:..." (or a full ref on this host)."""
        full = ref if ref.startswith(self.host + "/") else f"{self.host}/{ref}"
        return skopeo_digest(full, creds=self.auth_config, cert_dir=self.cert_dir,
                             tls_verify=self.tls)


def skopeo_digest(image_ref: str, *, creds: dict | tuple | None = None,
                  cert_dir: Path | None = None, tls_verify: bool = True,
                  timeout: float = 60) -> str | None:
    """sha256 of `skopeo inspect --raw docker://REF`; None if the manifest/repo is unknown."""
    argv = [_binary("skopeo", "skopeo"), "inspect", "--raw"]
    if creds:
        user, pw = (creds["username"], creds["password"]) if isinstance(creds, dict) else creds
        argv += ["--creds", f"{user}:{pw}"]
    else:
        argv += ["--no-creds"]
    if cert_dir:
        argv += ["--cert-dir", str(cert_dir)]
    argv += [f"--tls-verify={'true' if tls_verify else 'false'}", f"docker://{image_ref}"]
    proc = subprocess.run(argv, capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace")
        if "manifest unknown" in err or "name unknown" in err or "not found" in err.lower():
            return None
        shown = " ".join("***" if i and argv[i - 1] == "--creds" else a
                         for i, a in enumerate(argv))
        raise RegistryError(f"skopeo failed for {image_ref} ({proc.returncode}): {err.strip()}\n"
                            f"argv: {shown}")
    return "sha256:" + hashlib.sha256(proc.stdout).hexdigest()
