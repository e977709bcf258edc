"""Teachers' working ClassDojo logins, noted for the items they have waiting.

A held or queued item is sent later, sometimes days later, when the login
stored with it may have ended. So while a teacher has something waiting, the
proxy notes the Cookie header of each request ClassDojo has just accepted as
theirs, and the release uses the most recent one. An item that ClassDojo
refused for want of a login (``waiting-for-login``) is made due again as soon
as a new login of that teacher is seen working.

Only answers that prove the login works count: a judged write ClassDojo
accepted, or ClassDojo's own "who is logged in" answer. A photo download
proves nothing (media hosts serve anyone).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import structlog

from dojoguard.cookies import session_id

log = structlog.get_logger("dojoguard.proxy")


def teacher_waiting(services: Any, cookie: str | None) -> tuple[str, str] | None:
    """(teacher id, session id) when this cookie is a known teacher's with items waiting; memory only."""
    holds = services.holds
    if holds is None or not holds.teachers_waiting or not cookie:
        return None
    sid = session_id(cookie)
    teacher_id, _ = services.sessions.teacher(sid)
    if teacher_id is None or teacher_id not in holds.teachers_waiting:
        return None
    return teacher_id, sid


async def note(services: Any, cookie: str | None, at: datetime) -> None:
    """Note a login ClassDojo just accepted; wake the teacher's items waiting for one if it is new."""
    found = teacher_waiting(services, cookie)
    if found is None:
        return
    teacher_id, sid = found
    try:
        fresh = await asyncio.to_thread(services.holds.note_session, teacher_id, cookie, sid, at)
        if fresh:
            woken = await asyncio.to_thread(services.holds.wake, teacher_id, at)
            if woken:
                log.info("hold.login_seen", teacher=teacher_id, woken=[i.id for i in woken])
    except Exception as exc:  # noqa: BLE001 - items keep waiting; the next accepted request tries again
        log.error("hold.login_note_failed", teacher=teacher_id, error=type(exc).__name__)
