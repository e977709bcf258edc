"""Decisions: search by date, teacher, class, rule and verdict; one decision by the reference a teacher reads out."""

from __future__ import annotations

from datetime import date, timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from dojoguard import references
from dojoguard.console import stores
from dojoguard.console.app import console, needs
from dojoguard.console.figures import VERDICTS, Query, related, search, week_start

blueprint = Blueprint("decisions", __name__, url_prefix="/decisions")
# The widest search a page asks for at once: a school year and a little more.
LONGEST = timedelta(days=400)
# 50 to a page: a page number past this is past any year's decisions (and would overflow SQLite's integers).
MAX_PAGE = 10_000


def _day(text: str | None, default: date) -> date:
    if not text:
        return default
    try:
        # Kept inside what a stored time can say: the day after 31 December 9999 does not exist.
        return min(max(date.fromisoformat(text), date(1970, 1, 1)), date(9999, 12, 30))
    except ValueError:
        flash(f"{text!r} is not a date (YYYY-MM-DD); showing {default:%d %b %Y} instead.", "warn")
        return default


@blueprint.get("/")
@needs("decisions")
def index():
    c = console()
    reference = request.args.get("reference", "").strip()
    if reference:
        return redirect(url_for("decisions.one", reference=reference))
    today = c.clock.now().astimezone(c.config.timezone).date()
    first = _day(request.args.get("from"), week_start(today))
    last = _day(request.args.get("to"), today)
    if last < first:
        first, last = last, first
    if last - first > LONGEST:
        first = last - LONGEST
        flash(f"Searches cover at most {LONGEST.days} days: showing from {first:%d %b %Y}.", "warn")
    verdict = request.args.get("verdict") or None
    if verdict not in (None, *VERDICTS):
        abort(400)
    try:
        page = min(max(1, int(request.args.get("page", "1"))), MAX_PAGE)
    except ValueError:
        page = 1
    query = Query(first, last, teacher=request.args.get("teacher") or None, klass=request.args.get("class") or None,
                  rule=request.args.get("rule") or None, verdict=verdict, page=page)
    with stores.reading() as conn:
        results = search(conn, query, c.config.timezone)
    names = stores.names()
    return render_template("decisions.html.j2", title="Decisions", q=query, results=results, table=names.table(),
                           teachers=names.all("teacher"), classes=names.all("class"),
                           rules=[r.id for r in stores.policy().rules], args=request.args)


@blueprint.get("/<reference>")
@needs("decisions")
def one(reference: str):
    log = stores.audit()
    try:
        record = log.find(reference)
    except references.ReferenceProblem as exc:
        flash(str(exc).capitalize() + ".", "error")
        return redirect(url_for("decisions.index"))
    if record is None or record.type != "decision":  # events (logins, imports) are not looked up here
        flash(f"No decision has the reference {reference!r}. Check it with the teacher: it is the code after "
              "\"Reference:\" in the notice they saw.", "error")
        return redirect(url_for("decisions.index"))
    with stores.reading() as conn:
        steps = related(conn, record.record_id)
    held = None
    try:
        held = stores.holds().find(record.record_id)
    except Exception:  # noqa: BLE001 - no held item for it (or the store cannot be read): the page says so
        held = None
    return render_template("decision.html.j2", title="Decision " + record.record_id[:8], r=record,
                           f=record.fields, steps=steps, held=held, table=stores.name_table())
