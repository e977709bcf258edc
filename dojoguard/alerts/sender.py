"""The alert sender: a thread of the proxy that turns alerting audit records into emails, and keeps trying.

Each turn it (1) reads the audit records written since its cursor and queues
the alerts they ask for, (2) forms emails of what has waited long enough
(``alerts.gather_s`` for "now" alerts; the day's digest at
``alerts.digest_time``), and (3) sends each email that is due, one per
recipient group. A failure is retried with backoff (``RETRY_FIRST_S``
doubling to ``RETRY_MOST_S``); the first failure of an email, and every
hour it keeps failing, is recorded (``alert.failed``, shown in the report's
system health), and so is every email sent (``alert.sent``, with how many
tries it took). It never runs on the proxy's event loop and reads the audit
log through a read-only connection of its own, so a slow mail server delays
only alerts.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import structlog

from dojoguard.alerts import compose
from dojoguard.alerts.outbox import Batch, Outbox, alerts_of
from dojoguard.audit import mail
from dojoguard.storage import SQLiteDatabase

log = structlog.get_logger("dojoguard.alerts")

RETRY_FIRST_S = 15.0
RETRY_MOST_S = 600.0
# While an email keeps failing, the failure is recorded again this often (not at every try).
RECORD_FAILING_EVERY = timedelta(hours=1)
# Sent emails (and their lines) are kept this long in the outbox, for `alerts status`.
KEEP_SENT = timedelta(days=30)
# Audit records read per turn; a backlog is worked through over several turns.
READ_AT_MOST = 2000


def _only_sender(database: Path) -> int:
    """An exclusive lock beside the outbox, held while this sender lives: a second sender on the same
    outbox (another proxy on the same data folder) would send the same emails again."""
    path = Path(database).with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise RuntimeError(f"another alert sender is using {database}; only one may send its alerts") from None
    return fd


def alerting_groups(policy) -> set[str]:
    """Every recipient group the policy's rules name in ``alert``."""
    return {group for rule in policy.rules if rule.match is not None and rule.match.alert is not None
            for group in rule.match.alert.to}


@dataclass
class AlertSettings:
    """The ``alerts`` settings, with the mail server from ``reports.smtp``."""

    recipients: dict[str, list[str]]
    smtp: dict
    database: Path
    audit_database: Path
    tz: ZoneInfo
    gather_s: float = 30.0
    digest_time: time = time(16, 30)
    check_every_s: float = 5.0
    send_timeout_s: float = 30.0

    @property
    def enabled(self) -> bool:
        return any(self.recipients.values())

    @classmethod
    def from_config(cls, config) -> "AlertSettings":
        a = config["alerts"]
        hours, minutes = (int(p) for p in str(a["digest_time"]).split(":"))
        return cls(recipients={k: list(v or []) for k, v in (a.get("recipients") or {}).items()},
                   smtp=dict(config["reports"]["smtp"] or {}), database=config.path("alerts", "database"),
                   audit_database=config.path("audit", "database"), tz=config.timezone,
                   gather_s=float(a["gather_s"]), digest_time=time(hours, minutes),
                   check_every_s=float(a["check_every_s"]))


