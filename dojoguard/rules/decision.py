"""The Decision: what the policy says about one Action, and why."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Verdict(enum.StrEnum):
    """Ordered from least to most strict: the strictest matching verdict wins."""

    ALLOW = "allow"
    WARN = "warn"
    REDACT = "redact"
    DEFER = "defer"
    HOLD = "hold"
    BLOCK = "block"

    @property
    def strictness(self) -> int:
        return _ORDER[self]

    @property
    def forwards(self) -> bool:
        """Whether the write goes on to ClassDojo (allow, warn, redact); the others stop it."""
        return self in _FORWARDS

    @classmethod
    def strictest(cls, verdicts) -> "Verdict":
        return max(verdicts, key=lambda v: _ORDER[v], default=cls.ALLOW)


_ORDER = {v: i for i, v in enumerate(Verdict)}
_FORWARDS = frozenset({Verdict.ALLOW, Verdict.WARN, Verdict.REDACT})


@dataclass(frozen=True)
class Alert:
    """Who is told when a rule steps in (recipient groups from the settings' ``alerts.recipients``), and when.

    ``when`` is "now" (an email within a minute, batched per minute) or
    "daily" (the day's digest).
    """

    to: tuple[str, ...]
    when: str = "now"

    def to_dict(self) -> dict[str, Any]:
        return {"to": list(self.to), "when": self.when}


@dataclass(frozen=True)
class Match:
    """One rule that matched: its verdict, the teacher-facing notice and the clause it enforces."""

    rule_id: str
    verdict: Verdict
    reason: str
    notice: str
    clause: str = ""
    # Set when an exemption stopped this rule from applying.
    exempted_by: str | None = None
    # Who is told when this rule applies (None: nobody beyond the report).
    alert: Alert | None = None

    def to_dict(self) -> dict[str, Any]:
        doc = {"rule": self.rule_id, "verdict": str(self.verdict), "reason": self.reason,
               "notice": self.notice, "clause": self.clause}
        if self.exempted_by:
            doc["exempted_by"] = self.exempted_by
        if self.alert is not None:
            doc["alert"] = self.alert.to_dict()
        return doc


_new = object.__new__


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    matches: tuple[Match, ...]
    policy_revision: str
    at: datetime
    # Teacher-facing text: the notices of the rules that set the verdict.
    notice: str = ""
    exemptions_used: tuple[str, ...] = ()
    # Rules an exemption switched off (listed, not applied).
    exempted: tuple[Match, ...] = ()
    # True when no rule matched and the policy's explicit default decided.
    by_default: bool = False
    # For a `defer` verdict: when the deferring rule's window next opens.
    release_at: datetime | None = None
    decision_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def of(cls, *, verdict: Verdict, matches: tuple[Match, ...], policy_revision: str, at: datetime, notice: str,
           exemptions_used: tuple[str, ...], exempted: tuple[Match, ...], by_default: bool,
           release_at: datetime | None, decision_id: str) -> "Decision":
        """The Decision ``Decision(**fields)`` builds, with every field given: for hot paths.

        The rule engine builds one per request. The frozen dataclass's own
        ``__init__`` sets each field through ``object.__setattr__`` and, called
        on the class with keywords, measured a quarter of a whole evaluation;
        this fills the new instance's attributes directly, which is all that
        ``__init__`` does. No field has a default here, so none can be left out.
        """
        decision = _new(cls)
        attributes = decision.__dict__
        attributes["verdict"] = verdict
        attributes["matches"] = matches
        attributes["policy_revision"] = policy_revision
        attributes["at"] = at
        attributes["notice"] = notice
        attributes["exemptions_used"] = exemptions_used
        attributes["exempted"] = exempted
        attributes["by_default"] = by_default
        attributes["release_at"] = release_at
        attributes["decision_id"] = decision_id
        return decision

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(m.rule_id for m in self.matches)

    @property
    def alerts(self) -> list[dict[str, Any]]:
        """Who must be told of this decision: one entry per applied rule that alerts (exempted rules do not)."""
        return [{"rule": m.rule_id, **m.alert.to_dict()} for m in self.matches if m.alert is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "verdict": str(self.verdict),
            "notice": self.notice,
            "matched": [m.to_dict() for m in self.matches],
            "exemptions_used": list(self.exemptions_used),
            "exempted": [m.to_dict() for m in self.exempted],
            "by_default": self.by_default,
            "policy_revision": self.policy_revision,
            "at": self.at.isoformat(),
            "release_at": self.release_at.isoformat() if self.release_at else None,
        }
