"""What a consent import writes to the audit log: registry ids and counts, never names.

Shared by `dojoguard consent import` and the console's import page, so both
record the same events with the same fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dojoguard.consent_registry.registry import PersonKind


def subject(person) -> dict:
    # Registry ids only: the audit trail never holds names.
    return {"pupil": str(person.id)} if person.kind is PersonKind.PUPIL else {"staff": str(person.id)}


def record_import(registry, append: Callable[[str, dict[str, Any]], Any], report, source: str,
                  accepted: int) -> None:
    """One ``consent.changed`` per change the import made, then its ``consent.imported``."""
    for pupil in report.pupils:
        person = registry.person(pupil.person_id)
        for change in pupil.changes:
            append("consent.changed", {**subject(person), "purpose": change.purpose, "from": str(change.before),
                                       "to": str(change.state), "source": change.source})
    append("consent.imported", {"source": source, "pupils": report.rows, "changed": len(report.changes),
                                "conflicts": len(report.conflicts), "accepted": accepted})