class AlertSender:
    """Runs ``turn`` every ``check_every_s`` on its own thread until ``stop``."""

    def __init__(self, settings: AlertSettings, audit, clock, *, names: compose.Names | None = None,
                 describe: Callable[[str], str | None] | None = None,
                 send: Callable[..., None] | None = None):
        self.settings = settings
        self.audit = audit  # the proxy's AuditLog, for writing alert.sent / alert.failed
        self.clock = clock
        self.names = names or (lambda kind, id_: None)
        self.describe = describe or (lambda rule: None)
        self._send = send or mail.send
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = _only_sender(settings.database)
        try:
            self.outbox = Outbox(settings.database)
        except BaseException:
            os.close(self._lock)
            raise
        self._reader: SQLiteDatabase | None = None
        self._purged: datetime | None = None

    # -- running -----------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dojoguard-alerts", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the current turn (an email being sent is let finish, up to ``timeout_s``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._thread is None or not self._thread.is_alive():
            self.close()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self.outbox.close()
        if self._lock is not None:
            os.close(self._lock)  # releases the lock
            self._lock = None

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                self.turn()
                failing = False
            except Exception as exc:  # noqa: BLE001 - the thread must outlive one bad turn; it tries again
                if not failing:
                    log.error("alerts.turn_failed", error=type(exc).__name__, detail=str(exc)[:200])
                    failing = True
            self._stop.wait(self.settings.check_every_s)

    # -- one turn ----------------------------------------------------------

    def turn(self) -> int:
        """Read, batch and send once; returns the number of emails sent."""
        now = self.clock.now()
        self.read(now)
        self.outbox.form(now, gather=timedelta(seconds=self.settings.gather_s), digest_due=self._digest_due(now))
        sent = 0
        for batch in self.outbox.due(now):
            if self._stop.is_set():
                break
            sent += self._deliver(batch)
        if self._purged is None or now - self._purged >= timedelta(hours=1):
            self.outbox.purge(now - KEEP_SENT)  # hourly: it need not run at every look at the log
            self._purged = now
        return sent

    def read(self, now: datetime) -> int:
        """Queue the alerts of the audit records written since the cursor; returns how many were queued."""
        cursor = self.outbox.cursor()
        reader = self._audit_reader()
        if cursor is None:
            # First start: alert from now on, not for the whole history of the log.
            head = reader.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0]
            self.outbox.take([], head, now)
            return 0
        head = reader.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0]
        if head < cursor:
            # The audit log was replaced (restored, recreated): read the new one from its start. Alerts
            # already queued are not queued twice (the outbox's key).
            log.error("alerts.audit_log_replaced", cursor=cursor, head=head)
            cursor = 0
            self.outbox.reset(0)
        queued = 0
        while True:
            rows = reader.execute("SELECT seq, id, at, type, body FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
                                  (cursor, READ_AT_MOST)).fetchall()
            if not rows:
                return queued
            found = []
            for seq, record_id, at, type_, body in rows:
                if '"alerts"' in body:
                    try:
                        found.extend(alerts_of(seq, record_id, at, type_, json.loads(body)))
                    except Exception as exc:  # noqa: BLE001 - one bad record must not stop every later alert
                        log.error("alerts.unreadable_record", seq=seq, error=type(exc).__name__)
            cursor = rows[-1][0]
            queued += self.outbox.take(found, cursor, now)
            if len(rows) < READ_AT_MOST:
                return queued

    def _audit_reader(self) -> SQLiteDatabase:
        if self._reader is None:
            self._reader = SQLiteDatabase.open_read_only(self.settings.audit_database)
        return self._reader

    def _digest_due(self, now: datetime) -> datetime:
        """The latest digest time at or before ``now`` (local, in the school's time zone)."""
        local = now.astimezone(self.settings.tz)
        due = datetime.combine(local.date(), self.settings.digest_time, self.settings.tz)
        return due if due <= local else due - timedelta(days=1)

    def _deliver(self, batch: Batch) -> int:
        items = self.outbox.items(batch.id)
        if not items:
            self.outbox.sent(batch.id, self.clock.now())
            return 0
        tz = self.settings.tz
        addresses = self.settings.recipients.get(batch.group) or []
        try:
            if not addresses:
                raise mail.MailError(f"no email addresses for the recipient group {batch.group!r} "
                                     f"(set alerts.recipients.{batch.group})")
            self._send(self.settings.smtp, addresses, compose.subject(batch, items, tz),
                       compose.body(batch, items, tz, names=self.names, describe=self.describe),
                       message_id=f"<{batch.id}@dojoguard.alerts>", timeout_s=self.settings.send_timeout_s)
        except Exception as exc:  # noqa: BLE001 - any failure to hand it over is retried; nothing is dropped
            self._failed(batch, items, f"{type(exc).__name__}: {exc}")
            return 0
        now = self.clock.now()
        self.outbox.sent(batch.id, now)
        delay = max(0.0, (now - min(a.at for a in items)).total_seconds())
        log.info("alert.sent", batch=batch.id, group=batch.group, alerts=len(items), attempts=batch.attempts + 1)
        self._record("alert.sent", {"batch": batch.id, "group": batch.group, "cadence": batch.cadence,
                                    "alerts": len(items), "references": sorted({a.record_id for a in items})[:50],
                                    "rules": sorted({a.rule for a in items}), "attempts": batch.attempts + 1,
                                    "delay_s": round(delay, 1)})
        return 1

    def _failed(self, batch: Batch, items, error: str) -> None:
        now = self.clock.now()
        wait = min(RETRY_MOST_S, RETRY_FIRST_S * (2 ** min(batch.attempts, 10)))
        after = self.outbox.failed(batch.id, now, error, now + timedelta(seconds=wait))
        log.warning("alert.failed", batch=batch.id, group=batch.group, attempts=after.attempts, error=error[:200])
        # Recorded at the first failure, then about once an hour while it keeps failing.
        noted = after.failure_recorded_at
        if noted is None or now - noted >= RECORD_FAILING_EVERY:
            self.outbox.failure_recorded(batch.id, now)
            self._record("alert.failed", {"batch": batch.id, "group": batch.group, "cadence": batch.cadence,
                                          "alerts": len(items),
                                          "references": sorted({a.record_id for a in items})[:50],
                                          "attempts": after.attempts,
                                          "error": error[:500], "next_try": after.next_try.isoformat()})

    def _record(self, event: str, fields: dict) -> None:
        try:
            self.audit.append_event(event, fields)
        except Exception as exc:  # noqa: BLE001 - the application log has it; the alert itself is what matters
            log.error("alerts.not_recorded", event=event, error=type(exc).__name__, detail=str(exc)[:200])
