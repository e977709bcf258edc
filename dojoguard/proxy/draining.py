"""Stopping without cutting teachers' writes short: SIGTERM (or Ctrl-C) drains the proxy, then stops it.

mitmproxy's own stop ends the event loop at once: a write that was being
judged, or whose answer ClassDojo had not sent yet, was cancelled, and the
teacher's app saw its connection reset with no way to know whether the post
had gone. So a stop goes in three steps (``Stopper``):

1. The proxy stops taking new work: its listeners close (new connections are
   refused; in WireGuard mode the tunnel stays up and new connections through
   it are closed instead), and a request arriving on a connection already
   open is answered 503 with ``Connection: close``, never forwarded.
2. The ClassDojo writes already in flight (``Drain`` follows each from its
   headers to its answer) are judged, sent on and answered, for at most
   ``proxy.drain_s`` seconds.
3. Writes still unanswered then are cut (their connections closed, the count
   logged), and the proxy stops as before: ``Guard.done`` records
   ``proxy.stopped`` with ``drained``, ``cut`` and ``refused``, and stops the
   audit flusher, which ignores SIGTERM and so is still there to flush the
   drained writes' records.

A second signal during the drain cuts what is left at once.
"""

from __future__ import annotations

import asyncio
import signal

import structlog
from mitmproxy import http

from dojoguard.proxy import flows
from dojoguard.proxy.addon import GUARDED, OUTCOME

log = structlog.get_logger("dojoguard.proxy")

# How often the drain looks at the writes it waits for.
POLL_S = 0.02
# How long the listeners may take to close before the drain goes on regardless.
CLOSE_LISTENERS_S = 2.0
NOTICE_STOPPING = b"dojoguard: the proxy is restarting; please try again in a moment\n"


class Drain:
    """A mitmproxy addon (after ``Guard``): the ClassDojo writes in flight, and refusals once the proxy is stopping."""

    def __init__(self):
        self.stopping = False
        # Guarded writes from their headers to their answer, by flow id.
        self._writes: dict[str, http.HTTPFlow] = {}
        # Requests refused while stopping, until their 503 has gone out.
        self._refusals: dict[str, http.HTTPFlow] = {}
        self.drained = 0
        self.cut = 0
        self.refused = 0
        self.signal: str | None = None

    # -- mitmproxy hooks -------------------------------------------------------

    def client_connected(self, client) -> None:
        if self.stopping and not client.error:
            # Only reached where the listener stays open (WireGuard's tunnel) or a connection raced its closing.
            client.error = "dojoguard: the proxy is stopping"

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if self.stopping and flow.response is None:
            self._refuse(flow)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if self.stopping:
            if flow.response is None:
                self._refuse(flow)
            else:
                self._refusals[flow.id] = flow  # answered by the Guard already (a recorded refusal): let it go out
            return
        if flow.metadata.get(GUARDED):
            self._writes[flow.id] = flow

    def request(self, flow: http.HTTPFlow) -> None:
        # A write the Guard judged here but not at its headers (a catalogue reloaded in between).
        if (flow.metadata.get(GUARDED) or OUTCOME in flow.metadata) and flow.id not in self._refusals:
            self._writes[flow.id] = flow

    def response(self, flow: http.HTTPFlow) -> None:
        # While stopping, the drain lets go of a flow once its answer has been sent (see _finished).
        if not self.stopping:
            self._writes.pop(flow.id, None)

    def error(self, flow: http.HTTPFlow) -> None:
        if not self.stopping:
            self._writes.pop(flow.id, None)

    def client_disconnected(self, client) -> None:
        # A device that hung up mid-write: mitmproxy reports the flow's error too; this makes sure it is let go.
        if not self.stopping and self._writes:
            for key in [k for k, f in self._writes.items() if f.client_conn.id == client.id]:
                del self._writes[key]

    # -- the stop --------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._writes)

    def begin(self) -> None:
        self.stopping = True

    async def wait(self, deadline: float, hurry: asyncio.Event) -> None:
        """Until every write in flight and every refusal is answered, ``deadline`` (loop time) passes, or ``hurry``."""
        loop = asyncio.get_running_loop()
        while True:
            for flow in [f for f in self._writes.values() if _finished(f)]:
                del self._writes[flow.id]
                self.drained += 1
            for flow in [f for f in self._refusals.values() if _finished(f)]:
                del self._refusals[flow.id]
            if not self._writes and not self._refusals or hurry.is_set() or loop.time() >= deadline:
                return
            try:
                await asyncio.wait_for(hurry.wait(), min(POLL_S, max(0.0, deadline - loop.time())))
            except TimeoutError:
                pass

    def cut_remaining(self, proxyserver) -> int:
        """Close the connections of the writes still unanswered (and of late refusals); returns how many writes."""
        cut = list(self._writes.values())
        for flow in cut + list(self._refusals.values()):
            _close_client(proxyserver, flow)
        self.cut += len(cut)
        self._writes.clear()
        self._refusals.clear()
        return len(cut)

    def summary(self) -> dict:
        """The fields ``proxy.stopped`` carries; writes still in flight now (a stop without a drain) count as cut."""
        fields = {"drained": self.drained, "cut": self.cut + len(self._writes), "refused": self.refused}
        if self.signal is not None:
            fields["signal"] = self.signal
        return fields

    def _refuse(self, flow: http.HTTPFlow) -> None:
        self.refused += 1
        self._refusals[flow.id] = flow
        log.info("request.refused_stopping", device=flows.client_address(flow), method=flow.request.method,
                 host=flow.request.pretty_host)
        flows.refuse(flow, 503, NOTICE_STOPPING,
                     {"Content-Type": "text/plain; charset=utf-8", "Connection": "close", "Retry-After": "10"})


