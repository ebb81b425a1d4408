"""BuildKit builds on the real engine: today's Dockerfiles, secrets, `.dockerignore`, cache import.

Each image is released to a real registry, checked through the registry API, and run back
with `docker run`. The Dockerfiles are in tests/dockerfiles/ (see its README).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.support.release_cli import registry_block, run_release

pytestmark = pytest.mark.integration

DOCKERFILES = Path(__file__).resolve().parents[1] / "dockerfiles"


def project(tmp_path: Path, name: str, registries: list[str], *, image_extra: str = "") -> Path:
    """Copy tests/dockerfiles/NAME (+ busybox) to tmp_path/app and write release.yml beside it."""
    app = tmp_path / "app"
    shutil.copytree(DOCKERFILES / name, app)
    shutil.copy("/bin/busybox", app / "busybox")
    (app / "nonce.txt").write_text(f"{uuid.uuid4()}\n")         # no test reuses another's cache
    config = tmp_path / "release.yml"
    config.write_text("image:\n"
                      f"  name: bk-{name}-{uuid.uuid4().hex[:8]}\n"
                      "  context: app\n"
                      f"{image_extra}"
                      "registries:\n" + "\n".join(registries) + "\n")
    return config


def image_name(config: Path) -> str:
    return re.search(r"^  name: (\S+)$", config.read_text(), re.M).group(1)


def docker_run(client, ref: str, *command: str) -> str:
    out = client.containers.run(ref, list(command) or None, remove=True)
    return out.decode()


def engine_major(client) -> int:
    return int(client.version()["Version"].split(".")[0])


@pytest.fixture
def repo():
    return f"bk/app-{uuid.uuid4().hex[:8]}"


# -- a modern Dockerfile ------------------------------------------------------------------------

def test_modern_dockerfile_released_and_run_back(tmp_path, docker_engine, plain_registry, repo,
                                                 cleanup_images):
    config = project(tmp_path, "modern", [registry_block("plain", plain_registry, repo)])
    big = tmp_path / "app" / "big.bin"
    with open(big, "wb") as handle:              # 50 MB the .dockerignore must keep out
        handle.write(os.urandom(1 << 20) * 50)
    (tmp_path / "app" / "debug.tmp").write_text("ignored by *.tmp\n")
    (tmp_path / "app" / "src" / "main.txt").write_text(f"hello from main.txt {uuid.uuid4()}\n")

    proc = run_release(config, "build-push", "1.0.0", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    ref = plain_registry.ref(repo, "1.0.0")
    cleanup_images += [f"{image_name(config)}:1.0.0", ref]
    assert "BuildKit via the Engine API" in proc.stderr
    # one line per step, with its outcome
    assert re.search(r"^  \| \[builder \d/\d\] RUN --mount=type=cache.*: DONE \d+\.\d+s$",
                     proc.stderr, re.M), proc.stderr
    assert plain_registry.manifest_digest(repo, "1.0.0") == report["digest"]
    assert plain_registry.skopeo_digest(ref) == report["digest"]

    subprocess.run(["docker", "pull", "-q", ref], check=True, capture_output=True)
    out = docker_run(docker_engine, ref)
    arch = docker_engine.version()["Arch"]
    assert "hello from main.txt" in out
    assert f"platform=linux/{arch} arch={arch} build=linux/{arch}" in out    # automatic args
    assert "asset from another stage" in out                                 # bind from a stage
    assert "-rwxr-xr-x" in out                                               # COPY --chmod=755
    listing = out.split("-rwxr-xr-x", 1)[1].split()
    assert "big.bin" not in listing and "debug.tmp" not in listing           # .dockerignore
    assert "keep.tmp" in listing and "Dockerfile" in listing

    # The cache mount outlives the build: a rebuild with a change before that step runs it
    # again, and the counter it keeps in the mount has grown.
    (tmp_path / "app" / "src" / "main.txt").write_text("hello again\n")
    again = run_release(config, "build-push", "1.0.1", "--json")
    assert again.returncode == 0, again.stderr
    cleanup_images += [f"{image_name(config)}:1.0.1"]
    runs = docker_run(docker_engine, f"{image_name(config)}:1.0.1", "cat", "/built.txt")
    assert "hello again" in runs
    assert re.search(r"\[tools 2/2\] RUN .*: CACHED", again.stderr), again.stderr


def test_context_tar_leaves_the_ignored_50_mb_out(tmp_path):
    import io

    from pipeline.engine.buildkit.context import prepare_context
    app = tmp_path / "app"
    shutil.copytree(DOCKERFILES / "modern", app)
    (app / "big.bin").write_bytes(b"\0" * (50 << 20))
    context = prepare_context(app, "Dockerfile")
    data = b"".join(context.tar())
    names = tarfile.open(fileobj=io.BytesIO(data)).getnames()
    assert len(data) < 1 << 20
    assert "big.bin" not in names and "keep.tmp" in names and ".dockerignore" in names
    assert context.ignore_file == ".dockerignore"


def test_engine23_features_or_skip(tmp_path, docker_engine, plain_registry, repo, cleanup_images):
    major = engine_major(docker_engine)
    if major < 23:
        pytest.skip(f"COPY --link and heredocs need the Dockerfile frontend of Engine 23+; "
                    f"this engine is {docker_engine.version()['Version']}")
    config = project(tmp_path, "engine23", [registry_block("plain", plain_registry, repo)])
    proc = run_release(config, "build-push", "1.0.0")
    assert proc.returncode == 0, proc.stderr
    cleanup_images.append(f"{image_name(config)}:1.0.0")
    out = docker_run(docker_engine, f"{image_name(config)}:1.0.0")
    assert "payload" in out and "from a heredoc" in out


def test_failing_step_names_the_dockerfile_line_and_its_output(tmp_path, docker_engine,
                                                                plain_registry, repo):
    config = project(tmp_path, "cached", [registry_block("plain", plain_registry, repo)])
    dockerfile = tmp_path / "app" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace(
        'RUN sleep "$SECONDS_OF_WORK"',
        'RUN echo "compiling part one" && echo "compiling part two" && exit 3 && sleep "$SECONDS_OF_WORK"'))
    proc = run_release(config, "build-push", "1.0.0")
    assert proc.returncode == 1, proc.stderr
    assert "error: build failed at Dockerfile line 7: RUN echo \"compiling part one\"" in proc.stderr
    assert "exit code: 3" in proc.stderr
    assert "> compiling part two" in proc.stderr.split("error: build failed", 1)[1]
    assert plain_registry.tags(repo) == []


# -- secrets -------------------------------------------------------------------------------------

def test_secret_reaches_the_step_and_nothing_else(tmp_path, docker_engine, plain_registry, repo,
                                                  cleanup_images):
    secret = f"npm-token-{uuid.uuid4().hex}"
    config = project(tmp_path, "secret", [registry_block("plain", plain_registry, repo)],
                     image_extra="  secrets:\n    - id: npmrc\n      env: TEST_NPM_TOKEN\n")
    seen_argv: list[str] = []
    stop = threading.Event()

    def watch_argv():                    # every process's argv while the build runs
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        seen_argv.append(Path(f"/proc/{pid}/cmdline").read_bytes()
                                         .replace(b"\0", b" ").decode(errors="replace"))
                    except OSError:
                        pass
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_argv, daemon=True)
    watcher.start()
    try:
        proc = run_release(config, "build-push", "1.0.0", env={"TEST_NPM_TOKEN": secret})
    finally:
        stop.set()
        watcher.join()
    local = f"{image_name(config)}:1.0.0"
    cleanup_images.append(local)
    assert proc.returncode == 0, proc.stderr
    assert "docker build" in proc.stderr or "buildx" in proc.stderr      # the CLI's session
    # 1. the step got it
    assert docker_run(docker_engine, local).strip() == hashlib.sha256(secret.encode()).hexdigest()
    assert plain_registry.manifest_digest(repo, "1.0.0") is not None
    # 2. never in any argv (the build's docker CLI included)
    assert any("--secret id=npmrc,env=TEST_NPM_TOKEN" in a for a in seen_argv)
    assert not any(secret in a for a in seen_argv)
    # 3. never in the log, even where the step itself prints it
    assert secret not in proc.stdout + proc.stderr
    assert "> a careless step prints it: ***" in proc.stderr
    # 4. never in the image: layers, config, history
    saved = subprocess.run(["docker", "save", local], capture_output=True, check=True).stdout
    assert secret.encode() not in saved
    for layer_tar in _layer_blobs(saved):
        assert secret.encode() not in layer_tar
    history = subprocess.run(["docker", "history", "--no-trunc", local], capture_output=True,
                             text=True, check=True).stdout
    assert secret not in history
    # 5. not in the cache key: a new value reuses the cached step (BuildKit's contract)
    other = f"other-{uuid.uuid4().hex}"
    again = run_release(config, "build-push", "1.0.1", env={"TEST_NPM_TOKEN": other})
    assert again.returncode == 0, again.stderr
    cleanup_images.append(f"{image_name(config)}:1.0.1")
    assert re.search(r"RUN --mount=type=secret.*: CACHED", again.stderr), again.stderr
    assert other not in again.stdout + again.stderr


def _layer_blobs(saved: bytes):
    import io
    with tarfile.open(fileobj=io.BytesIO(saved)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                yield tar.extractfile(member).read()


def test_failing_step_through_the_cli_names_its_line(tmp_path, docker_engine, plain_registry, repo):
    config = project(tmp_path, "secret", [registry_block("plain", plain_registry, repo)],
                     image_extra="  secrets:\n    - id: npmrc\n      env: TEST_NPM_TOKEN\n")
    dockerfile = tmp_path / "app" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("&& sleep 2", "&& echo giving up && exit 4"))
    secret = f"tok-{uuid.uuid4().hex}"
    proc = run_release(config, "build-push", "1.0.0", env={"TEST_NPM_TOKEN": secret})
    assert proc.returncode == 1, proc.stderr
    error = proc.stderr.split("error: ", 1)[1]
    assert error.startswith("build failed at Dockerfile line 10: RUN --mount=type=secret,id=npmrc")
    assert "exit code: 4" in error and "> giving up" in error
    assert secret not in proc.stdout + proc.stderr
    assert plain_registry.tags(repo) == []


def test_a_secret_mount_not_listed_in_release_yml_says_how_to_list_it(tmp_path, docker_engine,
                                                                       plain_registry, repo):
    config = project(tmp_path, "secret", [registry_block("plain", plain_registry, repo)])
    proc = run_release(config, "build-push", "1.0.0")
    assert proc.returncode == 1, proc.stderr
    assert "build failed at Dockerfile line 10: RUN --mount=type=secret,id=npmrc" in proc.stderr
    assert "hint: a step mounts a secret (or an SSH agent) that release.yml does not list" in proc.stderr
    assert plain_registry.tags(repo) == []


def test_unset_secret_variable_stops_before_the_build(tmp_path, docker_engine, plain_registry, repo):
    config = project(tmp_path, "secret", [registry_block("plain", plain_registry, repo)],
                     image_extra="  secrets:\n    - id: npmrc\n      env: TEST_UNSET_TOKEN_XYZ\n")
    env = {k: v for k, v in os.environ.items() if k != "TEST_UNSET_TOKEN_XYZ"}
    proc = run_release(config, "build-push", "1.0.0", env=env)
    assert proc.returncode == 2, proc.stderr
    assert "image.secrets[0] (npmrc): environment variable TEST_UNSET_TOKEN_XYZ is not set" in proc.stderr
    assert docker_engine.api.images(name=image_name(config)) == []
    assert plain_registry.tags(repo) == []


def test_missing_secret_file_is_a_config_error(tmp_path, docker_engine, plain_registry, repo):
    config = project(tmp_path, "secret", [registry_block("plain", plain_registry, repo)],
                     image_extra="  secrets:\n    - id: npmrc\n      file: secrets/npmrc\n")
    proc = run_release(config, "build-push", "1.0.0")
    assert proc.returncode == 2
    assert re.search(r"release\.yml:6:\d+: image\.secrets\[0\]\.file not found: secrets/npmrc",
                     proc.stderr), proc.stderr
    assert docker_engine.api.images(name=image_name(config)) == []
    assert plain_registry.tags(repo) == []


def test_secret_from_a_file(tmp_path, docker_engine, plain_registry, repo, cleanup_images):
    config = project(tmp_path, "secret", [registry_block("plain", plain_registry, repo)],
                     image_extra="  secrets:\n    - id: npmrc\n      file: npmrc.secret\n")
    value = f"file-secret-{uuid.uuid4().hex}"
    (tmp_path / "npmrc.secret").write_text(value)
    proc = run_release(config, "build-push", "1.0.0")
    assert proc.returncode == 0, proc.stderr
    cleanup_images.append(f"{image_name(config)}:1.0.0")
    out = docker_run(docker_engine, f"{image_name(config)}:1.0.0").strip()
    assert out == hashlib.sha256(value.encode()).hexdigest()
    assert value not in proc.stdout + proc.stderr


# -- cache_from ----------------------------------------------------------------------------------

def test_cold_builder_reuses_the_released_image_as_cache(tmp_path, docker_engine, auth_tls_registry,
                                                         auth_env, repo, cleanup_images):
    """CI-style: release, forget every local image and the build cache, build again with
    cache_from the registry (which needs credentials): the expensive RUN step is CACHED, and
    the layers are the ones release's own fan-out push compressed."""
    config = project(tmp_path, "cached", [registry_block("secure", auth_tls_registry, repo,
                                                         with_auth=True)])
    (tmp_path / "app" / "payload.txt").write_text("v1\n")
    first = run_release(config, "build-push", "1.0.0", "--json", env=auth_env)
    assert first.returncode == 0, first.stderr
    assert re.search(r"RUN sleep .*: DONE [3-9]\.\d+s", first.stderr), first.stderr
    name = image_name(config)
    _forget(docker_engine, name)

    text = config.read_text().replace(
        "  context: app\n", f"  context: app\n  cache_from: [{auth_tls_registry.host}/{repo}:latest]\n")
    config.write_text(text)
    (tmp_path / "app" / "payload.txt").write_text("v2\n")         # only the last step changes
    start = time.monotonic()
    second = run_release(config, "build-push", "1.0.1", "--json", env=auth_env)
    took = time.monotonic() - start
    assert second.returncode == 0, second.stderr
    cleanup_images += [f"{name}:1.0.1", f"{auth_tls_registry.host}/{repo}:latest"]
    assert re.search(r"RUN sleep .*: CACHED", second.stderr), second.stderr
    assert took < 60
    report = json.loads(second.stdout)
    assert auth_tls_registry.manifest_digest(repo, "1.0.1") == report["digest"]
    assert auth_tls_registry.manifest_digest(repo, "latest") == report["digest"]
    out = docker_run(docker_engine, f"{name}:1.0.1")
    assert "worked 4 s" in out and "v2" in out
    assert auth_env["TEST_REG_PASS"] not in second.stdout + second.stderr


