"""System health (IT and headteacher): the audit log's integrity, checkpoints, and the proxy's health events."""

from __future__ import annotations

import json

from flask import Blueprint, render_template

from dojoguard.console import stores
from dojoguard.console.app import needs
from dojoguard.console.pages.overview import verifier

blueprint = Blueprint("health", __name__, url_prefix="/health")


@blueprint.get("/")
@needs("health")
def index():
    from dojoguard.audit.events import HEALTH_EVENTS

    types = tuple(sorted(HEALTH_EVENTS | {"proxy.started", "proxy.stopped", "checkpoint.written",
                                          "console.locked"}))
    with stores.reading() as conn:
        rows = conn.execute(f"SELECT at, type, body FROM records WHERE +seq > 0 AND type IN "
                            f"({', '.join('?' * len(types))}) ORDER BY seq DESC LIMIT 50", types).fetchall()
        total = conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    events = [(at, type_, json.loads(body)) for at, type_, body in rows]
    return render_template("health.html.j2", title="System health", events=events, integrity=verifier().latest,
                           total=total)
