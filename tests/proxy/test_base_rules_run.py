"""The trust's base rules through a real `dojoguard run` over TLS: a school's own files cannot get a message past
them, neither with an `allow` rule of their own, nor with an exemption written straight into the exemptions file,
nor by redefining the base's window in a second file (the proxy then refuses to start)."""

from __future__ import annotations

import json

import pytest

from dojoguard.standin import StandIn, data
from dojoguard.standin.harness import ProxyProcess
from tests.proxy.conftest import MONDAY_18, audit_rows, running_proxy, signed_in, write_config

MESSAGE = f"https://teach.classdojo.com/api/message-thread/{data.THREAD_ID}/message"
AT_19 = MONDAY_18.replace(hour=19)

BASE = """\
policy: {name: Northfield Learning Trust base rules}
default: {verdict: allow}
exemptable: false
windows:
  messaging-hours: {days: [mon, tue, wed, thu, fri], from: "07:30", to: "18:00"}
rules:
  - id: trust-messaging-hours
    when: {kind: message.send, outside: messaging-hours}
    verdict: block
    notice: Messages go out 7.30am to 6pm on weekdays.
    clause: Messages are sent only in the trust's hours.
"""

# The school's attempt: an allow rule for exactly the action the base blocks.
SCHOOL = """\
policy: {name: Oak Primary School}
rules:
  - id: evening-reminders
    when: {kind: message.send}
    verdict: allow
    notice: Reminders may go out in the evening.
    clause: Reminders to parents.
"""

# Written by hand into the exemptions file, as someone with the file but not `exempt grant` could.
EXEMPTION = f"""\
- id: ex-20261130-1
  rules: [trust-messaging-hours]
  teachers: [{data.TEACHER["_id"]}]
  from: '2026-11-30T00:00:00+00:00'
  until: '2026-12-01T00:00:00+00:00'
  granted_by: Someone (not the trust)
  reason: 'Evening reminders'
  granted_at: '2026-11-29T09:00:00+00:00'
"""


def _folders(tmp_path, *school_files: tuple[str, str]):
    base, school, run = tmp_path / "trust", tmp_path / "oak", tmp_path / "run"
    for folder in (base, school, run / "data"):
        folder.mkdir(parents=True)
    (base / "trust.yaml").write_text(BASE)
    for name, text in school_files:
        (school / name).write_text(text)
    return base, school, run


def test_a_schools_allow_rule_and_a_hand_written_exemption_do_not_get_past_the_base(tmp_path):
    base, school, run = _folders(tmp_path, ("oak.yaml", SCHOOL))
    (run / "data" / "exemptions.yaml").write_text(EXEMPTION)
    with running_proxy(run, policy=str(school), at=AT_19, settings={"rules": {"base": str(base)}}) as found:
        with signed_in(found["proxy"]) as client:
            answer = client.post(MESSAGE, json={"body": "Reminder: PE kit tomorrow"})
        assert answer.status_code != 200, answer.text
        [decision] = [r for r in audit_rows(run / "data" / "audit.sqlite") if r.get("kind") == "message.send"]
        assert decision["verdict"] == "block" and "trust-messaging-hours" in decision["rules"]
        assert decision.get("exemptions_used", []) == []
        # ClassDojo never received it.
        assert [w for w in found["standin"].writes() if "/message" in w.path] == []


@pytest.mark.parametrize("second", [
    # The base's window widened to every hour of every day, from a second school file.
    'windows:\n  messaging-hours: {days: [mon, tue, wed, thu, fri, sat, sun], from: "00:00", to: "23:59"}\n',
    # The base's rule id reused for something harmless, hoping to replace it.
    'rules:\n  - id: trust-messaging-hours\n    when: {kind: story.post}\n    verdict: warn\n'
    '    notice: n\n    clause: c\n',
    # Even a narrower window of the same name: the base alone decides what its rules test.
    'windows:\n  messaging-hours: {days: [sat], from: "00:00", to: "00:01"}\n',
], ids=["wider-window", "reused-rule-id", "same-name-window"])
def test_a_school_file_that_would_weaken_the_base_stops_the_proxy_starting(tmp_path, second):
    base, school, run = _folders(tmp_path, ("oak.yaml", SCHOOL), ("zz-late.yaml", second))
    config = write_config(run)
    doc = json.loads(config.read_text())
    doc["rules"] = {"policy": str(school), "base": str(base), "reload": False}
    config.write_text(json.dumps(doc))
    with StandIn(run / "standin") as standin:
        proxy = ProxyProcess(config, run, standin.port, standin.ca_cert)
        with pytest.raises(RuntimeError) as refused:
            proxy.start(timeout_s=60)
    assert "DG-RULES-BASE" in str(refused.value), str(refused.value)[-2000:]