def test_missing_cache_image_is_a_warning(tmp_path, docker_engine, plain_registry, repo,
                                          cleanup_images):
    config = project(tmp_path, "cached", [registry_block("plain", plain_registry, repo)],
                     image_extra=f"  cache_from: [{plain_registry.host}/{repo}:no-such-tag]\n"
                                 "  build_args: {SECONDS_OF_WORK: '0'}\n")
    (tmp_path / "app" / "payload.txt").write_text("x\n")
    proc = run_release(config, "build-push", "1.0.0")
    assert proc.returncode == 0, proc.stderr
    cleanup_images.append(f"{image_name(config)}:1.0.0")
    assert f"warning: cache_from {plain_registry.host}/{repo}:no-such-tag does not exist; " \
           f"building without it" in proc.stderr
    assert plain_registry.manifest_digest(repo, "1.0.0") is not None


def _forget(client, name: str) -> None:
    """Remove every local image of this test and the whole build cache (a fresh CI runner)."""
    for image in client.images.list():
        if any(t.startswith(name) or "/bk/" in t for t in image.tags):
            client.images.remove(image.id, force=True)
    subprocess.run(["docker", "builder", "prune", "-af"], check=True, capture_output=True)


# -- the builder choice ------------------------------------------------------------------------

def test_classic_builder_still_works(tmp_path, docker_engine, plain_registry, repo, cleanup_images):
    config = project(tmp_path, "cached", [registry_block("plain", plain_registry, repo)],
                     image_extra="  builder: classic\n  build_args: {SECONDS_OF_WORK: '0'}\n")
    (tmp_path / "app" / "payload.txt").write_text("classic\n")
    proc = run_release(config, "build-push", "1.0.0")
    assert proc.returncode == 0, proc.stderr
    cleanup_images.append(f"{image_name(config)}:1.0.0")
    assert "(the classic builder)" in proc.stderr
    assert "Step 1/" in proc.stderr                     # the classic builder's own output
    assert "classic" in docker_run(docker_engine, f"{image_name(config)}:1.0.0")


