"""The proxy's settings: --resolve values and the served client networks."""

from __future__ import annotations

import pytest

from dojoguard import config
from dojoguard.proxy.settings import ResolveError, Settings, parse_resolve
from tests.proxy.conftest import write_config


def test_resolve_parses_like_curl():
    """HOST:PORT:ADDR:PORT maps a host and port to a stand-in address."""
    assert parse_resolve("teach.classdojo.com:443:127.0.0.1:8443") == (("teach.classdojo.com", 443),
                                                                        ("127.0.0.1", 8443))
    assert parse_resolve("api.classdojo.com:443:[::1]:8443")[1] == ("::1", 8443)


@pytest.mark.parametrize("bad", ["teach.classdojo.com:443", "a:b:c:d", ":443:127.0.0.1:1"])
def test_bad_resolve_is_refused(bad):
    """A malformed --resolve is an error with an example."""
    with pytest.raises(ResolveError):
        parse_resolve(bad)


def test_only_configured_networks_are_served(tmp_path):
    """Client addresses are served only inside proxy.client_networks (IPv4-mapped IPv6 included)."""
    settings = Settings.from_config(config.load(write_config(tmp_path, client_networks=["10.20.0.0/16"])))
    assert settings.serves("10.20.3.4") and settings.serves("::ffff:10.20.3.4")
    assert not settings.serves("127.0.0.1") and not settings.serves("garbage")


def test_paths_live_under_the_data_folder(tmp_path):
    """Databases are placed under data_dir; the write cap is in bytes."""
    settings = Settings.from_config(config.load(write_config(tmp_path)))
    assert settings.state_path == tmp_path / "data" / "proxy.sqlite"
    assert settings.max_write_bytes == 50 * 1024 * 1024


@pytest.mark.parametrize("mode", ["transparent", "wireguard"])
def test_a_host_name_to_resolve_is_refused_where_only_addresses_are_seen(tmp_path, mode):
    """In transparent and WireGuard modes --resolve by name would silently do nothing: refused with the way out."""
    cfg = config.load(write_config(tmp_path))
    with pytest.raises(ResolveError, match=f"would do nothing in {mode} mode.*Give that address instead"):
        Settings.from_config(cfg, mode=mode, resolve=("teach.classdojo.com:443:127.0.0.1:8443",))
    by_address = Settings.from_config(cfg, mode=mode, resolve=("203.0.113.7:443:127.0.0.1:8443",))
    assert by_address.resolve == {("203.0.113.7", 443): ("127.0.0.1", 8443)}
    assert Settings.from_config(cfg, mode="regular", resolve=("teach.classdojo.com:443:127.0.0.1:8443",)).resolve


def test_run_refuses_a_resolve_by_name_in_transparent_mode_before_starting(tmp_path):
    """`dojoguard run --mode transparent --resolve NAME:...` exits with the reason and starts nothing."""
    from click.testing import CliRunner

    from dojoguard.cli import cli

    result = CliRunner().invoke(cli, ["run", "--config", str(write_config(tmp_path)), "--mode", "transparent",
                                      "--resolve", "teach.classdojo.com:443:127.0.0.1:8443"])
    assert result.exit_code != 0 and "would do nothing in transparent mode" in result.output
    assert not (tmp_path / "data" / "audit.sqlite").exists()


def test_the_proxys_ca_is_made_with_the_schools_name_and_an_existing_one_is_kept(tmp_path):
    """A fresh confdir gets a CA named by proxy.ca_name; a CA devices already trust is never replaced."""
    from cryptography import x509

    from dojoguard.proxy import certauthority

    made = certauthority.ensure(tmp_path / "ca", "St Wilfrid's CE Primary School")
    cert = x509.load_pem_x509_certificate(made.cert_file.read_bytes())
    assert made.created and cert.subject.rfc4514_string() == "O=St Wilfrid's CE Primary School,CN=St Wilfrid's CE Primary School"
    assert cert.issuer == cert.subject and (tmp_path / "ca" / "mitmproxy-ca.pem").stat().st_mode & 0o077 == 0
    before = made.cert_file.read_bytes()
    again = certauthority.ensure(tmp_path / "ca", "Another name")
    assert not again.created and again.name == "St Wilfrid's CE Primary School" and not again.matches("Another name")
    assert made.cert_file.read_bytes() == before
