"""A throw-away private CA and a server certificate, made with the `openssl` CLI.

    pki = make_pki(tmp_path / "pki")                 # SAN: DNS:localhost, IP:127.0.0.1
    pki.ca_cert, pki.server_cert, pki.server_key     # PEM files
    pki.ca_dir                                        # a directory holding only ca.crt
                                                      # (what `skopeo --cert-dir` wants)

    make_pki(d, dns_names=("wrong.example",), ip_addresses=())   # a cert for another name
    make_pki(d, not_before=datetime(2020, 1, 1, tzinfo=timezone.utc),
             not_after=datetime(2020, 1, 2, tzinfo=timezone.utc))  # an expired server cert

No Python crypto dependency: only the `openssl` binary (Debian package `openssl`).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path


@dataclass(frozen=True)
class PKI:
    dir: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    ca_dir: Path
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if not binary:
        raise RuntimeError("the `openssl` CLI is missing (apt-get install -y openssl)")
    proc = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed ({proc.returncode}):\n"
                           f"{proc.stdout}{proc.stderr}")


def make_pki(directory: Path, *, dns_names=("localhost",), ip_addresses=("127.0.0.1",),
             days: int = 7, ca_name: str = "release tests CA",
             not_before: datetime | None = None, not_after: datetime | None = None) -> PKI:
    """Write ca.crt/ca.key and server.crt/server.key (signed by the CA) into `directory`.

    `not_before`/`not_after` (aware datetimes) set the server certificate's validity instead
    of now + `days`, e.g. in the past for an expired certificate (the CA stays valid).
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", str(days),
             "-keyout", "ca.key", "-out", "ca.crt", "-subj", f"/CN={ca_name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash", cwd=d)
    cn = dns_names[0] if dns_names else ip_addresses[0]
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
             "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={cn}", cwd=d)
    san = ",".join([f"DNS:{n}" for n in dns_names] + [f"IP:{ip}" for ip in ip_addresses])
    (d / "server.ext").write_text(
        f"subjectAltName={san}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n")
    if not_before is None and not_after is None:
        _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-sha256", "-days", str(days), "-extfile", "server.ext",
                 "-out", "server.crt", cwd=d)
        _openssl("verify", "-CAfile", "ca.crt", "server.crt", cwd=d)
    else:
        _sign_with_dates(d, not_before or datetime.now(timezone.utc), not_after or
                         datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=days))
        _openssl("verify", "-no_check_time", "-CAfile", "ca.crt", "server.crt", cwd=d)
    ca_dir = d / "ca-only"
    ca_dir.mkdir(exist_ok=True)
    shutil.copyfile(d / "ca.crt", ca_dir / "ca.crt")
    for key in ("ca.key", "server.key"):
        (d / key).chmod(0o600)
    return PKI(dir=d, ca_cert=d / "ca.crt", ca_key=d / "ca.key", server_cert=d / "server.crt",
               server_key=d / "server.key", ca_dir=ca_dir, dns_names=tuple(dns_names),
               ip_addresses=tuple(ip_addresses))


def _sign_with_dates(d: Path, not_before: datetime, not_after: datetime) -> None:
    """server.csr -> server.crt with explicit validity dates (`openssl x509` in OpenSSL 3.0
    has only -days; `openssl ca` takes -startdate/-enddate)."""
    (d / "ca-db").mkdir(exist_ok=True)
    (d / "ca-db" / "index.txt").write_text("")
    (d / "ca-db" / "serial").write_text("1000\n")
    (d / "ca.cnf").write_text(
        "[ ca ]\ndefault_ca = testca\n"
        "[ testca ]\ndatabase = ca-db/index.txt\nnew_certs_dir = ca-db\nserial = ca-db/serial\n"
        "default_md = sha256\npolicy = anything\nunique_subject = no\n"
        "[ anything ]\ncommonName = supplied\n")
    stamp = lambda t: t.astimezone(timezone.utc).strftime("%Y%m%d%H%M%SZ")  # noqa: E731
    _openssl("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key",
             "-in", "server.csr", "-out", "server.crt", "-notext", "-extfile", "server.ext",
             "-startdate", stamp(not_before), "-enddate", stamp(not_after), cwd=d)
