"""What a write carries, whatever its endpoint: JSON, multipart parts, raw bytes; its images and its text.

This is the content-based fallback: images are found wherever they sit (the
raw body, a multipart part, a base64 string inside JSON) by their bytes
(``dojoguard.media``; a body or part labelled ``image/`` or ``video/`` is
taken as one too, whatever its bytes), and each gets a
``Slot`` saying where it came from, so a redacted copy can be put back in the
same place with everything around it unchanged.

Every string a server could read is collected in ``texts`` for the content
rules, wherever it sits and whatever its key: a rule that only read the
keys it expected would miss ``{"body": "hello", "text": "..."}``. Only
strings that cannot be words are left out: ObjectIds, UUIDs and inline
pictures (which the image checks read instead).

The body is read as the server would read it, or refused: the Content-Type
by RFC 9110's grammar (see ``mediatype``), text in UTF-8 or ASCII only
(another charset raises ``BodyError`` rather than be misread), a JSON object
that repeats a key refused (parsers differ on which copy wins).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from dojoguard.media import declared_kind, sniff
from dojoguard.proxy import mediatype, multipart

# ClassDojo's documents are a few levels deep; anything far deeper is read as unreadable rather
# than walked (a deep enough document would exhaust Python's stack, in the parser or in the walk).
MAX_JSON_DEPTH = 64
# Base64 shorter than this cannot hold a photo worth checking (and would waste time).
_MIN_BASE64 = 256
_DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.IGNORECASE)
# Strings that cannot hold a word: record ids.
_ID = re.compile(r"[0-9a-fA-F]{24}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class BodyError(ValueError):
    """A body that cannot be read as the type it claims: the write fails closed."""


@dataclass(frozen=True)
class Slot:
    """Where an image sits: ("raw",), ("part", index) or ("json", key, key, ...)."""

    where: tuple
    data: bytes
    content_type: str | None
    data_uri_prefix: str = ""


@dataclass(frozen=True)
class Many:
    """One form field name sent more than once: every value, in order (a server may read any of them)."""

    values: tuple


@dataclass
class Body:
    format: str  # json | multipart | image | form | text | empty | binary
    content: bytes
    json: Any = None
    form: multipart.Multipart | None = None
    images: list[Slot] = field(default_factory=list)
    # Every string in the body a server could read as words, each once, in the order met.
    texts: list[str] = field(default_factory=list)
    # A form's fields (multipart or urlencoded) as a flat document: name -> str, or Many.
    fields: dict[str, Any] | None = None
    # The JSON parts of a multipart body, parsed, in order.
    documents: list[Any] = field(default_factory=list)

    def add_text(self, value: str) -> None:
        if value and value.strip() and not is_data(value) and value not in self._seen:
            self._seen.add(value)
            self.texts.append(value)

    @property
    def _seen(self) -> set[str]:
        seen = self.__dict__.get("_seen_texts")
        if seen is None:
            seen = self.__dict__["_seen_texts"] = set(self.texts)
        return seen


# Body-parser, Express's, refuses a form of more fields than this (its parameterLimit): so does the proxy.
MAX_FORM_FIELDS = 1000


def is_data(value: str) -> bool:
    """Whether a string is an identifier (an ObjectId or a UUID) rather than words.

    Long runs that look like base64 are read as words too: "Dear-parents-
    ...-sh1t-..." is a base64 run by its alphabet, and so is a message with
    a random tail. Pictures inside strings are taken out before this (they
    are checked as pictures); anything else is scanned, which the linear
    pattern matchers do at the cost of a copy.
    """
    return bool(_ID.fullmatch(value))


def read(content: bytes, content_type: str | None) -> Body:
    """Parse a write body; raises ``BodyError`` when it is not what its Content-Type says."""
    try:
        return _read(content, content_type)
    except mediatype.HeaderValueError as exc:
        raise BodyError(f"the body cannot be read: {exc}") from None


def _read(content: bytes, content_type: str | None) -> Body:
    media = None
    if content_type is not None and content_type.strip(" \t"):
        media = mediatype.parse_media_type(content_type)
    ctype = media.essence if media else ""
    if not content:
        return Body("empty", content)
    if ctype == "application/json" or ctype.endswith("+json"):
        doc = _load_json(content, "the JSON body", media.charset)
        body = Body("json", content, json=doc)
        _walk_json(doc, (), body)
        return body
    if ctype.startswith("multipart/"):
        return _read_multipart(content, media)
    found = sniff(content)
    if found or declared_kind(ctype):
        return Body("image", content, images=[Slot(("raw",), content, found.mime if found else ctype)])
    if ctype == "application/x-www-form-urlencoded":
        return _read_urlencoded(content, media.charset)
    if ctype.startswith("text/"):
        body = Body("text", content)
        _add_plain_text(body, mediatype.decode_text(content, media.charset, "the text body"))
        return body
    body = Body("binary", content)
    _read_unlabelled(content, body)
    return body


def _read_multipart(content: bytes, media: mediatype.MediaType) -> Body:
    form_data = media.subtype == "form-data"
    if not mediatype.is_utf8_charset(media.charset):
        # Some form parsers take it as the default charset of every field.
        raise BodyError(f"the multipart body names the charset {media.charset[:40]!r}, which is not read")
    try:
        form = multipart.parse(content, multipart.boundary_of(media), form=form_data)
    except multipart.MultipartError as exc:
        raise BodyError(f"the multipart body cannot be read: {exc}") from None
    body = Body("multipart", content, form=form, fields=FormFields() if form_data else None)
    for i, part in enumerate(form.parts):
        what = f"multipart part {i}"
        found = sniff(part.body)
        if found or declared_kind(part.content_type):
            body.images.append(Slot(("part", i), part.body, found.mime if found else part.content_type))
            continue
        is_json = (part.content_type or "").endswith("json")
        is_text = part.content_type is None or part.content_type.startswith("text/") or is_json
        if part.filename is None and body.fields is not None:
            # A form field: a server hands its bytes to the app as a string, whatever its Content-Type.
            value = mediatype.decode_text(part.body, part.charset, what)
            if part.name == "_charset_" and not mediatype.is_utf8_charset(value.strip().lower()):
                # RFC 7578 4.6: the form's default charset for every other field.
                raise BodyError("the form's _charset_ field names a charset other than UTF-8")
            _add_field(body.fields, part.name, value)
        if is_json:
            doc = _load_json(part.body, f"{what} (JSON)", part.charset)
            body.documents.append(doc)
            _walk_json(doc, ("part", i), body)
        elif is_text or part.filename is None:
            body.add_text(mediatype.decode_text(part.body, part.charset, what))
        else:
            # A file of another type: read for words when it is UTF-8 text (a .txt or .csv), else left to be a file.
            try:
                body.add_text(mediatype.decode_text(part.body, part.charset, what, strict=True))
            except mediatype.HeaderValueError:
                pass
    _finish_fields(body.fields)
    return body


def _read_urlencoded(content: bytes, charset: str | None) -> Body:
    text = mediatype.decode_text(content, charset, "the form body")
    body = Body("form", content, fields=FormFields())
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="replace")
    except ValueError as exc:
        raise BodyError(f"the form body cannot be read: {exc}") from None
    for key, value in pairs:
        if key == "_charset_" and not mediatype.is_utf8_charset(value.strip().lower()):
            raise BodyError("the form's _charset_ field names a charset other than UTF-8")
        # "points[]=-5" and "points[0]=-5" are the field "points" to a qs-style server.
        _add_field(body.fields, key.split("[", 1)[0], value)
        body.add_text(value)
    _finish_fields(body.fields)
    return body


class FormFields(dict):
    """A form's fields while they are read, counting every value (repeats too) against ``MAX_FORM_FIELDS``."""

    count = 0


