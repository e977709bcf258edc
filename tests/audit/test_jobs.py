"""Tests for the scheduled jobs, against a real local SMTP server with STARTTLS and a throwaway certificate."""

from __future__ import annotations

import email
import ssl
import time as time_module
from datetime import UTC, datetime, time
from email import policy
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller

from dojoguard.audit import mail
from dojoguard.audit.jobs import Jobs, Schedule, start_jobs
from dojoguard.audit.log import AuditLog
from dojoguard.clock import FixedClock

from tests.support.smtp import free_port, throwaway_certificate

from .conftest import make_action, make_decision, write_config

LONDON = ZoneInfo("Europe/London")
THURSDAY = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
MONDAY_AFTER = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content,
                                                                           policy=policy.default),
                              session.ssl is not None))
        return "250 OK"


@pytest.fixture
def certificate(tmp_path):
    """A throwaway self-signed certificate for localhost / 127.0.0.1."""
    return throwaway_certificate(tmp_path)


@pytest.fixture
def smtp_server(certificate):
    """A real SMTP server on localhost that requires STARTTLS before accepting mail."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), tls_context=context,
                            require_starttls=True)
    controller.start()
    yield controller, inbox
    controller.stop()


def settings(tmp_path, port, ca_file, recipients=("head@school.example",), extra=""):
    listed = "".join(f"\n    - {r}" for r in recipients) if recipients else " []"
    return write_config(tmp_path, f"""
reports:
  recipients:{listed}
  policy_reviewed: "2025-09-01"
  smtp:
    host: "localhost"
    port: {port}
    starttls: true
    ca_file: "{ca_file}"
    sender: dojoguard@school.example
{extra}""")


def test_schedule_finds_the_latest_due_time():
    """Weekly and daily schedules give the most recent due moment at or before now, in local time."""
    friday = Schedule(time(16, 0), 4)
    assert friday.last_due(datetime(2026, 11, 27, 15, 59, tzinfo=UTC), LONDON) == \
        datetime(2026, 11, 20, 16, 0, tzinfo=LONDON)
    assert friday.last_due(datetime(2026, 11, 27, 16, 0, tzinfo=UTC), LONDON) == \
        datetime(2026, 11, 27, 16, 0, tzinfo=LONDON)
    # In British Summer Time 16:00 local is 15:00 UTC.
    assert friday.last_due(datetime(2026, 6, 26, 15, 0, tzinfo=UTC), LONDON).hour == 16
    daily = Schedule(time(23, 50))
    assert daily.last_due(datetime(2026, 11, 27, 9, 0, tzinfo=UTC), LONDON) == \
        datetime(2026, 11, 26, 23, 50, tzinfo=LONDON)


def test_first_start_owes_no_past_runs(tmp_path, smtp_server, certificate):
    """A brand-new installation does not send reports for weeks before it existed."""
    controller, inbox = smtp_server
    cfg = settings(tmp_path, controller.port, certificate[0])
    clock = FixedClock(THURSDAY)
    with AuditLog.open(cfg.path("audit", "database"), clock=clock, emit_decisions=False) as log:
        assert Jobs(cfg, log, clock).run_due() == []
        assert Jobs(cfg, log, clock).run_due() == []
    assert inbox.messages == []


def test_weekly_report_missed_while_down_is_sent_on_restart(tmp_path, smtp_server, certificate):
    """The proxy was down over Friday 16:00: on restart the week's report is written and emailed over STARTTLS."""
    controller, inbox = smtp_server
    cfg = settings(tmp_path, controller.port, certificate[0],
                   extra="audit:\n  checkpoint_recipients:\n    - governor@school.example\n")
    clock = FixedClock(THURSDAY)
    path = cfg.path("audit", "database")
    with AuditLog.open(path, clock=clock, emit_decisions=False) as log:
        Jobs(cfg, log, clock).run_due()  # first start: records where each job stands
        log.append_decision(make_action(), make_decision())
        log.append_event("hold.uncertain", {"hold": "3f9c2a1b7d20", "kind": "hold", "decision_id": "d1",
                                            "sent_at": THURSDAY.isoformat(), "error": "no answer (proxy stopped)"})
    clock.set(MONDAY_AFTER)  # down from Thursday to Monday
    with AuditLog.open(path, clock=clock, emit_decisions=False) as log:
        runs = {r.job: r for r in Jobs(cfg, log, clock).run_due()}
        assert all(r.ok for r in runs.values()), runs
        assert runs["weekly_report"].due == datetime(2026, 11, 27, 16, 0, tzinfo=LONDON)
        assert set(runs) == {"weekly_report", "checkpoint", "retention_purge", "policy_review"}
        assert Jobs(cfg, log, clock).run_due() == []  # nothing is sent twice
        sent = list(log.records(types=("report.sent",)))
        assert len(sent) == 1 and sent[0].fields["recipients"] == 1
        assert len(list(log.records(types=("policy.review_due",)))) == 1
    folder = cfg.path("reports", "folder")
    assert (folder / "weekly-report-2026-11-27.html").exists()
    assert (folder / "weekly-report-2026-11-27.csv").exists()
    assert len(list(cfg.path("audit", "checkpoint_dir").glob("checkpoint-*.json"))) == 1
    subjects = {m.get("Subject"): (to, m, tls) for to, m, tls in inbox.messages}
    to, message, was_tls = subjects["ClassDojo policy report: week to Friday 27 November 2026, 16:00"]
    assert to == ["head@school.example"] and was_tls
    assert "Held and queued items needing a person: 1 (1 uncertain)" in message.get_body(("plain",)).get_content()
    attachment = next(message.iter_attachments())
    assert attachment.get_filename() == "weekly-report-2026-11-27.html"
    assert "ClassDojo policy report" in attachment.get_content()
    assert "ClassDojo policy review is overdue" in subjects
    to, message, was_tls = next(v for k, v in subjects.items() if k.startswith("dojoguard audit checkpoint"))
    assert to == ["governor@school.example"] and was_tls
    assert sorted(a.get_filename() for a in message.iter_attachments())[0] == "audit-signing.pub"


