"""What someone who can write the audit database does to it: plain sqlite3 on the file, no dojoguard code but the hash.

The triggers that refuse UPDATE and DELETE guard against mistakes only, so
the first step is always to drop them; then records are deleted, rewritten
and every later hash recomputed, exactly as the chain's rules say, so only
what is held outside the database can tell.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from contextlib import contextmanager
from pathlib import Path

from dojoguard.audit.record import canonical, seal


@contextmanager
def opened(database: Path):
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER IF EXISTS records_append_only")
        conn.execute("DROP TRIGGER IF EXISTS records_delete_only_by_purge")
        yield conn
    finally:
        conn.close()


def rows(conn) -> list[tuple]:
    return conn.execute("SELECT seq, id, at, type, body, prev, hash FROM records ORDER BY seq").fetchall()


def delete_from(database: Path, seq: int) -> None:
    """Cut the log short: every record from ``seq`` on goes."""
    with opened(database) as conn:
        conn.execute("DELETE FROM records WHERE seq >= ?", (seq,))


def rewrite(database: Path, seq: int, old: str, new: str) -> None:
    """Change one record's body and recompute its hash and every later one, so the chain is intact again."""
    with opened(database) as conn:
        all_rows = rows(conn)
        prev = next(r[5] for r in all_rows if r[0] == seq)
        for number, rid, at, type_, body, _prev, _hash in all_rows:
            if number < seq:
                continue
            if number == seq:
                assert old in body, f"{old!r} is not in record {seq}"
                body = body.replace(old, new)
            new_hash = seal(number, rid, at, type_, prev, body)
            conn.execute("UPDATE records SET body = ?, prev = ?, hash = ? WHERE seq = ?",
                         (body, prev, new_hash, number))
            prev = new_hash


def forge_purge(database: Path, last_seq: int, extra: dict | None = None) -> int:
    """Delete records 1..last_seq and append a retention.purged record of one's own, sealed correctly."""
    with opened(database) as conn:
        removed = conn.execute("SELECT hash, at FROM records WHERE seq = ?", (last_seq,)).fetchone()
        conn.execute("DELETE FROM records WHERE seq <= ?", (last_seq,))
        head = conn.execute("SELECT seq, hash, at FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        fields = {"before": "2020-01-01T00:00:00.000000Z", "records": last_seq, "first_seq": 1,
                  "last_seq": last_seq, "last_hash": removed[0], **(extra or {})}
        body = canonical(fields)
        seq, rid = head[0] + 1, uuid.uuid4().hex
        conn.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (seq, rid, head[2], "retention.purged", body, head[1],
                      seal(seq, rid, head[2], "retention.purged", head[1], body)))
        return seq


def edit_fields(database: Path, seq: int, changes: dict) -> None:
    """Change fields of one record (JSON) and re-seal it and everything after it."""
    with opened(database) as conn:
        body = conn.execute("SELECT body FROM records WHERE seq = ?", (seq,)).fetchone()[0]
    fields = json.loads(body)
    fields.update(changes)
    rewrite(database, seq, body, canonical(fields))
