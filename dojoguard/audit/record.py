"""One audit record and its canonical, sealed encoding.

A record's hash is the SHA-256 of its sealed bytes: the stored columns joined
by the ASCII unit separator, ending with the body exactly as stored. The body
is canonical JSON (sorted keys, no spaces), so the same fields always give the
same bytes, and verification never needs to parse it: it hashes what is on
disk, which is what a tamperer would have to change.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
SEPARATOR = "\x1f"


def canonical(fields: dict[str, Any]) -> str:
    """Sorted-key compact JSON: the one encoding a record's fields have."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def format_time(at: datetime) -> str:
    """UTC to the microsecond, fixed width (``2026-11-30T10:00:00.000000Z``), so stored times sort as text."""
    if at.tzinfo is None:
        raise ValueError("audit times need a UTC offset")
    # isoformat, not strftime: it runs on every record, costs a third less, and
    # always pads the year to four digits (strftime leaves year 1 as "1").
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_time(text: str) -> datetime:
    # fromisoformat reads the trailing Z and is many times faster than strptime,
    # which matters when a report reads a year of records.
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise ValueError(f"audit time without a UTC offset: {text!r}")
    return at


def sealed_bytes(seq: int, record_id: str, at: str, type_: str, prev: str, body: str) -> bytes:
    return SEPARATOR.join((str(seq), record_id, at, type_, prev, body)).encode("utf-8")


def seal(seq: int, record_id: str, at: str, type_: str, prev: str, body: str) -> str:
    """The record's hash, which the next record carries as ``prev``."""
    return hashlib.sha256(sealed_bytes(seq, record_id, at, type_, prev, body)).hexdigest()


@dataclass(frozen=True)
class AuditRecord:
    """A sealed record as stored: ``type`` is "decision" or an event name."""

    seq: int
    record_id: str
    at: datetime
    type: str
    fields: dict[str, Any]
    prev_hash: str
    hash: str

    @property
    def is_decision(self) -> bool:
        return self.type == "decision"

    @classmethod
    def from_row(cls, row) -> "AuditRecord":
        seq, record_id, at, type_, body, prev, hash_ = row
        return cls(seq, record_id, parse_time(at), type_, json.loads(body), prev, hash_)

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "id": self.record_id, "at": format_time(self.at), "type": self.type,
                "fields": self.fields, "prev": self.prev_hash, "hash": self.hash}
