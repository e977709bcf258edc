"""How the exemptions file compares with the audit trail the `exempt` commands leave.

`dojoguard exempt grant` and `revoke` record every change in the audit log
(`exemption.granted`, `exemption.revoked`) before the file changes. Anything
else in the file (an exemption added, widened, un-revoked, revoked or removed
with an editor) has no such record. ``compare`` finds those differences, one
per exemption, each with what the file says now and what was recorded, so the
proxy can record them as `exemption.edited_by_hand`, once each.

The comparison is against the audit trail rather than the last file the
proxy saw, so it works the same at start (the file may have been edited while
the proxy was down) and on every reload, and a restart does not forget an
edit. Pure: the caller reads the records and writes the events.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

from dojoguard.rules.exemptions import Exemption, Exemptions

GRANTED, REVOKED, EDITED = "exemption.granted", "exemption.revoked", "exemption.edited_by_hand"
TYPES = (GRANTED, REVOKED, EDITED)
# Revocations recorded before their record carried the time: the file's time may
# differ from the record's by the moment between writing the two.
_LEGACY_REVOCATION_SLACK = timedelta(minutes=5)
# Audit values are short facts: a hand-written reason or a long list is cut.
_MAX_TEXT = 300
_MAX_ITEMS = 50


def granted_fields(e: Exemption) -> dict[str, Any]:
    """The fields of the `exemption.granted` record for ``e`` (the grant command records exactly these)."""
    return {"exemption": e.id, "rules": list(e.rules), "teacher": list(e.teachers) or None,
            "class": list(e.classes) or None, "everyone": e.everyone, "starts": e.starts.isoformat(),
            "ends": e.ends.isoformat(), "granted_by": e.granted_by, "reason": e.reason}


@dataclass(frozen=True)
class Record:
    """One audit record, as the comparison needs it."""

    seq: int
    type: str
    at: datetime
    fields: dict[str, Any]


@dataclass(frozen=True)
class HandEdit:
    """One exemption whose version in the file is not the one the commands recorded."""

    exemption: str
    change: str                     # added, changed, removed, revoked, unrevoked, restored
    changed: tuple[str, ...]        # fields that differ from the recorded version
    now: dict[str, Any] | None      # the file's version (audit-sized), None when removed
    recorded: dict[str, Any] | None  # the commands' version, None when never granted
    version: str                    # fingerprint of the file's version ("absent" when removed)
    already_recorded: bool          # an earlier exemption.edited_by_hand holds this very version

    @property
    def widens(self) -> bool:
        """Whether applying the file's version could exempt something the commands did not."""
        return self.change in ("added", "changed", "unrevoked")

    def fields(self, source: str, *, honoured: bool = True) -> dict[str, Any]:
        return {"exemption": self.exemption, "change": self.change, "changed": list(self.changed),
                "now": self.now, "recorded": self.recorded, "version": self.version, "honoured": honoured,
                "source": source[-_MAX_TEXT:]}


@dataclass
class _Recorded:
    grant: dict[str, Any]
    revocation: dict[str, Any] | None = None   # {"at": datetime, "by": str, "exact": bool}
    last_hand: str | None = None              # version of the last hand edit recorded since


def compare(exemptions: Exemptions, records: Iterable[Record], *, now: datetime) -> list[HandEdit]:
    """Every exemption whose file version differs from the recorded one, and that can still apply."""
    recorded = _replay(sorted(records, key=lambda r: r.seq))
    in_file = {e.id: e for e in exemptions.records}
    edits = []
    for exemption_id in sorted(set(in_file) | set(recorded)):
        edit = _compare_one(exemption_id, in_file.get(exemption_id), recorded.get(exemption_id), now)
        if edit is not None:
            edits.append(edit)
    return edits


def without_widening(exemptions: Exemptions, edits: Iterable[HandEdit]) -> Exemptions:
    """``exemptions`` less every hand edit that could widen them (for when an edit cannot be recorded)."""
    dropped = {e.exemption for e in edits if e.widens}
    return Exemptions(tuple(r for r in exemptions.records if r.id not in dropped), exemptions.file)


