"""Where a connection really goes: every spelling of a host resolved to addresses, then judged.

mitmproxy's own guard against the proxy connecting to itself compares the
host as text with ``localhost``, ``127.0.0.1``, ``::1`` and the listen
address, and only on the listen port. Any other spelling of loopback
(``127.1``, ``2130706433``, ``0x7f000001``, ``0.0.0.0``,
``[::ffff:127.0.0.1]``) or any other port of the proxy's own machine got
through: chained ``CONNECT 127.1:PORT`` lines made the proxy tunnel into
itself thousands of times, and a device could reach services that listen
only on the proxy host's loopback.

Here the host is resolved the way the connection would resolve it (the C
library's ``getaddrinfo``, which also reads the old numeric spellings), and
every address it yields is judged as an address: loopback, unspecified,
link-local (cloud metadata lives there), an IPv4 address hidden inside an
IPv6 one, or any address of this machine's own interfaces. One refused
address refuses the host, and the caller connects to the address that was
judged, so a name cannot resolve to something else a moment later.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
# The well-known NAT64 prefix (RFC 6052): 64:ff9b::a.b.c.d reaches a.b.c.d through a translator.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
RESOLVE_TIMEOUT_S = 5.0


class Refused(Exception):
    """A destination the proxy must not connect to; ``reason`` is a stable word for logs and records."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class Destination:
    host: str
    port: int
    address: str  # the judged address to connect to


def embedded_ipv4(ip: IP) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, Teredo, NAT64), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(ip.packed[12:])
    packed = ip.packed
    if packed[:12] == bytes(12) and packed[12:] not in (bytes(4), b"\x00\x00\x00\x01"):
        return ipaddress.IPv4Address(packed[12:])  # deprecated "IPv4-compatible" ::a.b.c.d
    return None


def forbidden_kind(ip: IP) -> str | None:
    """Why an address is never a destination (a word), or None when it may be."""
    for candidate in (ip, embedded_ipv4(ip)):
        if candidate is None:
            continue
        if candidate.is_loopback:
            return "loopback"
        if candidate.is_unspecified:
            return "unspecified"
        if candidate.is_link_local:
            return "link-local"
        if candidate.is_multicast:
            return "multicast"
    if is_own_address(ip):
        return "own-address"
    return None


def is_own_address(ip: IP) -> bool:
    """Whether ``ip`` belongs to one of this machine's interfaces.

    Asking the kernel which source address it would use to reach ``ip``
    answers this without listing interfaces: for an address of this machine
    the route is the local one and the source is the address itself. A UDP
    ``connect`` sends nothing.
    """
    family = socket.AF_INET6 if isinstance(ip, ipaddress.IPv6Address) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((str(ip), 9))
            source = probe.getsockname()[0]
    except OSError:
        return False  # no route at all: not this machine (and the connection itself will fail)
    try:
        return ipaddress.ip_address(source.split("%", 1)[0]) == ip
    except ValueError:
        return False


def literal(host: str) -> IP | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IP]:
    """Every address ``host`` resolves to, as the connection would resolve it; raises ``Refused``."""
    name = host.strip("[]")
    if not name:
        raise Refused("no-host", "the request names no destination")
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(name, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP), RESOLVE_TIMEOUT_S)
    except (OSError, UnicodeError, TimeoutError) as exc:
        raise Refused("unresolvable", f"{name!r} does not resolve ({type(exc).__name__})") from None
    addresses: list[IP] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        ip = literal(str(sockaddr[0]))
        if ip is not None and ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise Refused("unresolvable", f"{name!r} resolves to no address")
    return addresses


async def judge(host: str, port: int) -> Destination:
    """The address to connect to for ``host:port``; raises ``Refused`` if any address it names is forbidden."""
    addresses = await resolve(host, port)
    for ip in addresses:
        kind = forbidden_kind(ip)
        if kind is not None:
            raise Refused(kind, f"{host} is a {kind} address ({ip}); the proxy does not connect there")
    return Destination(host=host, port=port, address=str(addresses[0]))
