"""What may never be written to the audit trail or the application logs.

The audit log and the logs are read by IT staff, SIEMs and, for the audit
trail, anyone a checkpoint is sent to. They describe what happened, never what
was said or shown: no message text, no image bytes, no face templates, no
names. These keys are refused (audit) or stripped (logs) wherever they appear,
at any depth, so a careless caller cannot leak content by accident.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

# Field names that carry content or a person's name. Matched exactly, after
# lower-casing, and also as the last word of a snake_case name
# (``teacher_name``, ``message_body``).
CONTENT_KEYS = frozenset({
    "text", "body", "message", "content", "caption", "subject", "comment",
    "image", "photo", "picture", "video", "bytes", "pixels", "thumbnail",
    "template", "templates", "encoding", "encodings", "embedding", "face",
    "name", "names", "first_name", "last_name", "full_name", "display_name",
    "email", "password", "token", "cookie", "authorization",
})

# Longest string value accepted in an audit field: identifiers, hashes and
# reasons fit easily; a pasted message does not.
MAX_VALUE_CHARS = 1000
# Values recorded as they are, checked by exact type on every field of every record.
_SCALARS = frozenset({int, bool, float, type(None)})


class ContentRefused(ValueError):
    """A field that would put content or a name into the audit trail."""


# The same few dozen field names come by on every record and log line.
@lru_cache(maxsize=4096)
def is_content_key(key: str) -> bool:
    lowered = str(key).lower()
    if lowered in CONTENT_KEYS:
        return True
    last = lowered.rsplit("_", 1)[-1]
    return last in {"text", "body", "message", "name", "names", "image", "template", "templates",
                    "encoding", "encodings", "bytes", "password", "token", "email"}


def refuse_content(fields: Any, path: str = "") -> None:
    """Raise ``ContentRefused`` naming the first field that is content-bearing or too long."""
    problem = _problem(fields)
    if problem is not None:
        where, why = problem
        location = path + "".join(reversed(where))
        raise ContentRefused(f"{location.lstrip('.')}: {why}")


def _problem(value: Any) -> tuple[list[str], str] | None:
    """(location parts, innermost first; why) for the first refused field, or None.

    Runs on every audit record, so the location is only built when a field is refused.
    """
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if not isinstance(key, str):
                return [f".{key}"], "field names must be text"
            if is_content_key(key):
                return [f".{key}"], ("content-bearing field refused (the audit trail holds "
                                     "no message text, images, templates or names)")
            t = type(item)
            if t in _SCALARS or (t is str and len(item) <= MAX_VALUE_CHARS):
                continue  # the common case, settled here without a call
            found = _problem(item)
            if found is not None:
                found[0].append(f".{key}")
                return found
        return None
    if kind is list or kind is tuple:
        for i, item in enumerate(value):
            t = type(item)
            if t in _SCALARS or (t is str and len(item) <= MAX_VALUE_CHARS):
                continue
            found = _problem(item)
            if found is not None:
                found[0].append(f"[{i}]")
                return found
        return None
    if kind is str:
        if len(value) > MAX_VALUE_CHARS:
            return [], (f"value of {len(value)} characters refused "
                        f"(at most {MAX_VALUE_CHARS}; content belongs in a hash, not the log)")
        return None
    if value is None or kind is bool or kind is int or kind is float:
        return None
    if isinstance(value, dict):
        return _problem(dict(value))
    if isinstance(value, (list, tuple)):
        return _problem(list(value))
    if isinstance(value, str):
        return _problem(str(value))
    if isinstance(value, (bool, int, float)):
        return None
    return [], f"{type(value).__name__} values cannot be recorded"


def strip_content(fields: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``fields`` with every content-bearing key replaced by a marker (for logs)."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key != "event" and is_content_key(key):
            out[key] = "[withheld]"
        elif isinstance(value, dict):
            out[key] = strip_content(value)
        elif isinstance(value, (list, tuple)):
            out[key] = [strip_content(v) if isinstance(v, dict) else v for v in value]
        else:
            out[key] = value
    return out
