"""Recognise a ClassDojo write: which action it is and where its parts are, from the catalogue and the content.

Plain values in, plain values out: nothing here knows about mitmproxy, so it
can be tested with bytes alone.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

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
# Content codings the proxy inflates before reading (see flows.body_of); any other is not read.
_READ_CODINGS = frozenset({"gzip", "x-gzip", "deflate"})
_GZIP_MAGIC = b"\x1f\x8b"
_FORM_INTEGER = re.compile(r"[+-]?[0-9]{1,15}")
_FORM_NUMBER = re.compile(r"[+-]?(?:[0-9]{1,15}(?:\.[0-9]*)?|\.[0-9]+)")
# The segments of a bracketed form or query name: "x[points]", "points[]", "students[0][points]", "a.points".
_NAME_SEGMENT = re.compile(r"[^\[\].]+")
# Where an unclassified write's facts usually sit, by key (compared in lower case).
_UNCLASSIFIED_KEYS = {
    # "value" and "amount" name many numbers that are not points: they count only beside pupils or a skill.
    "points": "points", "weight": "points", "pointvalue": "points", "value": "value", "amount": "value",
    "studentids": "students", "students": "students", "studentid": "students", "awardees": "students",
    "taggedstudentids": "students",
    "behaviorid": "skill", "behavior": "skill", "skillid": "skill", "behaviour": "skill", "behaviourid": "skill",
    "attachments": "attachments", "attachmentids": "attachments", "attachment": "attachments",
}
_GROUPS = frozenset(_UNCLASSIFIED_KEYS.values())


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
    # Characters of the longest text the catalogue names (what the teacher typed), for length rules;
    # None when no catalogue location held text (then the whole text counts).
    text_chars: int | None = None
    points: int | None = None
    skill_id: str | None = None
    refs: tuple[Ref, ...] = ()
    # The story post a comment is on, the message thread a message goes to (the catalogue's post, thread).
    post_id: str | None = None
    thread_id: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def endpoint_label(self) -> str:
        return self.endpoint.id if self.endpoint else "unclassified"


def recognise(request: Request, catalogue: Catalogue) -> Recognition:
    """Turn a write into a Recognition; a body that cannot be read becomes a problem, never an exception.

    Every location the catalogue lists for a fact is read, not only the
    first one present: a server might read any of them. Texts are all
    scanned; for points, skill and class, locations that disagree make the
    action incomplete (and the most negative points are kept); pupils and
    attachments are the union. Every other string in the body is scanned
    too. A write the catalogue does not know is still read for the facts
    the rules judge (points, skill, pupils, attachments) under their usual
    names, wherever they sit.
    """
    role = catalogue.role_of(request.host, request.port)
    path = paths.of(request.path)  # not urlsplit: it takes //api/... for a host
    found = catalogue.endpoint(request.method, role, path)
    if found is None:
        rec = Recognition(None, Kind.UNCLASSIFIED_WRITE, Channel.UNKNOWN)
        params: dict[str, str] = {}
    else:
        entry, params = found
        rec = Recognition(entry, Kind(entry.kind), Channel(entry.channel))
    problem = _header_problem(request)
    if problem:
        rec.problems.append(problem)
        return rec
    try:
        rec.body = bodies.read(request.content, request.header("content-type"))
    except bodies.BodyError as exc:
        rec.problems.append(str(exc))
        return rec
    # Query parameters reach the server too (Express's req.query): their words are scanned as well.
    query_string = urlsplit(request.path).query
    query = parse_qs(query_string, keep_blank_values=True)
    query_texts = [v for vs in query.values() for v in vs if v and not bodies.is_data(v)]
    if rec.endpoint is None:
        # A call nobody has described may carry its message in the path (PubNub's publish does).
        query_texts += _path_texts(path)
    # Every named value, wherever it sits: the body's documents, and the query and form fields by their
    # last bracketed name, as a qs-style server nests them ("x[points]=-5" is points).
    documents = _documents(rec.body, query_string)
    if rec.endpoint is None:
        _read_unclassified(rec, documents)
        rec.text = _text(rec.body.texts + query_texts)
        return rec
    if "text" in rec.endpoint.fields and rec.body.format in _UNREADABLE_FOR_TEXT:
        # A write that carries text, sent as bytes the proxy cannot read text from: the text
        # rules would see nothing, so it is not treated as a write without text.
        rec.problems.append(f"the {rec.body.format} body of a write that carries text cannot be read as text")
    doc = rec.body.json if rec.body.format == "json" else (rec.body.fields or {})
    fields = rec.endpoint.fields
    is_form = rec.body.fields is not None

    def values(name: str) -> list[Any]:
        found: list[Any] = []
        for loc in fields.get(name, ()):
            found += _expand(_locate(loc, doc, params, query))
        return found

    rec.class_id = _one(rec, "class", [v for v in values("class") if _is_scalar(v)], str)
    rec.post_id = _one(rec, "post", [v for v in values("post") if _is_scalar(v)], str)
    rec.thread_id = _one(rec, "thread", [v for v in values("thread") if _is_scalar(v)], str)
    rec.students = _ids(values("students"))
    texts = values("text")
    if any(not isinstance(t, str) for t in texts):
        rec.problems.append("the text field is not text")
    # The catalogue's text first (in the order its locations are listed), then every other string.
    typed = [t for t in texts if isinstance(t, str)]
    rec.text = _text(typed + rec.body.texts + query_texts)
    rec.text_chars = max(map(len, typed)) if typed else None
    rec.skill_id = _skill(rec, values("skill"))
    _check_identifiers(rec)
    rec.points = _points(rec, values("points"), is_form)
    if "points" in fields or rec.kind is Kind.POINTS_AWARD:
        rec.points = _worst_points(rec, documents)
    rec.refs = _refs(values("attachments"))
    if rec.kind is Kind.POINTS_AWARD and rec.points is None and rec.skill_id is None:
        rec.problems.append("the award names neither a skill nor a point value")
    return rec


def _path_texts(path: str) -> list[str]:
    """The path's segments, percent-decoded, that could be words (not ids, not the bare route names)."""
    out = []
    for segment in path.split("/"):
        if "%" in segment or len(segment) > 24 or " " in segment:
            value = unquote(segment, errors="replace")
            if value and not bodies.is_data(value):
                out.append(value)
                if value.startswith(("\"", "{", "[")):
                    try:  # a JSON message in the path: the server reads its strings, escapes decoded
                        out += [t for t in bodies.read(value.encode(), "application/json").texts]
                    except bodies.BodyError:
                        pass
    return out


