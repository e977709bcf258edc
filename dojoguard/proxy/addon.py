"""The mitmproxy addon: each hook delegates in a few lines to the judge, the learner or the settings.

Fail closed: mitmproxy logs an exception raised in a hook and lets the flow
go on, so every policy hook catches everything and answers with an explicit,
recorded block instead.
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import time
import zoneinfo

import structlog
from mitmproxy import ctx, http, tls

from dojoguard import logs
from dojoguard.audit.durability import FlushProcess
from dojoguard.proxy import (context, enforcement, flows, learning, lifecycle, logins, mitmoptions, outcomes, paths,
                             routing)
from dojoguard.proxy.background import Background
from dojoguard.proxy.judge import Judge, Outcome, unrecorded_block
from dojoguard.proxy.recognition import WRITE_METHODS
from dojoguard.proxy.services import Services, reload_changed
from dojoguard.cookies import session_id
from dojoguard.proxy.sessions import set_cookie_session
from dojoguard.rules.action import Kind

log = structlog.get_logger("dojoguard.proxy")

OUTCOME = "dojoguard.outcome"
LEARN = "dojoguard.learn"
# The copy kept of a thread answer as it streams to the teacher (``_Copy``).
COPY = "dojoguard.copy"
GUARDED = "dojoguard.guarded"
RELOAD_INTERVAL_S = 2.0
# How often one device's failed handshakes to one host are recorded.
UNINSPECTABLE_EVERY_S = 600.0


class Guard:
    def __init__(self, services: Services, *, drain=None):
        self.services = services
        # The stop's drain (proxy/draining.py): what it finished and cut goes into proxy.stopped.
        self.drain = drain
        # Set once the start is recorded (and any recovery checkpointed): the proxy is ready.
        self.ready = asyncio.Event()
        self.judge = Judge(services)
        self._uninspectable: dict[tuple[str, str], float] = {}
        # Thread answers being read for parents' language: after the answer has gone on, never before.
        self._reading: set[asyncio.Task] = set()
        self._reloader: asyncio.Task | None = None
        self.background = Background(services, services.settings.config)
        self._tz = zoneinfo.ZoneInfo(services.settings.timezone)

    # -- lifecycle ------------------------------------------------------------

    def configure(self, updated: set[str]) -> None:
        # The start checks them once; this catches any later change that would turn them on.
        if set(mitmoptions.LEAKED_CA) & updated:
            mitmoptions.refuse_leaked_ca(ctx.options)

    async def running(self) -> None:
        if getattr(self.services.audit, "deferred_sync", False):
            flusher = FlushProcess(self.services.audit)
            try:
                await flusher.start()
                self.services.flusher = flusher
            except OSError as exc:  # writes are then flushed from a thread: slower, still safe
                log.error("audit.flusher_not_started", error=type(exc).__name__)
        settle_heap()
        try:
            # Read before this run writes anything: the last run may have been killed.
            unclean = await self._unclean_stop()
            if unclean is not None:
                log.warning("proxy.recovered", **unclean)
                await self._event("proxy.recovered", unclean)
            await self._event("proxy.started", {"policy_revision": self.services.policy.revision,
                                                "mode": self.services.settings.mode})
            if self.services.settings.reload:
                self._reloader = asyncio.create_task(self._watch(), name="dojoguard-reload")
            await self.background.start()
            if unclean is not None:
                # Until signed, the killed run's records are protected by the hash chain alone,
                # which whoever can write the database can recompute: sign them now.
                await self.background.checkpoint_now()
        finally:
            self.ready.set()  # even after a failure here, which mitmproxy logs: the proxy is serving

    async def _unclean_stop(self) -> dict | None:
        try:
            return await asyncio.to_thread(lifecycle.unclean_stop, self.services.audit)
        except Exception as exc:  # noqa: BLE001 - reported; the proxy must still start and judge
            log.error("recovery.check_failed", error=type(exc).__name__, detail=str(exc)[:200])
            return None

    async def done(self) -> None:
        if self._reloader:
            self._reloader.cancel()
        if self._reading:
            await asyncio.wait(set(self._reading), timeout=5.0)
        await self.background.stop()
        stopped = {"reason": "shutdown", **(self.drain.summary() if self.drain is not None else {})}
        await self._event("proxy.stopped", stopped)
        if self.services.flusher is not None:
            await self.services.flusher.stop()
        self.services.close()

    # -- connections ----------------------------------------------------------

    def server_connect(self, data) -> None:
        address = data.server.address
        if address:
            target = self.services.settings.resolve.get((routing.normalise(str(address[0])), int(address[1])))
            if target:
                flows.connect_elsewhere(data.server, target)

    def server_connected(self, data) -> None:
        # --resolve (and the destination check's pinned address) only chose where to connect:
        # from here on the connection is known by the name the device asked for.
        flows.name_again(data.server)

    def server_connect_error(self, data) -> None:
        flows.forget(data.server)

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        name = data.context.server.sni or data.client_hello.sni or ""
        if name.endswith("."):
            # "teach.classdojo.com." names the same host; OpenSSL will not check a certificate
            # against a name with the root's dot, so the proxy asks ClassDojo without it.
            data.context.server.sni = routing.normalise(name)
        if self.services.settings.uninspectable == "pass":
            key = (_peer(data.context.client), (data.client_hello.sni or "").lower())
            if key in self._uninspectable:
                data.ignore_connection = True

    async def tls_failed_client(self, data: tls.TlsData) -> None:
        host = (data.context.client.sni or "").lower()
        if not host or self.services.catalogue.role_of(host) is None:
            return
        device = _peer(data.context.client)
        key, now = (device, host), time.monotonic()
        last = self._uninspectable.get(key)
        self._uninspectable[key] = now
        if len(self._uninspectable) > 10_000:
            self._uninspectable.pop(next(iter(self._uninspectable)))
        if last is not None and now - last < UNINSPECTABLE_EVERY_S:
            return
        action = "refused" if self.services.settings.uninspectable == "refuse" else "passed"
        log.warning("connection.uninspectable", host=host, device=device, action=action)
        await self._event("connection.uninspectable", {"host": host, "device": device, "action": action,
                                                       "error": _error_class(data.conn.error)})

    # -- requests -------------------------------------------------------------

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        route = self._route(flow)
        if not route.classdojo:
            return
        if route.problem is not None:
            await self._misdirected(flow, route)
            return
        if _is_websocket_upgrade(flow) and self.services.settings.websockets == "refuse":
            log.warning("websocket.refused", host=route.host, device=flows.client_address(flow))
            flows.refuse(flow, 403, b"dojoguard: WebSocket connections to ClassDojo are not allowed here\n",
                         {"Content-Type": "text/plain; charset=utf-8"})
            return
        if not self._is_guarded_write(flow):
            return
        declared = flow.request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.services.settings.max_write_bytes:
            started = time.perf_counter()
            try:
                outcome = await self.judge.too_large(flows.request_of(flow, with_body=False))
            except Exception as exc:  # fail closed, as in request()
                log.exception("judge.failed", error=type(exc).__name__)
                outcome = await self._fail_closed(flow, None, exc)
            self._apply(flow, outcome, started)

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or not self._is_guarded_write(flow):
            return
        started = time.perf_counter()
        request = None
        try:
            request = flows.request_of(flow, limit=self.services.settings.max_write_bytes)
            outcome = await self.judge.judge(request, stored=lambda: flows.stored_request(flow))
        except Exception as exc:  # fail closed: an exception must never let a write through
            log.exception("judge.failed", error=type(exc).__name__)
            outcome = await self._fail_closed(flow, request, exc)
        self._apply(flow, outcome, started)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        # Answers to writes are small and read (upload ids); so are the reads we learn from.
        # Everything else (long-polls, photo and video downloads) streams through unbuffered.
        if flow.request.method.upper() in WRITE_METHODS or OUTCOME in flow.metadata:
            return
        found = self._learnable(flow)
        if found is None:
            flow.response.stream = True
        elif found[0].learn == "thread":
            # Streamed to the teacher as it comes; a copy is kept (up to inbound.max_body_kb) and read
            # once the answer has gone, for the thread's state (replies) and, when on, parents' language.
            reader = self.services.inbound
            if reader is not None and reader.too_large(_declared_size(flow.response)):
                if reader.enabled:
                    reader.skip_large(_declared_size(flow.response))
                flow.response.stream = True
            else:
                tee = _Copy(reader.settings.max_body_bytes if reader is not None else 1024 * 1024)
                flow.metadata[COPY] = tee
                flow.response.stream = tee

    async def response(self, flow: http.HTTPFlow) -> None:
        if flow.response is None:
            return
        outcome: Outcome | None = flow.metadata.get(OUTCOME)
        if outcome is not None and outcome.durable is not None:
            # The app hears back only once the decision is safe on disk. The write has reached
            # ClassDojo by now, so a failed flush cannot stop it: it is reported, and the audit
            # log refuses (so the proxy blocks) every later write until it is restarted.
            problem = await outcome.durable.wait()
            if problem is not None:
                log.error("audit.sync_failed", decision_id=outcome.decision.decision_id, error=problem)
        try:
            await self._learn(flow)
        except Exception as exc:  # noqa: BLE001 - learning is best effort; a miss means "unknown", which fails closed
            log.warning("learn.failed", error=type(exc).__name__)
        if self.services.holds is not None and self.services.holds.teachers_waiting \
                and flow.response.status_code < 300 and self._proves_login(flow, outcome):
            await logins.note(self.services, flow.request.headers.get("cookie"), self.services.clock.now())

    def _proves_login(self, flow: http.HTTPFlow, outcome: Outcome | None) -> bool:
        """Whether ClassDojo's answer shows the request's login works: an accepted write, or "who am I"."""
        if outcome is not None:
            return outcome.decision.verdict.forwards
        found = self._learnable(flow)
        return found is not None and found[0].learn == "session"

    async def websocket_message(self, flow: http.HTTPFlow) -> None:
        """Judge what a device sends over a WebSocket to ClassDojo by the content rules; drop what breaks them.

        A WebSocket message has no answer of its own to carry a notice, so a
        refused one is dropped and recorded; the device sees it not arrive.
        """
        ws = flow.websocket
        if ws is None or not ws.messages:
            return
        message = ws.messages[-1]
        # mitmproxy keeps every message for the socket's lifetime; we need none of the earlier ones.
        if len(ws.messages) > 1:
            del ws.messages[:-1]
        if not message.from_client or not self._route(flow).classdojo:
            return
        started = time.perf_counter()
        request = None
        try:
            request = flows.frame_request(flow, message.content, is_text=message.is_text)
            outcome = await self.judge.judge(request)
        except Exception as exc:  # fail closed: an exception must never let a message through
            log.exception("judge.failed", error=type(exc).__name__)
            outcome = await self._fail_closed(flow, request, exc)
        verdict = outcome.decision.verdict
        if verdict.forwards:
            if outcome.body is not None:
                message.content = outcome.body
        else:
            message.drop()
        if logs.enabled("info"):
            log.info("websocket.judged", decision_id=outcome.decision.decision_id, verdict=str(verdict),
                     rules=list(outcome.decision.rule_ids), host=flows.host_of(flow), device=flows.client_address(flow),
                     outcome="dropped" if message.dropped else "forwarded",
                     ms=round((time.perf_counter() - started) * 1000, 1))

    # -- pieces ---------------------------------------------------------------

    def _learnable(self, flow: http.HTTPFlow):
        """The catalogue's learn entry for this read, if any (looked up once per flow)."""
        if LEARN not in flow.metadata:
            route = self._route(flow)
            flow.metadata[LEARN] = None if route.problem else self.services.catalogue.learning_entry(
                flow.request.method.upper(), route.role, paths.of(flow.request.path))
        return flow.metadata[LEARN]

    def _is_guarded_write(self, flow: http.HTTPFlow) -> bool:
        """Whether this flow is a ClassDojo write the policy judges.

        A "yes" found at the headers stage is kept for the body stage (the
        method, host and path it rests on are fixed by then), which spares
        every judged write a second catalogue look-up. A "no" is worked out
        again, so a catalogue reloaded in between can still bring the write
        under the policy: the cache may only ever make the proxy stricter.
        """
        if flow.metadata.get(GUARDED):
            return True
        guarded = self._guarded(flow)
        if guarded:
            flow.metadata[GUARDED] = True
        return guarded

    def _guarded(self, flow: http.HTTPFlow) -> bool:
        """A write by its method; or any request to ClassDojo that carries a body, or publishes on the realtime host.

        A server reads a body whatever the method (an Express handler mounted
        for every method takes a GET's body as readily as a POST's), and
        PubNub's publish call is a GET with the message in its path.
        """
        method = flow.request.method.upper()
        route = self._route(flow)
        if method not in WRITE_METHODS:
            return route.classdojo and (flows.carries_body(flow.request) or (
                route.role == "realtime" and _PUBLISH.match(paths.canonical(paths.of(flow.request.path))) is not None))
        if route.problem is not None:
            return True
        return route.role is not None and not self.services.catalogue.passes(method, route.role,
                                                                             paths.of(flow.request.path))

    def _route(self, flow: http.HTTPFlow):
        """Where the request goes, from the connection as well as its headers (see ``routing``)."""
        return flows.route_of(flow, self.services.catalogue)

    async def _misdirected(self, flow: http.HTTPFlow, route) -> None:
        """A request whose names disagree: a write is refused with a recorded decision; a read is refused."""
        device = flows.client_address(flow)
        if flow.request.method.upper() not in WRITE_METHODS:
            log.warning("request.misdirected", host=route.host, device=device, problem=route.problem)
            flows.refuse(flow, 421, b"dojoguard: the request names a different host from the connection\n",
                         {"Content-Type": "text/plain; charset=utf-8"})
            return
        started = time.perf_counter()
        request = flows.request_of(flow, with_body=False)
        try:
            outcome = await self.judge.misdirected(request, route.problem)
        except Exception as exc:  # fail closed, as in request()
            log.exception("judge.failed", error=type(exc).__name__)
            outcome = await self._fail_closed(flow, request, exc)
        self._apply(flow, outcome, started)

    async def _fail_closed(self, flow: http.HTTPFlow, request, exc: BaseException) -> Outcome:
        try:
            return await self.judge.fail_closed(request or flows.request_of(flow, with_body=False), exc)
        except Exception:  # even recording failed: still block, with a fresh decision id
            log.exception("judge.fail_closed_failed")
            return unrecorded_block(self.services)

    def _apply(self, flow: http.HTTPFlow, outcome: Outcome, started: float) -> None:
        decision = outcome.decision
        flow.metadata[OUTCOME] = outcome
        if decision.verdict.forwards:
            if outcome.body is not None:
                flow.request.content = outcome.body
            status = "forwarded"
        else:
            flows.refuse(flow, *enforcement.refusal(decision, tz=self._tz, duplicate=outcome.hold_duplicate,
                                                    preface=outcome.preface))
            status = "refused"
        if logs.enabled("debug"):
            log.debug("request.context", decision_id=decision.decision_id, **context_summary(outcome.action))
        if not logs.enabled("info"):
            return  # every write passes here: skip building a line that would be dropped
        log.info("request.judged", decision_id=decision.decision_id, verdict=str(decision.verdict),
                 rules=list(decision.rule_ids), kind=str(outcome.action.kind), endpoint=outcome.action.endpoint,
                 outcome=status, teacher=outcome.action.teacher_id, device=outcome.action.device_address,
                 ms=round((time.perf_counter() - started) * 1000, 1))

    async def _learn(self, flow: http.HTTPFlow) -> None:
        s = self.services
        outcome: Outcome | None = flow.metadata.get(OUTCOME)
        if outcome is not None:
            # The app's copy of the answer names the decision, so IT can find it when a teacher asks.
            flow.response.headers[enforcement.DECISION_HEADER] = outcome.decision.decision_id
            if outcome.notices and outcome.preface is None and flow.response.status_code < 300:
                # Good news only (approved and posted): carried, not shown (the post has appeared).
                flow.response.headers[outcomes.NOTICE_HEADER] = outcomes.header_value(outcome.notices)
        if flow.response.status_code >= 300:
            return
        if outcome is not None:
            if outcome.decision.verdict.forwards and outcome.checked:
                self.judge.remember_upload(outcome, _json(flow.response))
            if outcome.decision.verdict.forwards and outcome.recognition is not None \
                    and outcome.recognition.kind in (Kind.STORY_POST, Kind.MESSAGE_SEND):
                self.judge.remember_answered(outcome, _json(flow.response))
            return
        found = self._learnable(flow)
        if found is None:
            return
        entry, params = found
        if entry.learn == "thread":
            self._read_thread(flow, params)
            return
        if flow.response.stream:
            return
        doc = _json(flow.response)
        if doc is None:
            return
        sid = set_cookie_session(flow.response.headers.get_all("set-cookie")) or \
            session_id(flow.request.headers.get("cookie"))
        await asyncio.to_thread(learning.learn, s, entry.learn, doc, params=params, session=sid, at=s.clock.now())

    def _read_thread(self, flow: http.HTTPFlow, params: dict[str, str]) -> None:
        """Start reading a thread's answer (its state; parents' language when on); the answer has gone on."""
        s = self.services
        copy: _Copy | None = flow.metadata.get(COPY)
        thread = params.get("threadId")
        if copy is None or not thread:
            return
        reader = s.inbound
        if copy.overflowed:
            if reader is not None and reader.enabled:
                reader.skip_large(copy.size)
            return
        raw = copy.content()
        if not raw:
            return
        paged = context.pages_back(flow.request.query)
        teacher, _ = s.sessions.teacher(session_id(flow.request.headers.get("cookie")))
        encoding = flow.response.headers.get("content-encoding", "")
        task = asyncio.create_task(self._check_thread(raw, encoding, thread, teacher, paged),
                                   name="dojoguard-thread")
        self._reading.add(task)
        task.add_done_callback(self._reading.discard)

    async def _check_thread(self, raw: bytes, encoding: str, thread: str, teacher: str | None,
                            paged: bool = False) -> None:
        s = self.services
        try:
            await asyncio.to_thread(self._thread_answer, raw, encoding, thread, teacher, paged)
        except Exception as exc:  # noqa: BLE001 - counted and logged; the teacher's page has already gone on
            s.inbound.failed(exc)

    def _thread_answer(self, raw: bytes, encoding: str, thread: str, teacher: str | None, paged: bool) -> None:
        """Blocking: parse once; remember the thread's state, and check parents' language when turned on."""
        s = self.services
        doc = s.inbound.parse(raw, encoding=encoding)
        if doc is None:
            return
        if s.threads is not None and not paged:
            state = s.threads.learn(thread, doc)
            log.debug("thread.read", thread=thread, started_by=state.started_by if state else None,
                      waiting=state.parent_wrote_at is not None if state else None)
        if s.inbound.enabled:
            s.inbound.check(doc, policy=s.policy, audit=s.audit, thread=thread, teacher=teacher, at=s.clock.now())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_INTERVAL_S)
            try:
                await self.reload()
            except Exception:  # the watcher must outlive any one bad reload
                log.exception("reload.failed")

    async def reload(self) -> None:
        """Load changed rule, exemption and catalogue files; a broken one keeps the last good version."""
        for r in await asyncio.to_thread(reload_changed, self.services):
            revision = self.services.policy.revision
            if r.ok:
                log.warning("reload.applied", what=r.what, source=r.source)
                if r.what == "catalogue":
                    # New hosts are decrypted from the next connection; open ones are not dropped.
                    ctx.options.update(allow_hosts=self.services.catalogue.intercept_patterns())
                await self._event("policy.reloaded", {"policy_revision": revision, "source": r.source,
                                                      "previous_revision": r.previous_revision, "what": r.what})
            else:
                log.error("reload.rejected", what=r.what, source=r.source, problems=r.problems,
                          codes=list(r.codes), places=list(r.places), kept="the last good version",
                          hint="dojoguard rules check lists every problem with its hint")
                await self._event("policy.rejected", {"source": r.source, "problems": r.problems,
                                                      "codes": list(r.codes), "places": list(r.places),
                                                      "policy_revision": revision, "what": r.what})

    async def _event(self, name: str, fields: dict) -> None:
        try:
            await asyncio.to_thread(self.services.audit.append_event, name, fields)
        except Exception as exc:  # noqa: BLE001 - reported; the events are not decisions
            log.error("audit.event_failed", audit_event=name, error=type(exc).__name__)