def test_forced_buildkit_on_an_engine_without_it_is_exit_2(tmp_path, plain_registry, repo):
    """An engine that answers API 1.38 (before BuildKit): a stand-in on a Unix socket, since
    every real engine here has BuildKit."""
    from tests.support.old_engine import old_engine
    config = project(tmp_path, "cached", [registry_block("plain", plain_registry, repo)],
                     image_extra="  builder: buildkit\n")
    with old_engine(tmp_path / "old.sock") as host:
        proc = run_release(config, "ci", "build", env={"DOCKER_HOST": host})
    assert proc.returncode == 2, proc.stderr
    assert "cannot build with BuildKit, which image.builder is buildkit requires" in proc.stderr
    assert "API 1.38" in proc.stderr


def test_buildx_route_passes_cache_specs_through(tmp_path, docker_engine, plain_registry, repo,
                                                 cleanup_images):
    """No buildx plugin can be installed here: a docker CLI stand-in that has `buildx` records
    the command line release runs and builds it with Debian's CLI 20.10 on the real engine."""
    stub_dir = Path(__file__).resolve().parents[1] / "support" / "bin"
    log = tmp_path / "argv.jsonl"
    config = project(tmp_path, "cached", [registry_block("plain", plain_registry, repo)],
                     image_extra="  build_args: {SECONDS_OF_WORK: '0'}\n"
                                 "  cache_from: [type=gha]\n"
                                 "  cache_to: ['type=gha,mode=max']\n")
    env = {"PATH": f"{stub_dir}:{os.environ['PATH']}", "STUB_DOCKER_LOG": str(log)}
    plan = run_release(config, "plan", "1.0.0", env=env)
    assert "builder: BuildKit via the docker CLI (buildx) for cache type=gha" in plan.stdout
    proc = run_release(config, "build-push", "1.0.0", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    cleanup_images.append(f"{image_name(config)}:1.0.0")
    assert "building through docker buildx" in proc.stderr
    builds = [a for a in map(json.loads, log.read_text().splitlines()) if a[:2] == ["buildx", "build"]]
    assert len(builds) == 1
    argv = builds[0]
    assert "--load" in argv and argv[argv.index("--cache-from") + 1] == "type=gha"
    assert argv[argv.index("--cache-to") + 1] == "type=gha,mode=max"
    assert re.search(r"RUN sleep .*: DONE", proc.stderr), proc.stderr       # plain progress read
    digest = json.loads(proc.stdout)["digest"]
    assert plain_registry.manifest_digest(repo, "1.0.0") == digest
    assert "payload v0" in docker_run(docker_engine, f"{image_name(config)}:1.0.0")


def test_dockerignore_matches_the_docker_cli(tmp_path, docker_engine, plain_registry, repo,
                                             cleanup_images):
    """The same context built by `DOCKER_BUILDKIT=1 docker build` and by release: the files
    that reach the image are the same, for patterns with **, !, anchors and directories."""
    app = tmp_path / "app"
    files = ["Dockerfile", "keep.txt", "a.tmp", "keep.tmp", "docs/guide.md", "docs/img/x.png",
             "src/main.c", "src/gen/out.o", "src/deep/er/out.o", "src/deep/keep.o",
             "node_modules/pkg/index.js", "build/app", "notes/todo.txt", " space name.txt",
             ".git/HEAD", ".env", "sub/.env"]
    for name in files:
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_text(f"{name}\n")
    (app / "Dockerfile").write_text("FROM scratch\nCOPY . /ctx\n")
    (app / ".dockerignore").write_text(
        "# comments and blank lines are skipped\n\n"
        "**/*.tmp\n!keep.tmp\n/docs/img\nnode_modules\n**/*.o\n!src/deep/keep.o\n"
        "build/\n./notes\n.git\n.env\n docs/guide.md \n!docs/guide.md\n")
    config = tmp_path / "release.yml"
    config.write_text(f"image:\n  name: bk-ignore-{uuid.uuid4().hex[:8]}\n  context: app\n"
                      "registries:\n" + registry_block("plain", plain_registry, repo) + "\n")
    proc = run_release(config, "ci", "build")
    assert proc.returncode == 0, proc.stderr
    ours = _files_in(docker_engine, f"{image_name(config)}:ci")
    theirs_tag = f"{image_name(config)}:docker-cli"
    subprocess.run(["/usr/bin/docker", "build", "-q", "-t", theirs_tag, str(app)], check=True,
                   capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "1"})
    cleanup_images += [f"{image_name(config)}:ci", theirs_tag]
    theirs = _files_in(docker_engine, theirs_tag)
    assert ours == theirs
    assert "ctx/keep.tmp" in ours and "ctx/a.tmp" not in ours and "ctx/src/deep/keep.o" in ours
    assert "ctx/docs/guide.md" in ours and "ctx/docs/img/x.png" not in ours
    assert "ctx/sub/.env" in ours and "ctx/.env" not in ours and "ctx/.git/HEAD" not in ours
    assert "ctx/ space name.txt" in ours and "ctx/node_modules/pkg/index.js" not in ours


