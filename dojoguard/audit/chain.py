"""Verification of the hash chain: every record must hash to what it says and follow the one before.

The chain proves the stored records were not changed, reordered or removed
from the middle. It cannot on its own prove the newest records were not cut
off or the whole chain rebuilt: signed checkpoints (``checkpoint``) do that;
nor that a retention purge it starts from was real: its signature
(``retention.check_purge``) does.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass

from dojoguard.audit.record import GENESIS, SEPARATOR


@dataclass(frozen=True)
class Break:
    """The first record that fails verification, and why."""

    seq: int
    record_id: str
    reason: str

    def __str__(self) -> str:
        return f"record {self.seq} ({self.record_id}): {self.reason}"


@dataclass(frozen=True)
class ChainResult:
    records: int
    first_seq: int | None
    last_seq: int | None
    last_hash: str | None
    # The retention cut the chain starts from: (last purged seq, its hash), or None.
    anchor: tuple[int, str] | None
    first_break: Break | None
    # Every (seq, hash) asked for by ``wanted``, as stored (after checking).
    hashes: dict[int, str]
    # When the last record was written (as stored), for the unprotected tail.
    last_at: str | None = None

    @property
    def is_intact(self) -> bool:
        return self.first_break is None


def purge_anchors(conn: sqlite3.Connection) -> dict[int, str]:
    """last purged seq -> its hash, from every retention.purged record still in the log."""
    anchors = {}
    for (body,) in conn.execute("SELECT body FROM records WHERE type = 'retention.purged'"):
        try:
            fields = json.loads(body)
            anchors[int(fields["last_seq"])] = str(fields["last_hash"])
        except (ValueError, KeyError, TypeError):
            continue  # a damaged purge record fails its own hash check below
    return anchors


def verify_chain(conn: sqlite3.Connection, wanted: frozenset[int] = frozenset()) -> ChainResult:
    """Check every record in order; stops at the first break."""
    anchors = purge_anchors(conn)
    cursor = conn.execute("SELECT seq, id, at, type, body, prev, hash FROM records ORDER BY seq")
    cursor.arraysize = 4096
    return verify_rows(cursor, anchors, wanted)


def verify_rows(cursor, anchors: dict[int, str], wanted: frozenset[int] = frozenset()) -> ChainResult:
    """Check the rows ``cursor`` yields (seq, id, at, type, body, prev, hash; in seq order) as one chain.

    A chain starting after record 1 must start right after an anchor: a
    retention purge's last record here, or, for the trust's central copy of a
    node's chain, the record the node was registered to start after.
    """
    sha256 = hashlib.sha256
    sep = SEPARATOR
    count = 0
    first_seq = expected_seq = None
    expected_prev = None
    anchor = None
    hashes: dict[int, str] = {}
    last_hash = last_at = None
    while rows := cursor.fetchmany():
        for seq, record_id, at, type_, body, prev, stored in rows:
            if first_seq is None:
                first_seq = expected_seq = seq
                if seq == 1:
                    expected_prev = GENESIS
                elif seq - 1 in anchors:
                    anchor = (seq - 1, anchors[seq - 1])
                    expected_prev = anchors[seq - 1]
                else:
                    return _broken(count, first_seq, last_hash, anchor, hashes, seq, record_id,
                                   f"records 1 to {seq - 1} are missing and no retention purge record "
                                   f"accounts for them")
            if seq != expected_seq:
                return _broken(count, first_seq, last_hash, anchor, hashes, seq, record_id,
                               f"records {expected_seq} to {seq - 1} are missing")
            if prev != expected_prev:
                return _broken(count, first_seq, last_hash, anchor, hashes, seq, record_id,
                               "does not follow the record before it (its previous-hash differs)")
            try:
                actual = sha256(sep.join((str(seq), record_id, at, type_, prev, body)).encode()).hexdigest()
            except (TypeError, UnicodeEncodeError):
                actual = None
            if actual != stored:
                return _broken(count, first_seq, last_hash, anchor, hashes, seq, record_id,
                               "changed since it was written (its hash does not match its content)")
            if seq in wanted:
                hashes[seq] = stored
            count += 1
            expected_seq = seq + 1
            expected_prev = last_hash = stored
            last_at = at
    last_seq = expected_seq - 1 if expected_seq is not None else None
    return ChainResult(count, first_seq, last_seq, last_hash, anchor, None, hashes, last_at)


def _broken(count, first_seq, last_hash, anchor, hashes, seq, record_id, reason) -> ChainResult:
    return ChainResult(count, first_seq, None, last_hash, anchor, Break(seq, str(record_id), reason), hashes)
