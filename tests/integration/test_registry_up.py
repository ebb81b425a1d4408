"""`release registry up / down / gc / compose` against a real engine and a registry:2 stand-in.

No image can be pulled here, so the session builds a stand-in `registry:2` FROM scratch out of
Debian's `docker-registry` (tests/support/registry_image.py). The web UI image
(joxit/docker-registry-ui) cannot be pulled either: the UI tests check the container spec
(env, ports, network, CORS headers of the registry) with the stand-in image in its place,
and the Compose output through `docker-compose config`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from tests.support.images import build_image, push_image, unique_content, write_context
from tests.support.registries import free_port, skopeo_digest
from tests.support.registry_image import STANDIN_LABEL, ensure_registry_image

pytestmark = pytest.mark.integration

RELEASE = [sys.executable, "-m", "pipeline"]
LABEL = "org.release-pipeline.registry"
PASSWORD = "Up-pw-" + uuid.uuid4().hex[:12]   # never on a command line, never printed


def release(*args: str, cwd: Path, env: dict | None = None, timeout: int = 120):
    full_env = {**os.environ, **(env or {})}
    full_env.pop("GITHUB_ACTIONS", None)
    return subprocess.run([*RELEASE, *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=timeout)


def no_secret(proc) -> None:
    assert PASSWORD not in proc.stdout
    assert PASSWORD not in proc.stderr


@pytest.fixture(scope="session")
def registry_image(docker_engine) -> str:
    return ensure_registry_image(docker_engine)


def _remove_everything(client, name: str) -> None:
    import docker.errors
    for c in client.containers.list(all=True, filters={"label": f"{LABEL}={name}"}):
        c.remove(force=True)
    for n in client.networks.list(filters={"label": f"{LABEL}={name}"}):
        try:
            n.remove()
        except docker.errors.APIError:
            pass
    for v in client.volumes.list(filters={"label": f"{LABEL}={name}"}):
        try:
            v.remove(force=True)
        except docker.errors.APIError:
            pass


@pytest.fixture
def hosting(docker_engine, registry_image, tmp_path):
    """Run `release registry up` for unique names; everything they made is removed after."""
    names: list[str] = []

    class Hosting:
        image = registry_image
        client = docker_engine

        def name(self, label: str = "r") -> str:
            n = f"rt-{label}-{uuid.uuid4().hex[:8]}"
            names.append(n)
            return n

        def config_dir(self, name: str) -> Path:
            return tmp_path / f"cfg-{name}"

        def up(self, name: str, port: int, *args: str, json_out: bool = True, env=None,
               bind: str | None = "127.0.0.1"):
            """bind=None: no --bind (the default address)."""
            argv = ["registry", "up", "--name", name, "--port", str(port),
                    *(["--bind", bind] if bind else []),
                    "--image", registry_image, "--config-dir", str(self.config_dir(name)), *args]
            if json_out:
                argv.append("--json")
            return release(*argv, cwd=tmp_path, env={"RT_PW": PASSWORD, **(env or {})})

        def run(self, *args: str, env=None):
            return release(*args, cwd=tmp_path, env={"RT_PW": PASSWORD, **(env or {})})

    yield Hosting()
    for n in names:
        _remove_everything(docker_engine, n)


def _up_ok(proc) -> dict:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    no_secret(proc)
    return json.loads(proc.stdout)


def _release_yml(tmp_path: Path, address: str, repo: str, ca_file: str) -> Path:
    ctx = tmp_path / "app"
    write_context(ctx, unique_content("registry-up"))
    config = tmp_path / "release.yml"
    config.write_text(
        "image:\n"
        f"  name: rtup-{uuid.uuid4().hex[:8]}\n"
        "  context: app\n"
        "tags:\n"
        "  - type=semver,pattern={{version}}\n"
        "flavor:\n"
        "  - latest=false\n"
        "registries:\n"
        "  - name: hosted\n"
        "    type: generic\n"
        f"    registry: {address}\n"
        f"    repository: {repo}\n"
        "    username_env: RT_USER\n"
        "    password_env: RT_PW\n"
        f"    ca_file: {ca_file}\n")
    return config


def _build_push(hosting, config: Path, version: str) -> str:
    (config.parent / "app" / "payload.txt").write_text(unique_content(version))
    proc = hosting.run("-c", str(config), "build-push", version, "--json", "-q",
                       env={"RT_USER": "admin"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    no_secret(proc)
    return json.loads(proc.stdout)["digest"]


ACCEPT = ("application/vnd.docker.distribution.manifest.v2+json, "
          "application/vnd.oci.image.manifest.v1+json")


def test_up_with_auth_and_tls_then_build_push_gc_down(hosting, tmp_path):
    name = hosting.name("tls")
    port = free_port()
    report = _up_ok(hosting.up(name, port, "--user", "admin", "--password-env", "RT_PW", "--tls"))
    address = f"localhost:{port}"
    assert report["url"] == f"https://{address}"
    assert report["containers"] == {name: "created"}
    cert = Path(report["tls"]["cert"])
    assert {"DNS:localhost", "IP:127.0.0.1"} <= set(report["tls"]["names"])
    assert report["tls"]["trust_path"] == f"/etc/docker/certs.d/{address}/ca.crt"
    assert report["auth"] == {"user": "admin", "password_env": "RT_PW",
                              "htpasswd": str(hosting.config_dir(name) / "auth" / "htpasswd")}
    line = Path(report["auth"]["htpasswd"]).read_text().strip()
    assert line.startswith("admin:$2") and PASSWORD not in line      # bcrypt
    assert Path(report["auth"]["htpasswd"]).stat().st_mode & 0o777 == 0o600

    # The container: restart always, configured by REGISTRY_* env and mounts only.
    c = hosting.client.containers.get(name)
    assert c.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    env = dict(e.split("=", 1) for e in c.attrs["Config"]["Env"])
    assert env["REGISTRY_AUTH"] == "htpasswd"
    assert env["REGISTRY_AUTH_HTPASSWD_PATH"] == "/auth/htpasswd"
    assert env["REGISTRY_HTTP_TLS_CERTIFICATE"] == "/certs/domain.crt"
    assert env["REGISTRY_STORAGE_DELETE_ENABLED"] == "true"
    mounts = {m["Destination"]: m for m in c.attrs["Mounts"]}
    assert mounts["/var/lib/registry"]["Type"] == "volume"
    assert mounts["/var/lib/registry"]["Name"] == f"{name}-data"
    assert mounts["/auth"]["RW"] is False and mounts["/certs"]["RW"] is False
    assert PASSWORD not in json.dumps(c.attrs)          # not in env, labels or anything

    # TLS verifies against the generated certificate (OpenSSL via requests, Go via skopeo).
    url = f"https://{address}"
    r = requests.get(f"{url}/v2/", verify=str(cert), timeout=10)
    assert r.status_code == 401 and 'Basic realm="' in r.headers["WWW-Authenticate"]
    assert requests.get(f"{url}/v2/", verify=str(cert), auth=("admin", PASSWORD),
                        timeout=10).status_code == 200
    assert requests.get(f"{url}/v2/", verify=str(cert), auth=("admin", "wrong"),
                        timeout=10).status_code == 401

    # Twice: same container, the text output says how to trust and log in, no password.
    again = hosting.up(name, port, "--user", "admin", "--password-env", "RT_PW", "--tls",
                       json_out=False)
    assert again.returncode == 0, again.stderr
    no_secret(again)
    assert "already running" in again.stdout
    assert f"/etc/docker/certs.d/{address}/ca.crt" in again.stdout
    assert f"docker login {address} --username admin --password-stdin" in again.stdout
    assert hosting.client.containers.get(name).id == c.id

    # build-push to it, with the certificate as ca_file.
    repo = f"team/app-{uuid.uuid4().hex[:6]}"
    config = _release_yml(tmp_path, address, repo, str(cert))
    keep = _build_push(hosting, config, "1.0.0")
    drop = _build_push(hosting, config, "2.0.0")
    auth = ("admin", PASSWORD)

    def manifest(ref):
        return requests.get(f"{url}/v2/{repo}/manifests/{ref}", auth=auth, verify=str(cert),
                            headers={"Accept": ACCEPT}, timeout=10)

    assert manifest("1.0.0").headers["Docker-Content-Digest"] == keep
    ca_dir = tmp_path / "ca-only"
    ca_dir.mkdir()
    shutil.copyfile(cert, ca_dir / "ca.crt")
    assert skopeo_digest(f"{address}/{repo}:1.0.0", creds=auth, cert_dir=ca_dir) == keep
    dropped = manifest("2.0.0").json()
    dropped_blobs = [dropped["config"]["digest"]] + [l["digest"] for l in dropped["layers"]]
    for digest in dropped_blobs:
        r = requests.head(f"{url}/v2/{repo}/blobs/{digest}", auth=auth, verify=str(cert), timeout=10)
        assert r.status_code == 200, digest
    r = requests.delete(f"{url}/v2/{repo}/manifests/{drop}", auth=auth, verify=str(cert), timeout=10)
    assert r.status_code == 202

    # gc: the registry's own garbage-collect, read-only meanwhile, then back to read-write.
    dry = hosting.run("registry", "gc", name, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert json.loads(dry.stdout)["blobs_eligible"] >= 2
    gc = hosting.run("registry", "gc", name, "--json")
    assert gc.returncode == 0, gc.stdout + gc.stderr
    assert "read-only" in gc.stderr                        # the warning
    result = json.loads(gc.stdout)
    assert result["blobs_eligible"] >= 2 and result["read_only"] is True
    for digest in dropped_blobs:
        r = requests.head(f"{url}/v2/{repo}/blobs/{digest}", auth=auth, verify=str(cert), timeout=10)
        assert r.status_code == 404, digest
    kept = manifest("1.0.0")
    assert kept.status_code == 200
    for layer in kept.json()["layers"]:
        r = requests.head(f"{url}/v2/{repo}/blobs/{layer['digest']}", auth=auth, verify=str(cert),
                          timeout=10)
        assert r.status_code == 200
    after = hosting.client.containers.get(name)
    env = dict(e.split("=", 1) for e in after.attrs["Config"]["Env"])
    assert "REGISTRY_STORAGE_MAINTENANCE_READONLY" not in env
    assert after.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    _build_push(hosting, config, "3.0.0")                  # writable again
    live = hosting.run("registry", "gc", name, "--no-read-only", "--json")
    assert live.returncode == 0, live.stdout + live.stderr
    assert "can lose layers" in live.stderr
    assert json.loads(live.stdout)["blobs_eligible"] == 0 and not json.loads(live.stdout)["read_only"]

    # down keeps the data; down --purge removes volume and generated files.
    down = hosting.run("registry", "down", name)
    assert down.returncode == 0, down.stderr
    assert f"removed container {name}" in down.stdout
    assert not hosting.client.containers.list(all=True, filters={"name": f"^{name}$"})
    assert hosting.client.volumes.get(f"{name}-data")
    back = _up_ok(hosting.up(name, port, "--user", "admin", "--password-env", "RT_PW", "--tls"))
    assert back["containers"] == {name: "created"}
    assert manifest("1.0.0").headers["Docker-Content-Digest"] == keep   # data survived
    purge = hosting.run("registry", "down", name, "--purge")
    assert purge.returncode == 0, purge.stderr
    assert f"removed volume {name}-data" in purge.stdout
    assert not hosting.config_dir(name).exists()
    assert not hosting.client.volumes.list(filters={"label": f"{LABEL}={name}"})
    assert "nothing to remove" in hosting.run("registry", "down", name).stdout


def test_up_is_idempotent_replaces_on_change_and_read_only_mode(hosting, tmp_path):
    name = hosting.name("idem")
    port = free_port()
    first = _up_ok(hosting.up(name, port))
    assert first["url"] == f"http://localhost:{port}" and first["tls"] is None
    second = _up_ok(hosting.up(name, port))
    assert second["containers"] == {name: "unchanged"}
    assert second["container_id"] == first["container_id"]
    assert len(hosting.client.containers.list(all=True, filters={"label": f"{LABEL}={name}"})) == 1

    # Push something through the engine.
    client = hosting.client
    ctx = write_context(tmp_path / "ctx", unique_content("idem"))
    repo = f"127.0.0.1:{port}/idem/app"
    build_image(client, ctx, f"{repo}:1")
    digest = push_image(client, repo, "1").digest
    client.images.remove(f"{repo}:1", force=True)
    base = f"http://127.0.0.1:{port}/v2/idem/app"

    # Stopped: `up` starts the same container.
    client.containers.get(name).stop(timeout=2)
    started = _up_ok(hosting.up(name, port))
    assert started["containers"] == {name: "started"}
    assert started["container_id"] == first["container_id"]

    # An option changed: the container is replaced, the data stays.
    changed = _up_ok(hosting.up(name, port, "--no-delete"))
    assert changed["containers"] == {name: "recreated"}
    assert changed["container_id"] != first["container_id"]
    r = requests.get(f"{base}/manifests/1", headers={"Accept": ACCEPT}, timeout=10)
    assert r.headers["Docker-Content-Digest"] == digest
    assert requests.delete(f"{base}/manifests/{digest}", timeout=10).status_code == 405

    # Read-only maintenance mode refuses uploads; `up` without it ends it.
    ro = _up_ok(hosting.up(name, port, "--no-delete", "--read-only"))
    assert ro["read_only"] is True and ro["containers"] == {name: "recreated"}
    assert requests.post(f"{base}/blobs/uploads/", timeout=10).status_code == 405
    assert requests.get(f"{base}/manifests/1", headers={"Accept": ACCEPT}, timeout=10).ok
    rw = _up_ok(hosting.up(name, port, "--no-delete"))
    assert rw["read_only"] is False
    assert requests.post(f"{base}/blobs/uploads/", timeout=10).status_code == 202


def _host_ip(client, name: str) -> str:
    return client.containers.get(name).attrs["HostConfig"]["PortBindings"]["5000/tcp"][0]["HostIp"]


def test_secure_defaults_loopback_warning_and_no_password_over_http(hosting):
    client = hosting.client

    # No --bind, no auth: this machine only, no warning, no insecure-registries advice.
    bare, port = hosting.name("bare"), free_port()
    proc = hosting.up(bare, port, bind=None, json_out=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _host_ip(client, bare) == "127.0.0.1"
    assert "warning" not in proc.stderr and "insecure-registries" not in proc.stdout
    assert f"is up at http://localhost:{port}" in proc.stdout
    assert requests.get(f"http://127.0.0.1:{port}/v2/", timeout=10).status_code == 200

    # An explicit public --bind without auth: done as asked, with a warning.
    public, port = hosting.name("public"), free_port()
    proc = hosting.up(public, port, bind="0.0.0.0", json_out=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _host_ip(client, public) == "0.0.0.0"
    assert (f"warning: no authentication on 0.0.0.0: anyone who can reach port {port} can "
            "push and pull") in proc.stderr

    # A password over plain HTTP on the network: refused before anything is made.
    refused, port = hosting.name("refused"), free_port()
    proc = hosting.up(refused, port, "--user", "admin", "--password-env", "RT_PW",
                      bind="0.0.0.0", json_out=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    no_secret(proc)
    assert "--user over plain HTTP on 0.0.0.0" in proc.stderr
    assert "--tls" in proc.stderr and "--cert FILE --key FILE" in proc.stderr
    assert "--bind 127.0.0.1" in proc.stderr
    assert "insecure-registries" not in proc.stdout + proc.stderr
    assert not client.containers.list(all=True, filters={"name": f"^{refused}$"})
    assert not (hosting.config_dir(refused) / "auth" / "htpasswd").exists()

    # The same without --bind: on this machine only, where plain HTTP is fine; the
    # htpasswd file is private and the registry (root in the container) still reads it.
    local, port = hosting.name("local"), free_port()
    report = _up_ok(hosting.up(local, port, "--user", "admin", "--password-env", "RT_PW",
                               bind=None))
    assert _host_ip(client, local) == "127.0.0.1"
    htpasswd = Path(report["auth"]["htpasswd"])
    assert htpasswd.stat().st_mode & 0o777 == 0o600
    url = f"http://127.0.0.1:{port}/v2/"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, auth=("admin", PASSWORD), timeout=10).status_code == 200
    text = hosting.up(local, port, "--user", "admin", "--password-env", "RT_PW", bind=None,
                      json_out=False)
    assert text.returncode == 0 and "insecure-registries" not in text.stdout
    no_secret(text)


def test_port_taken_and_foreign_container_are_clear_errors(hosting):
    client = hosting.client
    # A program listens on the port.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        name = hosting.name("busy")
        proc = hosting.up(name, port, json_out=False)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert f"port {port} on 127.0.0.1 is already in use" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert not client.containers.list(all=True, filters={"name": f"^{name}$"})

    # Another registry publishes it.
    port = free_port()
    a = hosting.name("a")
    _up_ok(hosting.up(a, port))
    b = hosting.name("b")
    proc = hosting.up(b, port, json_out=False)
    assert proc.returncode == 1
    assert f"port {port} is already published by container '{a}'" in proc.stderr
    assert not client.containers.list(all=True, filters={"name": f"^{b}$"})

    # A container of that name that `up` did not make is left alone.
    foreign = hosting.name("foreign")
    other = client.containers.create(hosting.image, name=foreign,
                                     labels={LABEL: foreign})   # no role label: not ours
    try:
        proc = hosting.up(foreign, free_port(), json_out=False)
        assert proc.returncode == 2
        assert "already exists and was not made by `release registry up`" in proc.stderr
        assert client.containers.get(foreign).id == other.id
        down = hosting.run("registry", "down", foreign)
        assert down.returncode == 2 and "left alone" in down.stderr
    finally:
        other.remove(force=True)


def test_mirror_pulls_through_from_its_upstream(hosting, tmp_path):
    client = hosting.client
    network = client.networks.create(f"rt-mirror-{uuid.uuid4().hex[:8]}", driver="bridge")
    upstream, mirror = hosting.name("upstream"), hosting.name("mirror")
    try:
        up_port, mirror_port = free_port(), free_port()
        _up_ok(hosting.up(upstream, up_port, "--network", network.name))
        report = _up_ok(hosting.up(mirror, mirror_port, "--network", network.name,
                                   "--mirror", f"http://{upstream}:5000"))
        assert report["mirror"] == f"http://{upstream}:5000"
        env = dict(e.split("=", 1) for e in client.containers.get(mirror).attrs["Config"]["Env"])
        assert env["REGISTRY_PROXY_REMOTEURL"] == f"http://{upstream}:5000"

        repo = f"127.0.0.1:{up_port}/library/thing"
        build_image(client, write_context(tmp_path / "ctx", unique_content("mirror")), f"{repo}:1")
        digest = push_image(client, repo, "1").digest
        client.images.remove(f"{repo}:1", force=True)
        assert requests.get(f"http://127.0.0.1:{mirror_port}/v2/_catalog", timeout=10).json() == \
            {"repositories": []}
        r = requests.get(f"http://127.0.0.1:{mirror_port}/v2/library/thing/manifests/1",
                         headers={"Accept": ACCEPT}, timeout=20)
        assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == digest
        layer = r.json()["layers"][0]["digest"]
        assert requests.get(f"http://127.0.0.1:{mirror_port}/v2/library/thing/blobs/{layer}",
                            timeout=20).status_code == 200
        text = hosting.up(mirror, mirror_port, "--network", network.name,
                          "--mirror", f"http://{upstream}:5000", json_out=False).stdout
        assert '"registry-mirrors": ["http://localhost:' in text
    finally:
        _remove_everything(client, upstream)
        _remove_everything(client, mirror)
        network.remove()


def test_ui_container_spec_and_cors(hosting):
    """The UI image cannot be pulled here: the stand-in runs in its place; we check the spec."""
    client = hosting.client
    name = hosting.name("ui")
    port, ui_port = free_port(), free_port()
    report = _up_ok(hosting.up(name, port, "--ui", "--ui-port", str(ui_port),
                               "--ui-image", hosting.image))
    assert report["ui"] == f"http://localhost:{ui_port}"
    assert report["containers"] == {name: "created", f"{name}-ui": "created"}
    ui = client.containers.get(f"{name}-ui")
    env = dict(e.split("=", 1) for e in ui.attrs["Config"]["Env"])
    assert env["NGINX_PROXY_PASS_URL"] == f"http://{name}:5000"
    assert env["SINGLE_REGISTRY"] == "true" and env["DELETE_IMAGES"] == "true"
    assert env["PULL_URL"] == f"localhost:{port}"
    assert ui.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert ui.attrs["HostConfig"]["PortBindings"]["80/tcp"] == [{"HostIp": "127.0.0.1",
                                                                 "HostPort": str(ui_port)}]
    net = f"{name}-net"
    assert net in ui.attrs["NetworkSettings"]["Networks"]
    assert net in client.containers.get(name).attrs["NetworkSettings"]["Networks"]
    # The registry answers with the CORS headers a browser UI on another origin needs.
    r = requests.get(f"http://127.0.0.1:{port}/v2/", timeout=10)
    assert r.headers["Access-Control-Allow-Origin"] == f"http://localhost:{ui_port}"
    assert "DELETE" in r.headers["Access-Control-Allow-Methods"]
    assert r.headers["Access-Control-Expose-Headers"] == "Docker-Content-Digest"

    # Without --ui the UI container goes; down removes the network.
    report = _up_ok(hosting.up(name, port, "--network", net))
    assert report["containers"][f"{name}-ui"] == "removed"
    down = hosting.run("registry", "down", name)
    assert f"removed network {net}" in down.stdout
    assert not client.networks.list(names=[net])


def test_compose_file_validates_and_matches_up(hosting, tmp_path):
    if not shutil.which("docker-compose"):
        pytest.fail("`docker-compose` is missing (apt-get install -y docker-compose; .ci/run "
                    "and scripts/dev-setup.sh install it)", pytrace=False)
    name = hosting.name("compose")
    port = free_port()
    work = tmp_path / "compose"
    work.mkdir()
    opts = ["--name", name, "--port", str(port), "--bind", "127.0.0.1", "--image", hosting.image,
            "--user", "admin", "--password-env", "RT_PW", "--tls", "--data", "./data"]
    proc = release("registry", "compose", *opts, "--ui", cwd=work, env={"RT_PW": PASSWORD})
    assert proc.returncode == 0, proc.stderr
    no_secret(proc)
    (work / "docker-compose.yml").write_text(proc.stdout)
    assert (work / "auth" / "htpasswd").read_text().startswith("admin:$2")
    assert (work / "certs" / "domain.crt").exists()

    checked = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "config"], cwd=work,
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    spec = yaml.safe_load(checked.stdout)
    registry, ui = spec["services"]["registry"], spec["services"]["ui"]
    assert registry["restart"] == "always" and registry["container_name"] == name
    assert registry["image"] == hosting.image
    assert f"127.0.0.1:{port}:5000" in str(registry["ports"])
    assert any(str(work / "auth") in str(v) and "/auth" in str(v) for v in registry["volumes"])
    assert any(str(work / "data") in str(v) for v in registry["volumes"])
    assert ui["environment"]["NGINX_PROXY_PASS_URL"] == "https://registry:5000"
    assert ui["image"] == "joxit/docker-registry-ui:2"

    # The same options through `up` (without the UI) give the same registry environment.
    compose_env = {k: str(v) for k, v in registry["environment"].items()
                   if not k.startswith("REGISTRY_HTTP_HEADERS_")}
    report = _up_ok(release("registry", "up", *opts, "--config-dir", str(work), "--json",
                            cwd=work, env={"RT_PW": PASSWORD}))
    assert report["containers"] == {name: "created"}
    env = dict(e.split("=", 1) for e in
               hosting.client.containers.get(name).attrs["Config"]["Env"])
    assert {k: env.get(k) for k in compose_env} == compose_env
    hosting.run("registry", "down", name)

    # And docker-compose runs it: /v2/ answers over TLS with auth.
    bare = release("registry", "compose", *opts, cwd=work, env={"RT_PW": PASSWORD})
    (work / "docker-compose.yml").write_text(bare.stdout)
    project = f"rt{uuid.uuid4().hex[:8]}"
    upc = subprocess.run(["docker-compose", "-p", project, "up", "-d"], cwd=work,
                         capture_output=True, text=True, timeout=60)
    try:
        assert upc.returncode == 0, upc.stderr
        deadline = time.monotonic() + 15
        status = None
        while time.monotonic() < deadline:
            try:
                status = requests.get(f"https://localhost:{port}/v2/", auth=("admin", PASSWORD),
                                      verify=str(work / "certs" / "domain.crt"), timeout=2).status_code
                if status == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        assert status == 200
    finally:
        subprocess.run(["docker-compose", "-p", project, "down"], cwd=work, capture_output=True,
                       timeout=60)


def test_standin_image_is_laid_out_like_registry_2(docker_engine, registry_image):
    image = docker_engine.images.get(registry_image)
    assert image.labels.get(STANDIN_LABEL) == "1"
    assert image.attrs["Config"]["Entrypoint"] == ["/bin/registry", "serve"]
    assert image.attrs["Config"]["Cmd"] == ["/etc/docker/registry/config.yml"]
