"""Scheduled jobs in the proxy process: weekly report, daily checkpoint, retention purge, review reminder.

APScheduler runs one tick a minute on a background thread. Each tick asks,
for every job, "when was this job last due?" (from the injected clock, in the
school's time zone) and runs it if the durable record in ``job_runs`` says
that run has not completed. So a weekly report that fell due while the proxy
was down is sent on the first tick after it starts again, for the week it
belongs to; and tests (or ``--clock-file``) can move time under a running
process. A failed run is recorded (``job.failed``) and retried after
``RETRY_AFTER``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.audit import mail, retention
from dojoguard.audit.log import AuditWriteError
from dojoguard.audit.record import format_time, parse_time
from dojoguard.audit.render import render
from dojoguard.audit.report import build_report, configured, review_due

RETRY_AFTER = timedelta(minutes=30)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

log_ = structlog.get_logger("dojoguard.jobs")


@dataclass(frozen=True)
class Schedule:
    """Daily at ``at`` (local), or weekly on ``weekday`` (0 = Monday) at ``at``."""

    at: time
    weekday: int | None = None

    def last_due(self, now: datetime, tz: ZoneInfo) -> datetime:
        """The most recent moment at or before ``now`` this schedule fell due (aware, local)."""
        local = now.astimezone(tz)
        candidate = datetime.combine(local.date(), self.at, tz)
        if self.weekday is None:
            return candidate if candidate <= local else candidate - timedelta(days=1)
        candidate -= timedelta(days=(local.weekday() - self.weekday) % 7)
        return candidate if candidate <= local else candidate - timedelta(days=7)


@dataclass(frozen=True)
class JobRun:
    job: str
    due: datetime
    ok: bool
    detail: str


def _hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


class Jobs:
    """The jobs and their durable run record; ``run_due`` is safe to call at any time."""

    def __init__(self, config, audit_log, clock):
        self.config = config
        self.log = audit_log
        self.clock = clock
        self.tz: ZoneInfo = config.timezone
        reports, audit = config["reports"], config["audit"]
        self.schedules: dict[str, tuple[Schedule, Callable[[datetime], str]]] = {
            "weekly_report": (Schedule(_hhmm(reports["weekly_time"]), WEEKDAYS.index(reports["weekly_day"])),
                              self.weekly_report),
            "checkpoint": (Schedule(_hhmm(audit.get("checkpoint_time", "23:50"))), self.checkpoint),
            "retention_purge": (Schedule(_hhmm(audit.get("purge_time", "02:30"))), self.purge),
            # Weekly, so an overdue review is a Monday reminder rather than daily noise.
            "policy_review": (Schedule(time(8, 0), 0), self.policy_review),
        }
        self._running = threading.Lock()

    # -- the tick --------------------------------------------------------

    def run_due(self) -> list[JobRun]:
        """Run every job whose latest due time has not been completed yet."""
        if not self._running.acquire(blocking=False):
            return []  # a slow job is still running; the next tick catches up
        try:
            now = self.clock.now()
            runs = []
            for name, (schedule, job) in self.schedules.items():
                due = schedule.last_due(now, self.tz)
                state = self._state(name)
                if state is None:
                    # First start: nothing is owed for the time before dojoguard existed.
                    self._save(name, due, now, None)
                    continue
                last_due, last_attempt, last_error = state
                if last_due is not None and last_due >= due:
                    continue
                if last_error and last_attempt and now - last_attempt < RETRY_AFTER:
                    continue
                runs.append(self._run(name, job, due, now))
            return runs
        finally:
            self._running.release()

    def _run(self, name: str, job, due: datetime, now: datetime) -> JobRun:
        try:
            detail = job(due)
        except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried, never lost
            error = f"{type(exc).__name__}: {exc}"[:900]
            log_.error("job failed", job=name, due=due.isoformat(), error=error)
            self._save(name, self._state(name)[0], now, error)
            try:
                self.log.append_event("job.failed", {"job": name, "error": error})
            except AuditWriteError:
                pass  # the audit log is the thing failing; the application log says so
            return JobRun(name, due, False, error)
        self._save(name, due, now, None)
        log_.info("job done", job=name, due=due.isoformat(), detail=detail)
        return JobRun(name, due, True, detail)

    # -- the jobs --------------------------------------------------------

    def weekly_report(self, due: datetime) -> str:
        """The week ending at ``due``: written to reports.folder and emailed to reports.recipients."""
        reports = self.config["reports"]
        start = due - timedelta(days=7)
        label = f"week to {due:%A %d %B %Y, %H:%M}"
        report = build_report(self.log, start, due, tz=self.tz, now=self.clock.now(), label=label,
                              **configured(self.config))
        html = render(report, "html")
        folder = self.config.path("reports", "folder")
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"weekly-report-{due:%Y-%m-%d}"
        (folder / f"{name}.html").write_bytes(html)
        (folder / f"{name}.csv").write_bytes(render(report, "csv"))
        recipients = list(reports.get("recipients") or [])
        if recipients:
            summary = (f"ClassDojo policy report for the {label}.\n\n"
                       f"Decisions: {report.decisions}\n"
                       + "".join(f"  {v}: {n}\n" for v, n in report.by_verdict.items())
                       + f"\nAudit log: {report.chain_detail}.\n"
                       + (f"The policy review is overdue (due {report.review_due}).\n"
                          if report.is_review_overdue else "")
                       + _needing_a_person(report)
                       + "\nThe full report is attached; open it in any web browser.\n")
            mail.send(self._smtp(), recipients, f"ClassDojo policy report: {label}", summary,
                      [(f"{name}.html", html, "text/html")])
        self.log.append_event("report.sent", {"period_from": format_time(start), "period_to": format_time(due),
                                              "file": f"{name}.html", "recipients": len(recipients)})
        return f"{name}.html, {len(recipients)} recipient(s)"

    def checkpoint(self, due: datetime | None = None) -> str:
        publish = self.config.path("audit", "checkpoint_publish_dir")
        unpublished = None
        try:
            checkpoint, path = checkpoints.write_checkpoint(self.log, self.config.path("audit", "signing_key"),
                                                            self.config.path("audit", "checkpoint_dir"),
                                                            [publish] if publish is not None else [])
        except checkpoints.PublishError as exc:
            # Kept and recorded, not published: still email it, then fail the run so it is retried.
            checkpoint, path, unpublished = exc.checkpoint, exc.path, exc
        recipients = list(self.config["audit"].get("checkpoint_recipients") or [])
        if recipients:
            public = (path.parent / checkpoints.PUBLIC_KEY_NAME).read_bytes()
            mail.send(self._smtp(), recipients,
                      f"dojoguard audit checkpoint, record {checkpoint.seq}",
                      "Keep this signed checkpoint. With the public key it proves the audit log was not "
                      "rewritten up to this record:\n  dojoguard audit verify --checkpoint "
                      f"{path.name} --public-key {checkpoints.PUBLIC_KEY_NAME}\n",
                      [(path.name, path.read_bytes(), "application/json"),
                       (checkpoints.PUBLIC_KEY_NAME, public, "application/x-pem-file")])
        if unpublished is not None:
            raise unpublished
        return f"{path.name} (record {checkpoint.seq})"

    def purge(self, due: datetime) -> str:
        days = self.config["audit"]["retention_days"]
        key = checkpoints.load_or_create_key(self.config.path("audit", "signing_key"))
        result = retention.purge(self.log, retention.cutoff(self.clock.now(), days), retention_days=days, key=key)
        return f"{result.records} record(s) removed"

    def policy_review(self, due: datetime) -> str:
        reviewed = self.config["reports"].get("policy_reviewed")
        if not reviewed:
            return "no review date set"
        deadline = review_due(reviewed)
        if due.date() < deadline:
            return f"review due {deadline}"
        self.log.append_event("policy.review_due", {"reviewed": reviewed, "due": deadline.isoformat()})
        recipients = list(self.config["reports"].get("recipients") or [])
        if recipients:
            mail.send(self._smtp(), recipients, "ClassDojo policy review is overdue",
                      f"The ClassDojo policy was last reviewed on {reviewed}; its annual review was due by "
                      f"{deadline}.\nAfter the review, set reports.policy_reviewed in dojoguard's settings "
                      "to the review date.\n")
        return f"reminder sent (review was due {deadline})"

    def _smtp(self) -> dict:
        """The mail settings, with a relative ``ca_file`` resolved under data_dir like other paths."""
        smtp = dict(self.config["reports"]["smtp"])
        if smtp.get("ca_file"):
            path = Path(smtp["ca_file"]).expanduser()
            smtp["ca_file"] = str(path if path.is_absolute() else self.config.data_dir / path)
        return smtp

    # -- durable state ---------------------------------------------------

    def _state(self, job: str):
        with self.log.lock:
            row = self.log.connection.execute(
                "SELECT last_due, last_attempt, last_error FROM job_runs WHERE job = ?", (job,)).fetchone()
        if row is None:
            return None
        return (parse_time(row[0]) if row[0] else None, parse_time(row[1]) if row[1] else None, row[2])

    def _save(self, job: str, due: datetime | None, attempt: datetime, error: str | None) -> None:
        with self.log.transaction():
            self.log.connection.execute("INSERT OR REPLACE INTO job_runs VALUES (?, ?, ?, ?)",
                                        (job, format_time(due) if due else None, format_time(attempt), error))
        self.log.flush()


class JobsHandle:
    """What ``start_jobs`` returns: the running scheduler, and a clean way to stop it."""

    def __init__(self, scheduler: BackgroundScheduler, jobs: Jobs):
        self.scheduler = scheduler
        self.jobs = jobs

    def shutdown(self, *, checkpoint: bool = True) -> None:
        """Stop the ticks (waiting for a running job), then write the shutdown checkpoint."""
        self.scheduler.shutdown(wait=True)
        if checkpoint:
            try:
                self.jobs.checkpoint()
            except Exception as exc:  # noqa: BLE001 - shutting down anyway; say why there is no checkpoint
                log_.error("shutdown checkpoint failed", error=f"{type(exc).__name__}: {exc}")


def start_jobs(config, audit_log, clock, *, tick_seconds: float = 60.0) -> JobsHandle:
    """Start the scheduler thread; the first tick runs at once (catching up anything missed)."""
    jobs = Jobs(config, audit_log, clock)
    scheduler = BackgroundScheduler(timezone=config.timezone)
    scheduler.add_job(jobs.run_due, IntervalTrigger(seconds=tick_seconds, timezone=config.timezone),
                      id="dojoguard-jobs", name="dojoguard scheduled jobs", max_instances=1, coalesce=True,
                      misfire_grace_time=None, next_run_time=datetime.now(config.timezone))
    scheduler.start()
    return JobsHandle(scheduler, jobs)


def _needing_a_person(report) -> str:
    """A line for the email when held or queued items wait for a person (uncertain ones named first)."""
    items = report.needs_person
    if not items:
        return ""
    counts = {}
    for item in items:
        counts[item.state] = counts.get(item.state, 0) + 1
    listed = ", ".join(f"{n} {state}" for state, n in counts.items())
    return (f"Held and queued items needing a person: {len(items)} ({listed}); see the report's "
            "\"Held and queued items\" section or run `dojoguard held list --failed`.\n")