def _header_problem(request: Request) -> str | None:
    """Headers a server could read differently from the proxy: the body is then not read at all."""
    types = {v.strip() for k, v in request.headers if k.lower() == "content-type"}
    if len(types) > 1:
        return "the request has more than one Content-Type"
    codings = [c.strip().lower() for k, v in request.headers if k.lower() == "content-encoding"
               for c in v.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if len(codings) > 1:
        return "the body is encoded more than once (Content-Encoding), which is not read"
    if codings and codings[0] not in _READ_CODINGS:
        return f"the body's Content-Encoding {codings[0][:40]!r} is not read"
    if codings and request.content.startswith(_GZIP_MAGIC):
        # Still gzip after inflating: it did not inflate, or was compressed twice under one name.
        return "the compressed body could not be read"
    return None


def _text(texts: list[str]) -> str | None:
    """Every distinct text, once each, joined: the rules see them all."""
    unique = list(dict.fromkeys(texts))
    return _SURROGATE.sub("\ufffd", "\n".join(unique)) or None


def _expand(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, bodies.Many):
        return list(value.values)
    return [value]


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _one(rec: Recognition, what: str, found: list[Any], kind=str) -> Any:
    """The one value several locations agree on; different values are a problem (and none is picked)."""
    distinct = list(dict.fromkeys(kind(v) for v in found))
    if len(distinct) > 1:
        rec.problems.append(f"the request names more than one {what}")
        return None
    return distinct[0] if distinct else None


def _skill(rec: Recognition, found: list[Any]) -> str | None:
    ids = []
    for skill in found:
        if isinstance(skill, dict):
            skill = skill.get("_id") or skill.get("id")
        if not isinstance(skill, str):
            rec.problems.append("the skill field cannot be read")
            return None
        ids.append(skill)
    return _one(rec, "skill", ids)


def _points(rec: Recognition, found: list[Any], is_form: bool) -> int | None:
    """The award's points; locations that disagree are a problem, and the most negative is kept."""
    numbers = []
    for value in found:
        if isinstance(value, str) and is_form and _FORM_INTEGER.fullmatch(value.strip()):
            value = int(value.strip())  # every form field is a string: "-5" is the number a server reads
        if isinstance(value, int) and not isinstance(value, bool):
            numbers.append(value)
        else:
            rec.problems.append("the points field is not a whole number")
    distinct = set(numbers)
    if len(distinct) > 1:
        rec.problems.append("the request gives more than one point value")
    return min(distinct) if distinct else None


def _worst_points(rec: Recognition, documents: list[Any]) -> int | None:
    """A points write's points, made the most negative value found under a points name anywhere in it.

    The catalogue's locations are where ClassDojo is believed to read the
    value; a server could as well read a per-pupil ``students[].points``, a
    ``?points=`` or a form's ``x[points]``. A negative value in any of them
    is what the write may do, so it is what is judged.
    """
    found: dict[str, list[Any]] = {group: [] for group in _GROUPS}
    _collect(documents, found, 0)
    numbers = [_number(v) for v in _flat(found["points"] + found["value"])]
    if "unreadable" in numbers:
        rec.problems.append("a points value cannot be read")
    negative = [n for n in numbers if isinstance(n, int) and n < 0]
    if negative and (rec.points is None or min(negative) < rec.points):
        return min(negative)
    return rec.points


def _documents(body: bodies.Body, query_string: str) -> list[Any]:
    """The body's documents (JSON, JSON parts) and its form and query fields keyed by their last bracketed name."""
    docs: list[Any] = [body.json] if body.json is not None else []
    docs += body.documents
    pairs: list[tuple[str, str]] = []
    if body.format == "form":
        # Re-read: the body's fields are keyed by the name before its first bracket.
        pairs += parse_qsl(body.content.decode("utf-8", "replace"), keep_blank_values=True, errors="replace")
    elif body.fields is not None:
        pairs += [(name, v) for name, value in body.fields.items() for v in _flat(_expand(value))
                  if isinstance(v, str)]
    pairs += parse_qsl(query_string, keep_blank_values=True, errors="replace")
    fields: dict[str, list[str]] = {}
    for name, value in pairs:
        segments = [s for s in _NAME_SEGMENT.findall(name) if not s.isdigit()]
        if segments:
            fields.setdefault(segments[-1], []).append(value)
    if fields:
        docs.append(fields)
    return docs


def _read_unclassified(rec: Recognition, documents: list[Any]) -> None:
    """The facts the rules judge, from a write no catalogue entry explains, under the names ClassDojo uses.

    Points anywhere in the body count (the most negative wins), as do
    pupils, skills and attachments: an award or a post under a path the
    catalogue does not know is judged on what it carries, not only warned
    about. A bare ``value`` or ``amount`` counts as points only beside
    pupils or a skill.
    """
    if not documents:
        return
    found: dict[str, list[Any]] = {group: [] for group in _GROUPS}
    _collect(documents, found, 0)
    rec.students = _ids(found["students"])
    skills = [s for s in _flat(found["skill"]) if isinstance(s, str)
              or isinstance(s, dict) and isinstance(s.get("_id") or s.get("id"), str)]
    rec.skill_id = _skill(rec, skills) if skills else None
    _check_identifiers(rec)
    candidates = _flat(found["points"] + (found["value"] if rec.students or rec.skill_id else []))
    numbers = [n for n in (_number(v) for v in candidates) if n is not None]
    if any(n == "unreadable" for n in numbers):
        rec.problems.append("a points value cannot be read")
    numbers = [n for n in numbers if n != "unreadable"]
    rec.points = min(numbers) if numbers else None
    rec.refs = _refs(found["attachments"])


def _collect(node: Any, found: dict[str, list[Any]], depth: int) -> None:
    if depth > bodies.MAX_JSON_DEPTH:
        return
    if isinstance(node, list):
        for item in node:
            _collect(item, found, depth + 1)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        group = _UNCLASSIFIED_KEYS.get(key.lower()) if isinstance(key, str) else None
        if group is not None:
            found[group] += _expand(value)
        if isinstance(value, (dict, list)):
            # Into pupils and attachments too: {"students": [{"_id": ..., "points": -5}]} awards -5.
            _collect(value, found, depth + 1)


def _number(value: Any) -> int | str | None:
    """A points value as a whole number (rounded down, so a negative stays negative); None if it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not _FORM_NUMBER.fullmatch(value):
            return None
        value = float(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return "unreadable"
        return math.floor(value)
    return None


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


def _locate(location: str, doc: Any, params: dict[str, str], query: dict[str, list[str]]) -> Any:
    if location.startswith("path:"):
        return params.get(location[5:])
    if location.startswith("query:"):
        values = query.get(location[6:])
        if not values:
            return None
        return values[0] if len(values) == 1 else bodies.Many(tuple(values))
    if location == "request:url":
        return None
    return bodies.pick(doc, location)


def _flat(value: Any) -> list[Any]:
    """A value, or the values of a list (and of lists within it), as one list."""
    if value is None:
        return []
    if not isinstance(value, list):
        return [value]
    if not any(isinstance(item, list) for item in value):
        return value
    out: list[Any] = []
    stack = [iter(value)]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            if len(stack) <= bodies.MAX_JSON_DEPTH:
                stack.append(iter(item))
        else:
            out.append(item)
    return out


_END = object()


def _ids(value: Any) -> tuple[str, ...]:
    out = []
    for item in _flat(value):
        if isinstance(item, dict):
            item = item.get("_id") or item.get("id") or item.get("studentId")
        if isinstance(item, str):
            out.append(item)
    return tuple(dict.fromkeys(out))


def _refs(value: Any) -> tuple[Ref, ...]:
    refs = []
    for item in _flat(value):
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
    return tuple(dict.fromkeys(refs))
