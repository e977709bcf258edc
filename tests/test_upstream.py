"""Tests for dojoguard's own connections to ClassDojo: --resolve and certificate checks."""

from __future__ import annotations

import pytest

from dojoguard.standin import StandIn
from dojoguard.upstream import https_connection, tls_context


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    with StandIn(tmp_path_factory.mktemp("standin")) as s:
        yield s


def test_resolved_connection_verifies_the_real_host_name(standin):
    """A connection sent to the stand-in by --resolve verifies it as teach.classdojo.com and gets its answer."""
    resolve = {("teach.classdojo.com", 443): ("127.0.0.1", standin.port)}
    conn = https_connection("teach.classdojo.com", 443, resolve=resolve, context=tls_context(str(standin.ca_cert)),
                            timeout=10)
    conn.request("GET", "/api/storyFeed", headers={"Host": "teach.classdojo.com"})
    assert conn.getresponse().status == 200
    conn.close()


def test_a_server_without_a_trusted_certificate_is_refused(standin):
    """Without the stand-in's CA the certificate does not verify, so nothing is sent."""
    import ssl

    resolve = {("teach.classdojo.com", 443): ("127.0.0.1", standin.port)}
    conn = https_connection("teach.classdojo.com", 443, resolve=resolve, context=tls_context(None), timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        conn.request("GET", "/api/storyFeed")
