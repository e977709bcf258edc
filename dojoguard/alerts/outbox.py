"""What the alert sender owes: alerts read from the audit log, batched into emails, until each is sent.

The outbox is a small SQLite file (``alerts.database``). Reading new audit
records and advancing the cursor happen in one transaction, and so do
forming a batch and marking it sent, so a restart at any point neither loses
an alert nor sends one twice, except for the instant between the mail
server's acceptance and the commit that records it; that email is sent again
with the same Message-ID, which mail clients show once.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from dojoguard.audit.record import format_time, parse_time
from dojoguard.storage import Database, Migration, SQLiteDatabase, migrations

NOW, DAILY = "now", "daily"


def _m1_outbox(db: Database) -> None:
    # The last audit record read (seq); one row.
    db.execute("CREATE TABLE cursor (one INTEGER PRIMARY KEY CHECK (one = 1), seq INTEGER NOT NULL)")
    # One row per (record, rule, recipient group): what one email line says. ``facts`` holds ids and
    # the verdict only (see ``Alert``); ``batch`` is set once the line is put in an email.
    db.execute("""CREATE TABLE items (
        record_id TEXT NOT NULL, rule TEXT NOT NULL, grp TEXT NOT NULL, cadence TEXT NOT NULL,
        seq INTEGER NOT NULL, at TEXT NOT NULL, record_type TEXT NOT NULL, facts TEXT NOT NULL,
        queued_at TEXT NOT NULL, batch TEXT,
        PRIMARY KEY (record_id, rule, grp))""")
    db.execute("CREATE INDEX items_waiting ON items (grp, cadence, seq) WHERE batch IS NULL")
    db.execute("CREATE INDEX items_by_batch ON items (batch) WHERE batch IS NOT NULL")
    # One row per email: to one group, retried until sent.
    db.execute("""CREATE TABLE batches (
        id TEXT PRIMARY KEY, grp TEXT NOT NULL, cadence TEXT NOT NULL, formed_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, next_try TEXT NOT NULL, last_error TEXT,
        failing_since TEXT, failure_recorded_at TEXT, sent_at TEXT)""")
    db.execute("CREATE INDEX batches_unsent ON batches (next_try) WHERE sent_at IS NULL")


MIGRATIONS = (Migration("1-outbox", _m1_outbox),)


@dataclass(frozen=True)
class Alert:
    """One line of an alert email: a record that alerted a group under one rule."""

    record_id: str
    rule: str
    group: str
    cadence: str
    seq: int
    at: datetime
    record_type: str
    # Identifiers and the verdict: teacher, class, verdict, kind, channel, thread (never content).
    facts: dict


@dataclass(frozen=True)
class Batch:
    id: str
    group: str
    cadence: str
    formed_at: datetime
    attempts: int
    next_try: datetime
    last_error: str | None
    failing_since: datetime | None
    failure_recorded_at: datetime | None
    sent_at: datetime | None


# What an alert line may carry from its audit record: identifiers, never content.
FACT_KEYS = ("teacher", "class", "verdict", "kind", "channel", "thread", "message_at")
_FACT = re.compile(r"[A-Za-z0-9_.:+\-]{1,64}")


def alerts_of(seq: int, record_id: str, at: str, type_: str, fields: dict) -> list[Alert]:
    """The alerts one audit record asks for (its ``alerts`` field), one per rule and group."""
    wanted = fields.get("alerts")
    if not isinstance(wanted, list):
        return []
    # Only values shaped like ids or times: a field a request filled with text never reaches an email.
    facts = {k: fields[k] for k in FACT_KEYS if isinstance(fields.get(k), str) and _FACT.fullmatch(fields[k])}
    found = []
    for entry in wanted:
        if not isinstance(entry, dict) or not isinstance(entry.get("rule"), str):
            continue
        cadence = DAILY if entry.get("when") == DAILY else NOW
        groups = entry.get("to")
        if not isinstance(groups, list):
            continue  # a string would be read letter by letter
        for group in groups:
            if isinstance(group, str) and group:
                found.append(Alert(record_id, entry["rule"], group, cadence, seq, parse_time(at), type_, facts))
    return found


class Outbox:
    """The alert sender's own database; one connection, used from the sender's thread (and commands)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.database = SQLiteDatabase.open(self.path, busy_timeout_s=5.0)
        self.db = self.database.connection
        try:
            migrations.migrate(self.database, MIGRATIONS, what="the alert outbox")
        except BaseException:
            self.database.close()
            raise

    def close(self) -> None:
        self.database.close()

    # -- reading the audit log -------------------------------------------

    def cursor(self) -> int | None:
        """The last audit record read (None: never started)."""
        row = self.db.execute("SELECT seq FROM cursor").fetchone()
        return row[0] if row else None

    def take(self, alerts: Iterable[Alert], seq: int, now: datetime) -> int:
        """Queue ``alerts`` and move the cursor to ``seq``, together; returns how many were new."""
        added = 0
        with self.database.transaction():
            for a in alerts:
                added += self.db.execute(
                    "INSERT OR IGNORE INTO items (record_id, rule, grp, cadence, seq, at, record_type, facts, "
                    "queued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (a.record_id, a.rule, a.group, a.cadence, a.seq, format_time(a.at), a.record_type,
                     json.dumps(a.facts, sort_keys=True), format_time(now))).rowcount
            self.db.execute("INSERT INTO cursor (one, seq) VALUES (1, ?) ON CONFLICT (one) DO UPDATE "
                            "SET seq = max(cursor.seq, excluded.seq)", (seq,))
        return added

    def reset(self, seq: int) -> None:
        """Move the cursor back (a replaced audit log)."""
        with self.database.transaction():
            self.db.execute("UPDATE cursor SET seq = ?", (seq,))

    # -- batching --------------------------------------------------------

    def form(self, now: datetime, *, gather: timedelta, digest_due: datetime) -> list[str]:
        """Put waiting alerts into emails: "now" alerts once the oldest has waited ``gather``, "daily"
        alerts recorded before ``digest_due`` (the latest digest time); one email per group and cadence."""
        formed = []
        with self.database.transaction():
            # Measured from when each record was written, so a minute's wait means a minute after the decision.
            # (or from when it was queued, if earlier: a clock set back must not hold an alert back).
            rows = self.db.execute("SELECT grp, cadence, min(min(at), min(queued_at)), max(at) FROM items "
                                   "WHERE batch IS NULL GROUP BY grp, cadence").fetchall()
            for group, cadence, oldest, _newest in rows:
                if cadence == NOW:
                    if parse_time(oldest) + gather > now:
                        continue
                    limit = "9999"  # everything waiting, whatever time its record carries
                else:
                    if parse_time(oldest) >= digest_due:
                        continue
                    limit = format_time(digest_due)
                batch = os.urandom(12).hex()
                self.db.execute("INSERT INTO batches (id, grp, cadence, formed_at, next_try) VALUES (?, ?, ?, ?, ?)",
                                (batch, group, cadence, format_time(now), format_time(now)))
                # "now": everything waiting; "daily": what was queued before the digest time.
                op = "<=" if cadence == NOW else "<"
                self.db.execute(f"UPDATE items SET batch = ? WHERE batch IS NULL AND grp = ? AND cadence = ? "
                                f"AND at {op} ?", (batch, group, cadence, limit))
                formed.append(batch)
        return formed

    def due(self, now: datetime) -> list[Batch]:
        """Unsent emails whose next try has come, oldest first."""
        rows = self.db.execute(f"SELECT {_BATCH} FROM batches WHERE sent_at IS NULL AND next_try <= ? "
                               "ORDER BY formed_at, id", (format_time(now),)).fetchall()
        return [_batch(r) for r in rows]

    def items(self, batch: str) -> list[Alert]:
        rows = self.db.execute("SELECT record_id, rule, grp, cadence, seq, at, record_type, facts FROM items "
                               "WHERE batch = ? ORDER BY seq, rule", (batch,)).fetchall()
        return [Alert(r[0], r[1], r[2], r[3], r[4], parse_time(r[5]), r[6], json.loads(r[7])) for r in rows]

    def sent(self, batch: str, at: datetime) -> None:
        with self.database.transaction():
            self.db.execute("UPDATE batches SET sent_at = ?, attempts = attempts + 1, last_error = NULL "
                            "WHERE id = ?", (format_time(at), batch))

    def failed(self, batch: str, at: datetime, error: str, next_try: datetime) -> Batch:
        """Record a failed attempt; returns the batch as it now stands."""
        with self.database.transaction():
            self.db.execute("UPDATE batches SET attempts = attempts + 1, last_error = ?, next_try = ?, "
                            "failing_since = coalesce(failing_since, ?) WHERE id = ?",
                            (error[:500], format_time(next_try), format_time(at), batch))
        return self.batch(batch)

    def failure_recorded(self, batch: str, at: datetime) -> None:
        with self.database.transaction():
            self.db.execute("UPDATE batches SET failure_recorded_at = ? WHERE id = ?", (format_time(at), batch))

    def batch(self, batch: str) -> Batch:
        return _batch(self.db.execute(f"SELECT {_BATCH} FROM batches WHERE id = ?", (batch,)).fetchone())

    # -- reading, for `alerts status` ------------------------------------

    def status(self) -> dict:
        waiting = dict(self.db.execute("SELECT cadence, count(*) FROM items WHERE batch IS NULL "
                                       "GROUP BY cadence").fetchall())
        unsent = [_batch(r) for r in self.db.execute(
            f"SELECT {_BATCH} FROM batches WHERE sent_at IS NULL ORDER BY formed_at").fetchall()]
        last = self.db.execute("SELECT max(sent_at) FROM batches").fetchone()[0]
        return {"cursor": self.cursor(), "waiting_now": waiting.get(NOW, 0), "waiting_daily": waiting.get(DAILY, 0),
                "unsent": unsent, "last_sent": parse_time(last) if last else None}

    def purge(self, before: datetime) -> int:
        """Forget emails sent before ``before`` and their lines (the audit log keeps the record of sending)."""
        cut = format_time(before)
        with self.database.transaction():
            self.db.execute("DELETE FROM items WHERE batch IN (SELECT id FROM batches WHERE sent_at < ?)", (cut,))
            return self.db.execute("DELETE FROM batches WHERE sent_at < ?", (cut,)).rowcount


_BATCH = "id, grp, cadence, formed_at, attempts, next_try, last_error, failing_since, failure_recorded_at, sent_at"


def _batch(row) -> Batch:
    def maybe(text):
        return parse_time(text) if text else None

    return Batch(row[0], row[1], row[2], parse_time(row[3]), row[4], parse_time(row[5]), row[6],
                 maybe(row[7]), maybe(row[8]), maybe(row[9]))