def test_failed_run_is_recorded_and_retried_later(tmp_path, certificate):
    """With the mail server down the run fails, is recorded, waits RETRY_AFTER, then succeeds."""
    port = free_port()
    cfg = settings(tmp_path, port, certificate[0])
    clock = FixedClock(THURSDAY)
    with AuditLog.open(cfg.path("audit", "database"), clock=clock, emit_decisions=False) as log:
        jobs = Jobs(cfg, log, clock)
        jobs.run_due()
        clock.set(datetime(2026, 11, 27, 16, 5, tzinfo=UTC))
        runs = {r.job: r for r in jobs.run_due()}
        assert not runs["weekly_report"].ok and "MailError" in runs["weekly_report"].detail
        failed = list(log.records(types=("job.failed",)))
        assert failed and failed[-1].fields["job"] == "weekly_report"
        clock.set(datetime(2026, 11, 27, 16, 20, tzinfo=UTC))
        assert "weekly_report" not in {r.job for r in jobs.run_due()}  # too soon to retry
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*map(str, certificate))
        inbox = Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=context,
                                require_starttls=True)
        controller.start()
        try:
            clock.set(datetime(2026, 11, 27, 16, 40, tzinfo=UTC))
            runs = {r.job: r for r in jobs.run_due()}
            assert runs["weekly_report"].ok
        finally:
            controller.stop()
        assert len(inbox.messages) == 1


def test_mail_is_never_sent_in_the_clear_when_starttls_is_asked_for(tmp_path):
    """A server that offers no STARTTLS gets nothing."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        with pytest.raises(mail.MailError, match="does not offer STARTTLS"):
            mail.send({"host": "127.0.0.1", "port": controller.port, "starttls": True}, ["a@b.example"],
                      "subject", "text")
    finally:
        controller.stop()
    assert inbox.messages == []


def test_an_untrusted_server_certificate_is_refused(tmp_path, smtp_server):
    """Without the CA that signed the server's certificate, the STARTTLS handshake fails and nothing is sent."""
    controller, inbox = smtp_server
    with pytest.raises(mail.MailError, match="SSL|certificate"):
        mail.send({"host": "localhost", "port": controller.port, "starttls": True}, ["a@b.example"], "s", "t")
    assert inbox.messages == []


def test_started_scheduler_runs_due_jobs_and_checkpoints_at_shutdown(tmp_path):
    """The APScheduler thread ticks, runs a checkpoint that fell due, and writes another at shutdown."""
    cfg = write_config(tmp_path)
    clock = FixedClock(datetime(2026, 11, 26, 12, 0, tzinfo=UTC))
    folder = cfg.path("audit", "checkpoint_dir")
    with AuditLog.open(cfg.path("audit", "database"), clock=clock, emit_decisions=False) as log:
        handle = start_jobs(cfg, log, clock, tick_seconds=0.2)
        try:
            deadline = time_module.monotonic() + 10
            while log.connection is not None and time_module.monotonic() < deadline:
                with log.lock:
                    if log.connection.execute("SELECT COUNT(*) FROM job_runs").fetchone()[0] == 4:
                        break
                time_module.sleep(0.05)
            clock.set(datetime(2026, 11, 27, 0, 5, tzinfo=UTC))  # past 23:50 local
            while not list(folder.glob("checkpoint-*.json")) and time_module.monotonic() < deadline:
                time_module.sleep(0.05)
            assert len(list(folder.glob("checkpoint-*.json"))) == 1
        finally:
            clock.set(datetime(2026, 11, 27, 0, 6, tzinfo=UTC))
            handle.shutdown()
        assert not handle.scheduler.running
        assert len(list(folder.glob("checkpoint-*.json"))) == 2
        assert [r.type for r in log.records(types=("checkpoint.written",))] == ["checkpoint.written"] * 2
