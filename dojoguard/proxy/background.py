"""The proxy's own timed work: sending on held and deferred requests, signed checkpoints, the scheduled jobs.

All start when the proxy is running and stop when it shuts down. None ever
blocks the event loop: releases send from a worker thread; a signed
checkpoint is asked for by the audit log's commit hook (which only sets an
event) every ``audit.checkpoint_every_records`` records, or after
``audit.checkpoint_every_s`` seconds, and is made on a worker thread; the
jobs (weekly report, daily checkpoint, purge, review reminder) run on the
scheduler's own thread.
"""

from __future__ import annotations

import asyncio
import zoneinfo
from datetime import timedelta
from typing import Any

import structlog

from dojoguard.holds.releaser import Releaser
from dojoguard.holds.sender import Sender
from dojoguard.proxy import counting, heap, scheduled
from dojoguard.proxy.services import reload_exemptions
from dojoguard.cookies import session_id

log = structlog.get_logger("dojoguard.proxy")


# Seconds between readings of the school's imported names when the state is on the trust's server: a
# `dojoguard names import` reaches decisions within this.
NAMES_EVERY_S = 5.0
# Seconds between looks at the school's exemptions on the trust's server: a grant or revocation made there
# reaches the proxy within this.
EXEMPTIONS_EVERY_S = 5.0
# How long a release waits for ClassDojo's answer before it counts as sent without an answer (uncertain).
_SEND_TIMEOUT_S = 30.0


