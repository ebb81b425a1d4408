#!/usr/bin/env bash
# Fresh Debian 12 machine (root) -> the example release pushed to a local registry.
#
#   scripts/dev-setup.sh            # from anywhere; works in the repository root
#
# 1. apt-get install docker.io docker-registry skopeo apache2-utils busybox-static openssl
# 2. .venv + pip install -e .
# 3. dockerd, if no engine answers (log: $STATE_DIR/dockerd.log; storage driver overlay2,
#    falling back to vfs)
# 4. docker-registry on 127.0.0.1:5000, if nothing listens there (storage: $STATE_DIR/registry)
# 5. copy /bin/busybox into examples/ (the example's build stage needs a shell; nothing can
#    be pulled on a machine without Docker Hub), then
#    .venv/bin/release -c examples/release.yml build-push 1.0.0
#
# Idempotent: run it again and it reuses the venv, the engine and the registry; the same
# commit releases the same image again ("already there"). From another commit the image
# differs (its revision label), and release refuses to replace a released version: give
# another one with VERSION=1.0.1, or start from an empty registry (rm -r $STATE_DIR/registry).
# Stop what it started:  kill "$(cat /tmp/release-dev/dockerd.pid)" "$(cat /tmp/release-dev/registry.pid)"
# Env: STATE_DIR (default /tmp/release-dev), SKIP_APT=1 (packages already there),
#      VERSION (default 1.0.0),
#      SKIP_RELEASE=1 (set everything up but do not run `release`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
STATE_DIR=${STATE_DIR:-/tmp/release-dev}
REGISTRY_ADDR=127.0.0.1:5000
mkdir -p "$STATE_DIR"

log() { echo "==> $*"; }
die() { echo "ERROR: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (apt-get, dockerd)"

# 1. packages -------------------------------------------------------------------------------
if [[ "${SKIP_APT:-}" != 1 ]]; then
    log "apt-get install (docker.io docker-registry skopeo apache2-utils busybox-static openssl docker-compose)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3-venv docker.io docker-registry skopeo apache2-utils busybox-static \
        openssl iproute2 docker-compose >/dev/null
fi

# 2. venv -----------------------------------------------------------------------------------
PYTHON=""
for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        PYTHON=$(command -v "$candidate"); break
    fi
done
[[ -n "$PYTHON" ]] || die "no Python >= 3.11 found"
if [[ ! -x .venv/bin/python ]]; then
    log "creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
fi
log "pip install -e ."
PIP_DISABLE_PIP_VERSION_CHECK=1 .venv/bin/python -m pip install -q -e .

# 3. Docker Engine --------------------------------------------------------------------------
engine_ok() { .venv/bin/python -c 'import docker; docker.from_env(timeout=5).ping()' >/dev/null 2>&1; }

wait_engine() {  # $1 = pid of the dockerd we started
    for _ in $(seq 1 120); do
        engine_ok && return 0
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.5
    done
    return 1
}

if engine_ok; then
    log "Docker Engine already answers"
else
    [[ -z "${DOCKER_HOST:-}" || "${DOCKER_HOST}" == unix://* ]] ||
        die "DOCKER_HOST=$DOCKER_HOST does not answer; start that engine or unset DOCKER_HOST"
    HOST_ARGS=()
    [[ -n "${DOCKER_HOST:-}" ]] && HOST_ARGS=(--host "$DOCKER_HOST")
    started=""
    for driver_args in "" "--storage-driver vfs"; do
        log "starting dockerd ${driver_args:-(default storage driver)}; log $STATE_DIR/dockerd.log"
        # shellcheck disable=SC2086
        nohup dockerd "${HOST_ARGS[@]}" --pidfile "$STATE_DIR/dockerd.pid" $driver_args \
            >"$STATE_DIR/dockerd.log" 2>&1 </dev/null &
        pid=$!
        if wait_engine "$pid"; then started=$pid; break; fi
        echo "dockerd ${driver_args:-(default)} did not come up; last log lines:" >&2
        tail -n 15 "$STATE_DIR/dockerd.log" >&2 || true
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [[ -n "$started" ]] || die "could not start dockerd (see $STATE_DIR/dockerd.log)"
    log "dockerd running (pid $started, storage driver $(.venv/bin/python -c 'import docker; print(docker.from_env().info()["Driver"])'))"
fi

# 4. registry on 127.0.0.1:5000 -------------------------------------------------------------
listening() { (exec 3<>/dev/tcp/127.0.0.1/5000) 2>/dev/null; }

if listening; then
    log "something already listens on $REGISTRY_ADDR; using it"
else
    mkdir -p "$STATE_DIR/registry"
    cat >"$STATE_DIR/registry.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $STATE_DIR/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
health:
  storagedriver:
    enabled: false
EOF
    log "starting docker-registry on $REGISTRY_ADDR; log $STATE_DIR/registry.log"
    nohup docker-registry serve "$STATE_DIR/registry.yml" >"$STATE_DIR/registry.log" 2>&1 </dev/null &
    echo $! >"$STATE_DIR/registry.pid"
    for _ in $(seq 1 50); do listening && break; sleep 0.2; done
    listening || { tail -n 20 "$STATE_DIR/registry.log" >&2; die "docker-registry did not start"; }
fi
.venv/bin/python - <<'EOF'
import requests, sys
r = requests.get("http://127.0.0.1:5000/v2/", timeout=5)
if r.status_code not in (200, 401):
    sys.exit(f"127.0.0.1:5000/v2/ answered HTTP {r.status_code}: not a registry?")
print(f"==> registry answers /v2/ (HTTP {r.status_code})")
EOF

# 5. the main job ---------------------------------------------------------------------------
if [[ "${SKIP_RELEASE:-}" == 1 ]]; then
    log "SKIP_RELEASE=1: not running release"
    exit 0
fi
for bb in /bin/busybox /usr/bin/busybox; do
    [[ -x $bb ]] && { install -m 0755 "$bb" examples/busybox; break; }
done
[[ -x examples/busybox ]] || die "busybox not found (apt-get install busybox-static)"
VERSION=${VERSION:-1.0.0}
log ".venv/bin/release -c examples/release.yml build-push $VERSION"
exec .venv/bin/release -c examples/release.yml build-push "$VERSION"
