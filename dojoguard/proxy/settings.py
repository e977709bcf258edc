"""The proxy's settings, read once from ``config.yaml`` and the ``run`` options into one frozen value."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dojoguard.config import Config

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# host:port:address:port, the address bare or [bracketed] for IPv6.
_RESOLVE = re.compile(r"([^:\s\[\]]+):(\d{1,5}):(\[[0-9a-fA-F:.]+\]|[^:\s\[\]]+):(\d{1,5})")


class ResolveError(ValueError):
    """A --resolve value that is not HOST:PORT:ADDRESS:PORT."""


def parse_resolve(value: str) -> tuple[tuple[str, int], tuple[str, int]]:
    """``HOST:PORT:ADDRESS:PORT`` (as curl's --resolve, with the target port too)."""
    m = _RESOLVE.fullmatch(value)
    if not m:
        raise ResolveError(f"{value!r} is not HOST:PORT:ADDRESS:PORT (e.g. teach.classdojo.com:443:127.0.0.1:8443)")
    host, port, address, target = m.groups()
    try:
        return (host.lower(), int(port)), (address.strip("[]"), int(target))
    except ValueError:
        raise ResolveError(f"{value!r}: ports must be numbers") from None


# Modes in which a device's connection reaches the proxy by the address it was
# sent to, never by a name.
ADDRESS_MODES = ("transparent", "wireguard")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class InboundSettings:
    """The ``inbound`` settings: reading parents' messages in the threads a teacher opens."""

    language_alerts: bool = False
    # Who is told when the language rule names nobody itself (recipient groups).
    alert_to: tuple[str, ...] = ("headteacher",)
    # A thread's answer larger than this is not read (it is counted and passed on).
    max_body_bytes: int = 1024 * 1024
    # Days a parent's message is remembered as already reported (so it is not reported again).
    remember_days: int = 60

    @classmethod
    def from_config(cls, section: dict) -> "InboundSettings":
        return cls(language_alerts=bool(section["language_alerts"]), alert_to=tuple(section["alert_to"]),
                   max_body_bytes=int(section["max_body_kb"]) * 1024, remember_days=int(section["remember_days"]))


@dataclass(frozen=True)
class StaffSettings:
    """The ``staff`` settings: teachers' roles (see proxy/staff.py), read when the proxy starts."""

    roles: dict[str, list[str]] = field(default_factory=dict)
    file: Path | None = None


@dataclass(frozen=True)
class Settings:
    mode: str
    listen_host: str
    listen_port: int
    confdir: Path
    client_networks: tuple[Network, ...]
    extra_hosts: tuple[str, ...]
    uninspectable: str
    unknown_writes: str
    max_write_bytes: int
    catalogue: str
    upstream_trust: str | None
    timezone: str
    data_dir: Path
    policy: str
    exemptions: Path
    calendar: Path | None
    reload: bool
    device_groups: dict[str, list[str]]
    audit_path: Path
    registry_path: Path
    holds_path: Path
    state_path: Path
    images: dict[str, Any]
    purposes: tuple[str, ...]
    channel_purposes: dict[str, str]
    resolve: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    # WebSocket messages to ClassDojo: "judge" or "refuse" (the upgrade).
    websockets: str = "judge"
    # Bounds (see proxy/bounds.py): ports a CONNECT may name, open connections per
    # device, seconds a request body may take to arrive (0: no limit).
    connect_ports: frozenset[int] = frozenset({443, 80})
    max_connections_per_client: int = 128
    body_timeout_s: float = 120.0
    # A request head (request line and headers): largest, in KiB, and seconds it may take
    # to arrive once a head is due (0: no limit). See proxy/headlimits.py.
    max_header_kb: int = 64
    header_timeout_s: float = 30.0
    # Seconds a stop waits for the ClassDojo writes in flight to be answered (see proxy/lifecycle.py).
    drain_s: float = 10.0
    # Caps on what the proxy learns (see proxy/sessions.py and proxy/discovery.py).
    max_sessions: int = 5000
    session_days: int = 30
    max_unclassified_shapes: int = 1000
    unclassified_days: int = 90
    # Parents' messages in the threads teachers open (see proxy/inbound.py): off unless the school turns it on.
    inbound: InboundSettings = field(default_factory=lambda: InboundSettings())
    # Teachers' roles (see proxy/staff.py).
    staff: StaffSettings = field(default_factory=lambda: StaffSettings())
    # The whole configuration, for the background work (scheduled jobs, releases).
    config: Config | None = None
    # The trust's base rules the policy extends (rules.base; None: none), a file or folder.
    base: str | None = None
    # The name the proxy's CA is made with (proxy.ca_name; see certauthority.py).
    ca_name: str = "dojoguard school proxy CA"

    @classmethod
    def from_config(cls, config: Config, *, listen: str | None = None, mode: str | None = None,
                    confdir: str | Path | None = None, resolve: tuple[str, ...] = (),
                    upstream_trust: str | Path | None = None) -> "Settings":
        proxy = config["proxy"]
        host, _, port = (listen or proxy["listen"]).rpartition(":")
        confdir_path = Path(confdir) if confdir else config.path("proxy", "confdir")
        trust = upstream_trust or (str(config.path("proxy", "upstream_trust")) if proxy["upstream_trust"] else None)
        catalogue = proxy["catalogue"]
        return cls(
            mode=mode or proxy["mode"],
            # "*" is every address of both families (mitmproxy's empty host): a transparent proxy then
            # takes IPv4 and IPv6 redirects alike ("[::]" alone is IPv6 only).
            listen_host="" if host == "*" else host.strip("[]"),
            listen_port=int(port),
            confdir=confdir_path,
            ca_name=proxy["ca_name"],
            client_networks=tuple(ipaddress.ip_network(n, strict=False) for n in proxy["client_networks"]),
            extra_hosts=tuple(proxy["extra_hosts"]),
            uninspectable=proxy["uninspectable"],
            unknown_writes=proxy["unknown_writes"],
            max_write_bytes=int(proxy["max_write_body_mb"]) * 1024 * 1024,
            catalogue=catalogue if catalogue == "builtin" else str(config.path("proxy", "catalogue")),
            upstream_trust=str(trust) if trust else None,
            timezone=config["timezone"],
            data_dir=config.data_dir,
            policy=config["rules"]["policy"] if config["rules"]["policy"] == "builtin"
            else str(config.path("rules", "policy")),
            base=str(config.path("rules", "base")) if config["rules"]["base"] is not None else None,
            exemptions=config.path("rules", "exemptions"),
            calendar=config.path("rules", "calendar"),
            reload=bool(config["rules"]["reload"]),
            device_groups=dict(proxy["device_groups"]),
            audit_path=config.path("audit", "database"),
            registry_path=config.path("consent", "database"),
            holds_path=config.path("holds", "database"),
            state_path=config.path("proxy", "state"),
            images=dict(config["images"]),
            purposes=tuple(config["consent"]["purposes"]),
            channel_purposes=dict(config["consent"]["channel_purposes"]),
            resolve=dict(parse_resolve(r) for r in resolve),
            websockets=proxy["websockets"],
            connect_ports=frozenset(int(p) for p in proxy["connect_ports"]),
            max_connections_per_client=int(proxy["max_connections_per_client"]),
            body_timeout_s=float(proxy["body_timeout_s"]),
            max_header_kb=int(proxy["max_header_kb"]),
            header_timeout_s=float(proxy["header_timeout_s"]),
            drain_s=float(proxy["drain_s"]),
            max_sessions=int(proxy["max_sessions"]),
            session_days=int(proxy["session_days"]),
            max_unclassified_shapes=int(proxy["max_unclassified_shapes"]),
            unclassified_days=int(proxy["unclassified_days"]),
            inbound=InboundSettings.from_config(config["inbound"]),
            staff=StaffSettings(roles={k: list(v) for k, v in config["staff"]["roles"].items()},
                                file=config.path("staff", "file")),
            config=config,
        )

    def resolve_warnings(self) -> list[str]:
        """What a --resolve by host name does not do in transparent and WireGuard modes.

        There a device's connection arrives by the address it was sent to, so
        a name never matches it: the name steers only the proxy's own
        connections (releasing held posts, fetching attachments). That has a
        use (a stand-in for those), so it is said, not refused; a --resolve by
        address applies to both.
        """
        if self.mode not in ADDRESS_MODES:
            return []
        return [f"--resolve {host}:{port}: in {self.mode} mode devices' connections arrive by address, not by "
                "name, so this does not change where they go; it applies only to the proxy's own connections "
                "(releasing held posts, fetching attachments). To steer devices' connections, give the address "
                f"they connect to, e.g. --resolve 203.0.113.7:{port}:{address}:{target}."
                for (host, port), (address, target) in self.resolve.items() if not _is_address(host)]

    def serves(self, address: str) -> bool:
        """Whether a client at ``address`` may use the proxy (the proxy is not an open relay)."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.client_networks)
