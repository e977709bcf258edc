"""The same post, whatever bytes carried it: the content key that joins repeats to one held item.

The hold store already joins a retry whose request is byte-for-byte the one
waiting (``store.dedupe_key``). A teacher who uploads the same video again
and posts it again sends different bytes (a new multipart boundary, a new
upload id in the post) for the same publication. ``publication_key`` names
what would be published instead: who, what kind, where (the call it goes to,
the channel, the class, the pupils), the words and points, and the SHA-256 of
every attachment. Two writes with the same key would put the same thing in
front of the same families, so a leader needs to look at it only once and it
is sent only once.

Nothing readable is kept: the key is a SHA-256 over those parts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, Protocol

from dojoguard.rules.action import Action, Kind

# "No body was given": the key is then not made (only byte-for-byte retries join).
_UNREAD = object()

# Kinds whose Action does not say everything the write publishes: an
# unrecognised write is read by guesswork, and an upload publishes nothing.
_NOT_KEYED = frozenset({Kind.UNCLASSIFIED_WRITE, Kind.ATTACHMENT_UPLOAD})


class Destination(Protocol):
    """Where a write goes (a ``StoredRequest`` has these)."""

    method: str
    host: str
    path: str
    client_address: str


def publication_key(kind: str, action: Action, request: Destination, references: Iterable[str] = (),
                    body: Any = _UNREAD) -> str | None:
    """A key shared by every write that publishes the same thing to the same place, or None.

    None when the key could join writes that differ: an attachment without a
    digest (never seen whole), an action the proxy could not read fully, a
    kind whose Action does not capture what it publishes, or a write that
    carries nothing to compare (no text, attachments or points). The hold
    store then joins only byte-for-byte retries.

    The call's path is part of the key because it can name the recipient (a
    message thread), and the pupils and points because they are published
    with the words: the same note to two different parents is two messages.

    ``references`` are the strings in the body that name its attachments
    (upload ids, file URLs). They differ with every upload of the same file,
    which the attachments' digests stand for instead.

    ``body`` is the write's parsed body (a JSON document, or a form's fields):
    all of it is part of the key, not only its words, with the references and
    inline pictures replaced by placeholders, so two posts that differ in any
    other value (private or public, another recipient, a number) are never
    joined. A body that was not parsed gives no key. The query string is part
    of the key too (it can name a recipient).
    """
    if action.kind in _NOT_KEYED or action.problems or body is _UNREAD:
        return None
    if any(not a.sha256 for a in action.attachments):
        return None
    if action.text is None and not action.attachments and action.points is None:
        return None
    points = None if action.points is None else [action.points.value, action.points.skill_id]
    parts = {
        "hold": str(kind),
        # As in store.dedupe_key: a write from an unknown session is keyed to its device.
        "teacher": action.teacher_id or request.client_address,
        "kind": str(action.kind),
        "channel": str(action.channel),
        "class": action.class_id,
        "students": sorted(action.students),
        "to": [request.method.upper(), request.host.lower(), request.path],
        "body": _canonical(body, frozenset(references)),
        "points": points,
        "attachments": sorted(a.sha256 for a in action.attachments),
    }
    encoded = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _canonical(value: Any, references: frozenset[str]) -> Any:
    """The body as plain, ordered data, with attachment references and inline pictures as placeholders."""
    if isinstance(value, dict):
        return {str(k): _canonical(v, references) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v, references) for v in value]
    if hasattr(value, "values") and isinstance(value.values, tuple):  # a form field sent twice
        return {"many": [_canonical(v, references) for v in value.values]}
    if isinstance(value, str):
        if value in references:
            return "<attachment>"
        if value.startswith("data:"):
            return "<inline picture>"  # the attachments' digests stand for it
        return value
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": hashlib.sha256(value).hexdigest()}
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return repr(value)
