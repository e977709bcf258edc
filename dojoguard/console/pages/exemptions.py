"""Exemptions (headteacher only): grant one by picking a teacher or class by name, list them, revoke one.

The same checks and the same audited, atomic write as `dojoguard exempt
grant` (``dojoguard.rules.grants``): the running proxy notices the changed
file and applies it within seconds.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from dojoguard.console import stores
from dojoguard.console.app import console, needs
from dojoguard.yamlfile import FileProblems

blueprint = Blueprint("exemptions", __name__, url_prefix="/exemptions")


def _load():
    from dojoguard.rules import exemption_store

    # The school's exemptions where the settings keep them: the file, or the trust's server.
    return exemption_store.current(console().config)


@blueprint.get("/")
@needs("exemptions")
def index():
    c = console()
    now = c.clock.now()
    try:
        records = sorted(_load().records, key=lambda e: e.starts, reverse=True)
    except FileProblems as exc:
        flash(f"The exemptions file has problems, so the proxy applies none of it: {exc}", "error")
        records = []
    local_now = now.astimezone(c.config.timezone)
    names = stores.names()
    return render_template("exemptions.html.j2", title="Exemptions", records=records, now=now,
                           rules=[r for r in stores.policy().rules if r.exemptable],
                           teachers=names.all("teacher"), classes=names.all("class"), table=names.table(),
                           default_from=local_now.strftime("%Y-%m-%dT%H:%M"),
                           default_until=local_now.replace(hour=20, minute=0).strftime("%Y-%m-%dT%H:%M"),
                           max_days=c.config["exemptions"]["max_days"])


def _local_time(text: str, what: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a date and time") from None
    return at if at.tzinfo else at.replace(tzinfo=console().config.timezone)


@blueprint.post("/")
@needs("exemptions")
def grant():
    from dojoguard.rules import exemption_store, grants
    from dojoguard.rules.exemption_store import ExemptionStoreUnavailable
    from dojoguard.rules.exemption_trail import granted_fields

    c = console()
    form = request.form
    scope = form.get("scope", "")
    teachers, classes = [], []
    try:
        names = stores.names()
        if scope == "teacher":
            teachers = [names.resolve("teacher", form.get("teacher", "")).id]
        elif scope == "class":
            classes = [names.resolve("class", form.get("class", "")).id]
        elif scope != "everyone":
            raise ValueError("choose whom it covers: a teacher, a class or everyone")
        starts = _local_time(form.get("from", ""), "From")
        ends = _local_time(form.get("until", ""), "Until")
        trail: list[tuple[str, dict]] = []

        def record(e) -> None:
            stores.audit().append_event("exemption.granted", granted_fields(e))
            trail.append(("exemption.granted", granted_fields(e)))

        exemption = exemption_store.change(c.config, lambda path: grants.grant(
            path, policy=stores.policy(), rules=form.getlist("rule"),
            teachers=teachers, classes=classes, everyone=scope == "everyone", starts=starts, ends=ends,
            granted_by=current_user.name, reason=form.get("reason", ""), now=c.clock.now(),
            max_days=c.config["exemptions"]["max_days"], before_commit=record), trail)
    except (ValueError, FileProblems, ExemptionStoreUnavailable) as exc:  # GrantError, NameProblem: ValueErrors
        flash(f"Not granted: {exc}.", "error")
        return redirect(url_for("exemptions.index"))
    flash(f"Granted {exemption.id}. The proxy applies it within seconds.", "done")
    return redirect(url_for("exemptions.index"))


@blueprint.post("/<exemption_id>/revoke")
@needs("exemptions")
def revoke(exemption_id: str):
    from dojoguard.rules import exemption_store, grants
    from dojoguard.rules.exemption_store import ExemptionStoreUnavailable

    c = console()
    reason = request.form.get("reason", "")
    trail: list[tuple[str, dict]] = []

    def record(e) -> None:
        fields = {"exemption": e.id, "revoked_by": e.revoked.by, "at": e.revoked.at.isoformat()}
        stores.audit().append_event("exemption.revoked", fields)
        trail.append(("exemption.revoked", fields))
    try:
        exemption_store.change(c.config, lambda path: grants.revoke(
            path, exemption_id, by=current_user.name, reason=reason, now=c.clock.now(), before_commit=record), trail)
    except (ValueError, FileProblems, ExemptionStoreUnavailable) as exc:
        flash(f"Not revoked: {exc}.", "error")
        return redirect(url_for("exemptions.index"))
    flash(f"Revoked {exemption_id}. The proxy stops applying it within seconds.", "done")
    return redirect(url_for("exemptions.index"))
