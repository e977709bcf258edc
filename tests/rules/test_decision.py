"""The verdicts: which ones let a write go on to ClassDojo."""

from __future__ import annotations

from dojoguard.rules.decision import Verdict


def test_allow_warn_and_redact_forward_the_write_and_the_rest_stop_it():
    """A write goes on for allow, warn (sent, with a warning) and redact (sent blurred); defer, hold and block
    keep it from ClassDojo."""
    assert {v for v in Verdict if v.forwards} == {Verdict.ALLOW, Verdict.WARN, Verdict.REDACT}
    assert {v for v in Verdict if not v.forwards} == {Verdict.DEFER, Verdict.HOLD, Verdict.BLOCK}


def test_every_forwarding_verdict_is_less_strict_than_every_stopping_one():
    """Tightening a decision (a stricter verdict) can only ever stop a write, never let one through."""
    assert max(v.strictness for v in Verdict if v.forwards) < min(v.strictness for v in Verdict if not v.forwards)
