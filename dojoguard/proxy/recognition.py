"""Recognise a ClassDojo write: which action it is and where its parts are, from the catalogue and the content.

Plain values in, plain values out: nothing here knows about mitmproxy, so it
can be tested with bytes alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from dojoguard.proxy import body as bodies
from dojoguard.proxy import paths
from dojoguard.proxy.catalogue import Catalogue, Endpoint
from dojoguard.rules.action import Channel, Kind

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Upload ids are short (24-hex ObjectIds, UUIDs); anything longer in a list of attachments is data.
_MAX_ID = 128
# Body formats no text can be read from.
_UNREADABLE_FOR_TEXT = frozenset({"binary", "image"})
# JSON's \ud800 escapes decode to lone surrogates, which no UTF-8 encoder accepts.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Request:
    """The parts of an HTTP request the proxy judges."""

    method: str
    host: str
    port: int
    path: str  # with its query string
    headers: tuple[tuple[str, str], ...]
    content: bytes
    client_address: str = ""

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def url(self) -> str:
        return f"https://{self.host}{self.path.split('?', 1)[0]}"


@dataclass(frozen=True)
class Ref:
    """An attachment a post refers to: an upload id, a URL, or both."""

    id: str | None = None
    url: str | None = None


@dataclass
class Recognition:
    endpoint: Endpoint | None
    kind: Kind
    channel: Channel
    body: bodies.Body | None = None
    class_id: str | None = None
    students: tuple[str, ...] = ()
    text: str | None = None
    points: int | None = None
    skill_id: str | None = None
    refs: tuple[Ref, ...] = ()
    problems: list[str] = field(default_factory=list)

    @property
    def endpoint_label(self) -> str:
        return self.endpoint.id if self.endpoint else "unclassified"


def recognise(request: Request, catalogue: Catalogue) -> Recognition:
    """Turn a write into a Recognition; a body that cannot be read becomes a problem, never an exception."""
    role = catalogue.role_of(request.host, request.port)
    path = paths.of(request.path)  # not urlsplit: it takes //api/... for a host
    found = catalogue.endpoint(request.method, role, path)
    if found is None:
        rec = Recognition(None, Kind.UNCLASSIFIED_WRITE, Channel.UNKNOWN)
        params: dict[str, str] = {}
    else:
        entry, params = found
        rec = Recognition(entry, Kind(entry.kind), Channel(entry.channel))
    try:
        rec.body = bodies.read(request.content, request.header("content-type"))
    except bodies.BodyError as exc:
        rec.problems.append(str(exc))
        return rec
    if rec.endpoint is None:
        rec.text = _SURROGATE.sub("\ufffd", "\n".join(rec.body.texts)) or None
        return rec
    if "text" in rec.endpoint.fields and rec.body.format in _UNREADABLE_FOR_TEXT:
        # A write that carries text, sent as bytes the proxy cannot read text from: the text
        # rules would see nothing, so it is not treated as a write without text.
        rec.problems.append(f"the {rec.body.format} body of a write that carries text cannot be read as text")
    doc = rec.body.json if rec.body.format == "json" else _form_fields(rec.body)
    query = parse_qs(urlsplit(request.path).query)
    fields = rec.endpoint.fields

    def first(name: str) -> Any:
        for loc in fields.get(name, ()):
            value = _locate(loc, doc, params, query)
            if value is not None:
                return value
        return None

    klass = first("class")
    rec.class_id = str(klass) if isinstance(klass, (str, int)) and not isinstance(klass, bool) else None
    rec.students = _ids(first("students"))
    text = first("text")
    if text is not None and not isinstance(text, str):
        rec.problems.append("the text field is not text")
    rec.text = text if isinstance(text, str) else ("\n".join(rec.body.texts) or None)
    if rec.text is not None:
        rec.text = _SURROGATE.sub("\ufffd", rec.text)
    skill = first("skill")
    if isinstance(skill, dict):
        skill = skill.get("_id") or skill.get("id")
    rec.skill_id = skill if isinstance(skill, str) else None
    _check_identifiers(rec)
    points = first("points")
    if points is not None:
        if isinstance(points, int) and not isinstance(points, bool):
            rec.points = points
        else:
            rec.problems.append("the points field is not a whole number")
    rec.refs = _refs(first("attachments"))
    if rec.kind is Kind.POINTS_AWARD and rec.points is None and rec.skill_id is None:
        rec.problems.append("the award names neither a skill nor a point value")
    return rec


def _check_identifiers(rec: Recognition) -> None:
    """Identifiers that cannot be ClassDojo's (over-long, or not valid Unicode) are dropped as a problem.

    They go into the audit record, which refuses long values and must be
    encodable: keeping them would turn a hostile id into an unrecorded write.
    """
    if rec.class_id is not None and not _is_identifier(rec.class_id):
        rec.class_id = None
        rec.problems.append("the class identifier cannot be read")
    if rec.skill_id is not None and not _is_identifier(rec.skill_id):
        rec.skill_id = None
        rec.problems.append("the skill identifier cannot be read")
    if not all(_is_identifier(s) for s in rec.students):
        rec.students = tuple(s for s in rec.students if _is_identifier(s))
        rec.problems.append("a pupil identifier cannot be read")


def _is_identifier(value: str) -> bool:
    return 0 < len(value) <= _MAX_ID and not _SURROGATE.search(value)


def _form_fields(body: bodies.Body) -> dict[str, Any]:
    """Named multipart text parts as a flat document, so catalogue fields work on forms too."""
    if body.form is None:
        return {}
    doc = {}
    for part in body.form.parts:
        if part.name and not part.filename and (part.content_type in (None, "text/plain")):
            doc[part.name] = part.body.decode("utf-8", "replace")
    return doc


def _locate(location: str, doc: Any, params: dict[str, str], query: dict[str, list[str]]) -> Any:
    if location.startswith("path:"):
        return params.get(location[5:])
    if location.startswith("query:"):
        values = query.get(location[6:])
        return values[0] if values else None
    if location == "request:url":
        return None
    return bodies.pick(doc, location)


def _ids(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, dict):
            item = item.get("_id") or item.get("id") or item.get("studentId")
        if isinstance(item, str):
            out.append(item)
    return tuple(out)


def _refs(value: Any) -> tuple[Ref, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    refs = []
    for item in items:
        if isinstance(item, str):
            if item.startswith("https://"):
                refs.append(Ref(url=item))
            elif len(item) <= _MAX_ID:
                refs.append(Ref(id=item))
            # Longer strings are inline data (base64 photos), found and checked as body images.
        elif isinstance(item, dict):
            ident = item.get("_id") or item.get("id")
            url = item.get("path") or item.get("url")
            ref = Ref(ident if isinstance(ident, str) else None, url if isinstance(url, str) else None)
            if ref.id or ref.url:
                refs.append(ref)
    return tuple(refs)
