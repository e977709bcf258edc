"""Fixtures for the alert tests: a real audit log, the shipped St Wilfrid's rules, a real SMTP server."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from dojoguard.alerts.sender import AlertSender, AlertSettings
from dojoguard.audit.log import AuditLog
from dojoguard.clock import FixedClock
from dojoguard.rules.action import Action, Channel, Kind
from dojoguard.rules.policy import BUILTIN, load_policy
from tests.support.smtp import SmtpServer

MONDAY_10 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
LONDON = ZoneInfo("Europe/London")
TEACHER, CLASS = "5f1a2b3c4d5e6f7081920a01", "5f1a2b3c4d5e6f7081920c01"


@pytest.fixture(scope="session")
def policy():
    return load_policy(BUILTIN)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(MONDAY_10)


@pytest.fixture
def audit(tmp_path, clock):
    log = AuditLog.open(tmp_path / "audit.sqlite", clock=clock, emit_decisions=False)
    yield log
    log.close()


@pytest.fixture
def smtp(tmp_path):
    server = SmtpServer(tmp_path).start()
    yield server
    server.stop()


def action(text: str | None = "Just a reminder about PE tomorrow.", *, at: datetime = MONDAY_10, **fields) -> Action:
    values = dict(kind=Kind.MESSAGE_SEND, channel=Channel.MESSAGE, at=at, teacher_id=TEACHER,
                  teacher_name="Mrs Amelia Hartley", device_address="10.20.1.5", class_id=CLASS,
                  students=("5f1a2b3c4d5e6f7081920b07",), text=text, endpoint="message.thread")
    values.update(fields)
    return Action(**values)


def settings(tmp_path, smtp: SmtpServer | None, **changes) -> AlertSettings:
    values = dict(recipients={"headteacher": ["head@school.example"], "dsl": ["dsl@school.example"]},
                  smtp=smtp.smtp_settings if smtp else {}, database=tmp_path / "alerts.sqlite",
                  audit_database=tmp_path / "audit.sqlite", tz=LONDON, gather_s=30.0, check_every_s=0.2,
                  send_timeout_s=5.0)
    values.update(changes)
    return AlertSettings(**values)


def sender(tmp_path, smtp, audit, clock, **changes) -> AlertSender:
    names = {("teacher", TEACHER): "Mrs Hartley", ("class", CLASS): "Year 3 Oak"}
    return AlertSender(settings(tmp_path, smtp, **changes), audit, clock,
                       names=lambda kind, id_: names.get((kind, id_)),
                       describe=lambda rule: f"description of {rule}")
