"""Decisions and verdicts: which verdicts let a write go on, and the fast keyword constructor."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime

import pytest

from dojoguard.rules.decision import Decision, Match, Verdict

AT = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def _fields() -> dict:
    match = Match("r", Verdict.DEFER, "why", "Later.", "4.2")
    return {"verdict": Verdict.DEFER, "matches": (match,), "policy_revision": "rev", "at": AT, "notice": "Later.",
            "exemptions_used": ("ex-1",), "exempted": (dataclasses.replace(match, exempted_by="ex-1"),),
            "by_default": False, "release_at": AT, "decision_id": "d1"}


def test_of_takes_every_field_by_keyword_and_nothing_else():
    """``Decision.of`` names each field of Decision exactly once, keyword-only, with no default."""
    parameters = inspect.signature(Decision.of).parameters
    assert list(parameters) == [f.name for f in dataclasses.fields(Decision)]
    assert all(p.kind is p.KEYWORD_ONLY and p.default is p.empty for p in parameters.values())


def test_of_builds_the_value_the_constructor_builds():
    """The same fields give equal, equally hashed, frozen decisions, whichever way they are built."""
    fast, normal = Decision.of(**_fields()), Decision(**_fields())
    assert type(fast) is Decision
    assert fast == normal and repr(fast) == repr(normal) and fast.to_dict() == normal.to_dict()
    assert dataclasses.replace(fast, notice="x") == dataclasses.replace(normal, notice="x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.verdict = Verdict.ALLOW  # type: ignore[misc]


def test_of_refuses_a_missing_or_unknown_field():
    """Leaving a field out, or naming one Decision does not have, is an error rather than a half-built value."""
    fields = _fields()
    del fields["release_at"]
    with pytest.raises(TypeError, match="release_at"):
        Decision.of(**fields)
    with pytest.raises(TypeError, match="reason"):
        Decision.of(**_fields(), reason="x")


def test_allow_warn_and_redact_forward_the_write_and_the_rest_stop_it():
    """A write goes on for allow, warn (sent, with a warning) and redact (sent blurred); defer, hold and block
    keep it from ClassDojo."""
    assert {v for v in Verdict if v.forwards} == {Verdict.ALLOW, Verdict.WARN, Verdict.REDACT}
    assert {v for v in Verdict if not v.forwards} == {Verdict.DEFER, Verdict.HOLD, Verdict.BLOCK}


def test_every_forwarding_verdict_is_less_strict_than_every_stopping_one():
    """Tightening a decision (a stricter verdict) can only ever stop a write, never let one through."""
    assert max(v.strictness for v in Verdict if v.forwards) < min(v.strictness for v in Verdict if not v.forwards)
