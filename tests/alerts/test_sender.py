"""The alert sender against a real audit log, the shipped rules and a real SMTP server (aiosmtpd, STARTTLS)."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta

from dojoguard.audit import mail
from dojoguard.audit.report import build_report
from dojoguard.rules.action import Channel, Kind, Points

from .conftest import CLASS, LONDON, MONDAY_10, TEACHER, action, sender

DISCLOSURE = "Ellie made a disclosure to me this morning about her stepdad, please call."
SWEARING = "What a load of crap this homework is."


def events(audit, name):
    return [json.loads(r[4]) for r in audit.rows(types=(name,))]


def decide(audit, policy, act):
    decision = policy.evaluate(act)
    audit.append_decision(act, decision)
    return decision


def started(tmp_path, smtp, audit, clock, **changes):
    """A sender that has made its first turn (so it alerts from now on, not for the log's history)."""
    s = sender(tmp_path, smtp, audit, clock, **changes)
    s.turn()
    return s


def test_a_safeguarding_concern_reaches_the_dsl_without_its_content(tmp_path, smtp, audit, clock, policy):
    s = started(tmp_path, smtp, audit, clock)
    decision = decide(audit, policy, action(DISCLOSURE))
    assert decision.alerts == [{"rule": "safeguarding-matters", "to": ["dsl"], "when": "now"}]
    clock.set(MONDAY_10 + timedelta(seconds=10))
    assert s.turn() == 0, "sent before the minute's alerts were gathered"
    clock.set(MONDAY_10 + timedelta(seconds=31))
    assert s.turn() == 1
    [(to, message, _)] = smtp.messages
    assert to == ["dsl@school.example"]
    text = message.get_content()
    assert "safeguarding-matters" in message["Subject"] and "for dsl" in message["Subject"]
    assert decision.decision_id in text and decision.decision_id[:8] in text
    assert "Mrs Hartley" in text and "Year 3 Oak" in text and "refused" in text
    assert "10:00 on Monday 30 November 2026" in text
    # Never the content: not the text, not a word of it, not the pupil.
    for word in ("Ellie", "disclosure", "stepdad", "5f1a2b3c4d5e6f7081920b07", "Amelia"):
        assert word not in text and word not in message["Subject"]
    assert message["Message-ID"].startswith("<") and "dojoguard.alerts" in message["Message-ID"]
    [sent] = events(audit, "alert.sent")
    assert sent["group"] == "dsl" and sent["attempts"] == 1 and sent["references"] == [decision.decision_id]
    assert s.turn() == 0, "sent twice"
    s.close()


def test_what_happens_in_one_minute_goes_in_one_email_per_group(tmp_path, smtp, audit, clock, policy):
    s = started(tmp_path, smtp, audit, clock)
    made = [decide(audit, policy, action(SWEARING)) for _ in range(3)]
    made.append(decide(audit, policy, action(DISCLOSURE)))
    decide(audit, policy, action("Lovely reading today!"))  # alerts nobody
    clock.set(MONDAY_10 + timedelta(seconds=30))
    assert s.turn() == 2
    by_group = {tuple(to): m for to, m, _ in smtp.messages}
    head = by_group[("head@school.example",)].get_content()
    assert "3 times" in head and all(d.decision_id in head for d in made[:3])
    assert made[3].decision_id not in head
    assert made[3].decision_id in by_group[("dsl@school.example",)].get_content()
    s.close()


def test_the_first_start_does_not_alert_for_the_logs_history(tmp_path, smtp, audit, clock, policy):
    decide(audit, policy, action(DISCLOSURE))  # before alerts were ever switched on
    s = sender(tmp_path, smtp, audit, clock)
    s.turn()
    clock.set(MONDAY_10 + timedelta(minutes=5))
    assert s.turn() == 0 and smtp.messages == []
    s.close()


def test_an_outage_is_retried_with_backoff_recorded_once_and_nothing_is_lost(tmp_path, smtp, audit, clock, policy):
    s = started(tmp_path, smtp, audit, clock)
    smtp.stop()  # the school's mail relay is down
    decision = decide(audit, policy, action(DISCLOSURE))
    clock.set(MONDAY_10 + timedelta(seconds=30))
    assert s.turn() == 0
    [failed] = events(audit, "alert.failed")
    assert failed["group"] == "dsl" and failed["attempts"] == 1 and "ConnectionRefused" in failed["error"]
    clock.set(MONDAY_10 + timedelta(seconds=40))  # before the first retry (15 s after the failure)
    s.turn()
    assert s.outbox.status()["unsent"][0].attempts == 1
    clock.set(MONDAY_10 + timedelta(seconds=46))
    s.turn()
    assert s.outbox.status()["unsent"][0].attempts == 2
    assert len(events(audit, "alert.failed")) == 1, "every retry was recorded: health would be flooded"
    # Alerts made during the outage wait too.
    later = decide(audit, policy, action(DISCLOSURE, at=MONDAY_10 + timedelta(seconds=50)))
    smtp.start()
    clock.set(MONDAY_10 + timedelta(minutes=3))
    assert s.turn() == 2
    texts = [m.get_content() for _, m, _ in smtp.messages]
    assert sum(decision.decision_id in t for t in texts) == 1 and sum(later.decision_id in t for t in texts) == 1
    sent = {e["batch"]: e for e in events(audit, "alert.sent")}
    assert sorted(e["attempts"] for e in sent.values()) == [1, 3]
    # The failure is in the report's system health.
    report = build_report(audit, MONDAY_10 - timedelta(days=1), MONDAY_10 + timedelta(days=1), tz=LONDON,
                          now=clock.now())
    assert report.health["alert.failed"] == 1
    [item] = [i for i in report.health_items if i.type == "alert.failed"]
    assert item.details.startswith("an email to the dsl recipient group (1 alert) could not be sent after 1 try: ")
    assert "tried again from 2026-11-30 10:00" in item.details
    s.close()


def test_an_hour_of_failures_is_recorded_about_hourly(tmp_path, audit, clock, policy):
    s = started(tmp_path, None, audit, clock)  # no mail server configured at all
    decide(audit, policy, action(DISCLOSURE))
    for minute in range(0, 125, 1):
        clock.set(MONDAY_10 + timedelta(minutes=minute, seconds=30))
        s.turn()
    failures = events(audit, "alert.failed")
    assert 2 <= len(failures) <= 3, len(failures)
    assert "no mail server configured" in failures[0]["error"]
    assert s.outbox.status()["unsent"][0].attempts >= 12  # kept trying, at most every ten minutes
    s.close()


def test_a_restart_neither_loses_nor_repeats_an_alert(tmp_path, smtp, audit, clock, policy):
    first = started(tmp_path, smtp, audit, clock)
    before = decide(audit, policy, action(DISCLOSURE))
    clock.set(MONDAY_10 + timedelta(seconds=5))
    first.turn()  # read and queued, not yet sent
    first.close()  # the proxy stops
    during = decide(audit, policy, action(DISCLOSURE, at=MONDAY_10 + timedelta(seconds=20)))
    second = sender(tmp_path, smtp, audit, clock)
    clock.set(MONDAY_10 + timedelta(seconds=40))
    assert second.turn() == 1
    second.close()
    third = sender(tmp_path, smtp, audit, clock)
    clock.set(MONDAY_10 + timedelta(minutes=5))
    assert third.turn() == 0
    third.close()
    [(_, message, _)] = smtp.messages
    assert before.decision_id in message.get_content() and during.decision_id in message.get_content()


def test_an_email_whose_sending_was_not_recorded_is_sent_again_with_the_same_message_id(
        tmp_path, smtp, audit, clock, policy):
    """The one duplicate email possible (the server took it, the record did not follow) is recognisable."""
    def taken_then_lost(*args, **kwargs):
        mail.send(*args, **kwargs)
        raise OSError("the connection dropped after the server accepted the message")

    s = started(tmp_path, smtp, audit, clock)
    s._send = taken_then_lost
    decide(audit, policy, action(DISCLOSURE))
    clock.set(MONDAY_10 + timedelta(seconds=30))
    s.turn()
    s._send = mail.send
    clock.set(MONDAY_10 + timedelta(minutes=2))
    assert s.turn() == 1
    first, second = (m for _, m, _ in smtp.messages)
    assert first["Message-ID"] == second["Message-ID"]
    s.close()


def test_the_daily_digest_goes_at_the_digest_time(tmp_path, smtp, audit, clock, policy):
    s = started(tmp_path, smtp, audit, clock)
    points = action(None, kind=Kind.POINTS_AWARD, channel=Channel.POINTS, points=Points(value=-1, skill="Off task"))
    negative = decide(audit, policy, points)
    device = decide(audit, policy, action(device_address="192.168.1.20"))
    assert negative.alerts[0]["when"] == "daily" and device.alerts[0]["when"] == "daily"
    clock.set(MONDAY_10 + timedelta(hours=6, minutes=29))  # 16:29
    assert s.turn() == 0
    clock.set(MONDAY_10 + timedelta(hours=6, minutes=30))  # 16:30 (GMT)
    assert s.turn() == 1
    [(to, message, _)] = smtp.messages
    assert to == ["head@school.example"] and "daily digest" in message["Subject"]
    body = message.get_content()
    assert negative.decision_id in body and device.decision_id in body and "2 times" in body
    s.close()


def test_a_group_with_no_address_is_a_recorded_failure_not_a_silent_drop(tmp_path, smtp, audit, clock, policy):
    s = started(tmp_path, smtp, audit, clock, recipients={"headteacher": ["head@school.example"]})
    decide(audit, policy, action(DISCLOSURE))
    clock.set(MONDAY_10 + timedelta(seconds=30))
    s.turn()
    [failed] = events(audit, "alert.failed")
    assert failed["group"] == "dsl" and "alerts.recipients.dsl" in failed["error"]
    assert smtp.messages == []
    s.close()


def test_the_outbox_holds_no_content(tmp_path, smtp, audit, clock, policy):
    s = started(tmp_path, smtp, audit, clock)
    decide(audit, policy, action(DISCLOSURE))
    decide(audit, policy, action(SWEARING))
    clock.set(MONDAY_10 + timedelta(seconds=5))
    s.turn()
    dump = "\n".join(sqlite3.connect(tmp_path / "alerts.sqlite").iterdump())
    for word in ("Ellie", "disclosure", "crap", "homework", "Amelia", "5f1a2b3c4d5e6f7081920b07"):
        assert word not in dump
    assert TEACHER in dump and CLASS in dump
    s.close()


def test_the_thread_sends_on_its_own_and_stops(tmp_path, smtp, audit, clock, policy):
    s = started(tmp_path, smtp, audit, clock, gather_s=0.0)
    s.start()
    decide(audit, policy, action(DISCLOSURE))
    assert len(smtp.wait_for(1, 10)) == 1
    s.stop()
    assert not s._thread.is_alive()


# -- attacks: what a bad record, a second sender, a replaced log or a clock set back must not do -----

def test_a_malformed_alerts_field_is_skipped_and_later_alerts_still_go(tmp_path, smtp, audit, clock, policy):
    s = started(tmp_path, smtp, audit, clock)
    audit.append_event("job.failed", {"job": "x", "error": "y", "alerts": [{"rule": "r", "to": 5},
                                                                           {"rule": "r", "to": "dsl"}, "nonsense"]})
    decision = decide(audit, policy, action(DISCLOSURE))
    clock.set(MONDAY_10 + timedelta(seconds=30))
    assert s.turn() == 1  # the string "dsl" was not read as groups d, s and l
    [(to, message, _)] = smtp.messages
    assert to == ["dsl@school.example"] and decision.decision_id in message.get_content()
    s.close()


def test_an_id_filled_with_text_never_reaches_an_email(tmp_path, smtp, audit, clock, policy):
    s = started(tmp_path, smtp, audit, clock)
    decide(audit, policy, action(DISCLOSURE, class_id="Ellie Smith said her stepdad hits her\nReference: x"))
    clock.set(MONDAY_10 + timedelta(seconds=30))
    assert s.turn() == 1
    text = smtp.messages[0][1].get_content()
    assert "Ellie" not in text and "stepdad" not in text and "Reference: x" not in text
    s.close()


def test_a_second_sender_on_the_same_outbox_is_refused(tmp_path, smtp, audit, clock):
    first = started(tmp_path, smtp, audit, clock)
    try:
        sender(tmp_path, smtp, audit, clock)
    except RuntimeError as exc:
        assert "another alert sender" in str(exc)
    else:
        raise AssertionError("two senders would send the same emails")
    first.close()
    sender(tmp_path, smtp, audit, clock).close()  # once the first is gone, a new one may start


def test_a_replaced_audit_log_is_read_from_its_start(tmp_path, smtp, audit, clock, policy):
    from dojoguard.audit.log import AuditLog

    for _ in range(5):
        decide(audit, policy, action("Lovely reading today!"))
    s = started(tmp_path, smtp, audit, clock)  # cursor at the old log's end
    audit.close()
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"audit.sqlite{suffix}").unlink(missing_ok=True)
    s._reader.close()
    s._reader = None
    fresh = AuditLog.open(tmp_path / "audit.sqlite", clock=clock, emit_decisions=False)
    try:
        decision = decide(fresh, policy, action(DISCLOSURE))
        clock.set(MONDAY_10 + timedelta(seconds=30))
        s.audit = fresh
        assert s.turn() == 1
        assert decision.decision_id in smtp.messages[0][1].get_content()
    finally:
        s.close()
        fresh.close()


def test_a_clock_set_back_does_not_hold_an_alert(tmp_path, smtp, audit, clock, policy):
    s = started(tmp_path, smtp, audit, clock)
    decide(audit, policy, action(DISCLOSURE))  # recorded at 10:00
    clock.set(MONDAY_10 - timedelta(hours=1))  # the clock is corrected back an hour
    s.turn()
    clock.set(MONDAY_10 - timedelta(hours=1) + timedelta(seconds=31))
    assert s.turn() == 1
    s.close()
