"""Counting rules and scheduled checks through a real `dojoguard run`: a limit per teacher holds across a
restart of the proxy (counts are kept in its state file), strikes escalate, and a scheduled check that fell
due while the proxy was stopped runs when it starts, once."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from dojoguard.clock import FileClock
from dojoguard.standin import data
from dojoguard.standin.harness import ProxyProcess
from tests.proxy.conftest import audit_rows, running_proxy, signed_in
from tests.support.waiting import eventually

MESSAGE = f"https://teach.classdojo.com/api/message-thread/{data.THREAD_ID}/message"

RULES = """
policy: {name: Counting test school}
default: {verdict: allow}
rules:
  - id: three-messages-an-hour
    when:
      kind: message.send
      count: {of: {kind: message.send}, per: teacher, within: 1 hour, more_than: 3}
    verdict: block
    notice: At most three messages an hour.
    clause: messages are kept short and few
  - id: no-shouting
    when: {kind: message.send, regex: "!!!"}
    verdict: block
    notice: No shouting.
    clause: messages are polite
  - id: repeated-misuse
    when: {strikes: {within: 1 day, at_least: 2, rules: [no-shouting]}}
    verdict: block
    notice: Blocked after repeated misuse; the headteacher will speak to you.
    clause: anyone misusing Class Dojo will be blocked
checks:
  - id: busy-teachers
    clause: teachers are not expected to message all day
    at: {days: [mon], time: "08:30"}
    count: {of: {kind: message.send}, per: teacher, within: today, at_least: 2}
    alert: [headteacher]
"""


def _verdicts(database) -> list[tuple[str, list[str]]]:
    return [(r["verdict"], r.get("rules") or []) for r in audit_rows(database)
            if r.get("kind") == "message.send"]


def _folders(tmp_path):
    """The test policy's folder and the proxy's."""
    policy, folder = tmp_path / "policy", tmp_path / "run"
    policy.mkdir()
    folder.mkdir()
    (policy / "rules.yaml").write_text(RULES)
    return policy, folder


def test_a_limit_holds_across_a_restart_and_a_check_that_fell_due_runs_once(tmp_path):
    policy, folder = _folders(tmp_path)
    audit = folder / "data" / "audit.sqlite"
    # Monday 08:00: before the check's time, so it does not run in the first run.
    early = datetime.fromisoformat("2026-11-30T08:00:00+00:00")
    with running_proxy(folder, policy=str(policy), at=early) as found:
        with signed_in(found["proxy"]) as client:
            statuses = []
            for minute in range(3):
                FileClock.write(found["clock"], early + timedelta(minutes=minute))
                statuses.append(client.post(MESSAGE, json={"body": f"Reminder {minute}"}).status_code)
            assert statuses == [200, 200, 200], found["proxy"].log()[-2000:]
        time.sleep(3)  # counts are written every two seconds
        assert found["proxy"].stop() == 0
        assert audit_rows(audit, "check.ran") == []
        # Restarted at 08:45, after the check's time: the count is still there.
        FileClock.write(found["clock"], early + timedelta(minutes=45))
        again = ProxyProcess(found["config"], folder, found["standin"].port, found["standin"].ca_cert,
                             clock_file=found["clock"]).start()
        try:
            with signed_in(again) as client:
                fourth = client.post(MESSAGE, json={"body": "One more"})
                assert fourth.status_code == 403, again.log()[-2000:]
                assert "At most three messages an hour" in fourth.text
                # Two shouted messages are two strikes; the next message is blocked for repeated misuse.
                FileClock.write(found["clock"], datetime.fromisoformat("2026-11-30T11:30:00+00:00"))
                assert client.post(MESSAGE, json={"body": "Stop it!!!"}).status_code == 403
                assert client.post(MESSAGE, json={"body": "Now!!!"}).status_code == 403
                calm = client.post(MESSAGE, json={"body": "Sorry, see you tomorrow"})
                assert calm.status_code == 403 and "repeated misuse" in calm.text
            ran = eventually(lambda: audit_rows(audit, "check.ran"), 20.0)
            assert [r["check"] for r in ran] == ["busy-teachers"], again.log()[-2000:]
            found_rows = audit_rows(audit, "check.found")
            assert [(r["teacher"], r["count"]) for r in found_rows] == [(data.TEACHER["_id"], 3)]
            assert found_rows[0]["alerts"] == [{"rule": "busy-teachers", "to": ["headteacher"], "when": "now"}]
            assert ran[0]["looked_at"] == 1 and ran[0]["found"] == 1
        finally:
            assert again.stop() == 0
        # A third start the same day does not run it again.
        third = ProxyProcess(found["config"], folder, found["standin"].port, found["standin"].ca_cert,
                             clock_file=found["clock"]).start()
        try:
            time.sleep(4)
        finally:
            third.stop()
        assert len(audit_rows(audit, "check.ran")) == 1
    verdicts = _verdicts(audit)
    assert [v for v, _ in verdicts] == ["allow"] * 3 + ["block"] * 4
    assert verdicts[3][1] == ["three-messages-an-hour"]
    assert verdicts[6][1] == ["repeated-misuse"]


def test_writes_sent_at_the_same_moment_cannot_all_slip_under_a_limit(tmp_path):
    """Eight messages at once from one teacher against a limit of three an hour: exactly three go."""
    from concurrent.futures import ThreadPoolExecutor

    policy, folder = _folders(tmp_path)
    with running_proxy(folder, policy=str(policy)) as found, signed_in(found["proxy"]) as client:
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda i: client.post(MESSAGE, json={"body": f"Note {i}"}).status_code,
                                     range(8)))
    assert sorted(statuses) == [200] * 3 + [403] * 5, statuses
