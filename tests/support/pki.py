"""A throw-away private CA and a server certificate, made with the `openssl` CLI.

    pki = make_pki(tmp_path / "pki")                 # SAN: DNS:localhost, IP:127.0.0.1
    pki.ca_cert, pki.server_cert, pki.server_key     # PEM files
    pki.ca_dir                                        # a directory holding only ca.crt
                                                      # (what `skopeo --cert-dir` wants)

No Python crypto dependency: only the `openssl` binary (Debian package `openssl`).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
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
             days: int = 7, ca_name: str = "release tests CA") -> PKI:
    """Write ca.crt/ca.key and server.crt/server.key (signed by the CA) into `directory`."""
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
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-sha256", "-days", str(days), "-extfile", "server.ext",
             "-out", "server.crt", cwd=d)
    _openssl("verify", "-CAfile", "ca.crt", "server.crt", cwd=d)
    ca_dir = d / "ca-only"
    ca_dir.mkdir(exist_ok=True)
    shutil.copyfile(d / "ca.crt", ca_dir / "ca.crt")
    for key in ("ca.key", "server.key"):
        (d / key).chmod(0o600)
    return PKI(dir=d, ca_cert=d / "ca.crt", ca_key=d / "ca.key", server_cert=d / "server.crt",
               server_key=d / "server.key", ca_dir=ca_dir, dns_names=tuple(dns_names),
               ip_addresses=tuple(ip_addresses))
