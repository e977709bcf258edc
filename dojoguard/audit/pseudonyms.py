"""Pupils appear in the audit trail only as pseudonyms, so erasure never breaks the chain.

Each pupil gets a random 256-bit key the first time they are recorded; their
pseudonym is HMAC-SHA256(key, pupil id). The keys live in the audit database
but outside the hash chain. Erasing a pupil deletes their key (with SQLite's
secure_delete, and the write-ahead log truncated afterwards): the sealed
records keep the pseudonym, which then cannot be linked back to anyone, and
verification is untouched because no sealed byte changed.
"""

from __future__ import annotations

import hmac
import secrets
import sqlite3

PREFIX = "p-"
# Field names whose values are pupil ids, wherever they appear in a record.
PUPIL_KEYS = frozenset({"pupil", "pupils", "pupil_id", "pupil_ids", "students"})


def _mac(key: bytes, pupil_id: str) -> str:
    # hmac.digest is the one-shot form in C: the same HMAC-SHA256 as hmac.new, several times faster.
    return hmac.digest(key, pupil_id.encode("utf-8"), "sha256").hex()[:32]


class Pseudonyms:
    """Key lookups for one connection; the caller holds the write transaction."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn
        self._cache: dict[str, bytes] = {}

    def pseudonym(self, pupil_id: str, pending: dict[str, bytes]) -> str:
        """The pupil's pseudonym, creating their key (added to ``pending`` until committed)."""
        key = self._cache.get(pupil_id) or pending.get(pupil_id)
        if key is None:
            row = self._conn.execute("SELECT key FROM pupil_keys WHERE pupil = ?", (pupil_id,)).fetchone()
            if row is not None:
                key = bytes(row[0])
                self._cache[pupil_id] = key
            else:
                key = secrets.token_bytes(32)
                self._conn.execute("INSERT INTO pupil_keys VALUES (?, ?)", (pupil_id, key))
                pending[pupil_id] = key
        return PREFIX + _mac(key, pupil_id)

    def committed(self, pending: dict[str, bytes]) -> None:
        self._cache.update(pending)

    def forget(self, pupil_id: str) -> bool:
        """Delete the pupil's key (inside the caller's transaction); True if there was one."""
        self._cache.pop(pupil_id, None)
        return self._conn.execute("DELETE FROM pupil_keys WHERE pupil = ?", (pupil_id,)).rowcount > 0

    def lookup(self, pupil_ids) -> dict[str, str]:
        """Pseudonym -> pupil id for the given pupils that still have a key (for reports)."""
        found = {}
        for pupil_id in pupil_ids:
            row = self._conn.execute("SELECT key FROM pupil_keys WHERE pupil = ?", (pupil_id,)).fetchone()
            if row is not None:
                found[PREFIX + _mac(bytes(row[0]), pupil_id)] = pupil_id
        return found

    def replace_ids(self, fields, pending: dict[str, bytes]):
        """A copy of ``fields`` with every pupil id under a pupil key replaced by its pseudonym."""
        # Runs on every record: plain values are copied as they are, without a call each.
        if isinstance(fields, dict):
            out = {}
            for key, value in fields.items():
                if key in PUPIL_KEYS:
                    out[key] = self._replace_value(value, pending)
                elif isinstance(value, (dict, list)):
                    out[key] = self.replace_ids(value, pending)
                else:
                    out[key] = value
            return out
        if isinstance(fields, list):
            return [self.replace_ids(v, pending) if isinstance(v, (dict, list)) else v for v in fields]
        return fields

    def _replace_value(self, value, pending):
        if isinstance(value, str):
            return self.pseudonym(value, pending)
        if isinstance(value, (list, tuple)):
            return [self.pseudonym(v, pending) if isinstance(v, str) else v for v in value]
        return value  # counts (e.g. "pupils": 28 in consent.imported) are not ids
