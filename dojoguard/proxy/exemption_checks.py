"""Exemptions edited by hand: recorded before they are applied, or not applied at all.

At start and on every reload of the exemptions file, the proxy compares it
with the audit trail of `exempt grant`/`revoke` (see
``dojoguard.rules.exemption_trail``) and records each difference it has not
recorded before as `exemption.edited_by_hand`, with what the file says now and
what the commands recorded.

A hand edit is honoured once it is recorded: the file is the school's, and
an IT technician fixing a typo in a reason should not silently switch a
headteacher's permission off; the record (a health event, in the weekly
report) is what makes the edit visible. When the record cannot be written,
or the audit trail cannot be read, every hand edit that could widen an
exemption (added, changed, un-revoked) is left out, and the check runs
again on the next reload: nothing unrecorded ever exempts a teacher.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from dojoguard.rules import exemption_trail
from dojoguard.rules.exemption_trail import HandEdit, Record
from dojoguard.rules.exemptions import Exemptions

log = structlog.get_logger("dojoguard.proxy")


@dataclass(frozen=True)
class Checked:
    """The exemptions to apply, and whether every hand edit in the file is on record."""

    exemptions: Exemptions
    complete: bool
    edits: tuple[HandEdit, ...] = ()


def check(exemptions: Exemptions, audit, clock, source: str) -> Checked:
    """Record the file's unrecorded hand edits; apply it whole only if they all are (blocking)."""
    try:
        records = [Record(r.seq, r.type, r.at, r.fields) for r in audit.records(types=exemption_trail.TYPES)]
        edits = exemption_trail.compare(exemptions, records, now=clock.now())
    except Exception as exc:  # noqa: BLE001 - cannot tell a grant from a hand edit: only narrowing is safe
        log.error("exemptions.unchecked", source=source, error=type(exc).__name__, detail=str(exc)[:200],
                  applied="none until the audit log can be read")
        return Checked(Exemptions((), exemptions.file), False)
    try:
        for edit in edits:
            if not edit.already_recorded:
                audit.append_event("exemption.edited_by_hand", edit.fields(source))
                log.warning("exemption.edited_by_hand", exemption=edit.exemption, change=edit.change,
                            changed=list(edit.changed), source=source)
    except Exception as exc:  # noqa: BLE001 - unrecorded: leave out what it could widen
        left_out = sorted(e.exemption for e in edits if e.widens)
        log.error("exemptions.hand_edit_unrecorded", source=source, error=type(exc).__name__,
                  detail=str(exc)[:200], left_out=left_out)
        return Checked(exemption_trail.without_widening(exemptions, edits), False, tuple(edits))
    return Checked(exemptions, True, tuple(edits))
