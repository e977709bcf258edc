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


def test_found_in_names_each_group_with_where_it_came_from():
    """`found_in` gives the groups an address is in, by name, each with where it was defined."""
    groups = DeviceGroups({"ipads": (ipaddress.ip_network("10.20.0.0/16"),),
                           "all": (ipaddress.ip_network("10.0.0.0/8"),)},
                          {"ipads": "settings", "all": "rules.yaml"})
    assert groups.found_in("10.20.3.14") == [("all", "rules.yaml"), ("ipads", "settings")]
    assert groups.found_in("192.168.1.1") == [] and groups.found_in(None) == []


def test_a_settings_group_replaces_the_rule_files_and_the_policy_says_so():
    """The settings' group of a rule file's name wins, and the loaded groups record what it replaced and from where."""
    from dojoguard.rules.devices import SETTINGS
    from dojoguard.rules.policy import builtin_path, load_policy

    policy = load_policy("builtin", device_groups={"school-devices": ["192.168.0.0/16"], "staff": ["10.30.0.0/16"]})
    devices = policy.devices
    assert devices.groups["school-devices"] == (ipaddress.ip_network("192.168.0.0/16"),)
    assert devices.sources == {"school-devices": SETTINGS, "staff": SETTINGS}
    assert devices.replaced == {"school-devices": builtin_path().name}
    assert devices.found_in("10.20.1.5") == []
    plain = load_policy("builtin").devices
    assert plain.sources == {"school-devices": builtin_path().name} and plain.replaced == {}
    assert plain.found_in("10.20.1.5") == [("school-devices", builtin_path().name)]