def _files_in(client, ref: str) -> set[str]:
    import io
    container = client.containers.create(ref, "x")
    try:
        data = b"".join(container.export())
    finally:
        container.remove(force=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name.lstrip("./") for m in tar.getmembers() if m.isfile()}


def test_target_build_args_and_labels_on_buildkit(tmp_path, docker_engine, plain_registry, repo,
                                                  cleanup_images):
    config = project(tmp_path, "modern", [registry_block("plain", plain_registry, repo)],
                     image_extra="  target: builder\n  build_args: {UNUSED: x}\n"
                                 "  labels: {team: core}\n")
    (tmp_path / "app" / "src" / "main.txt").write_text(f"target test {uuid.uuid4()}\n")
    proc = run_release(config, "build-push", "2.0.0", "--json")
    assert proc.returncode == 0, proc.stderr
    local = f"{image_name(config)}:2.0.0"
    cleanup_images.append(local)
    assert "[stage-3" not in proc.stderr                  # the final stage was not built
    image = docker_engine.images.get(local)
    assert image.labels["team"] == "core"
    assert image.labels["org.opencontainers.image.version"] == "2.0.0"
    assert "target test" in docker_run(docker_engine, local, "cat", "/out/built.txt")
    assert plain_registry.manifest_digest(repo, "2.0.0") == json.loads(proc.stdout)["digest"]


