"""The console's certificate: the school's own (``console.certificate``/``console.key``) or one made on first run.

The one made here is self-signed for the console's host names and
addresses, valid for two years, with an ECDSA P-256 key kept owner-only in
``data_dir/console-tls/``. Its SHA-256 fingerprint is printed at start so
that the person trusting it in a browser can check they trust the right one.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dojoguard.storage.database import create_private_folder

FOLDER = "console-tls"
VALID_FOR = timedelta(days=730)


class CertificateProblem(Exception):
    """The certificate or key cannot be used; the message says which file and why."""


@dataclass(frozen=True)
class Certificate:
    cert_file: Path
    key_file: Path
    made_now: bool
    fingerprint: str
    not_after: datetime


def ensure(config, host: str) -> Certificate:
    """The certificate to serve: the configured one, checked, or one made (once) for ``host``."""
    given_cert, given_key = config.path("console", "certificate"), config.path("console", "key")
    if (given_cert is None) != (given_key is None):
        raise CertificateProblem("set both console.certificate and console.key, or neither")
    if given_cert is not None:
        return _check(given_cert, given_key, made_now=False)
    folder = config.data_dir / FOLDER
    cert_file, key_file = folder / "console.crt", folder / "console.key"
    if cert_file.exists() and key_file.exists():
        return _check(cert_file, key_file, made_now=False)
    create_private_folder(folder)
    _make(cert_file, key_file, host)
    return _check(cert_file, key_file, made_now=True)


def _names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                     x509.IPAddress(ipaddress.ip_address("::1"))]
    for candidate in {socket.gethostname(), socket.getfqdn(), host.strip("[]")}:
        if not candidate or candidate in ("0.0.0.0", "::", "*"):
            continue
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(candidate)))
        except ValueError:
            names.append(x509.DNSName(candidate))
    return list(dict.fromkeys(names))


def _make(cert_file: Path, key_file: Path, host: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dojoguard console"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dojoguard")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + VALID_FOR)
            .add_extension(x509.SubjectAlternativeName(_names(host)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    _write_private(key_file, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    _write_private(cert_file, cert.public_bytes(serialization.Encoding.PEM))


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _check(cert_file: Path, key_file: Path, *, made_now: bool) -> Certificate:
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise CertificateProblem(f"cannot read the console certificate {cert_file}: {exc}") from None
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise CertificateProblem(f"cannot read the console key {key_file}: {exc} (it must be an unencrypted "
                                 "PEM private key)") from None
    if key_file.stat().st_mode & 0o077:
        raise CertificateProblem(f"the console key {key_file} can be read by other users: "
                                 f"run `chmod 600 {key_file}`")
    wanted = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) \
            != wanted:
        raise CertificateProblem(f"the key {key_file} does not belong to the certificate {cert_file}")
    if cert.not_valid_after_utc <= datetime.now(UTC):
        raise CertificateProblem(f"the console certificate {cert_file} expired on "
                                 f"{cert.not_valid_after_utc:%d %b %Y}; renew it (or delete both files of a "
                                 "certificate dojoguard made, and one is made again)")
    fingerprint = cert.fingerprint(hashes.SHA256()).hex(":").upper()
    return Certificate(cert_file, key_file, made_now, fingerprint, cert.not_valid_after_utc)