def context_summary(action) -> dict:
    """What a decision knew around the write, for the debug log: ids, roles, counts and times; no names."""
    classes = action.teacher_classes
    reply = action.reply
    return {
        "roles": list(action.teacher_roles) if action.teacher_roles is not None else None,
        "classes": len(classes) if classes is not None else None,
        "teaches_class": (action.class_id in classes) if classes is not None and action.class_id else None,
        "class_named": action.class_name is not None,
        "on": str(action.on_channel) if action.on_channel is not None else None,
        "reply": None if reply is None else {
            "thread": reply.thread_id, "started_by": str(reply.started_by) if reply.started_by else None,
            "parent_wrote_at": reply.parent_wrote_at.isoformat() if reply.parent_wrote_at else None,
            "nobody_waiting": reply.nobody_waiting},
    }


class _Copy:
    """A response ``stream`` that passes every chunk on unchanged and keeps a copy, up to ``limit`` bytes."""

    def __init__(self, limit: int):
        self.limit = limit
        self.size = 0
        self.overflowed = False
        self._chunks: list[bytes] = []

    def __call__(self, chunk: bytes) -> bytes:
        self.size += len(chunk)
        if not self.overflowed:
            if self.size > self.limit:
                self.overflowed = True
                self._chunks.clear()
            elif chunk:
                self._chunks.append(chunk)
        return chunk

    def content(self) -> bytes:
        return b"" if self.overflowed else b"".join(self._chunks)