# -- images from registries that need credentials ------------------------------------------------

def _push_base(client, registry, repo: str, tmp_path: Path) -> str:
    """A base image on `registry` (FROM scratch + busybox + a marker), gone from the engine."""
    ctx = tmp_path / "base"
    ctx.mkdir()
    shutil.copy("/bin/busybox", ctx / "busybox")
    marker = f"base {uuid.uuid4()}"
    (ctx / "base.txt").write_text(marker + "\n")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY busybox /bin/busybox\n"
                                    'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
                                    "COPY base.txt /base.txt\n")
    ref = f"{registry.host}/{repo}"
    from tests.support.images import build_image, push_image
    build_image(client, ctx, f"{ref}:1")
    push_image(client, ref, "1", registry.auth_config)
    client.images.remove(f"{ref}:1", force=True)
    return marker


def test_a_base_image_behind_a_login_is_pulled_with_release_credentials(
        tmp_path, docker_engine, auth_tls_registry, auth_env, repo, cleanup_images):
    """The Engine API's BuildKit has no session to ask for credentials: release pulls the
    base first with the ones release.yml names for that registry."""
    base_repo = f"{repo}-base"
    marker = _push_base(docker_engine, auth_tls_registry, base_repo, tmp_path)
    base = f"{auth_tls_registry.host}/{base_repo}:1"
    app = tmp_path / "app"
    app.mkdir()
    (app / "Dockerfile").write_text("ARG BASE=nothing\nFROM ${BASE}\n"
                                    "RUN cp /base.txt /copy.txt\nCMD [\"cat\", \"/copy.txt\"]\n")
    config = tmp_path / "release.yml"
    config.write_text(f"image:\n  name: bk-base-{uuid.uuid4().hex[:8]}\n  context: app\n"
                      f"  build_args: {{BASE: '{base}'}}\n"
                      "registries:\n" + registry_block("secure", auth_tls_registry, repo,
                                                       with_auth=True) + "\n")
    cleanup_images.append(base)

    without = run_release(config, "build-push", "1.0.0", env={"TEST_REG_USER": "", "TEST_REG_PASS": ""})
    assert without.returncode == 2           # the named variables are empty: nothing happens
    proc = run_release(config, "build-push", "1.0.0", env=auth_env)
    assert proc.returncode == 0, proc.stderr
    cleanup_images.append(f"{image_name(config)}:1.0.0")
    assert f"pulling the base image {base} with the credentials for {auth_tls_registry.host}" \
        in proc.stderr
    assert docker_run(docker_engine, f"{image_name(config)}:1.0.0").strip() == marker
    assert auth_tls_registry.manifest_digest(repo, "1.0.0") is not None
    assert auth_env["TEST_REG_PASS"] not in proc.stdout + proc.stderr


