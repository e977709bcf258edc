"""What a write carries, whatever its endpoint: JSON, multipart parts, raw bytes; its images and human text.

This is the content-based fallback: images are found wherever they sit (the
raw body, a multipart part, a base64 string inside JSON) and each gets a
``Slot`` saying where it came from, so a redacted copy can be put back in the
same place with everything around it unchanged.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any

from dojoguard.proxy import multipart

# Keys whose string values are human text, checked by the text rules.
TEXT_KEYS = frozenset({"body", "text", "message", "caption", "note", "comment", "description", "title",
                       "subject", "content"})
# ClassDojo's documents are a few levels deep; anything far deeper is read as unreadable rather
# than walked (a deep enough document would exhaust Python's stack, in the parser or in the walk).
MAX_JSON_DEPTH = 64
# Base64 shorter than this cannot hold a photo worth checking (and would waste time).
_MIN_BASE64 = 256
_DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.IGNORECASE)
_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"RIFF", "image/webp"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


class BodyError(ValueError):
    """A body that cannot be read as the type it claims: the write fails closed."""


@dataclass(frozen=True)
class Slot:
    """Where an image sits: ("raw",), ("part", index) or ("json", key, key, ...)."""

    where: tuple
    data: bytes
    content_type: str | None
    data_uri_prefix: str = ""


@dataclass
class Body:
    format: str  # json | multipart | image | form | text | empty | binary
    content: bytes
    json: Any = None
    form: multipart.Multipart | None = None
    images: list[Slot] = field(default_factory=list)
    # Human text found anywhere in the body, for writes no catalogue entry explains.
    texts: list[str] = field(default_factory=list)


def sniff_image(data: bytes) -> str | None:
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            if kind == "image/webp" and data[8:12] != b"WEBP":
                continue
            return kind
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1", b"ftyphevc", b"ftypavif"):
        return "image/heic"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    return None


def read(content: bytes, content_type: str | None) -> Body:
    """Parse a write body; raises ``BodyError`` when it is not what its Content-Type says."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if not content:
        return Body("empty", content)
    if ctype == "application/json" or ctype.endswith("+json"):
        doc = _load_json(content, "the JSON body")
        body = Body("json", content, json=doc)
        _walk_json(doc, (), body)
        return body
    if ctype.startswith("multipart/"):
        try:
            form = multipart.parse(content, multipart.boundary_of(content_type or ""))
        except multipart.MultipartError as exc:
            raise BodyError(f"the multipart body cannot be read: {exc}") from None
        body = Body("multipart", content, form=form)
        for i, part in enumerate(form.parts):
            kind = sniff_image(part.body)
            if kind or (part.content_type or "").startswith(("image/", "video/")):
                body.images.append(Slot(("part", i), part.body, kind or part.content_type))
            elif part.name in TEXT_KEYS:
                body.texts.append(part.body.decode("utf-8", "replace"))
            elif (part.content_type or "").endswith("json"):
                _walk_json(_load_json(part.body, f"multipart part {i} (JSON)"), ("part", i), body)
        return body
    kind = sniff_image(content)
    if kind or ctype.startswith(("image/", "video/")):
        return Body("image", content, images=[Slot(("raw",), content, kind or ctype)])
    if ctype == "application/x-www-form-urlencoded":
        from urllib.parse import parse_qsl
        body = Body("form", content)
        body.texts = [v for k, v in parse_qsl(content.decode("utf-8", "replace")) if k in TEXT_KEYS]
        return body
    if ctype.startswith("text/"):
        return Body("text", content, texts=[content.decode("utf-8", "replace")])
    return Body("binary", content)


def _load_json(content: bytes, what: str) -> Any:
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BodyError(f"{what} cannot be read as JSON ({type(exc).__name__})") from None


def _walk_json(node: Any, where: tuple, body: Body) -> None:
    if len(where) > MAX_JSON_DEPTH:
        raise BodyError(f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str):
                image = _base64_image(value)
                if image:
                    body.images.append(Slot(where + (key,), image[0], image[1], image[2]))
                elif key in TEXT_KEYS and value.strip():
                    body.texts.append(value)
            else:
                _walk_json(value, where + (key,), body)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, str):
                image = _base64_image(value)
                if image:
                    body.images.append(Slot(where + (i,), image[0], image[1], image[2]))
            else:
                _walk_json(value, where + (i,), body)


def _base64_image(value: str) -> tuple[bytes, str, str] | None:
    if len(value) < _MIN_BASE64:
        return None
    prefix = ""
    m = _DATA_URI.match(value)
    if m:
        prefix, value = value[:m.end()], value[m.end():]
    try:
        data = base64.b64decode(value[:len(value) - len(value) % 4] if not prefix else value, validate=True)
    except (binascii.Error, ValueError):
        return None
    kind = sniff_image(data)
    if kind is None:
        return None
    return data, kind, prefix


def rebuild(body: Body, replacements: dict[tuple, bytes]) -> bytes:
    """The body with some images replaced (a blurred photo), everything else unchanged."""
    if not replacements:
        return body.content
    if body.format == "image":
        return replacements[("raw",)]
    if body.format == "multipart":
        form = body.form
        json_parts: dict[int, Any] = {}
        for where, data in replacements.items():
            if where[0] == "part" and len(where) == 2:
                form = form.with_part_body(where[1], data)
            else:
                index = where[1]
                doc = json_parts.setdefault(index, json.loads(form.parts[index].body))
                _set_json(doc, where[2:], _encode(body, where, data))
        for index, doc in json_parts.items():
            form = form.with_part_body(index, json.dumps(doc, ensure_ascii=False).encode())
        return multipart.serialise(form)
    if body.format == "json":
        doc = json.loads(body.content)
        for where, data in replacements.items():
            _set_json(doc, where, _encode(body, where, data))
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    raise BodyError(f"cannot replace images in a {body.format} body")


def _encode(body: Body, where: tuple, data: bytes) -> str:
    prefix = next((s.data_uri_prefix for s in body.images if s.where == where), "")
    return prefix + base64.b64encode(data).decode()


def _set_json(doc: Any, where: tuple, value: Any) -> None:
    for key in where[:-1]:
        doc = doc[key]
    doc[where[-1]] = value


def pick(doc: Any, dotted: str) -> Any:
    """The value at a dotted path ("contents.body", "attachments.0"), or None."""
    node = doc
    for key in dotted.split("."):
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
        if node is None:
            return None
    return node


def skeleton(node: Any, depth: int = 0) -> Any:
    """The shape of a JSON document with every value replaced by its type: safe to keep and show."""
    if depth > 6:
        return "..."
    if isinstance(node, dict):
        return {k: skeleton(v, depth + 1) for k, v in sorted(node.items())[:50]}
    if isinstance(node, list):
        return [skeleton(node[0], depth + 1)] if node else []
    return {str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}.get(type(node), "?")
