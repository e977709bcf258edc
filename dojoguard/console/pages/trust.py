"""Trust: every school's decisions side by side, from the trust's central store (docs/trust.md).

Only for accounts given a scope (`dojoguard console user scope`): a school's
account sees that school and nothing else, whatever the address asks for; a
trust-wide account sees every school and may narrow to one. The console
reads with its own database account (``console.trust_database``); when that
account is itself scoped by ``dojoguard trust grant``, PostgreSQL's
row-level security limits it as well, so a console misconfigured here still
cannot show a school its database account was not granted.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request
from flask_login import current_user

from dojoguard.console import stores
from dojoguard.console.accounts import TRUST_WIDE
from dojoguard.console.app import console, needs
from dojoguard.console.pages.reports import period
from dojoguard.audit.report import period_bounds

blueprint = Blueprint("trust", __name__, url_prefix="/trust")
MEDIA = {"html": "text/html", "json": "application/json"}


def _scope() -> str | None:
    """The one school this request may show (None: every school), refusing any other with 403."""
    scope = current_user.account.trust_scope
    asked = request.args.get("school") or None
    if scope == TRUST_WIDE:
        return asked
    if asked is not None and asked != scope:
        abort(403, description="Your account may see only its own school in the trust's report.")
    return scope


def _gather():
    from dojoguard.trust import report as trust_report
    from dojoguard.trust.central import Central, TrustError

    c = console()
    cfg = c.config
    dsn = cfg["console"]["trust_database"]
    if not dsn:
        abort(503, description="The console has no central store to read: set console.trust_database "
                               "(docs/trust.md).")
    school = _scope()
    today = c.clock.now().astimezone(cfg.timezone).date()
    try:
        first, last, label = period(request.args.get("period", "last-week"), today, stores.policy().calendar.terms,
                                    request.args.get("from", ""), request.args.get("to", ""))
    except ValueError as exc:
        abort(400, description=f"No report: {exc}.")
    start, end = period_bounds(first, last, cfg.timezone)
    try:
        central = Central.open(dsn, migrate=False, connect_timeout_s=5, application_name="dojoguard console")
    except TrustError as exc:
        abort(503, description=f"The trust's central store cannot be reached now ({exc}).")
    try:
        made = trust_report.gather(central, start, end, school=school, now=c.clock.now())
    except Exception as exc:  # noqa: BLE001 - said on the page; the console goes on serving the rest
        abort(503, description=f"The trust's central store could not be read ({type(exc).__name__}).")
    finally:
        central.close()
    return made, first, last, label, school


@blueprint.get("/")
@needs("trust")
def index():
    from dojoguard.trust.report import VERDICTS

    made, first, last, label, school = _gather()
    return render_template("trust.html.j2", title="Trust", report=made, verdicts=VERDICTS, label=label,
                           totals=made.totals(), scope=current_user.account.trust_scope, school=school,
                           chosen=request.args.get("period", "last-week"),
                           download={"period": "range", "from": first.isoformat(), "to": last.isoformat(),
                                     **({"school": school} if school else {})})


@blueprint.get("/download")
@needs("trust")
def download():
    from dojoguard.trust import report as trust_report

    fmt = request.args.get("format", "html")
    if fmt not in MEDIA:
        fmt = "html"
    made, first, last, _label, school = _gather()
    text = trust_report.render_html(made) if fmt == "html" else made.to_json()
    stores.record("report.downloaded", {"from": first.isoformat(), "to": last.isoformat(), "format": fmt,
                                        "trust": school or TRUST_WIDE})
    response = Response(text, mimetype=MEDIA[fmt])
    response.headers["Content-Disposition"] = (f'attachment; filename="dojoguard-trust-{school or "all"}-'
                                               f'{first}-to-{last}.{fmt}"')
    return response
