"""Held items: see the held photo or video (faces not permitted outlined), then approve or reject it by name.

Approval and rejection are the very steps of `held approve` and `held
reject` (``dojoguard.holds.review``): recorded in the audit log first, under
the account's name; the running proxy sends an approved item within seconds
and tells the teacher the outcome on their next ClassDojo write.
"""

from __future__ import annotations

import asyncio
import io
import threading

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from dojoguard import references
from dojoguard.console import stores
from dojoguard.console.app import console, needs

blueprint = Blueprint("held", __name__, url_prefix="/held")
_CHECKING = threading.Lock()
_DRAWING = threading.Lock()
# The largest side of the preview a leader sees (the original stays as it was).
PREVIEW = 1600
MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
               ".webp": "image/webp", ".heic": "image/heic", ".mp4": "video/mp4", ".mov": "video/quicktime",
               ".webm": "video/webm", ".m4v": "video/mp4"}


def _find(reference: str):
    from dojoguard.holds.store import HoldError

    try:
        return stores.holds().find(reference)
    except (HoldError, references.ReferenceProblem) as exc:
        flash(str(exc).capitalize() + ".", "error")
        return None


@blueprint.get("/")
@needs("held")
def index():
    from dojoguard.holds.store import NEEDS_A_PERSON, HoldState

    items = stores.holds().list()
    waiting = [i for i in items if i.state == HoldState.PENDING and i.kind == "hold"]
    trouble = [i for i in items if i.state in NEEDS_A_PERSON + (HoldState.TAMPERED,)]
    queued = [i for i in items if i not in waiting and i not in trouble]
    return render_template("held.html.j2", title="Held items", waiting=waiting, trouble=trouble, queued=queued,
                           table=stores.name_table())


def _attachments(item) -> list[tuple[str, str, bytes, bool]]:
    """(extension, media type, bytes, checked) of what a held item carries or names, as the proxy kept it.

    A post that names an earlier upload carries only its id: the proxy fetched
    the upload when it held the post (a preview). A preview is shown only as
    the file the decision's audit record names by SHA-256 ("checked"); one
    that differs is flagged, never passed off as what was checked.
    """
    from dojoguard import media as media_formats
    from dojoguard.holds.export import media

    store = stores.holds()
    found = [(ext, MEDIA_TYPES.get(ext, "application/octet-stream"), data, True)
             for ext, data in media(store.request(item.id))]
    previews = store.previews(item.id)
    if previews:
        record = stores.audit().get(item.decision_id)
        recorded = set(((record.fields.get("hashes") or {}).get("attachment_sha256") or []) if record else [])
        for content_type, data, digest in previews:
            sniffed = media_formats.sniff(data)
            ext = sniffed.extension if sniffed else ".bin"
            kind = MEDIA_TYPES.get(ext, (content_type or "application/octet-stream").split(";")[0])
            found.append((ext, kind, data, digest in recorded))
    return found


@blueprint.get("/<reference>")
@needs("held")
def item(reference: str):
    found = _find(reference)
    if found is None:
        return redirect(url_for("held.index"))
    shown = [(n, ext, kind, checked) for n, (ext, kind, _, checked) in enumerate(_attachments(found), start=1)]
    return render_template("held_item.html.j2", title="Held item", item=found, shown=shown,
                           table=stores.name_table())


@blueprint.get("/<reference>/media/<int:number>")
@needs("held")
def attachment(reference: str, number: int):
    from dojoguard.holds.store import HoldError

    try:
        found = stores.holds().find(reference)
    except (HoldError, references.ReferenceProblem):
        abort(404)
    attachments = _attachments(found)
    if not 1 <= number <= len(attachments):
        abort(404)
    _, kind, data, _ = attachments[number - 1]
    if kind.startswith("image/"):
        data, kind = _outlined_once(data, found)
    response = Response(data, mimetype=kind)
    response.headers["Content-Disposition"] = "inline"
    response.headers["Cache-Control"] = "no-store, private"
    return response


