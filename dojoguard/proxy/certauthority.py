"""The proxy's certificate authority, named after the school.

mitmproxy makes its CA on first start with the subject ``CN=mitmproxy,
O=mitmproxy``: what a teacher or an auditor sees when they inspect the
certificate of teach.classdojo.com on a school device. dojoguard makes it
first, with mitmproxy's own code and the name in ``proxy.ca_name``, so that
the issuer reads as the school's.

A CA that exists is never replaced: every school device already trusts it,
and a new one would break ClassDojo on all of them at once. If its name
differs from the setting, the start says so and how to renew it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID
from mitmproxy import certs

# The file names mitmproxy reads in its confdir ("mitmproxy-ca.pem" and friends).
BASENAME = "mitmproxy"
# mitmproxy's own default key size for its CA (the key_size option).
KEY_SIZE = 2048


@dataclass(frozen=True)
class Authority:
    cert_file: Path
    name: str
    created: bool

    def matches(self, wanted: str) -> bool:
        return self.name == wanted


def ensure(confdir: Path, name: str) -> Authority:
    """The CA in ``confdir``, made now with ``name`` if there is none; raises ``OSError`` if it cannot be written."""
    key_file = confdir / f"{BASENAME}-ca.pem"
    cert_file = confdir / f"{BASENAME}-ca-cert.pem"
    created = False
    if not key_file.exists():
        certs.CertStore.create_store(confdir, BASENAME, KEY_SIZE, organization=name, cn=name)
        created = True
    return Authority(cert_file, common_name(cert_file), created)


def common_name(cert_file: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""
