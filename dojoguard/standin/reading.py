"""What a server reads from a write's body, with Python's standard parsers rather than dojoguard's own.

The tests compare this with what dojoguard judged: a body the two read
differently (a decoy ``boundary``, a second text field, a repeated part) is
a way past the checks. Multipart is read with the ``email`` package, as
CGI-era and many WSGI servers read it; JSON with ``json`` (the last copy of a
repeated key wins, as in JavaScript); forms with ``urllib.parse``.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
from typing import Any
from urllib.parse import parse_qsl


def fields(content_type: str, body: bytes) -> dict[str, list[str]]:
    """Every named field of a form or multipart body, or every top-level string of a JSON object: name -> values."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    found: dict[str, list[str]] = {}
    if ctype.startswith("multipart/"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            charset = part.get_content_charset() or "utf-8"
            found.setdefault(str(name), []).append(payload.decode(charset, "replace"))
    elif ctype == "application/x-www-form-urlencoded":
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            found.setdefault(key, []).append(value)
    elif ctype == "application/json" or ctype.endswith("+json"):
        doc = json.loads(body)
        for key, value in (doc.items() if isinstance(doc, dict) else ()):
            found.setdefault(key, []).extend(strings(value))
    return found


def strings(node: Any) -> list[str]:
    """Every string in a JSON value, depth first."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return []