class Background:
    def __init__(self, services: Any, config: Any | None):
        self.services = services
        self.config = config
        self._release_task: asyncio.Task | None = None
        self._trim_task: asyncio.Task | None = None
        self._checkpoint_task: asyncio.Task | None = None
        self.cadence = None
        self._jobs = None
        self.releaser: Releaser | None = None
        self.alerts = None
        self._counting_task: asyncio.Task | None = None
        self._names_task: asyncio.Task | None = None
        self._exemptions_task: asyncio.Task | None = None
        self.exemptions_copy = None
        self.shipper = None
        self.register_copy = None

    async def start(self) -> None:
        s = self.services
        self._trim_task = asyncio.create_task(self._trim_loop(heap.TRIM_EVERY_S), name="dojoguard-trim")
        if getattr(s, "counts", None) is not None:
            self._counting_task = asyncio.create_task(self._counting_loop(), name="dojoguard-counting")
        if getattr(s, "names", None) is not None and s.names.snapshots_imported:
            self._names_task = asyncio.create_task(self._names_loop(NAMES_EVERY_S), name="dojoguard-names")
        if s.holds is not None and self.config is not None:
            holds = self.config["holds"]
            sender = Sender(resolve=dict(s.settings.resolve), upstream_trust=s.settings.upstream_trust,
                            timeout=_SEND_TIMEOUT_S)
            self.releaser = Releaser(s.holds, sender.send, s.audit, s.clock,
                                     max_attempts=holds["release_attempts"],
                                     max_age=timedelta(days=holds["max_age_days"]),
                                     tz=zoneinfo.ZoneInfo(s.settings.timezone),
                                     login_owner=lambda cookie: s.sessions.teacher(session_id(cookie))[0])
            self._release_task = asyncio.create_task(self._release_loop(float(holds["check_every_s"])),
                                                     name="dojoguard-release")
        if self.config is not None:
            await self._start_checkpoints()
            from dojoguard.audit.jobs import start_jobs

            try:
                self._jobs = await asyncio.to_thread(start_jobs, self.config, s.audit, s.clock)
            except Exception as exc:  # noqa: BLE001 - reported loudly; the proxy itself keeps judging
                log.error("jobs.not_started", error=type(exc).__name__, detail=str(exc)[:200])
            await self._start_alerts()
            await self._start_shipper()
            self._start_register_copy()
            self._start_exemptions_copy()

    async def _start_alerts(self) -> None:
        from dojoguard.alerts.sender import AlertSender, AlertSettings, alerting_groups

        s = self.services
        settings = AlertSettings.from_config(self.config)
        if not settings.enabled:
            log.info("alerts.off", reason="no addresses in alerts.recipients")
            return

        def describe(rule_id: str) -> str | None:
            rule = s.policy.rule(rule_id)  # the policy in force now (reloads replace it)
            if rule is None:
                check = next((c for c in s.policy.checks if c.id == rule_id), None)
                return check.description if check is not None else None
            return rule.description

        try:
            self.alerts = await asyncio.to_thread(AlertSender, settings, s.audit, s.clock,
                                                  names=s.names.name, describe=describe)
        except Exception as exc:  # noqa: BLE001 - reported loudly; decisions still record who must be told
            log.error("alerts.not_started", error=type(exc).__name__, detail=str(exc)[:200])
            await asyncio.to_thread(self._record_failure, f"alerts: {type(exc).__name__}: {exc}"[:900], "alerts")
            return
        self.alerts.start()
        log.info("alerts.started", groups=sorted(g for g, a in settings.recipients.items() if a))
        unrouted = sorted(alerting_groups(s.policy) - {g for g, a in settings.recipients.items() if a})
        if unrouted:
            # Each alert to them is kept and retried, and its failure recorded; say so now as well.
            log.warning("alerts.no_address", groups=unrouted,
                        hint="set their addresses in alerts.recipients; see `dojoguard alerts status`")

    async def _start_shipper(self) -> None:
        """Ship the audit records to the trust's central store (trust.database), on a thread of its own."""
        from dojoguard.trust.central import TrustError
        from dojoguard.trust.shipper import Shipper, ShipSettings

        try:
            settings = ShipSettings.from_config(self.config)
        except TrustError as exc:
            log.error("trust.not_started", detail=str(exc)[:200])
            await asyncio.to_thread(self._record_failure, f"trust: {exc}"[:900], "trust")
            return
        if settings is None:
            return
        audit = self.services.audit
        # Only what the local log has made durable leaves the machine (see dojoguard.trust.shipper).
        self.shipper = Shipper(settings, limit=lambda: audit.synced_seq, record=audit.append_event)
        self.shipper.start()
        log.info("trust.shipping", node=settings.node, school=settings.school)

    def _start_register_copy(self) -> None:
        """Keep this proxy's copy of the school's register on the trust's server up to date (storage: postgresql)."""
        from dojoguard.consent_registry.replica import Replica
        from dojoguard.storage.location import Storage

        storage = Storage.from_config(self.config)
        if not storage.central:
            return
        self.register_copy = Replica(storage, self.config.path("consent", "database"),
                                     max_staleness_s=float(self.config["consent"]["max_staleness_s"]),
                                     record=self.services.audit.append_event)
        self.register_copy.start()
        log.info("consent.copying", school=storage.school, max_staleness_s=self.register_copy.max_staleness_s)

    def _start_exemptions_copy(self) -> None:
        """Keep the exemptions file equal to the school's exemptions on the trust's server (storage: postgresql)."""
        from dojoguard.rules.exemption_store import ExemptionsCopy
        from dojoguard.storage.location import Storage

        storage = Storage.from_config(self.config)
        if not storage.central:
            return
        self.exemptions_copy = ExemptionsCopy(storage, self.services.settings.exemptions,
                                              max_staleness_s=float(self.config["consent"]["max_staleness_s"]))
        self._exemptions_task = asyncio.create_task(self._exemptions_loop(EXEMPTIONS_EVERY_S),
                                                    name="dojoguard-exemptions")

    async def _exemptions_loop(self, every_s: float) -> None:
        """Copy the server's exemptions here when they change; suspend them all while it cannot be reached."""
        from dojoguard.rules.exemption_trail import TYPES

        s, copy = self.services, self.exemptions_copy

        def recorded() -> set[tuple[str, str]]:
            return {(r.type, r.fields.get("exemption")) for r in s.audit.records(types=TYPES)}

        while True:
            try:
                rewritten = await asyncio.to_thread(copy.sync, recorded=recorded, record=s.audit.append_event)
                resumed = s.exemptions_suspended
                s.exemptions_suspended = False
                if rewritten or resumed:
                    # Applied now, checked against the record as any reload is (whatever rules.reload says:
                    # the server's exemptions are the school's, not a file someone is editing here).
                    reloaded = await asyncio.to_thread(reload_exemptions, s)
                    await asyncio.to_thread(self._record_reload, reloaded)
                if resumed:
                    await asyncio.to_thread(s.audit.append_event, "exemptions.resumed", {})
                    log.warning("exemptions.resumed")
            except Exception as exc:  # noqa: BLE001 - the server or the audit log: retried at the next look
                log.error("exemptions.copy_failed", error=type(exc).__name__, detail=str(exc)[:200])
                if copy.stale and not s.exemptions_suspended:
                    from dojoguard.rules.exemptions import Exemptions

                    s.exemptions_suspended = True
                    s.exemptions = Exemptions((), str(s.settings.exemptions))
                    log.error("exemptions.suspended", max_staleness_s=copy.max_staleness_s)
                    await asyncio.to_thread(self._record_suspension, copy, exc)
            await asyncio.sleep(every_s)

    def _record_reload(self, r) -> None:
        s = self.services
        if r.ok:
            s.audit.append_event("policy.reloaded", {"policy_revision": s.policy.revision, "source": r.source,
                                                     "previous_revision": r.previous_revision, "what": r.what})
        else:
            log.error("reload.rejected", what=r.what, source=r.source, problems=r.problems, codes=list(r.codes),
                      kept="the exemptions in force before")
            s.audit.append_event("policy.rejected", {"source": r.source, "problems": r.problems,
                                                     "codes": list(r.codes), "places": list(r.places),
                                                     "policy_revision": s.policy.revision, "what": r.what})

    def _record_suspension(self, copy, exc: BaseException) -> None:
        try:
            self.services.audit.append_event("exemptions.suspended", {
                "error": f"{type(exc).__name__}: {exc}"[:300], "max_staleness_s": copy.max_staleness_s})
        except Exception:  # the audit log reports its own failures; the exemptions stay suspended
            log.exception("exemptions.suspension_unrecorded")

    async def _start_checkpoints(self) -> None:
        from dojoguard.audit.cadence import Cadence

        audit, settings = self.config["audit"], self.config
        publish = settings.path("audit", "checkpoint_publish_dir")
        try:
            self.cadence = await asyncio.to_thread(
                Cadence, self.services.audit, settings.path("audit", "signing_key"),
                settings.path("audit", "checkpoint_dir"), [publish] if publish is not None else [],
                every_records=int(audit["checkpoint_every_records"]), every_s=float(audit["checkpoint_every_s"]))
        except Exception as exc:  # noqa: BLE001 - reported loudly; the daily job still checkpoints
            log.error("checkpoints.not_started", error=type(exc).__name__, detail=str(exc)[:200])
            return
        loop, owed = asyncio.get_running_loop(), asyncio.Event()
        # The commit hook may run on the loop or on a worker thread: either way it only schedules this.
        self.cadence.wake_with(lambda: loop.call_soon_threadsafe(owed.set))
        self.services.audit.watch_commits(self.cadence.note)
        self._checkpoint_task = asyncio.create_task(self._checkpoint_loop(owed), name="dojoguard-checkpoints")

    async def _checkpoint_loop(self, owed: asyncio.Event) -> None:
        cadence = self.cadence
        failing = False
        while True:
            try:
                await asyncio.wait_for(owed.wait(), cadence.every_s)
            except TimeoutError:
                pass
            owed.clear()
            try:
                checkpoint = await asyncio.to_thread(cadence.run)
                if checkpoint is not None:
                    log.debug("checkpoint.signed", seq=checkpoint.seq)
                failing = False
            except Exception as exc:  # noqa: BLE001 - the loop must outlive one failure; the next try follows
                log.error("checkpoint.failed", error=type(exc).__name__, detail=str(exc)[:200])
                if not failing:  # once per run of failures, so leaders see it in the report's health section
                    failing = True
                    await asyncio.to_thread(self._record_failure, f"{type(exc).__name__}: {exc}"[:900])

    async def checkpoint_now(self) -> bool:
        """Sign a checkpoint now rather than at the cadence's next turn (after an unclean stop); True if one was made.

        A failure is logged and recorded as the cadence's are; the cadence tries again at its next turn.
        """
        if self.cadence is None:
            log.error("checkpoint.not_made", reason="the checkpoint cadence is not running")
            return False
        try:
            checkpoint = await asyncio.to_thread(self.cadence.run)
        except Exception as exc:  # noqa: BLE001 - reported; the proxy still serves, the cadence retries
            log.error("checkpoint.failed", error=type(exc).__name__, detail=str(exc)[:200])
            await asyncio.to_thread(self._record_failure, f"{type(exc).__name__}: {exc}"[:900])
            return False
        if checkpoint is not None:
            log.info("checkpoint.signed", seq=checkpoint.seq, why="recovery")
        return checkpoint is not None

    def _record_failure(self, error: str, job: str = "checkpoint_cadence") -> None:
        try:
            self.services.audit.append_event("job.failed", {"job": job, "error": error})
        except Exception:  # noqa: BLE001 - the audit log itself may be what fails; the application log has it
            pass

    async def stop(self) -> None:
        if self.releaser is not None:
            # A send in progress is let finish: cut short, its item would have to wait for a
            # person as "uncertain" even though ClassDojo may have answered.
            # Bounded by proxy.drain_s like the writes in flight: one cut short is "uncertain", never resent.
            self.releaser.closing = True
            if not await self.releaser.finish(float(getattr(self.services.settings, "drain_s", 10.0))):
                log.warning("hold.release_cut_short")
        if self.cadence is not None:
            self.services.audit.watch_commits(None)
        for task in (self._release_task, self._trim_task, self._checkpoint_task, self._counting_task,
                     self._names_task, self._exemptions_task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        if self.cadence is not None:
            await asyncio.to_thread(self.cadence.wait_idle)
        if getattr(self.services, "counts", None) is not None:
            try:
                await asyncio.to_thread(self.services.counts.flush)
            except Exception:  # at worst the last seconds' counts are lost
                log.exception("counting.flush_failed")
        if self.alerts is not None:
            # An email being handed over is let finish; what is not sent waits in the outbox for the next start.
            await asyncio.to_thread(self.alerts.stop, float(getattr(self.services.settings, "drain_s", 10.0)))
        if self._jobs is not None:
            # Shutting the jobs down writes the shutdown checkpoint.
            await asyncio.to_thread(self._jobs.shutdown)
        if self.exemptions_copy is not None:
            await asyncio.to_thread(self.exemptions_copy.close)
        if self.register_copy is not None:
            await asyncio.to_thread(self.register_copy.stop, float(getattr(self.services.settings, "drain_s", 10.0)))
        if self.shipper is not None:
            # A batch in flight is let finish; the rest is shipped at the next start (or by `trust ship`).
            await asyncio.to_thread(self.shipper.stop, float(getattr(self.services.settings, "drain_s", 10.0)))

    async def _counting_loop(self) -> None:
        """Write what was counted every few seconds, forget old counts hourly, run scheduled checks due."""
        s = self.services
        last_purge = last_look = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(counting.FLUSH_EVERY_S)
            try:
                await asyncio.to_thread(s.counts.flush)
                if loop.time() - last_purge > 3600:
                    await asyncio.to_thread(s.counts.purge, s.clock.now())
                    last_purge = loop.time()
                if loop.time() - last_look >= scheduled.LOOK_EVERY_S:
                    last_look = loop.time()
                    await asyncio.to_thread(scheduled.run_due, s, s.clock.now())
            except Exception as exc:  # kept in memory and tried again; the proxy goes on
                log.exception("counting.failed")
                await asyncio.to_thread(self._record_failure, f"counting: {type(exc).__name__}: {exc}"[:900],
                                        "counting")

    async def _names_loop(self, every_s: float) -> None:
        """The school's imported names read again from the server (decisions read them on the event loop)."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await asyncio.to_thread(self.services.names.refresh_imported)
            except Exception:  # the last names read stand until the server answers again
                log.exception("names.refresh_failed")

    async def _trim_loop(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await asyncio.to_thread(heap.trim)
            except Exception:  # housekeeping; the proxy goes on without it
                log.exception("memory.trim_failed")

    async def _release_loop(self, every_s: float) -> None:
        while True:
            try:
                for outcome in await self.releaser.run_once():
                    log.info("hold.release", outcome=outcome.event, hold=outcome.item.id,
                             decision_id=outcome.item.decision_id, detail=outcome.detail)
            except Exception:  # the loop must outlive one bad pass; items stay in the store
                log.exception("hold.release_failed")
            await asyncio.sleep(every_s)
