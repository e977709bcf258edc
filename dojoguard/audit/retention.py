"""The retention purge: old records go, and a signed purge record keeps the rest verifiable.

Records are removed from the start of the chain only, up to the last one
written before the cut-off, and never a record younger than
``audit.retention_days``. The purge record (``retention.purged``) is sealed
onto the end of the chain in the same transaction and carries the sequence
number, time and hash of the last removed record: verification starts from
there, as it would from the genesis record.

Anyone who can write the database could delete the start of the log and
append a purge record of their own, so the purge record is signed with the
audit signing key (Ed25519, kept outside the database) over the log id,
what was removed and the cut: ``check_purge`` refuses a purge record that is
unsigned, signed by another key, or cut records younger than the retention.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dojoguard.audit.checkpoint import fingerprint
from dojoguard.audit.record import canonical, format_time, parse_time

SIGNED_FORMAT = "dojoguard-audit-purge/1"
# The fields of a retention.purged record the signature covers (besides the log id and format).
SIGNED_FIELDS = ("before", "records", "first_seq", "last_seq", "last_hash", "last_at", "retention_days",
                 "purged_at")


class PurgeRefused(ValueError):
    """A purge that would remove records the retention period says to keep."""


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


def purge(log, before: datetime, *, retention_days: int, key: Ed25519PrivateKey | None = None,
          dry_run: bool = False) -> PurgeResult:
    """Remove records written before ``before`` (or, with ``dry_run``, say what would go).

    Refuses (``PurgeRefused``) a cut later than ``retention_days`` before now;
    a real purge needs the signing ``key``.
    """
    now = log.clock.now()
    latest = cutoff(now, retention_days)
    if before > latest:
        raise PurgeRefused(f"refusing to remove records written after {format_time(latest)}: "
                           f"audit.retention_days is {retention_days}, so records written after that are kept "
                           f"(the cut asked for was {format_time(before)})")
    if dry_run:
        with log.lock:
            found = _range(log.connection, before)
        return PurgeResult(before, *found[:4], dry_run=True)
    if key is None:
        raise PurgeRefused("the purge needs the audit signing key to sign its record")

    outcome: list[tuple] = []

    def step(log_, pending):
        conn = log_.connection
        found = _range(conn, before)
        outcome.append(found)
        count, first_seq, last_seq, last_hash, last_at = found
        if not count:
            return None
        fields = {"before": format_time(before), "records": count, "first_seq": first_seq,
                  "last_seq": last_seq, "last_hash": last_hash, "last_at": last_at,
                  "retention_days": retention_days, "purged_at": format_time(now)}
        fields.update(sign_purge(key, log_.log_id, fields))
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('purging', '1')")
        conn.execute("DELETE FROM records WHERE seq <= ?", (last_seq,))
        conn.execute("DELETE FROM meta WHERE key = 'purging'")
        return log_.insert("retention.purged", uuid.uuid4().hex, fields, pending)

    log.write_in_transaction(step)
    return PurgeResult(before, *outcome[0][:4], dry_run=False)


def _signed_bytes(log_id: str, fields: dict[str, Any]) -> bytes:
    payload = {"format": SIGNED_FORMAT, "log_id": log_id, **{k: fields.get(k) for k in SIGNED_FIELDS}}
    return canonical(payload).encode("utf-8")


def sign_purge(key: Ed25519PrivateKey, log_id: str, fields: dict[str, Any]) -> dict[str, str]:
    """The signature fields to add to a purge record."""
    signature = key.sign(_signed_bytes(log_id, fields))
    return {"signature": base64.b64encode(signature).decode("ascii"),
            "key_fingerprint": fingerprint(key.public_key())}


def check_purge(fields: dict[str, Any], log_id: str, public_key: Ed25519PublicKey | None, *,
                now: datetime, retention_days: int | None) -> str | None:
    """None if a ``retention.purged`` record is signed by the trusted key and honoured the retention; else why not.

    ``retention_days``: the retention in force (None: the one the purge signed).
    """
    if "signature" not in fields:
        return ("it is not signed, so anyone who could write the database may have made it "
                "(records were removed without a signed purge)")
    if public_key is None:
        return "its signature cannot be checked: no public key (give --public-key audit-signing.pub)"
    if fields.get("key_fingerprint") != fingerprint(public_key):
        return f"it was signed by another key ({fields.get('key_fingerprint')}), not the trusted one"
    try:
        public_key.verify(base64.b64decode(str(fields["signature"]), validate=True), _signed_bytes(log_id, fields))
    except (InvalidSignature, ValueError):
        return "its signature does not match: the purge record was altered or forged"
    try:
        before = parse_time(str(fields["before"]))
        purged_at = parse_time(str(fields["purged_at"]))
        last_at = parse_time(str(fields["last_at"]))
        signed_days = int(fields["retention_days"])
    except (KeyError, ValueError, TypeError):
        return "it lacks the cut, the purge time or the retention it was made under"
    if last_at >= before:
        return f"it removed a record written at {format_time(last_at)}, after its own cut {format_time(before)}"
    if before > cutoff(purged_at, signed_days):
        return (f"its cut {format_time(before)} is less than its {signed_days} days' retention "
                f"before the purge ran ({format_time(purged_at)})")
    days = signed_days if retention_days is None else retention_days
    if before > cutoff(now, days):
        return (f"it removed records written up to {format_time(before)}, younger than the retention in "
                f"force ({days} days before now, {format_time(cutoff(now, days))}). Hint: if the retention "
                f"was longer when the purge ran, give --retention-days with the value in force then")
    return None


def _range(conn, before: datetime) -> tuple[int, int | None, int | None, str | None, str | None]:
    """(count, first seq, last seq, last hash, last time) of the removable records: a prefix of the chain."""
    first = conn.execute("SELECT MIN(seq) FROM records").fetchone()[0]
    newer = conn.execute("SELECT MIN(seq) FROM records WHERE at >= ?", (format_time(before),)).fetchone()[0]
    last_row = conn.execute("SELECT MAX(seq) FROM records").fetchone()[0]
    if first is None:
        return 0, None, None, None, None
    # Keep at least the newest record: the purge record is sealed onto it, so
    # the chain never restarts from the genesis value.
    limit = (newer if newer is not None else last_row) - 1
    limit = min(limit, last_row - 1)
    if limit < first:
        return 0, None, None, None, None
    last_hash, last_at = conn.execute("SELECT hash, at FROM records WHERE seq = ?", (limit,)).fetchone()
    return limit - first + 1, first, limit, last_hash, last_at
