"""Pull the picture out of a held request so a leader can look at it before deciding.

Exported only on a leader's command, to a file they name: never into logs.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import json

from dojoguard import media as media_formats
from dojoguard.holds.store import StoredRequest

# For bytes no signature matches but labelled a picture or video: the label's extension, if it is a known one.
_DECLARED_EXTENSIONS = {fmt.mime: fmt.extension for fmt in media_formats.FORMATS}


def media(request: StoredRequest) -> list[tuple[str, bytes]]:
    """Every image or video carried by the request, as (suggested extension, bytes)."""
    content_type = (request.header("content-type") or "").lower()
    body = request.content
    if content_type.startswith("multipart/"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {request.header('content-type')}\r\n\r\n".encode() + body
        )
        found = []
        for part in message.iter_parts():
            payload = part.get_payload(decode=True) or b""
            ext = _extension(payload, part.get_content_type())
            if ext:
                found.append((ext, payload))
        return found
    if content_type.startswith("application/json"):
        try:
            return [item for item in _json_media(json.loads(body)) if item]
        except (ValueError, UnicodeDecodeError):
            return []
    ext = _extension(body, content_type)
    return [(ext, body)] if ext else []


def _extension(data: bytes, content_type: str) -> str | None:
    """The extension to save ``data`` under, or None when it is not a picture or video (``dojoguard.media``)."""
    found = media_formats.sniff(data)
    if found is not None:
        return found.extension
    if media_formats.declared_kind(content_type) is None:
        return None
    return _DECLARED_EXTENSIONS.get(content_type.split(";")[0].strip().lower(), ".bin")


def _json_media(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _json_media(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_media(item)
    elif isinstance(value, str) and len(value) > 200:
        text = value.split(",", 1)[1] if value.startswith("data:") else value
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return
        ext = _extension(data, "")
        if ext:
            yield (ext, data)
