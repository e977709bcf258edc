"""Where a request really goes: host names normalised, and the names a request carries checked against each other.

A device writes its ``Host`` header (and an absolute-form or HTTP/2
authority) itself; what it cannot forge is where the proxy connects: the
CONNECT target, the TLS server name the proxy forwards, or a transparent
connection's original destination. ClassDojo's servers route by the name
in the request, so a write is ClassDojo's when *any* of these names is a
ClassDojo host, and a request whose names disagree (a ClassDojo tunnel
carrying ``Host: www.example.org``, or the reverse) is refused rather than
judged by the more convenient one.

Plain values only: no mitmproxy here (``flows`` gathers the names).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Callable, Iterable

# What makes two spellings of one name the same: case, one trailing dot (the
# DNS root, "teach.classdojo.com."), and Unicode letters against their IDNA
# A-label ("bücher.example" is "xn--bcher-kva.example").


def normalise(name: str) -> str:
    """A host name as DNS compares it: lower case, no trailing dot, IDNA A-labels; IPs in canonical form.

    Names that cannot be encoded are returned lower-cased as they are, so
    they match no catalogue host and never slip through as another name.
    """
    name = name.strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    name = name.lower()
    while name.endswith("."):
        name = name[:-1]
    address = ip_literal(name)
    if address is not None:
        return str(address)
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return name


def ip_literal(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``name`` spells in standard notation, or None for a host name."""
    if not name or not (name[0].isdigit() or ":" in name or name[0] == "["):
        return None  # every request asks: spare host names the exception
    try:
        address = ipaddress.ip_address(name.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def authority_host(value: str) -> str:
    """The host part of a ``Host`` header or authority (``name``, ``name:port``, ``[v6]:port``)."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        return value[: end + 1] if end > 0 else value
    if value.count(":") == 1:
        return value.rsplit(":", 1)[0]
    return value


@dataclass(frozen=True)
class Names:
    """Every name one request carries, as the device or the connection gave them (not yet normalised)."""

    # Where the proxy connects (CONNECT target, absolute-form host of a plain request, or the
    # original destination of a transparent connection): None when not known.
    connection: str | None
    # The server name of the device's TLS handshake, if any.
    sni: str | None
    # Host headers, and the request's own authority (HTTP/2 :authority or absolute-form).
    requested: tuple[str, ...]


@dataclass(frozen=True)
class Route:
    """The host a request is judged as, its catalogue role (None: not ClassDojo), and why it is refused, if it is."""

    host: str
    role: str | None
    problem: str | None = None

    @property
    def classdojo(self) -> bool:
        return self.role is not None or self.problem is not None


def route(names: Names, role_of: Callable[[str], str | None]) -> Route:
    """Judge a request by every name it carries; when any is ClassDojo's, all must be.

    ClassDojo routes by the name in the request, so that is the host it is
    judged as. A connection made to an IP address (transparent mode) names
    no host and is left out of the comparison; so is the TLS name when it is
    absent. Two different ClassDojo names are allowed (browsers share one
    HTTP/2 connection between hosts of one certificate); a ClassDojo name
    beside any other is not.
    """
    requested = _distinct(normalise(authority_host(n)) for n in names.requested if n and n.strip())
    connection = normalise(names.connection) if names.connection else None
    if connection is not None and ip_literal(connection) is not None:
        connection = None
    sni = normalise(names.sni) if names.sni else None
    every = _distinct([*requested, *(n for n in (connection, sni) if n)])
    roles = {name: role_of(name) for name in every}
    host = requested[0] if requested else (connection or sni or "")
    if not any(roles.values()):
        return Route(host, None)
    if len(requested) > 1:
        return Route(host, roles.get(host), "the request names more than one host: " + ", ".join(requested))
    strangers = [name for name in every if roles[name] is None]
    if strangers:
        known = next(name for name in every if roles[name])
        return Route(host, roles.get(host) or roles[known],
                     f"the request names {_quote(host)} but goes to "
                     + " and ".join(_quote(n) for n in every if n != host))
    return Route(host, roles[host])


def _distinct(names: Iterable[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        if name not in out:
            out.append(name)
    return out


def _quote(name: str) -> str:
    # The names go into the audit record and log line: keep them short and printable.
    shown = "".join(c if c.isprintable() else "?" for c in name)[:80]
    return shown or "(none)"

