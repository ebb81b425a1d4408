"""The files a registry needs: a bcrypt htpasswd file and a self-signed TLS certificate.

htpasswd: `htpasswd -niB` (apache2-utils; the password goes on stdin, never in argv) if it is
on PATH, else the `bcrypt` package (`pip install 'release-pipeline[hosting]'`).
The htpasswd file and the key are mode 0600 (the registry:2 container runs as root).
Certificate: the `openssl` CLI if it is on PATH, else the `cryptography` package; an EC P-256
key, subjectAltName with every host name and IP address clients use.

An existing file is kept when it still fits (the htpasswd line verifies the password; the
certificate has the same names and is valid for more than 30 days), so running `up` twice
does not change the files and so does not recreate the container.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ReleaseError, UsageError

BCRYPT_COST = 10
CERT_DAYS = 365
RENEW_BEFORE_DAYS = 30
_USER_RE = re.compile(r"^[^:\s]+$")


# --- htpasswd ------------------------------------------------------------------------------

def check_credentials(user: str, password: str) -> None:
    if not _USER_RE.match(user or ""):
        raise UsageError(f"--user {user!r}: a user name cannot be empty or contain ':' or spaces")
    if not password:
        raise UsageError("the password is empty")
    if "\n" in password or "\r" in password:
        raise UsageError("the password contains a line break")
    if len(password.encode()) > 72:
        raise UsageError("the password is longer than 72 bytes, the most bcrypt uses",
                         hint="pick a shorter one")


def _bcrypt_module():
    try:
        # lazy: optional extra [hosting], when no htpasswd tool is on PATH
        import bcrypt
    except ImportError:
        return None
    return bcrypt


def htpasswd_line(user: str, password: str, *, prefer: str | None = None) -> str:
    """`user:$2y$10$...` for htpasswd auth. prefer="bcrypt" skips the htpasswd CLI (tests)."""
    check_credentials(user, password)
    binary = shutil.which("htpasswd") if prefer != "bcrypt" else None
    if binary:
        proc = subprocess.run([binary, "-niB", "-C", str(BCRYPT_COST), user], input=password,
                              capture_output=True, text=True)
        line = proc.stdout.strip()
        if proc.returncode != 0 or not line.startswith(f"{user}:$2"):
            raise ReleaseError(f"htpasswd failed ({proc.returncode}): {proc.stderr.strip()}")
        return line
    bcrypt = _bcrypt_module()
    if bcrypt is None:
        raise ReleaseError("cannot make a bcrypt password hash: neither the `htpasswd` command "
                           "nor the Python package `bcrypt` is installed",
                           hint="apt-get install apache2-utils, or pip install "
                                "'release-pipeline[hosting]', or pass --htpasswd FILE")
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=BCRYPT_COST)).decode()
    return f"{user}:{hashed}"


def htpasswd_verifies(path: Path, user: str, password: str) -> bool:
    """True if `path` has exactly one line, for `user`, and it verifies `password`."""
    try:
        lines = [ln for ln in Path(path).read_text().splitlines() if ln.strip()]
    except OSError:
        return False
    if len(lines) != 1 or not lines[0].startswith(f"{user}:"):
        return False
    hashed = lines[0].split(":", 1)[1]
    bcrypt = _bcrypt_module()
    if bcrypt is not None and hashed.startswith("$2"):
        try:
            return bcrypt.checkpw(password.encode(), hashed.replace("$2y$", "$2b$", 1).encode())
        except ValueError:
            return False
    binary = shutil.which("htpasswd")
    if binary:
        proc = subprocess.run([binary, "-vi", str(path), user], input=password,
                              capture_output=True, text=True)
        return proc.returncode == 0
    return False  # cannot tell: write a new one


def write_htpasswd(path: Path, user: str, password: str) -> bool:
    """Make sure `path` holds a bcrypt line for user/password. True if the file was (re)written."""
    path = Path(path)
    if path.exists() and htpasswd_verifies(path, user, password):
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)           # written by an earlier version with mode 0644
        return False
    _write_private(path, htpasswd_line(user, password) + "\n", mode=0o600)
    return True


def _write_private(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- self-signed certificate ------------------------------------------------------------------

@dataclass(frozen=True)
class CertInfo:
    cert: Path
    key: Path
    names: tuple[str, ...]       # DNS names and IP addresses in the subjectAltName
    created: bool                # True if written now, False if an existing one was kept


def san_entries(names) -> list[str]:
    """["DNS:localhost", "IP:127.0.0.1", ...] without duplicates, in order."""
    out: list[str] = []
    for name in names:
        if not name:
            continue
        try:
            entry = f"IP:{ipaddress.ip_address(name)}"
        except ValueError:
            entry = f"DNS:{name.lower()}"
        if entry not in out:
            out.append(entry)
    return out


def _openssl_cert(cert: Path, key: Path, names: list[str], days: int) -> None:
    san = ",".join(san_entries(names))
    cn = names[0]
    argv = [shutil.which("openssl"), "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-sha256",
            "-days", str(days), "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={cn}",
            "-addext", f"subjectAltName={san}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,digitalSignature,keyCertSign",
            "-addext", "extendedKeyUsage=serverAuth"]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ReleaseError(f"openssl could not make the certificate ({proc.returncode}): "
                           f"{proc.stderr.strip()[-500:]}")


def _cryptography_cert(cert: Path, key: Path, names: list[str], days: int) -> None:
    # lazy: only certificate work needs it (registry up --tls, TLS error details)
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt = []
    for entry in san_entries(names):
        kind, value = entry.split(":", 1)
        alt.append(x509.IPAddress(ipaddress.ip_address(value)) if kind == "IP"
                   else x509.DNSName(value))
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(private.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.SubjectAlternativeName(alt), critical=False)
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False,
                                            crl_sign=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                              critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(private.public_key()),
                              critical=False))
    certificate = builder.sign(private, hashes.SHA256())
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _still_valid(cert: Path, seconds: int) -> bool:
    """False if `cert` expires within `seconds` (or cannot be read)."""
    openssl = shutil.which("openssl")
    if openssl:
        proc = subprocess.run([openssl, "x509", "-noout", "-checkend", str(seconds), "-in", str(cert)],
                              capture_output=True, text=True)
        return proc.returncode == 0
    try:

        # lazy: only certificate work needs it (registry up --tls, TLS error details)
        from cryptography import x509
        c = x509.load_pem_x509_certificate(cert.read_bytes())
        end = c.not_valid_after_utc
        return end - datetime.datetime.now(datetime.timezone.utc) > datetime.timedelta(seconds=seconds)
    except Exception:
        return False


def self_signed_cert(directory: Path, names, *, days: int = CERT_DAYS,
                     prefer: str | None = None) -> CertInfo:
    """directory/domain.crt + domain.key for `names` (first one is the CN); kept if still fitting.

    prefer="cryptography" skips the openssl CLI (tests).
    """
    names = [n for n in dict.fromkeys(names) if n]
    if not names:
        raise UsageError("a certificate needs at least one host name")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cert, key, stamp = d / "domain.crt", d / "domain.key", d / ".san"
    wanted = ",".join(san_entries(names))
    if (cert.exists() and key.exists() and stamp.exists() and stamp.read_text().strip() == wanted
            and _still_valid(cert, RENEW_BEFORE_DAYS * 86400)):
        return CertInfo(cert=cert, key=key, names=tuple(names), created=False)
    with tempfile.TemporaryDirectory(dir=d, prefix=".new-") as tmp:
        tcert, tkey = Path(tmp) / "domain.crt", Path(tmp) / "domain.key"
        if shutil.which("openssl") and prefer != "cryptography":
            _openssl_cert(tcert, tkey, names, days)
        else:
            try:
                _cryptography_cert(tcert, tkey, names, days)
            except ImportError:
                raise ReleaseError("cannot make a certificate: neither the `openssl` command "
                                   "nor the Python package `cryptography` is installed",
                                   hint="apt-get install openssl, or pass --cert F --key F") from None
        os.chmod(tkey, 0o600)
        os.chmod(tcert, 0o644)
        os.replace(tkey, key)
        os.replace(tcert, cert)
    stamp.write_text(wanted + "\n")
    return CertInfo(cert=cert, key=key, names=tuple(names), created=True)


def cert_names(cert: Path) -> list[str]:
    """The subjectAltName entries of a PEM certificate, e.g. ["DNS:localhost", "IP:127.0.0.1"]."""
    openssl = shutil.which("openssl")
    if openssl:
        proc = subprocess.run([openssl, "x509", "-noout", "-ext", "subjectAltName", "-in", str(cert)],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            text = proc.stdout.split("\n", 1)[-1]
            return [p.strip().replace("IP Address:", "IP:") for p in text.split(",") if p.strip()]
    try:
        # lazy: only certificate work needs it (registry up --tls, TLS error details)
        from cryptography import x509
        c = x509.load_pem_x509_certificate(Path(cert).read_bytes())
        ext = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return ([f"DNS:{n}" for n in ext.get_values_for_type(x509.DNSName)]
                + [f"IP:{ip}" for ip in ext.get_values_for_type(x509.IPAddress)])
    except Exception:
        return []
