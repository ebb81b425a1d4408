"""Shared fixtures: one Docker Engine and two local registries per session, more on demand.

Session-scoped (shared by all tests, never stop/restart them):
    docker_engine        docker.DockerClient on a daemon that answers (started if needed)
    docker_engine_handle tests.support.dockerd.EngineHandle (started_by_us, log_tail(), ...)
    session_pki          tests.support.pki.PKI: CA + server cert for localhost, 127.0.0.1
                         and STRICT_TLS_IP
    plain_registry       LocalRegistry: http, no auth, host "127.0.0.1:PORT"
    auth_tls_registry    LocalRegistry: https (private CA) + htpasswd, host "localhost:PORT"
Function-scoped:
    make_registry(auth=False|True|(user, pw), tls=False, strict_tls=False, name=None,
                  start=True, **LocalRegistry kwargs) -> LocalRegistry, stopped after the test;
                  use it for tests that stop/restart a registry.
    unique_repo          a repository path unique to the test, e.g. "tests/test-push-3f9a1c"
    cleanup_images       a list; image refs/ids appended to it are removed after the test

Tests under tests/integration/ get the `integration` marker automatically
(`pytest -m "not integration"` runs the rest without Docker). If no engine can be started,
the tests that need it ERROR with the reason (they are never skipped).

Hermetic client config: DOCKER_CONFIG points to an empty per-session directory so that
credentials in ~/.docker/config.json cannot make a push pass (or fail) by accident. Set
RELEASE_TEST_KEEP_DOCKER_CONFIG=1 to keep yours.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

# `tests.support` must import however pytest is launched (`pytest`, `python -m pytest`, with
# or without tests/__init__.py): put the repository root on sys.path.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.support.dockerd import EngineUnavailable, ensure_engine
from tests.support.pki import make_pki
from tests.support.registries import STRICT_TLS_IP, LocalRegistry, RegistryError

_INTEGRATION_DIR = Path(__file__).parent / "integration"
_timings: dict[str, float] = {}
_notes: list[str] = []
_docker_config_dir: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: needs a Docker Engine and local registries (started by the fixtures)")
    if not os.environ.get("RELEASE_TEST_KEEP_DOCKER_CONFIG"):
        global _docker_config_dir
        _docker_config_dir = tempfile.mkdtemp(prefix="release-test-docker-config-")
        os.environ["DOCKER_CONFIG"] = _docker_config_dir


def pytest_unconfigure(config: pytest.Config) -> None:
    if _docker_config_dir:
        shutil.rmtree(_docker_config_dir, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _INTEGRATION_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _timings or _notes:
        parts = [f"{k} {v:.2f}s" for k, v in _timings.items()]
        terminalreporter.write_line("infra: " + ", ".join(parts + _notes))


@pytest.fixture(scope="session")
def docker_engine_handle():
    t0 = time.monotonic()
    try:
        handle, error = ensure_engine(), None
    except EngineUnavailable as exc:
        handle, error = None, str(exc)
    if handle is None:  # outside the except block: no chained traceback in the report
        pytest.fail(f"Docker Engine unavailable: {error}", pytrace=False)
    _timings["engine"] = time.monotonic() - t0
    driver = handle.client.info().get("Driver")
    _notes.append(f"dockerd {'started by tests' if handle.started_by_us else 'already running'}"
                  f" (storage driver {driver})")
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def docker_engine(docker_engine_handle):
    return docker_engine_handle.client


@pytest.fixture(scope="session")
def session_pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"), dns_names=("localhost",),
                    ip_addresses=("127.0.0.1", STRICT_TLS_IP))


def _start(registry: LocalRegistry, label: str) -> LocalRegistry:
    t0 = time.monotonic()
    try:
        registry.start()
        error = None
    except (RegistryError, OSError) as exc:
        error = str(exc)
    if error:
        pytest.fail(f"could not start the {label} registry: {error}", pytrace=False)
    _timings.setdefault(label, time.monotonic() - t0)
    return registry


@pytest.fixture(scope="session")
def plain_registry(tmp_path_factory):
    reg = LocalRegistry(tmp_path_factory.mktemp("plain-registry"), name="plain")
    yield _start(reg, "plain_registry")
    reg.stop()


@pytest.fixture(scope="session")
def auth_tls_registry(tmp_path_factory, session_pki):
    reg = LocalRegistry(tmp_path_factory.mktemp("auth-tls-registry"), name="auth-tls",
                        auth=True, pki=session_pki)
    yield _start(reg, "auth_tls_registry")
    reg.stop()


@pytest.fixture
def make_registry(tmp_path_factory, session_pki):
    created: list[LocalRegistry] = []

    def factory(*, auth=False, tls: bool = False, strict_tls: bool = False,
                name: str | None = None, start: bool = True, **kwargs) -> LocalRegistry:
        name = name or f"reg{len(created) + 1}"
        reg = LocalRegistry(tmp_path_factory.mktemp(f"registry-{name}"), name=name,
                            auth=auth or None, pki=session_pki if (tls or strict_tls) else None,
                            strict_tls=strict_tls, **kwargs)
        created.append(reg)
        return reg.start() if start else reg

    yield factory
    for reg in reversed(created):
        reg.stop()


@pytest.fixture
def unique_repo(request) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    return f"tests/{base or 'repo'}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def cleanup_images(docker_engine):
    """Append image refs/ids to this list; they are removed (force) after the test."""
    refs: list[str] = []
    yield refs
    for ref in reversed(refs):
        try:
            docker_engine.images.remove(ref, force=True)
        except Exception:
            pass


# --- token auth and fault injection (tests/support/tokenserver.py, faultproxy.py) -------------
#
# Session-scoped:
#     token_registry       TokenRegistry: https (private CA, host "localhost:PORT"), `auth: token`
#                          backed by its own TokenServer (reg.token_server: realm, stats, count(),
#                          requests); username/password like auth_tls_registry; anonymous gets a
#                          token without access. Never stop/restart it (shared).
# Function-scoped:
#     make_token_registry(tls=True, anonymous=None, name=None, start=True, **kwargs)
#                          -> TokenRegistry, stopped after the test (kwargs: auth, expires_in,
#                          acl, service, issuer, ... see TokenRegistry/TokenServer)
#     fault_proxy(registry, reset=0.0, error503=0.0, bandwidth=None, seed=1, **kwargs)
#                          -> FaultProxy (started) in front of a plain-HTTP registry (a
#                          LocalRegistry or "HOST:PORT"); proxy.host is what the product gets;
#                          stopped after the test. kwargs: latency, reset_at, match, max_faults,
#                          retry_after (see FaultProxy).

from tests.support.faultproxy import FaultProxy  # noqa: E402
from tests.support.tokenserver import TokenRegistry, make_signer  # noqa: E402


@pytest.fixture(scope="session")
def token_signer(tmp_path_factory):
    """One RS256 signing key + self-signed cert for all token registries of the session."""
    return make_signer(tmp_path_factory.mktemp("token-signer"))


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory, session_pki, token_signer):
    reg = TokenRegistry(tmp_path_factory.mktemp("token-registry"), name="token",
                        signer=token_signer, pki=session_pki)
    yield _start(reg, "token_registry")
    reg.stop()


@pytest.fixture
def make_token_registry(tmp_path_factory, session_pki, token_signer):
    created: list[TokenRegistry] = []

    def factory(*, tls: bool = True, anonymous: str | None = None, name: str | None = None,
                start: bool = True, **kwargs) -> TokenRegistry:
        name = name or f"token{len(created) + 1}"
        kwargs.setdefault("signer", token_signer)
        reg = TokenRegistry(tmp_path_factory.mktemp(f"registry-{name}"), name=name,
                            anonymous=anonymous, pki=session_pki if tls else None, **kwargs)
        created.append(reg)
        return reg.start() if start else reg

    yield factory
    for reg in reversed(created):
        reg.stop()


@pytest.fixture
def fault_proxy():
    created: list[FaultProxy] = []

    def factory(registry, reset: float = 0.0, error503: float = 0.0,
                bandwidth: float | None = None, seed: int = 1, **kwargs) -> FaultProxy:
        if isinstance(registry, str):
            upstream = registry
        else:
            if getattr(registry, "tls", False):
                raise ValueError(f"fault_proxy speaks plain HTTP only; {registry!r} uses TLS")
            upstream = registry.host
        proxy = FaultProxy(upstream, reset=reset, error503=error503, bandwidth=bandwidth,
                           seed=seed, name=f"proxy{len(created) + 1}", **kwargs)
        created.append(proxy)
        return proxy.start()

    yield factory
    for proxy in reversed(created):
        proxy.stop()


@pytest.fixture
def auth_env(auth_tls_registry):
    """The env vars a release.yml `registry_block(..., with_auth=True)` names, for auth_tls_registry."""
    return {"TEST_REG_USER": auth_tls_registry.username, "TEST_REG_PASS": auth_tls_registry.password}
