"""Where a connection really goes: every spelling of loopback, this machine's own addresses, hidden IPv4."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from dojoguard.proxy import destinations


def judge(host: str, port: int = 443):
    return asyncio.run(destinations.judge(host, port))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1", "2130706433", "0x7f000001", "0x7f.1", "0177.0.0.1",
                                  "127.0.0.2", "localhost", "LOCALHOST", "0.0.0.0", "0", "[::1]", "::1",
                                  "[::ffff:127.0.0.1]", "::ffff:7f00:1", "[::]", "::127.0.0.1"])
def test_every_spelling_of_this_machine_is_refused(host):
    """Loopback and unspecified addresses in every spelling the C library reads are refused."""
    with pytest.raises(destinations.Refused) as refused:
        judge(host)
    assert refused.value.reason in ("loopback", "unspecified", "own-address")


@pytest.mark.parametrize("address", ["169.254.169.254", "fe80::1", "224.0.0.1", "64:ff9b::7f00:1",
                                     "2002:7f00:1::", "::ffff:169.254.169.254"])
def test_link_local_multicast_and_hidden_ipv4_are_refused(address):
    """Cloud metadata (link-local), multicast, and loopback hidden in NAT64 or 6to4 addresses are refused."""
    assert destinations.forbidden_kind(ipaddress.ip_address(address)) is not None


def own_non_loopback_address() -> str | None:
    """The address this machine would send from to reach another network, if it has one outside 127/8."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("198.51.100.7", 9))  # a documentation address: nothing is sent
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_this_machines_own_lan_address_is_refused():
    """An address of one of this machine's interfaces is refused like loopback, on every port."""
    address = own_non_loopback_address()
    if address is None:
        pytest.skip("this machine has no address outside loopback")
    assert destinations.is_own_address(ipaddress.ip_address(address))
    with pytest.raises(destinations.Refused) as refused:
        judge(address, 2525)
    assert refused.value.reason == "own-address"


def test_another_machines_address_is_accepted_and_pinned():
    """A public address is judged fit, and the judged address is the one to connect to."""
    found = judge("93.184.215.14")
    assert found.address == "93.184.215.14"
    assert not destinations.is_own_address(ipaddress.ip_address("93.184.215.14"))


def test_a_name_that_does_not_resolve_is_refused():
    """A host that does not resolve is refused (fail closed), with its own reason."""
    with pytest.raises(destinations.Refused) as refused:
        judge("no-such-host.invalid")
    assert refused.value.reason == "unresolvable"


def test_an_empty_host_is_refused():
    """A request naming no destination is refused."""
    with pytest.raises(destinations.Refused):
        judge("")
