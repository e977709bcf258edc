"""The mitmproxy master dojoguard runs: mitmproxy's proxy core, without the tools a school proxy must not carry.

``mitmdump`` loads some thirty addons: the proxy itself and a debugging
workbench around it (replaying traffic, mapping URLs to local files,
rewriting headers and bodies, saving flows to disk, loading Python scripts,
serving the mitm.it certificate page). mitmproxy hands every event of every
request to every addon, so the workbench costs each teacher's write time
even when it is switched off: measured with ``benchmarks/proxy_bench.py``,
about half a millisecond of CPU a request, more than dojoguard's own checks.
It is also surface a school proxy should not have: the flow savers would put
message text and photos on disk, and the script loader runs any Python file
an option names.

So dojoguard builds its master from the addons it needs:

- ``Core``: option checks and the core commands;
- ``Proxyserver``: the listeners, for every mode (regular, transparent, WireGuard);
- ``DnsResolver`` and ``StripDnsHttpsRecords``: the DNS that WireGuard
  clients use through the tunnel; stripping HTTPS records keeps browsers
  from learning ECH keys or HTTP/3 endpoints that would route around the proxy;
- ``NextLayer``: which connections are decrypted (``allow_hosts``);
- ``TlsConfig``: the CA, and trust in ClassDojo's (or the stand-in's) certificate;
- ``DisableH2C``: refuses cleartext HTTP/2 upgrades, which mitmproxy cannot inspect;
- ``ErrorCheck``: an error while starting (a port in use) stops the start;
- ``TermLog`` (added by the caller's ``with_termlog``): mitmproxy's own warnings.

One method of mitmproxy's TLS layer is replaced, so that large bodies are
encrypted in slices (``tlsslices.py`` says why and what it measured), and
one of its HTTP layer is wrapped, so that a body over the size limit gets
dojoguard's recorded refusal instead of a bare 413 (``oversize.py``). Its
HTTP/1 server is wrapped so that a request head has a size limit
(``headlimits.py``), and its WebSocket layer so that one message has one,
counted after permessage-deflate (``wslimits.py``).

Not loaded, on purpose: ``Block`` (dojoguard serves ``proxy.client_networks``
itself, in ``Bounds.client_connected``), ``ProxyAuth`` and
``UpstreamAuth`` (not offered), and the workbench named above.
"""

from __future__ import annotations

import structlog
from mitmproxy import master, options
from mitmproxy.addons import (
    core,
    disable_h2c,
    dns_resolver,
    errorcheck,
    next_layer,
    proxyserver,
    strip_dns_https_records,
    tlsconfig,
)

from dojoguard.proxy import headlimits, oversize, tlsslices, wslimits

log = structlog.get_logger("dojoguard.proxy")


def proxy_addons() -> list:
    return [
        core.Core(),
        proxyserver.Proxyserver(),
        dns_resolver.DnsResolver(),
        strip_dns_https_records.StripDnsHttpsRecords(),
        next_layer.NextLayer(),
        tlsconfig.TlsConfig(),
        disable_h2c.DisableH2C(),
        errorcheck.ErrorCheck(),
    ]


# The pieces of mitmproxy dojoguard replaces (see proxy/patches.py), and what is lost if one cannot be.
PATCHES = (
    (tlsslices, "tls.slices_off", "mitmproxy's TLSLayer.send_data or tls_interact differs from the supported "
                                  "version; large bodies are encrypted in one piece"),
    (oversize, "oversize.refusal_off", "mitmproxy's HttpStream.check_body_size (or the states around it) differs "
                                       "from the supported version; a body over the size limit gets mitmproxy's "
                                       "own 413, unrecorded"),
    (headlimits, "headlimits.off", "mitmproxy's Http1Server differs from the supported version; "
                                   "request heads are not limited in size"),
    (wslimits, "wslimits.off", "mitmproxy's WebsocketLayer or wsproto's deflate differs from the supported version; "
                               "WebSocket messages are not limited in size"),
)


def build(opts: options.Options | None = None, *, with_termlog: bool = True) -> master.Master:
    """A master with dojoguard's addon set (dojoguard's own addon is added by the caller)."""
    for module, event, reason in PATCHES:
        if not module.install():
            log.warning(event, reason=reason)
    m = master.Master(opts or options.Options(), with_termlog=with_termlog)
    m.addons.add(*proxy_addons())
    return m


def uninstall_patches() -> None:
    """Put mitmproxy's own methods back where ``build`` replaced them (for tests: each builds its own)."""
    for module, _, _ in PATCHES:
        module.uninstall()
