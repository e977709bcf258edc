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
def test_a_host_name_to_resolve_is_said_to_miss_devices_where_only_addresses_are_seen(tmp_path, mode):
    """In transparent and WireGuard modes --resolve by name steers only the proxy's own connections: said so."""
    cfg = config.load(write_config(tmp_path))
    by_name = Settings.from_config(cfg, mode=mode, resolve=("teach.classdojo.com:443:127.0.0.1:8443",))
    (warning,) = by_name.resolve_warnings()
    assert f"in {mode} mode devices' connections arrive by address" in warning
    assert "--resolve 203.0.113.7:443:127.0.0.1:8443" in warning
    by_address = Settings.from_config(cfg, mode=mode, resolve=("203.0.113.7:443:127.0.0.1:8443",))
    assert by_address.resolve_warnings() == []
    regular = Settings.from_config(cfg, mode="regular", resolve=("teach.classdojo.com:443:127.0.0.1:8443",))
    assert regular.resolve_warnings() == []


def test_run_says_what_a_resolve_by_name_does_in_transparent_mode(tmp_path):
    """`dojoguard run --mode transparent --resolve NAME:...` prints the note before anything else happens."""
    from click.testing import CliRunner

    from dojoguard.cli import cli

    settings = tmp_path / "bad.yaml"
    settings.write_text(f"data_dir: {tmp_path / 'data'}\nproxy:\n  confdir: {tmp_path / 'afile'}\n", encoding="utf-8")
    (tmp_path / "afile").write_text("not a folder", encoding="utf-8")
    result = CliRunner().invoke(cli, ["run", "--config", str(settings), "--mode", "transparent",
                                      "--resolve", "teach.classdojo.com:443:127.0.0.1:8443"])
    assert "does not change where they go" in result.output
    assert result.exit_code != 0 and "cannot make the proxy's certificate authority" in result.output


def test_listen_star_is_every_address_of_both_families(tmp_path):
    """`listen: "*:8080"` is mitmproxy's empty host (IPv4 and IPv6); "[::]" stays IPv6 alone."""
    cfg = config.load(write_config(tmp_path))
    assert Settings.from_config(cfg, listen="*:8080").listen_host == ""
    assert Settings.from_config(cfg, listen="[::]:8080").listen_host == "::"


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


def test_a_damaged_ca_stops_the_start_with_what_to_do(tmp_path):
    """A CA file that cannot be read is never replaced silently: the start stops and says how to recover."""
    from click.testing import CliRunner

    from dojoguard.cli import cli
    from dojoguard.proxy import certauthority

    confdir = tmp_path / "data" / "mitmproxy"
    certauthority.ensure(confdir, "School")
    (confdir / "mitmproxy-ca-cert.pem").write_text("damaged", encoding="utf-8")
    result = CliRunner().invoke(cli, ["run", "--config", str(write_config(tmp_path)), "--confdir", str(confdir)])
    assert result.exit_code != 0 and "cannot be read" in result.output and "Renewing the CA" in result.output
    assert (confdir / "mitmproxy-ca-cert.pem").read_text("utf-8") == "damaged"
