"""What a teacher is told about the outcome of something held or queued.

The teacher's app showed "Held for review" or "Queued until ..." when they
sent it; what happened next (approved and posted, rejected, not sent) is
told on their next ClassDojo write through the proxy. The words name the kind
of item and when it was sent, never its text.
"""

from __future__ import annotations

from datetime import tzinfo

from dojoguard.clock import when
from dojoguard.holds.store import HeldItem, HoldKind

_WHAT = {
    "message.send": "message",
    "story.post": "story post",
    "comment.post": "comment",
    "portfolio.post": "portfolio post",
    "points.award": "points award",
}


def what(item: HeldItem, tz: tzinfo | None) -> str:
    """'Your story post sent at 2.15pm on Tuesday 3 March'."""
    return f"Your {_WHAT.get(item.action_kind, 'ClassDojo post')} sent at {when(item.created_at, tz)}"


def for_outcome(item: HeldItem, outcome: str, *, tz: tzinfo | None, max_age_days: int = 0,
                reason: str | None = None) -> tuple[str, bool] | None:
    """(text, interrupts) for ``outcome``, or None when the teacher need not be told.

    ``interrupts`` is true for outcomes where something the teacher meant did
    not happen: they must learn it, even from a write that is otherwise fine.
    """
    subject = what(item, tz)
    held = item.kind == HoldKind.HOLD
    if outcome == "released":
        return (f"{subject} was approved by a senior leader and has now been posted."
                if held else f"{subject} has now been sent."), False
    if outcome == "rejected":
        because = f" The reason given: {reason.strip()}" if reason and reason.strip() else ""
        return (f"{subject} was not approved by a senior leader, so it was not posted.{because}"
                if held else f"{subject} was withdrawn by a senior leader and will not be sent.{because}"), True
    if outcome == "failed":
        return (f"{subject} could not be delivered to ClassDojo, so it has not appeared. The school's IT staff "
                "can see why; ask them before sending it again."), True
    if outcome == "expired":
        return (f"{subject} was not sent: it waited more than {max_age_days} days "
                f"({'for a senior leader' if held else 'to be sent'}). Send it again if it is still needed."), True
    if outcome == "uncertain":
        return (f"{subject} may or may not have reached ClassDojo (the connection was cut while it was being "
                "sent). Please check ClassDojo and tell the school's IT staff whether it is there, rather than "
                "sending it again."), True
    return None
