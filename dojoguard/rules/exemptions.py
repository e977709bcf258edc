"""Exemptions: the headteacher's permission to set a rule aside, for whom and for how long.

"In exceptional circumstances there may be a need to use Dojo Messaging
outside of these times. This will be with permission of the headteacher."
An exemption names the rules it switches off, whom it covers (teachers,
classes, or everyone) and a start and end; outside that time, or once
revoked, it does nothing. A missing file means no exemptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dojoguard import schemaproblems, yamlfile
from dojoguard.rules import codes
from dojoguard.rules.action import Action
from dojoguard.rules.codes import Code
from dojoguard.yamlfile import FileProblems, Located, Problem


@dataclass(frozen=True)
class Revocation:
    at: datetime
    by: str
    reason: str


@dataclass(frozen=True)
class Exemption:
    id: str
    rules: tuple[str, ...]
    starts: datetime
    ends: datetime
    granted_by: str
    reason: str
    teachers: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    everyone: bool = False
    granted_at: datetime | None = None
    revoked: Revocation | None = None

    def is_active(self, at: datetime) -> bool:
        """In force at ``at``: started, not ended, not yet revoked."""
        if not (self.starts <= at < self.ends):
            return False
        return self.revoked is None or at < self.revoked.at

    def covers(self, action: Action) -> bool:
        """Whether the action's teacher or class is among those it names."""
        if self.everyone:
            return True
        return (action.teacher_id is not None and action.teacher_id in self.teachers) or \
            (action.class_id is not None and action.class_id in self.classes)

    def status(self, now: datetime) -> str:
        if self.revoked is not None and self.revoked.at <= now:
            return "revoked"
        if now >= self.ends:
            return "expired"
        return "active" if now >= self.starts else "upcoming"

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"id": self.id, "rules": list(self.rules)}
        if self.everyone:
            doc["everyone"] = True
        if self.teachers:
            doc["teachers"] = list(self.teachers)
        if self.classes:
            doc["classes"] = list(self.classes)
        doc.update({"from": self.starts.isoformat(), "until": self.ends.isoformat(),
                    "granted_by": self.granted_by, "reason": self.reason})
        if self.granted_at is not None:
            doc["granted_at"] = self.granted_at.isoformat()
        if self.revoked is not None:
            doc["revoked"] = {"at": self.revoked.at.isoformat(), "by": self.revoked.by,
                              "reason": self.revoked.reason}
        return doc


class Exemptions:
    """Every exemption of a file, indexed by rule for the engine."""

    def __init__(self, records: tuple[Exemption, ...] = (), file: str = ""):
        self.records = records
        self.file = file
        self._by_rule: dict[str, list[Exemption]] = {}
        for record in records:
            for rule in record.rules:
                self._by_rule.setdefault(rule, []).append(record)

    def covering(self, rule_id: str, action: Action) -> Exemption | None:
        """The first exemption in force at the action's time that switches ``rule_id`` off for it."""
        for record in self._by_rule.get(rule_id, ()):
            if record.is_active(action.at) and record.covers(action):
                return record
        return None

    def get(self, exemption_id: str) -> Exemption | None:
        return next((r for r in self.records if r.id == exemption_id), None)

    def __len__(self) -> int:
        return len(self.records)


NONE = Exemptions()


def load_exemptions(path: str | Path | None, *, max_days: int | None = None) -> Exemptions:
    """The exemptions in ``path`` (a missing file means none); raises ``FileProblems``."""
    if path is None or not Path(path).exists():
        return Exemptions((), str(path or ""))
    return parse_exemptions(yamlfile.load(path), max_days=max_days)


def parse_exemptions(located: Located, *, max_days: int | None = None) -> Exemptions:
    """Exemptions from an already-read document (a file, or a list inside a rule-test case)."""
    schema = schemaproblems.validator("dojoguard.rules", "exemptions.schema.json")
    problems = schemaproblems.check(located, schema, codes.EXEMPT)
    if problems:
        raise FileProblems(problems)
    records = []
    seen: dict[str, int] = {}
    for i, doc in enumerate(located.data or []):
        record = _record(located, (i,), doc, problems, max_days)
        if record is None:
            continue
        if record.id in seen:
            problems.append(located.problem((i, "id"), Code.EXEMPT_DUPLICATE_ID,
                                            f"exemption id {record.id!r} is used twice",
                                            f"It is first used at line {seen[record.id]}; give each its own id."))
            continue
        seen[record.id] = located.mark((i,))[0]
        records.append(record)
    if problems:
        raise FileProblems(problems)
    return Exemptions(tuple(records), located.file)


def _record(located: Located, path: tuple, doc: dict, problems: list[Problem],
            max_days: int | None) -> Exemption | None:
    scopes = [key for key in ("teachers", "classes", "everyone") if key in doc]
    if len(scopes) != 1:
        problems.append(located.problem(path, Code.EXEMPT_VALUE,
                                        "an exemption names exactly one of teachers, classes or everyone",
                                        "Write `teachers: [id]`, `classes: [id]` or `everyone: true`."))
        return None
    starts = _time(located, path + ("from",), doc["from"], problems)
    ends = _time(located, path + ("until",), doc["until"], problems)
    granted_at = _time(located, path + ("granted_at",), doc["granted_at"], problems) if "granted_at" in doc \
        else None
    revoked = None
    if "revoked" in doc:
        at = _time(located, path + ("revoked", "at"), doc["revoked"]["at"], problems)
        if at is None:
            return None
        revoked = Revocation(at, doc["revoked"]["by"], doc["revoked"]["reason"])
    if starts is None or ends is None:
        return None
    if ends <= starts:
        problems.append(located.problem(path + ("until",), Code.EXEMPT_TIME, "the exemption ends before it starts",
                                        "Check `from` and `until`."))
        return None
    if max_days is not None and ends - starts > timedelta(days=max_days):
        problems.append(located.problem(path + ("until",), Code.EXEMPT_TIME,
                                        f"the exemption lasts longer than the {max_days} days allowed",
                                        "Grant a shorter exemption, and another later if it is still needed "
                                        "(setting exemptions.max_days)."))
        return None
    return Exemption(doc["id"], tuple(doc["rules"]), starts, ends, doc["granted_by"], doc["reason"],
                     tuple(doc.get("teachers", ())), tuple(doc.get("classes", ())), bool(doc.get("everyone")),
                     granted_at, revoked)


def _time(located: Located, path: tuple, value: str, problems: list[Problem]) -> datetime | None:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        problems.append(located.problem(path, Code.EXEMPT_TIME, f"{value!r} is not an ISO time",
                                        'Write it like "2026-12-10T17:00:00+00:00".'))
        return None
    if at.tzinfo is None:
        problems.append(located.problem(path, Code.EXEMPT_TIME, f"{value!r} has no UTC offset",
                                        'Add the offset, e.g. "2026-12-10T17:00:00+00:00", so the time is '
                                        'not ambiguous across the clock change.'))
        return None
    return at