def _declared_size(response: http.Response) -> int | None:
    """The body size the answer's Content-Length declares (None: not given or unreadable)."""
    try:
        return int(response.headers.get("content-length", ""))
    except ValueError:
        return None


def settle_heap() -> None:
    """Keep the garbage collector off the long-lived start-up heap.

    By the time the proxy listens it holds everything it keeps for its
    lifetime (mitmproxy, the compiled policy and catalogue, the libraries).
    Python's older-generation collections walk every tracked object, so each
    re-read that whole heap while a teacher's request waited: profiled while
    serving message writes, collection took about a tenth of the proxy's
    CPU, and under one per cent once frozen. Freezing moves the start-up objects out of the
    collector's generations; objects made while serving (and any cycles
    among them) are collected as before, and the memory figure of the
    benchmark shows the heap does not grow.
    """
    gc.collect()
    gc.freeze()


# PubNub's REST calls that send a message (the message is in the path): publish and signal.
_PUBLISH = re.compile(r"/(publish|signal)/", re.IGNORECASE)


def _is_websocket_upgrade(flow: http.HTTPFlow) -> bool:
    return (flow.request.headers.get("upgrade") or "").strip().lower() == "websocket"


def _peer(client) -> str:
    return str(client.peername[0]) if client.peername else ""


def _error_class(error: str | None) -> str:
    # The TLS error text can carry details of the device; keep only its class.
    text = (error or "").lower()
    for word in ("unknown ca", "certificate", "handshake", "closed", "timeout"):
        if word in text:
            return word
    return "tls"


def _json(response: http.Response):
    try:
        return json.loads(response.get_content(strict=False) or b"null")
    except (ValueError, UnicodeDecodeError):
        return None
