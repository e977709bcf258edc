"""Consent (DPO and headteacher): each class's pupils with every purpose's state and where it came from;
an MIS import previewed change by change before it is applied.

The import is the very one `dojoguard consent import` runs
(``consent_registry.importer``): all or nothing, a consent recorded by hand
after the export is kept and shown as a conflict, and the audit log gets
registry ids and counts only (``consent_registry.recording``).
"""

from __future__ import annotations

import json
import os
import secrets
import time
import zoneinfo
from collections import defaultdict
from datetime import date
from pathlib import Path

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from dojoguard.console import stores
from dojoguard.console.app import console, needs
from dojoguard.storage.database import create_private_folder
from dojoguard.yamlfile import FileProblems

blueprint = Blueprint("consent", __name__, url_prefix="/consent")
UPLOADS = "console-uploads"
# An uploaded file waits this long for its preview to be confirmed, then is deleted unread.
KEEP_S = 3600


def _registry():
    from dojoguard.consent_registry.opening import open_registry

    return open_registry(console().config, clock=console().clock)


@blueprint.get("/")
@needs("consent")
def index():
    from dojoguard.consent_registry.registry import PersonKind, RegistryError

    try:
        registry = _registry()
    except RegistryError as exc:
        flash(f"The consent registry cannot be opened: {exc}", "error")
        return render_template("consent.html.j2", title="Consent", groups={}, purposes=[], classes=[])
    try:
        purposes = list(registry.purposes)
        groups: dict[str, list] = defaultdict(list)
        for person in registry.people(PersonKind.PUPIL):
            groups[person.reg_group or "no class"].append((person, registry.consents(person.id),
                                                           registry.objection(person.id)))
        classes = registry.classes()
    finally:
        registry.close()
    return render_template("consent.html.j2", title="Consent", groups=dict(sorted(groups.items())),
                           purposes=purposes, classes=classes)


def _folder() -> Path:
    folder = console().config.data_dir / UPLOADS
    create_private_folder(folder)
    for old in folder.glob("*.csv"):
        if time.time() - old.stat().st_mtime > KEEP_S:
            _discard(old)
    return folder


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_suffix(".json").unlink(missing_ok=True)


def _run(path: Path, fmt: str, exported_on: str, *, dry_run: bool):
    from dojoguard.consent_registry import importer

    cfg = console().config
    registry = _registry()
    options = {"exported_on": date.fromisoformat(exported_on) if exported_on else None,
               "timezone": zoneinfo.ZoneInfo(cfg["timezone"])}
    try:
        if dry_run:
            return importer.import_file(registry, path, fmt, cfg["consent"]["import"], dry_run=True, **options)
        from dojoguard.consent_registry.recording import record_import

        report = importer.import_file(registry, path, fmt, cfg["consent"]["import"], **options)
        record_import(registry, lambda event, fields: stores.record(event, fields), report, "console upload", 0)
        return report
    finally:
        registry.close()


@blueprint.post("/import")
@needs("consent")
def upload():
    from dojoguard.consent_registry import importer

    upload = request.files.get("file")
    fmt = request.form.get("format", "")
    exported_on = request.form.get("exported_on", "")
    if upload is None or not upload.filename:
        flash("Choose the CSV file exported from the MIS.", "error")
        return redirect(url_for("consent.index"))
    if fmt not in [f.value for f in importer.Format]:
        abort(400)
    token = secrets.token_hex(16)
    path = _folder() / f"{token}.csv"
    _write_private(path, upload.read())
    # What the preview was made with is kept here, not taken from the confirming form: what is applied is
    # exactly what was previewed.
    _write_private(path.with_suffix(".json"), json.dumps({"format": fmt, "exported_on": exported_on,
                                                          "account": current_user.name}).encode())
    try:
        report = _run(path, fmt, exported_on, dry_run=True)
    except (FileProblems, ValueError) as exc:
        _discard(path)
        problems = getattr(exc, "problems", None) or [exc]
        return render_template("consent_preview.html.j2", title="Consent import", problems=problems,
                               report=None, token=None), 400
    return render_template("consent_preview.html.j2", title="Consent import", problems=None, report=report,
                           token=token, fmt=fmt, exported_on=exported_on, filename=upload.filename)


@blueprint.post("/import/<token>")
@needs("consent")
def apply(token: str):
    if not token.isalnum() or len(token) != 32:
        abort(404)
    path = _folder() / f"{token}.csv"
    try:
        kept = json.loads(path.with_suffix(".json").read_text("utf-8"))
    except (OSError, ValueError):
        kept = None
    if kept is None or not path.exists() or kept.get("account") != current_user.name:
        flash("That preview has expired: upload the file again.", "error")
        return redirect(url_for("consent.index"))
    try:
        report = _run(path, kept["format"], kept["exported_on"], dry_run=False)
    except (FileProblems, ValueError) as exc:
        flash(f"Nothing was imported: {exc}", "error")
        return redirect(url_for("consent.index"))
    finally:
        _discard(path)
    flash(f"Imported: {len(report.changes)} change(s), {len(report.conflicts)} conflict(s) kept as they were.",
          "done")
    return redirect(url_for("consent.index"))
