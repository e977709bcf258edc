"""Device groups: which named networks a device address belongs to."""

from __future__ import annotations

import ipaddress
import socket

_NOTHING: frozenset[str] = frozenset()

# Where a group from the deployment's settings (proxy.device_groups) was defined.
SETTINGS = "settings"


class DeviceGroups:
    """Named CIDR groups, with each address's groups remembered after the first lookup.

    A group in the settings replaces the rule file's group of the same name:
    the settings hold the school's own networks, the rule file an example.
    ``sources`` says where each group in force was defined, ``replaced``
    which rule-file groups the settings replaced; `rules check` and `decide`
    say both.
    """

    _CACHE_LIMIT = 4096

    def __init__(self, groups: dict[str, tuple], sources: dict[str, str] | None = None,
                 replaced: dict[str, str] | None = None):
        self.groups = groups
        # Where each group was defined: SETTINGS, or the name of the rule file.
        self.sources = sources or {}
        # Group name -> the name of the rule file whose group of that name the settings replaced.
        self.replaced = replaced or {}
        # (name, version, network as int, mask as int): membership is two integer operations.
        self._networks = [(name, net.version, int(net.network_address), int(net.netmask))
                          for name, nets in groups.items() for net in nets]
        self._cache: dict[str | None, frozenset[str]] = {None: _NOTHING}

    def of(self, address: str | None) -> frozenset[str]:
        found = self._cache.get(address)
        if found is None:
            parsed = _parse_address(address)  # type: ignore[arg-type]
            if parsed is None:
                found = _NOTHING
            else:
                version, value = parsed
                found = frozenset(name for name, v, net, mask in self._networks
                                  if v == version and value & mask == net)
            if len(self._cache) >= self._CACHE_LIMIT:
                self._cache = {None: _NOTHING}
            self._cache[address] = found
        return found

    def found_in(self, address: str | None) -> list[tuple[str, str]]:
        """The groups ``address`` is in, by name, each with where it was defined (see ``sources``)."""
        return [(name, self.sources.get(name, "")) for name in sorted(self.of(address))]

    @staticmethod
    def is_known(address: str | None) -> bool:
        return address is not None and _parse_address(address) is not None


def _parse_address(address: str) -> tuple[int, int] | None:
    """(IP version, address as an integer), or None when it is not an IP address."""
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, address))
    except (OSError, ValueError, TypeError):
        pass
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except (ValueError, AttributeError):
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:  # ::ffff:10.20.1.2 from a dual-stack socket
        return 4, int(ip.ipv4_mapped)
    return ip.version, int(ip)
