"""`dojoguard alerts status` and `dojoguard alerts test`, with real settings files and a real SMTP server."""

from __future__ import annotations

import json
from datetime import timedelta

from click.testing import CliRunner

from dojoguard.cli import cli
from dojoguard.environment import Environment

from .conftest import MONDAY_10, action, sender
from .test_sender import DISCLOSURE, decide


def write_settings(tmp_path, smtp, recipients) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({"data_dir": str(tmp_path), "alerts": {"recipients": recipients},
                                "reports": {"smtp": smtp.smtp_settings},
                                "audit": {"database": "audit.sqlite"}}), "utf-8")
    return str(path)


def run(config: str, *args: str, clock=None):
    return CliRunner().invoke(cli, ["--config", config, *args], obj=Environment(clock=clock) if clock else None)


def test_status_names_groups_without_an_address_and_what_waits(tmp_path, smtp, audit, clock, policy):
    config = write_settings(tmp_path, smtp, {"headteacher": ["head@school.example"]})
    before = run(config, "alerts", "status")
    assert before.exit_code == 0, before.output
    assert "dsl" in before.output and "NO ADDRESS" in before.output and "head@school.example" in before.output
    assert "has not run yet" in before.output
    s = sender(tmp_path, smtp, audit, clock, recipients={"headteacher": ["head@school.example"]})
    s.turn()
    decide(audit, policy, action(DISCLOSURE))
    clock.set(MONDAY_10 + timedelta(seconds=30))
    s.turn()  # the dsl has no address: kept, retried
    s.close()
    after = run(config, "alerts", "status")
    assert after.exit_code == 0, after.output
    assert "Not yet sent" in after.output and "to dsl" in after.output and "alerts.recipients.dsl" in after.output


def test_test_sends_to_a_group_and_refuses_an_unknown_one(tmp_path, smtp):
    config = write_settings(tmp_path, smtp, {"dsl": ["dsl@school.example"]})
    sent = run(config, "alerts", "test", "dsl")
    assert sent.exit_code == 0, sent.output
    [(to, message, _)] = smtp.wait_for(1, 10)
    assert to == ["dsl@school.example"] and "test" in message["Subject"]
    unknown = run(config, "alerts", "test", "governors")
    assert unknown.exit_code != 0 and "alerts.recipients.governors" in unknown.output and "dsl" in unknown.output


def test_test_says_why_when_the_mail_server_is_down(tmp_path, smtp):
    config = write_settings(tmp_path, smtp, {"dsl": ["dsl@school.example"]})
    smtp.stop()
    failed = run(config, "alerts", "test", "dsl")
    assert failed.exit_code != 0 and "could not send" in failed.output
