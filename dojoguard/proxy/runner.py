"""Start mitmproxy with the dojoguard addon: options from the settings, checks before anything listens."""

from __future__ import annotations

import asyncio
import signal
from mitmproxy import options, optmanager

from dojoguard.proxy import master as proxy_master
from dojoguard.proxy import bounds, draining, heap, mitmoptions
from dojoguard.proxy.addon import Guard
from dojoguard.proxy.mitmoptions import RefusedToStart
from dojoguard.proxy.services import Services
from dojoguard.proxy.settings import Settings

# mitmproxy refuses (413) any body it would buffer beyond this. dojoguard's own
# cap is max_write_body_mb, checked from Content-Length before the body is read;
# a write sent without one (chunked) is cut off here, a megabyte past the cap,
# instead of being held in memory to its end, and answered with dojoguard's
# recorded refusal (see oversize.py). Responses that are buffered
# (answers to writes, the small JSON reads the proxy learns from) are far
# smaller; everything else streams and is not limited.
BUFFER_MARGIN_MB = 1


def mitmproxy_options(settings: Settings, services: Services) -> dict:
    """The mitmproxy options for these settings (a plain dict, so it can be checked in tests)."""
    mode = settings.mode
    return {
        "mode": [mode],
        "listen_host": settings.listen_host,
        "listen_port": settings.listen_port,
        "confdir": str(settings.confdir),
        # Only ClassDojo (and configured upload hosts) is decrypted; all else is tunnelled untouched.
        "allow_hosts": services.catalogue.intercept_patterns(),
        # Never stream a request body: a streamed write is forwarded before it is judged.
        "stream_large_bodies": None,
        "body_size_limit": f"{settings.max_write_bytes // (1024 * 1024) + BUFFER_MARGIN_MB}m",
        "ssl_verify_upstream_trusted_ca": settings.upstream_trust,
        "emudhra": False,
        "emudhra_old": False,
        # HTTP/3 is not intercepted: browsers fall back to TCP when UDP 443 is blocked.
        "http3": False,
    }


def check_options(opts: options.Options) -> None:
    """Raise ``RefusedToStart`` if the options as set would make the proxy unsafe."""
    mitmoptions.refuse_leaked_ca(opts)
    if opts.stream_large_bodies:
        raise RefusedToStart("stream_large_bodies is set: streamed writes would bypass the policy")


def set_options(opts: optmanager.OptManager, settings: Settings, services: Services) -> list[str]:
    """Set dojoguard's options on mitmproxy's ``opts`` and check them; the names this mitmproxy lacks, skipped.

    Raises ``RefusedToStart`` when an option dojoguard needs is missing (see
    proxy/mitmoptions.py) or the options as set are unsafe.
    """
    skipped = mitmoptions.apply(opts, {"termlog_verbosity": "warn", **mitmproxy_options(settings, services)})
    check_options(opts)
    return skipped


async def serve(settings: Settings, services: Services, *, banner) -> None:
    """Run until interrupted; ``banner(addresses, wireguard_profiles)`` is called once the proxy listens."""
    # Before mitmproxy starts its threads: see proxy/heap.py for what and why.
    heap.tune()
    # mitmproxy's own log shows only warnings and errors (a port it cannot bind);
    # dojoguard's canonical lines come through structlog.
    master = proxy_master.build(options.Options(), with_termlog=True)
    set_options(master.options, settings, services)
    # Bounds before the Guard (body timers, the image queue's requester), the
    # destination check after it (it sees the name the device dialled first),
    # the drain last (it sees what the Guard made of each request).
    drain = draining.Drain()
    guard = Guard(services, drain=drain)
    master.addons.add(*bounds.addons(services, guard), drain)
    loop = asyncio.get_running_loop()
    # SIGTERM and Ctrl-C finish the writes in flight before stopping (see proxy/draining.py).
    stopper = draining.Stopper(master, drain, settings.drain_s)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopper.signalled, sig)
    task = asyncio.create_task(master.run())
    proxyserver = master.addons.get("proxyserver")
    # "Listening" is announced once the start is recorded (and a killed run's records signed).
    for _ in range(600):
        if task.done() or (proxyserver.listen_addrs() and guard.ready.is_set()):
            break
        await asyncio.sleep(0.05)
    if not task.done():
        profiles = [s.client_conf() for s in proxyserver.servers if hasattr(s, "client_conf")]
        banner(proxyserver.listen_addrs(), [p for p in profiles if p])
    await task