def _add_field(fields: FormFields, name: str | None, value: str) -> None:
    """Add one field; a name met again collects its values in a list, made a ``Many`` by ``_finish_fields``.

    Building the tuple afresh at every repeat took time with the square of the
    repeats (``a=1&`` 100,000 times: 10 s of the proxy's threads).
    """
    if name is None:
        return
    fields.count += 1
    if fields.count > MAX_FORM_FIELDS:
        raise BodyError(f"the form has more than {MAX_FORM_FIELDS:,} fields, more than the server reads")
    old = fields.get(name)
    if old is None:
        fields[name] = value
    elif isinstance(old, list):
        old.append(value)
    else:
        fields[name] = [old, value]


def _finish_fields(fields: dict[str, Any] | None) -> None:
    """Repeated names become ``Many``."""
    if fields is None:
        return
    for name, value in fields.items():
        if isinstance(value, list):
            fields[name] = Many(tuple(value))


def _read_unlabelled(content: bytes, body: Body) -> None:
    """A body with no readable type is still read for words when it is UTF-8 (a lenient server might parse it)."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return
    if "\x00" in text:
        return  # UTF-16 and other wide encodings decode as "s\0h\0...": not words this reads
    try:
        doc = _load_json(content, "the body", None)
    except BodyError:
        _add_plain_text(body, text)
        return
    try:
        _walk_json(doc, (), body)
    except BodyError:
        _add_plain_text(body, text)
    else:
        body.json = doc  # what a server that parses any body as JSON would read (format stays "binary")


# A JSON string literal inside plain text. Possessive, and a literal with no closing quote runs to the
# end of the text (taking all of it), so each character is read once: linear time on any input.
_JSON_STRING = re.compile(r'"((?:[^"\\]|\\.)*+)("|\\?\Z)', re.DOTALL)
# Escaped literals decoded from one text body; a body with more is refused, not half read.
_MAX_JSON_STRINGS = 10_000


def _add_plain_text(body: Body, text: str) -> None:
    """Text that is not JSON as a whole, plus every escaped JSON string inside it, decoded.

    A socket.io frame (``42["message",{"body":"..."}]``) or JSON after a
    space is parsed by the server, which reads ``sh\\u0031t`` as "sh1t":
    each quoted literal with an escape is decoded and scanned as well.
    """
    body.add_text(text)
    decoded = 0
    for m in _JSON_STRING.finditer(text):
        if not m.group(2) or "\\" not in m.group(1):
            continue  # unterminated (it ran to the end), or no escape: the raw text already holds it
        decoded += 1
        if decoded > _MAX_JSON_STRINGS:
            raise BodyError(f"the text body holds more than {_MAX_JSON_STRINGS:,} escaped JSON strings")
        try:
            body.add_text(json.loads(m.group(0), strict=False))
        except ValueError:
            pass  # not a JSON string (a bad escape): no JSON parser reads it either


def _load_json(content: bytes, what: str, charset: str | None) -> Any:
    if charset is not None:
        content = mediatype.decode_text(content, charset, what, strict=True).encode("utf-8", "surrogatepass")
    try:
        return json.loads(content, object_pairs_hook=_unique_keys)
    except _RepeatedKey as exc:
        # The key itself is not named: it comes from the body, and problems are recorded.
        if str(exc) == "__proto__":
            raise BodyError(f"{what} has a __proto__ key") from None
        raise BodyError(f"{what} repeats a key in one object") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BodyError(f"{what} cannot be read as JSON ({type(exc).__name__})") from None


class _RepeatedKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which copy of a repeated key wins; the proxy refuses to pick one.
    doc = dict(pairs)
    if "__proto__" in doc:
        # A JavaScript server that merges this object takes these values as every object's own.
        raise _RepeatedKey("__proto__")
    if len(doc) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return doc


def _walk_json(node: Any, where: tuple, body: Body) -> None:
    if len(where) > MAX_JSON_DEPTH:
        raise BodyError(f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        if isinstance(node, str):
            body.add_text(node)
        return
    for key, value in items:
        if isinstance(value, str):
            image = _base64_image(value)
            if image:
                body.images.append(Slot(where + (key,), image[0], image[1], image[2]))
            else:
                body.add_text(value)
        elif isinstance(value, (dict, list)):
            _walk_json(value, where + (key,), body)


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
    found = sniff(data)
    if found is None:
        return None
    return data, found.mime, prefix


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
