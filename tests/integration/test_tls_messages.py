"""TLS failures against real `docker-registry` TLS registries each get their own message.

A wrong host name names the certificate's names, an expired certificate its date, an
untrusted CA says which extra CA was trusted (release.yml's ca_file, Docker's
/etc/docker/certs.d/HOST/ca.crt, or none); each keeps OpenSSL's reason and has its own hint.
All exit 1 and never print the password.
"""

from __future__ import annotations

import shutil
import uuid
import warnings
from datetime import datetime, timezone

import pytest
import requests

from pipeline.registry.tls import DOCKER_CERTS_D
from tests.support.pki import make_pki
from tests.support.registries import LocalRegistry
from tests.support.release_cli import image_name, run_release, write_release

REPO = "tests/tls-messages"


@pytest.fixture
def tls_registry(tmp_path):
    """tls_registry(pki, auth=None) -> a started LocalRegistry serving pki's server cert on
    localhost:PORT; its CA is not installed anywhere."""
    created: list[LocalRegistry] = []

    def factory(pki, auth=None) -> LocalRegistry:
        reg = LocalRegistry(tmp_path / f"reg-{uuid.uuid4().hex[:6]}", name="tls-msg", auth=auth,
                            pki=pki, install_ca=False, verify_ready=False)
        created.append(reg)
        return reg.start()

    yield factory
    for reg in created:
        reg.stop()


def _config(tmp_path, reg, *, ca_file=None, with_auth=False):
    lines = ["  - name: bad", "    type: generic", f"    registry: {reg.host}",
             f"    repository: {REPO}"]
    if with_auth:
        lines += ["    username_env: TEST_REG_USER", "    password_env: TEST_REG_PASS"]
    if ca_file:
        lines.append(f"    ca_file: {ca_file}")
    return write_release(tmp_path, ["\n".join(lines)])


def _env(reg):
    return {"TEST_REG_USER": reg.username, "TEST_REG_PASS": reg.password}


def _tags_unverified(reg) -> int:
    """Status of GET /v2/REPO/tags/list, read without verifying the (bad) certificate."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auth = (reg.username, reg.password) if reg.username else None
        return requests.get(f"{reg.url}/v2/{REPO}/tags/list", verify=False, auth=auth,
                            timeout=10).status_code


def test_wrong_host_name_names_the_certificates_names(tmp_path, tls_registry, docker_engine,
                                                      cleanup_images):
    pki = make_pki(tmp_path / "pki", dns_names=("registry.invalid", "other.invalid"),
                   ip_addresses=("10.1.2.3",))
    reg = tls_registry(pki, auth=True)
    config = _config(tmp_path, reg, ca_file=pki.ca_cert, with_auth=True)

    proc = run_release(config, "registry", "tags", "bad", env=_env(reg))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "the certificate is not valid for localhost" in out
    assert "registry.invalid, other.invalid, 10.1.2.3" in out
    assert "Hostname mismatch" in out                               # OpenSSL's reason
    assert "in its subjectAltName" in out                           # the hint
    assert "ca_file" not in out.replace("`registry:`", "")          # not the CA hint
    assert reg.password not in out

    # build-push: nothing is pushed, same message.
    image = docker_engine.images.build(path=str(tmp_path / "app"), rm=True)[0]
    image.tag(image_name(config), "1.0.0")
    cleanup_images.append(f"{image_name(config)}:1.0.0")
    push = run_release(config, "build-push", "1.0.0", "--no-build", env=_env(reg))
    out = push.stdout + push.stderr
    assert push.returncode == 1, out
    assert "the certificate is not valid for localhost" in out
    assert "registry.invalid" in out and "Hostname mismatch" in out
    assert reg.password not in out
    assert _tags_unverified(reg) == 404


def test_expired_certificate_gives_the_date(tmp_path, tls_registry):
    pki = make_pki(tmp_path / "pki", not_before=datetime(2020, 1, 1, tzinfo=timezone.utc),
                   not_after=datetime(2020, 1, 2, 12, 30, tzinfo=timezone.utc))
    reg = tls_registry(pki, auth=True)
    config = _config(tmp_path, reg, ca_file=pki.ca_cert, with_auth=True)

    proc = run_release(config, "registry", "tags", "bad", env=_env(reg))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "certificate expired on 2020-01-02 12:30 UTC" in out
    assert "certificate has expired" in out                         # OpenSSL's reason
    assert "renew the registry's certificate" in out
    assert "ca_file" not in out
    assert reg.password not in out


def test_unknown_ca_without_ca_file_or_certs_d(tmp_path, tls_registry):
    reg = tls_registry(make_pki(tmp_path / "pki", ca_name="unknown test CA"))
    config = _config(tmp_path, reg)

    proc = run_release(config, "registry", "tags", "bad")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "not signed by a trusted CA (issuer: CN=unknown test CA)" in out
    assert "only the system CAs were trusted" in out
    assert f"no {DOCKER_CERTS_D}/{reg.host}/ca.crt" in out
    assert "unable to get local issuer certificate" in out          # OpenSSL's reason
    assert "set `ca_file: path/to/ca.crt`" in out


def test_unknown_ca_with_a_ca_file_that_did_not_sign_it(tmp_path, tls_registry):
    reg = tls_registry(make_pki(tmp_path / "pki", ca_name="unknown test CA"), auth=True)
    other = make_pki(tmp_path / "other", ca_name="another test CA")
    config = _config(tmp_path, reg, ca_file=other.ca_cert, with_auth=True)

    proc = run_release(config, "registry", "tags", "bad", env=_env(reg))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"trusted were the system CAs and ca_file {other.ca_cert} from release.yml" in out
    assert "unable to get local issuer certificate" in out
    assert "this ca_file did not sign the registry's certificate" in out
    assert reg.password not in out


def test_unknown_ca_with_a_certs_d_ca_that_did_not_sign_it(tmp_path, tls_registry):
    reg = tls_registry(make_pki(tmp_path / "pki", ca_name="unknown test CA"))
    other = make_pki(tmp_path / "other", ca_name="another test CA")
    certs_d = DOCKER_CERTS_D / reg.host
    certs_d.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(other.ca_cert, certs_d / "ca.crt")
    try:
        config = _config(tmp_path, reg)
        proc = run_release(config, "registry", "tags", "bad")
    finally:
        shutil.rmtree(certs_d, ignore_errors=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"trusted were the system CAs and Docker's {certs_d / 'ca.crt'}" in out
    assert "unable to get local issuer certificate" in out
    assert "that certs.d ca.crt did not sign the registry's certificate" in out
    assert "`ca_file: path/to/ca.crt`" in out