def version(e: Exemption | None) -> str:
    if e is None:
        return "absent"
    encoded = json.dumps(e.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(encoded.encode("ascii")).hexdigest()[:32]


def _replay(records: list[Record]) -> dict[str, _Recorded]:
    state: dict[str, _Recorded] = {}
    for r in records:
        exemption_id = r.fields.get("exemption")
        if not isinstance(exemption_id, str):
            continue
        if r.type == GRANTED:
            state[exemption_id] = _Recorded({k: v for k, v in r.fields.items() if k != "exemption"})
        elif r.type == REVOKED and exemption_id in state:
            at = _time(r.fields.get("at"))
            state[exemption_id].revocation = {"at": at or r.at, "by": r.fields.get("revoked_by"),
                                              "exact": at is not None}
            state[exemption_id].last_hand = None
        elif r.type == EDITED:
            entry = state.setdefault(exemption_id, _Recorded({}))
            entry.last_hand = r.fields.get("version")
    return {k: v for k, v in state.items() if v.grant or v.last_hand}


def _compare_one(exemption_id: str, e: Exemption | None, rec: _Recorded | None, now: datetime) -> HandEdit | None:
    grant = rec.grant if rec is not None and rec.grant else None
    if not _may_apply(e, now) and not _may_apply_recorded(grant, now):
        return None  # history only: neither version can exempt anything from now on
    here = version(e)
    last_hand = rec.last_hand if rec is not None else None
    if grant is None:
        change, changed = ("added", ("exemption",)) if e is not None else (None, ())
    elif e is None:
        change, changed = "removed", ("exemption",)
    else:
        changed = tuple(k for k in ("rules", "teacher", "class", "everyone", "starts", "ends", "granted_by",
                                    "reason") if not _same(k, granted_fields(e).get(k), grant.get(k)))
        revocation = _revocation_change(e, rec.revocation)
        if changed:
            change = "changed"
            changed += ("revoked",) if revocation else ()
        else:
            change = revocation
            changed = ("revoked",) if revocation else ()
    if change is None:
        if last_hand is None or last_hand == here:
            return None
        change = "restored"  # back to what the commands recorded, after a recorded hand edit
    return HandEdit(exemption_id, change, changed, _audit_sized(e), _recorded_view(grant, rec),
                    here, already_recorded=last_hand == here)


def _revocation_change(e: Exemption, recorded: dict[str, Any] | None) -> str | None:
    if e.revoked is None:
        return None if recorded is None else "unrevoked"
    if recorded is None:
        return "revoked"
    slack = timedelta(0) if recorded["exact"] else _LEGACY_REVOCATION_SLACK
    if abs(e.revoked.at - recorded["at"]) > slack or e.revoked.by != recorded["by"]:
        # Later than recorded widens the exemption; earlier or by someone else is still not the record.
        return "changed"
    return None


def _same(key: str, a: Any, b: Any) -> bool:
    if key in ("starts", "ends"):
        return _time(a) is not None and _time(a) == _time(b)
    if key in ("rules", "teacher", "class"):
        return sorted(a or []) == sorted(b or [])
    return a == b


def _may_apply(e: Exemption | None, now: datetime) -> bool:
    if e is None or e.ends <= now:
        return False
    return e.revoked is None or e.revoked.at > now


def _may_apply_recorded(grant: dict[str, Any] | None, now: datetime) -> bool:
    ends = _time(grant.get("ends")) if grant else None
    return ends is not None and ends > now


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def _audit_sized(e: Exemption | None) -> dict[str, Any] | None:
    """The file's version with the same fields as the grant record, cut to audit size."""
    if e is None:
        return None
    doc = {k: v for k, v in granted_fields(e).items() if k != "exemption"}
    if e.revoked is not None:
        doc["revoked_at"] = e.revoked.at.isoformat()
        doc["revoked_by"] = e.revoked.by
    return _cut(doc)


def _recorded_view(grant: dict[str, Any] | None, rec: _Recorded | None) -> dict[str, Any] | None:
    if grant is None:
        return None
    doc = dict(grant)
    if rec is not None and rec.revocation is not None:
        doc["revoked_at"] = rec.revocation["at"].isoformat()
        doc["revoked_by"] = rec.revocation["by"]
    return _cut(doc)


def _cut(value: Any) -> Any:
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if isinstance(value, list):
        return [_cut(v) for v in value[:_MAX_ITEMS]]
    if isinstance(value, dict):
        return {k: _cut(v) for k, v in value.items()}
    return value

