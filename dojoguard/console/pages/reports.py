"""Reports: the leaders' report for this week, last week, this term or any range, as HTML, CSV or JSON.

The very report `dojoguard audit report` writes (``dojoguard.audit.report``),
with teachers and classes named.
"""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for

from dojoguard.console import stores
from dojoguard.console.app import console, needs
from dojoguard.audit.report import (build_report, configured, calendar_term, conventional_term, day_label, last_week,
                                    period_bounds, this_week)

blueprint = Blueprint("reports", __name__, url_prefix="/reports")
LONGEST_DAYS = 731
MEDIA = {"html": "text/html", "csv": "text/csv", "json": "application/json"}


def period(name: str, today: date, terms, first: str = "", last: str = "") -> tuple[date, date, str]:
    """[first, last] local days of a named period, and its label; raises ``ValueError`` saying what is wrong.

    The periods of `dojoguard audit report --week/--last-week/--term`.
    """
    if name == "week":
        monday, end = this_week(today)
        return monday, end, f"this week, {day_label(monday, end)}"
    if name == "last-week":
        monday, sunday = last_week(today)
        return monday, sunday, f"last week, {day_label(monday, sunday)}"
    if name == "term":
        found = calendar_term(today, terms)
        if found is not None:
            end = min(found[1], today)
            return found[0], end, f"this term (school calendar), {day_label(found[0], end)}"
        term, start, end = conventional_term(today)
        end = min(end, today)
        return start, end, f"{term} (no school calendar for today: terms by UK convention), {day_label(start, end)}"
    if name == "range":
        try:
            a, b = date.fromisoformat(first), date.fromisoformat(last)
        except ValueError:
            raise ValueError("give both days of the range as dates") from None
        if b < a:
            raise ValueError("the range ends before it starts")
        if (b - a).days > LONGEST_DAYS:
            # A report reads every record of its range, on the two cores the proxy shares: at most two years.
            raise ValueError(f"a report covers at most {LONGEST_DAYS} days (two school years); choose a shorter "
                             "range")
        return a, b, day_label(a, b)
    raise ValueError(f"no period {name!r}")


@blueprint.get("/")
@needs("reports")
def index():
    return render_template("reports.html.j2", title="Reports")


@blueprint.get("/download")
@needs("reports")
def download():
    from dojoguard.audit.render import render

    c = console()
    cfg = c.config
    fmt = request.args.get("format", "html")
    if fmt not in MEDIA:
        fmt = "html"
    today = c.clock.now().astimezone(cfg.timezone).date()
    try:
        first, last, label = period(request.args.get("period", "week"), today, stores.policy().calendar.terms,
                                    request.args.get("from", ""), request.args.get("to", ""))
        start, end = period_bounds(first, last, cfg.timezone)
        table = stores.name_table()
        report = build_report(stores.audit(), start, end, tz=cfg.timezone, now=c.clock.now(), label=label,
                              names=lambda kind, id_: table.get((kind, id_)), **configured(cfg))
    except ValueError as exc:
        flash(f"No report: {exc}.", "error")
        return redirect(url_for("reports.index"))
    stores.record("report.downloaded", {"from": first.isoformat(), "to": last.isoformat(), "format": fmt})
    response = Response(render(report, fmt), mimetype=MEDIA[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="dojoguard-{first}-to-{last}.{fmt}"'
    return response