# Outlined previews already drawn, by item and the picture's SHA-256: a face check takes seconds of a CPU
# the proxy shares, and a leader's browser asks again on every reload.
_DRAWN_KEPT = 16


def _outlined_once(data: bytes, item) -> tuple[bytes, str]:
    import hashlib

    drawn = console().opened("outlined", dict)
    key = (item.id, hashlib.sha256(data).hexdigest())
    with _DRAWING:
        if key in drawn:
            return drawn[key]
    result = _outlined(data, item)
    with _DRAWING:
        drawn[key] = result
        while len(drawn) > _DRAWN_KEPT:
            drawn.pop(next(iter(drawn)))
    return result


def _outlined(data: bytes, item) -> tuple[bytes, str]:
    """A JPEG preview with each face the check did not permit outlined in red (all faces in amber)."""
    from PIL import Image, ImageDraw, ImageOps

    check = _check(data, item)
    try:
        with Image.open(io.BytesIO(data)) as opened:
            picture = ImageOps.exif_transpose(opened).convert("RGB")
    except Exception:  # noqa: BLE001 - a picture Pillow cannot open is served as it came
        return data, "application/octet-stream"
    draw = ImageDraw.Draw(picture)
    width = max(3, picture.width // 300)
    if check is not None:
        from dojoguard.consent_registry.imagecheck import Layer

        # Amber only for a face the check found permitted; when the check could not finish, none is.
        finished = check.layer in (Layer.AUDIENCE_PERMITTED, Layer.MATCHED)
        refused = set(check.findings.boxes_not_permitted) if finished else set(check.boxes)
        for top, right, bottom, left in check.boxes:
            colour = (220, 20, 60) if (top, right, bottom, left) in refused else (240, 170, 0)
            draw.rectangle((left, top, right, bottom), outline=colour, width=width)
    picture.thumbnail((PREVIEW, PREVIEW))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=85)
    return out.getvalue(), "image/jpeg"


def _check(data: bytes, item):
    """The image check as the proxy ran it (same settings, registry and audience); None if it cannot run."""
    from dojoguard.consent_registry.imagecheck import ImageChecker

    c = console()
    cfg = c.config
    registry = cfg.path("consent", "database")
    checker = c.opened("image-checker", lambda: ImageChecker(cfg["images"], registry if registry.exists() else None,
                                                             cfg["consent"]["channel_purposes"], workers=1))
    with _CHECKING:  # one face check at a time: the console shares two cores with the proxy
        try:
            return asyncio.run(checker.check(data, channel=str(item.channel), class_id=item.class_id,
                                             content_type=item.content_type))
        except Exception:  # noqa: BLE001 - the preview is then shown without outlines, and says so
            return None


def _step(reference: str, step: str):
    from dojoguard.holds import review
    from dojoguard.holds.store import HoldError

    found = _find(reference)
    if found is None:
        return redirect(url_for("held.index"))
    reason = request.form.get("reason", "").strip()
    if step == "reject" and not reason:
        flash("Give a reason: the teacher is told it.", "error")
        return redirect(url_for("held.item", reference=found.id))
    c = console()
    try:
        if step == "approve":
            review.approve(c.config, c.clock, found.id, by=current_user.name)
        else:
            review.reject(c.config, c.clock, found.id, by=current_user.name, reason=reason[:300])
    except HoldError as exc:
        flash(str(exc).capitalize() + ".", "error")
        return redirect(url_for("held.item", reference=found.id))
    teacher = stores.names().name("teacher", found.teacher_id) or "the teacher"
    if step == "approve":
        flash(f"Approved: the proxy sends it to ClassDojo within seconds, and {teacher} is told once it is posted.",
              "done")
    else:
        flash(f"Rejected: it will never reach ClassDojo, and {teacher} is told why on their next ClassDojo post.",
              "done")
    return redirect(url_for("held.index"))


@blueprint.post("/<reference>/approve")
@needs("held")
def approve(reference: str):
    return _step(reference, "approve")


@blueprint.post("/<reference>/reject")
@needs("held")
def reject(reference: str):
    return _step(reference, "reject")