def test_a_base_image_without_credentials_says_to_log_in(tmp_path, docker_engine, auth_tls_registry,
                                                         plain_registry, repo):
    base_repo = f"{repo}-base"
    _push_base(docker_engine, auth_tls_registry, base_repo, tmp_path)
    app = tmp_path / "app"
    app.mkdir()
    (app / "Dockerfile").write_text(f"FROM {auth_tls_registry.host}/{base_repo}:1\nRUN true\n")
    config = tmp_path / "release.yml"
    config.write_text(f"image:\n  name: bk-nobase-{uuid.uuid4().hex[:8]}\n  context: app\n"
                      "registries:\n" + registry_block("plain", plain_registry, repo) + "\n")
    proc = run_release(config, "build-push", "1.0.0")
    assert proc.returncode == 1, proc.stderr
    assert "hint: check the base image's name; if its registry wants credentials" in proc.stderr
    assert plain_registry.tags(repo) == []


def test_a_cache_pull_moves_no_local_tag(tmp_path, docker_engine, plain_registry, repo,
                                         cleanup_images):
    """cache_from HOST/REPO:latest when the engine has its own, unpushed HOST/REPO:latest: the
    cache image is pulled by digest, and the local tag still names the local image."""
    config = project(tmp_path, "cached", [registry_block("plain", plain_registry, repo)],
                     image_extra="  build_args: {SECONDS_OF_WORK: '0'}\n")
    (tmp_path / "app" / "payload.txt").write_text("released\n")
    first = run_release(config, "build-push", "1.0.0")
    assert first.returncode == 0, first.stderr
    latest = plain_registry.ref(repo, "latest")
    other = tmp_path / "other"
    other.mkdir()
    (other / "Dockerfile").write_text("FROM scratch\nCOPY f /f\n")
    (other / "f").write_text(f"local only {uuid.uuid4()}\n")
    from tests.support.images import build_image
    local_id = build_image(docker_engine, other, latest)
    cleanup_images += [latest, f"{image_name(config)}:1.0.0", f"{image_name(config)}:1.0.1"]
    config.write_text(config.read_text().replace("  context: app\n",
                                                 f"  context: app\n  cache_from: [{latest}]\n"))
    for builder in ("classic", "auto"):
        proc = run_release(config, "ci", "build", "--builder", builder)
        assert proc.returncode == 0, proc.stderr
        assert docker_engine.images.get(latest).id == local_id, builder