class Stopper:
    """Runs the stop when a signal arrives: close the listeners, drain, cut what is left, stop mitmproxy."""

    def __init__(self, master, drain: Drain, drain_s: float):
        self.master = master
        self.drain = drain
        self.drain_s = max(0.0, float(drain_s))
        self._hurry = asyncio.Event()
        self._task: asyncio.Task | None = None

    def signalled(self, sig: signal.Signals) -> None:
        """The signal handler: the first signal starts the stop, a second one cuts the drain short."""
        if self._task is None:
            self.drain.signal = sig.name
            self._task = asyncio.get_running_loop().create_task(self._stop(sig), name="dojoguard-stop")
        else:
            log.warning("proxy.stop_hurried", signal=sig.name, in_flight=self.drain.in_flight)
            self._hurry.set()

    async def _stop(self, sig: signal.Signals) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_s
        try:
            self.drain.begin()
            log.warning("proxy.stopping", signal=sig.name, in_flight=self.drain.in_flight, drain_s=self.drain_s)
            await self._close_listeners()
            await self.drain.wait(deadline, self._hurry)
            cut = self.drain.cut_remaining(self.master.addons.get("proxyserver"))
            if cut:
                log.warning("proxy.cut", cut=cut, drained=self.drain.drained, drain_s=self.drain_s)
                await asyncio.sleep(POLL_S)  # let the cut connections' handlers close
            else:
                log.info("proxy.drained", drained=self.drain.drained, refused=self.drain.refused)
        except Exception:  # whatever went wrong, the proxy must still stop
            log.exception("proxy.drain_failed")
        finally:
            self.master.shutdown()

    async def _close_listeners(self) -> None:
        """Stop accepting connections (not in WireGuard mode, whose one listener carries the open connections too)."""
        options = self.master.options
        if any(str(mode).startswith("wireguard") for mode in options.mode):
            return
        options.update(server=False)
        proxyserver = self.master.addons.get("proxyserver")
        loop = asyncio.get_running_loop()
        until = loop.time() + CLOSE_LISTENERS_S
        while proxyserver.listen_addrs() and loop.time() < until:  # noqa: ASYNC110 - mitmproxy has no event to await
            await asyncio.sleep(POLL_S)


def _finished(flow: http.HTTPFlow) -> bool:
    """The flow's answer has been handed to the device's connection, the flow failed, or the device hung up."""
    return (flow.error is not None or (flow.response is not None and not flow.live)
            or flow.client_conn.timestamp_end is not None)


def _close_client(proxyserver, flow: http.HTTPFlow) -> None:
    """End the device's connection this flow came on, as mitmproxy does when a device hangs up."""
    handler = proxyserver.connections.get(flow.client_conn.id) if proxyserver is not None else None
    if handler is None:
        return
    try:
        io = handler.transports.get(handler.client)
        if io is not None and io.handler is not None:
            io.handler.cancel("dojoguard: the proxy is stopping")
    except AttributeError:  # a mitmproxy whose connection handler differs: mitmproxy's own stop cuts it
        log.warning("proxy.cut_unsupported")
