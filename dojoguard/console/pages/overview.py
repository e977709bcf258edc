"""The overview: this week's figures, the trend over twelve weeks, integrity, the policy review, what waits."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, render_template

from dojoguard.console import stores
from dojoguard.console.app import console, needs
from dojoguard.console.figures import Days, overview

blueprint = Blueprint("overview", __name__)


def verifier():
    from dojoguard.console.integrity import Verifier

    c = console()
    # Its thread has no request: it is handed the console itself, not the request's view of it.
    v = c.opened("verifier", lambda: Verifier(c.config, c.clock, lambda: stores.audit(c)))
    v.ensure_running()
    return v


def review(now_day: date) -> dict:
    """The policy review as the settings record it: when, when due, whether overdue, or not recorded."""
    from dojoguard.audit.report import review_due

    reviewed = console().config["reports"].get("policy_reviewed")
    if not reviewed:
        return {"reviewed": None, "due": None, "overdue": False}
    due = review_due(reviewed)
    return {"reviewed": date.fromisoformat(reviewed), "due": due, "overdue": now_day > due}


def waiting() -> list:
    from dojoguard.holds.store import HoldKind, HoldState

    return stores.holds().list(kind=HoldKind.HOLD, state=HoldState.PENDING)


@blueprint.get("/")
@needs("overview")
def index():
    c = console()
    today = c.clock.now().astimezone(c.config.timezone).date()
    with stores.reading() as conn:
        figures = overview(conn, today, c.config.timezone, days=c.opened("days", Days))
    table = stores.name_table()
    teachers = sorted(figures.by_teacher.items(), key=lambda kv: -sum(kv[1].values()))
    trend = [(w.first.strftime("%d %b"), dict(w.by_verdict)) for w in figures.trend]
    return render_template("overview.html.j2", title="Overview", f=figures, teachers=teachers, trend=trend,
                           table=table, integrity=verifier().latest, review=review(today), waiting=waiting(),
                           today=today)


def warm(app) -> None:
    """Count the last twelve weeks and verify the log in the background, so the first overview is quick."""
    import threading

    def run() -> None:
        with app.app_context():
            c = console()
            try:
                verifier()
                today = c.clock.now().astimezone(c.config.timezone).date()
                with stores.audit(c).snapshot() as conn:
                    overview(conn, today, c.config.timezone, days=c.opened("days", Days))
            except Exception:  # noqa: BLE001 - only a head start: the page counts what this could not
                pass

    threading.Thread(target=run, name="console-warm", daemon=True).start()
