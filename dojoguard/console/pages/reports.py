"""Reports: the leaders' report for this week, last week, this term or any range, as HTML, CSV or JSON.

The very report `dojoguard audit report` writes (``dojoguard.audit.report``),
with teachers and classes named.
"""

from __future__ import annotations

from datetime import date, timedelta

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for

from dojoguard.console import stores
from dojoguard.console.app import console, needs
from dojoguard.console.figures import week_start

blueprint = Blueprint("reports", __name__, url_prefix="/reports")
MEDIA = {"html": "text/html", "csv": "text/csv", "json": "application/json"}


def period(name: str, today: date, terms, first: str = "", last: str = "") -> tuple[date, date]:
    """[first, last] local days of a named period; raises ``ValueError`` saying what is wrong."""
    if name == "week":
        return week_start(today), today
    if name == "last-week":
        monday = week_start(today) - timedelta(weeks=1)
        return monday, monday + timedelta(days=6)
    if name == "term":
        started = [t for t in terms if t[0] <= today]
        if not started:
            raise ValueError("the school calendar has no term that has started (rules.calendar)")
        start, end = max(started)
        return start, min(end, today)
    if name == "range":
        try:
            a, b = date.fromisoformat(first), date.fromisoformat(last)
        except ValueError:
            raise ValueError("give both days of the range as dates") from None
        if b < a:
            raise ValueError("the range ends before it starts")
        return a, b
    raise ValueError(f"no period {name!r}")


@blueprint.get("/")
@needs("reports")
def index():
    return render_template("reports.html.j2", title="Reports")


@blueprint.get("/download")
@needs("reports")
def download():
    from dojoguard.audit.render import render
    from dojoguard.audit.report import build_report, day_label, period_bounds

    c = console()
    cfg = c.config
    fmt = request.args.get("format", "html")
    if fmt not in MEDIA:
        fmt = "html"
    today = c.clock.now().astimezone(cfg.timezone).date()
    try:
        first, last = period(request.args.get("period", "week"), today, stores.policy().calendar.terms,
                             request.args.get("from", ""), request.args.get("to", ""))
        start, end = period_bounds(first, last, cfg.timezone)
        report = build_report(stores.audit(), start, end, tz=cfg.timezone, now=c.clock.now(),
                              label=day_label(first, last), policy_reviewed=cfg["reports"]["policy_reviewed"],
                              checkpoint_dir=cfg.path("audit", "checkpoint_dir"),
                              publish_dir=cfg.path("audit", "checkpoint_publish_dir"),
                              retention_days=cfg["audit"]["retention_days"],
                              hold_max_age_days=cfg["holds"]["max_age_days"])
    except ValueError as exc:
        flash(f"No report: {exc}.", "error")
        return redirect(url_for("reports.index"))
    stores.record("report.downloaded", {"from": first.isoformat(), "to": last.isoformat(), "format": fmt})
    response = Response(render(report, fmt), mimetype=MEDIA[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="dojoguard-{first}-to-{last}.{fmt}"'
    return response