def test_sigterm_stops_the_cli_build_and_leaves_nothing(tmp_path, docker_engine, plain_registry,
                                                        repo):
    """CI cancels with SIGTERM: the docker CLI building for release stops with it, and its
    temporary directory is gone; meanwhile a silent long step has shown its header."""
    import signal
    import sys
    config = project(tmp_path, "secret", [registry_block("plain", plain_registry, repo)],
                     image_extra="  secrets:\n    - id: npmrc\n      env: TEST_NPM_TOKEN\n")
    dockerfile = tmp_path / "app" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("&& sleep 2", "&& sleep 60"))
    spool = tmp_path / "tmp"
    spool.mkdir()
    env = {**os.environ, "TEST_NPM_TOKEN": "t0ken", "TMPDIR": str(spool)}
    env.pop("GITHUB_ACTIONS", None)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "-c", str(config), "build-push",
                             "1.0.0"], stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "RUN --mount=type=secret" in line:
            break
    children = _children(proc.pid)
    assert any("docker" in c for c in children.values()), children
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=30)[1]
    assert proc.returncode != 0
    time.sleep(0.5)
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or \
            "zombie" in Path(f"/proc/{pid}/status").read_text().lower(), children[pid]
    assert not list(spool.glob("release-build-*"))
    assert plain_registry.tags(repo) == []
    assert "t0ken" not in "".join(seen) + rest


def _children(pid: int) -> dict[int, str]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes() \
                        .replace(b"\0", b" ").decode(errors="replace")
            except (OSError, ValueError, IndexError):
                pass
    return found


def test_ci_build_twice_gives_the_same_image(tmp_path, docker_engine, plain_registry, repo,
                                             cleanup_images):
    """An unchanged tree built again: every step CACHED and the same image id (the created
    label of the earlier build is reused), not a new image that differs in its timestamp."""
    config = project(tmp_path, "cached", [registry_block("plain", plain_registry, repo)],
                     image_extra="  build_args: {SECONDS_OF_WORK: '0'}\n")
    first = run_release(config, "ci", "build")
    assert first.returncode == 0, first.stderr
    cleanup_images.append(f"{image_name(config)}:ci")
    again = run_release(config, "ci", "build")
    assert again.returncode == 0, again.stderr
    ids = [re.search(r"\((sha256:[0-9a-f]{64})\)", p.stdout).group(1) for p in (first, again)]
    assert ids[0] == ids[1]
    assert "built: 5 steps, 5 cached" in again.stderr
