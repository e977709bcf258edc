"""Fixtures for the audit tests: a real log in a temporary folder, a frozen clock, real settings files."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dojoguard import config as config_module
from dojoguard.audit.log import AuditLog
from dojoguard.clock import FixedClock
from dojoguard.rules.action import Action, Attachment, AttachmentKind, Channel, ImageFindings, Kind
from dojoguard.rules.decision import Decision, Match, Verdict

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def log(tmp_path, clock):
    opened = AuditLog.open(tmp_path / "data" / "audit.sqlite", clock=clock, emit_decisions=False)
    yield opened
    opened.close()


def make_action(**overrides) -> Action:
    fields = dict(kind=Kind.MESSAGE_SEND, channel=Channel.MESSAGE, at=START, teacher_id="t-100",
                  teacher_name="Mrs Amelia Hartley", device_address="10.20.0.15", class_id="c-6B",
                  students=("s-1", "s-2"), text="Please remember Tom's inhaler tomorrow",
                  endpoint="messages.send")
    fields.update(overrides)
    return Action(**fields)


def photo_action(**overrides) -> Action:
    findings = ImageFindings(faces_found=3, faces_permitted=1, faces_not_permitted=2, gps_present=True,
                             boxes_not_permitted=((1, 2, 3, 4),))
    return make_action(kind=Kind.STORY_POST, channel=Channel.CLASS_STORY, text="Sports day!",
                       attachments=(Attachment(AttachmentKind.PHOTO, id="a1", content_type="image/jpeg",
                                               size=1234, sha256="ab" * 32, findings=findings),), **overrides)


def make_decision(verdict: Verdict = Verdict.BLOCK, rule: str = "no-messages-after-hours",
                  reason: str = "Messages to families are sent between 08:00 and 17:00 only", **overrides):
    matches = () if verdict is Verdict.ALLOW else (Match(rule, verdict, reason, "notice text"),)
    fields = dict(verdict=verdict, matches=matches, policy_revision="f" * 16, at=START,
                  by_default=verdict is Verdict.ALLOW)
    fields.update(overrides)
    return Decision(**fields)


def write_config(tmp_path, text: str = "", **sections) -> config_module.Config:
    """Real settings: ``data_dir`` is the test's folder; ``text`` is extra YAML laid over the defaults."""
    path = tmp_path / "config.yaml"
    path.write_text(f'data_dir: "{tmp_path / "data"}"\n' + text, "utf-8")
    return config_module.load(path, base_dir=tmp_path)


def invoke(config_path, *args, clock=None):
    """Run ``dojoguard --config config_path args...`` in-process; returns (result, everything it printed)."""
    import io

    from click.testing import CliRunner

    from dojoguard.cli import cli
    from dojoguard.environment import Environment

    out, err = io.StringIO(), io.StringIO()
    env = Environment(stdout=out, stderr=err, **({"clock": clock} if clock else {}))
    result = CliRunner().invoke(cli, ["--config", str(config_path), *map(str, args)], obj=env)
    return result, result.output + out.getvalue() + err.getvalue()


def populate(log, clock, *, days=5, teachers=6, per_teacher_day=6, seed=7):
    """A realistic mix of decisions and events over ``days`` school days from START (deterministic)."""
    import random
    from datetime import timedelta

    rng = random.Random(seed)
    rules = [("no-messages-after-hours", Verdict.DEFER, "Messages to families are sent between 08:00 and 17:00"),
             ("photo-consent", Verdict.BLOCK, "A face in the photo has no Class Story photo consent"),
             ("sensitive-words", Verdict.HOLD, "The message mentions a safeguarding matter: a leader reviews it"),
             ("faces-blurred", Verdict.REDACT, "Faces without consent were blurred"),
             ("points-negative", Verdict.WARN, "Negative points are shared with families")]
    kinds = [Kind.MESSAGE_SEND, Kind.STORY_POST, Kind.POINTS_AWARD, Kind.COMMENT_POST]
    for day in range(days):
        for t in range(teachers):
            for _ in range(per_teacher_day):
                clock.set(START + timedelta(days=day, hours=rng.randint(-1, 10), minutes=rng.randint(0, 59)))
                roll = rng.random()
                if roll < 0.7:
                    decision = make_decision(Verdict.ALLOW)
                else:
                    rule, verdict, reason = rules[rng.randrange(len(rules))]
                    decision = make_decision(verdict, rule=rule, reason=reason)
                action = make_action(kind=rng.choice(kinds), teacher_id=f"t-{100 + t}",
                                     class_id=f"c-{t % 4 + 3}{'AB'[t % 2]}")
                log.append_decision(action, decision)
        clock.set(START + timedelta(days=day, hours=7))
        log.append_event("write.unclassified", {"method": "POST", "host": "api.classdojo.com",
                                                "path": "/api/new/{id}", "verdict": "allow"})
    log.append_event("exemption.granted", {"exemption": "ex-trip", "rules": ["no-messages-after-hours"],
                                           "teacher": "t-101", "reason": "Residential trip updates"})
    log.append_event("consent.changed", {"pupil": "s-5", "purpose": "class_story", "from": "given",
                                         "to": "refused"})
    log.append_event("pupil.erased", {"pupil": "s-9", "templates_removed": 1})
    log.append_event("policy.rejected", {"source": "rules/messages.yaml", "problems": 2,
                                         "codes": ["DG-RULE-UNKNOWN"]})
