"""A real SMTP server (aiosmtpd) on localhost for tests, with STARTTLS, that can be stopped and started again.

Stopping it and starting it on the same port is how tests make the mail
server "down for a while": connections are refused, as they are when a
school's relay is restarted.
"""

from __future__ import annotations

import email
import ipaddress
import socket
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def throwaway_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1 (it is its own CA): (certificate, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class SmtpServer:
    """aiosmtpd on 127.0.0.1, requiring STARTTLS; ``messages`` holds (recipients, parsed message, when)."""

    def __init__(self, folder: Path, port: int | None = None):
        self.port = port or free_port()
        self.cert, self.key = throwaway_certificate(folder)
        self.messages: list[tuple[list[str], email.message.EmailMessage, float]] = []
        self._arrived = threading.Condition()
        self._controller: Controller | None = None

    @property
    def smtp_settings(self) -> dict:
        """``reports.smtp`` settings that reach this server."""
        return {"host": "localhost", "port": self.port, "starttls": True, "ca_file": str(self.cert),
                "sender": "dojoguard@school.example"}

    async def handle_DATA(self, server, session, envelope):
        with self._arrived:
            self.messages.append((list(envelope.rcpt_tos),
                                  email.message_from_bytes(envelope.content, policy=policy.default), time.time()))
            self._arrived.notify_all()
        return "250 OK"

    def start(self) -> "SmtpServer":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert), str(self.key))
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, tls_context=context,
                                      require_starttls=True)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, count: int, timeout_s: float) -> list:
        """Wait until at least ``count`` messages arrived (or the timeout); returns the messages."""
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._arrived.wait(left)
            return list(self.messages)
