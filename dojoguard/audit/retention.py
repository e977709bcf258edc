"""The retention purge: old records go, and a sealed purge record keeps the rest verifiable.

Records are removed from the start of the chain only, up to the last one
written before the cut-off. The purge record (``retention.purged``) is sealed
onto the end of the chain in the same transaction and carries the sequence
number and hash of the last removed record: verification starts from there,
as it would from the genesis record.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from dojoguard.audit.record import format_time


@dataclass(frozen=True)
class PurgeResult:
    before: datetime
    records: int
    first_seq: int | None
    last_seq: int | None
    last_hash: str | None
    dry_run: bool


def cutoff(now: datetime, retention_days: int) -> datetime:
    return now - timedelta(days=retention_days)


def purge(log, before: datetime, *, dry_run: bool = False) -> PurgeResult:
    """Remove records written before ``before`` (or, with ``dry_run``, say what would go)."""
    if dry_run:
        with log.lock:
            found = _range(log.connection, before)
        return PurgeResult(before, *found, dry_run=True)

    outcome: list[tuple] = []

    def step(log_, pending):
        conn = log_.connection
        found = _range(conn, before)
        outcome.append(found)
        count, first_seq, last_seq, last_hash = found
        if not count:
            return None
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('purging', '1')")
        conn.execute("DELETE FROM records WHERE seq <= ?", (last_seq,))
        conn.execute("DELETE FROM meta WHERE key = 'purging'")
        return log_.insert("retention.purged", uuid.uuid4().hex, {
            "before": format_time(before), "records": count, "first_seq": first_seq,
            "last_seq": last_seq, "last_hash": last_hash}, pending)

    log.write_in_transaction(step)
    return PurgeResult(before, *outcome[0], dry_run=False)


def _range(conn, before: datetime) -> tuple[int, int | None, int | None, str | None]:
    """(count, first seq, last seq, last hash) of the removable records: a prefix of the chain."""
    first = conn.execute("SELECT MIN(seq) FROM records").fetchone()[0]
    newer = conn.execute("SELECT MIN(seq) FROM records WHERE at >= ?", (format_time(before),)).fetchone()[0]
    last_row = conn.execute("SELECT MAX(seq) FROM records").fetchone()[0]
    if first is None:
        return 0, None, None, None
    # Keep at least the newest record: the purge record is sealed onto it, so
    # the chain never restarts from the genesis value.
    limit = (newer if newer is not None else last_row) - 1
    limit = min(limit, last_row - 1)
    if limit < first:
        return 0, None, None, None
    last_hash = conn.execute("SELECT hash FROM records WHERE seq = ?", (limit,)).fetchone()[0]
    return limit - first + 1, first, limit, last_hash
