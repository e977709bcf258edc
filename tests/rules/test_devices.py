"""Device groups: IPv4, IPv6, dual-stack addresses and addresses that are not addresses."""

from __future__ import annotations

import ipaddress

from dojoguard.rules.devices import DeviceGroups


def test_device_groups_ipv6_and_mapped_ipv4():
    """Device groups understand IPv6 and IPv4 addresses seen through a dual-stack socket."""
    groups = DeviceGroups({"school": (ipaddress.ip_network("10.20.0.0/16"), ipaddress.ip_network("fd00::/8"))})
    assert groups.of("10.20.9.9") == {"school"}
    assert groups.of("::ffff:10.20.9.9") == {"school"}
    assert groups.of("fd00::1") == {"school"}
    assert groups.of("10.21.0.1") == frozenset()
    assert not groups.is_known("junk") and groups.is_known("fd00::1")


def test_cache_stays_bounded():
    """Looking up many different addresses never grows the cache past its limit."""
    groups = DeviceGroups({"school": (ipaddress.ip_network("10.0.0.0/8"),)})
    for i in range(10_000):
        assert groups.of(f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}") == {"school"}
    assert len(groups._cache) <= DeviceGroups._CACHE_LIMIT
