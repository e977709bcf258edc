"""The Action: what a teacher did, as a plain value the rules can judge.

The proxy builds Actions from real ClassDojo traffic; ``dojoguard decide``
reads the same shape from JSON (documented in docs/actions.md). Nothing here
knows about HTTP or mitmproxy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from dojoguard.schemaproblems import did_you_mean


class Kind(enum.StrEnum):
    MESSAGE_SEND = "message.send"
    STORY_POST = "story.post"
    COMMENT_POST = "comment.post"
    POINTS_AWARD = "points.award"
    ATTACHMENT_UPLOAD = "attachment.upload"
    PORTFOLIO_POST = "portfolio.post"
    UNCLASSIFIED_WRITE = "unclassified.write"


class Channel(enum.StrEnum):
    MESSAGE = "message"
    CLASS_STORY = "class_story"
    SCHOOL_STORY = "school_story"
    COMMENT = "comment"
    PORTFOLIO = "portfolio"
    POINTS = "points"
    UNKNOWN = "unknown"


class AttachmentKind(enum.StrEnum):
    PHOTO = "photo"
    VIDEO = "video"
    FILE = "file"


class ActionError(ValueError):
    """An action document that cannot be understood; ``path`` says where."""

    def __init__(self, path: str, message: str):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


@dataclass(frozen=True)
class ImageFindings:
    """What the image check found in one picture. Counts only: no pixels, no templates."""

    faces_found: int = 0
    faces_permitted: int = 0
    faces_not_permitted: int = 0
    faces_unidentified: int = 0
    # People seen (a profile, a turned head, an upper body) whose faces were not
    # found and checked; counted only when the audience is not all permitted.
    people_unverified: int = 0
    # Videos: how many sampled frames were checked (0 for a photo).
    frames_checked: int = 0
    gps_present: bool = False
    unreadable: bool = False
    # Why the check could not be completed (unreadable, too large, engine error).
    error: str | None = None
    # Face boxes [top, right, bottom, left] in the original image's pixels,
    # after EXIF orientation; used for redaction, never logged.
    boxes_not_permitted: tuple[tuple[int, int, int, int], ...] = ()

    @property
    def is_complete(self) -> bool:
        return not self.unreadable and self.error is None


@dataclass(frozen=True)
class Attachment:
    kind: AttachmentKind
    id: str | None = None
    content_type: str | None = None
    size: int | None = None
    sha256: str | None = None
    # None means "not analysed": rules treat that as a check not completed.
    findings: ImageFindings | None = None


@dataclass(frozen=True)
class Points:
    value: int | None = None
    skill: str | None = None
    skill_id: str | None = None


class Audience(enum.StrEnum):
    """Who sees what the teacher wrote, worked out from the channel (and, for a comment, its story)."""

    WHOLE_SCHOOL = "whole_school"
    CLASS = "class"
    FAMILY = "family"
    UNKNOWN = "unknown"


class StartedBy(enum.StrEnum):
    PARENT = "parent"
    TEACHER = "teacher"


@dataclass(frozen=True)
class Reply:
    """The message thread a teacher's message goes to, as far as ClassDojo's traffic showed it.

    Best effort: filled in only when the teacher's app read the thread through
    the proxy first (the catalogue's ``thread`` entry); every field may be
    None, which rules read as unknown, never as "no parent waiting".
    """

    thread_id: str | None = None
    # Who wrote the thread's first message.
    started_by: StartedBy | None = None
    # When a parent last wrote, if after the school's last message in the thread; None: unknown or nobody waiting.
    parent_wrote_at: datetime | None = None
    # True when the thread was read and no parent's message is waiting for an answer.
    nobody_waiting: bool = False


@dataclass(frozen=True)
class Action:
    kind: Kind
    channel: Channel
    at: datetime
    teacher_id: str | None = None
    teacher_name: str | None = None
    device_address: str | None = None
    class_id: str | None = None
    students: tuple[str, ...] = ()
    text: str | None = None
    # Length of the message itself when the text also holds other strings of the request (scanned by the
    # content rules, but not what the teacher typed); None: the length of ``text``.
    text_chars: int | None = None
    points: Points | None = None
    attachments: tuple[Attachment, ...] = ()
    # Where the action came from (catalogue entry id, method, path template):
    # for the audit trail and discovery, never for rule logic.
    endpoint: str | None = None
    # Problems met while building the action (unparseable body, unknown skill):
    # a non-empty tuple means the proxy could not see everything.
    problems: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # The teacher's roles (from the settings' staff list); None: the teacher is not known.
    teacher_roles: tuple[str, ...] | None = None
    # The classes the teacher teaches (learned from ClassDojo's class lists); None: not known.
    teacher_classes: frozenset[str] | None = None
    class_name: str | None = None
    # For a comment (or an upload once its post is known): the channel of the story it is on; None: unknown.
    on_channel: Channel | None = None
    # For a message: the thread it answers (None: nothing known about it).
    reply: Reply | None = None

    @property
    def audience(self) -> Audience:
        channel = self.on_channel if self.channel in (Channel.COMMENT, Channel.UNKNOWN) else self.channel
        return _AUDIENCES.get(channel, Audience.UNKNOWN)

    def with_time(self, at: datetime) -> "Action":
        return replace(self, at=at)

    # -- JSON -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": str(self.kind), "channel": str(self.channel), "at": self.at.isoformat()}
        if self.teacher_id or self.teacher_name or self.teacher_roles is not None or self.teacher_classes is not None:
            doc["teacher"] = {k: v for k, v in (("id", self.teacher_id), ("name", self.teacher_name)) if v}
            if self.teacher_roles is not None:
                doc["teacher"]["roles"] = list(self.teacher_roles)
            if self.teacher_classes is not None:
                doc["teacher"]["classes"] = sorted(self.teacher_classes)
        if self.device_address:
            doc["device"] = {"address": self.device_address}
        if self.class_id or self.class_name:
            doc["class"] = {k: v for k, v in (("id", self.class_id), ("name", self.class_name)) if v}
        if self.on_channel is not None:
            doc["on"] = str(self.on_channel)
        if self.reply is not None:
            r = self.reply
            doc["reply"] = {k: v for k, v in (
                ("thread", r.thread_id), ("started_by", str(r.started_by) if r.started_by else None),
                ("parent_wrote_at", r.parent_wrote_at.isoformat() if r.parent_wrote_at else None)) if v}
            if r.nobody_waiting:
                doc["reply"]["nobody_waiting"] = True
        if self.students:
            doc["students"] = list(self.students)
        if self.text is not None:
            doc["text"] = self.text
        if self.points is not None:
            doc["points"] = {k: v for k, v in (("value", self.points.value), ("skill", self.points.skill),
                                               ("skill_id", self.points.skill_id)) if v is not None}
        if self.attachments:
            doc["attachments"] = [_attachment_dict(a) for a in self.attachments]
        if self.endpoint:
            doc["endpoint"] = self.endpoint
        if self.problems:
            doc["problems"] = list(self.problems)
        return doc

    @classmethod
    def from_dict(cls, doc: Any, *, default_at: datetime | None = None) -> "Action":
        if not isinstance(doc, dict):
            raise ActionError("", "an action must be a JSON object")
        known = {"kind", "channel", "at", "teacher", "device", "class", "students", "text", "points",
                 "attachments", "endpoint", "problems", "on", "reply"}
        _only(doc, known, "")
        kind = _enum(Kind, doc.get("kind"), "kind")
        channel = _enum(Channel, doc.get("channel", "unknown"), "channel")
        at = _time(doc["at"], "at") if "at" in doc else default_at
        if at is None:
            raise ActionError("at", "missing; give an ISO time such as 2026-11-30T10:00:00+00:00")
        teacher = _only(_obj(doc.get("teacher"), "teacher"), {"id", "name", "roles", "classes"}, "teacher")
        device = _only(_obj(doc.get("device"), "device"), {"address"}, "device")
        klass = _only(_obj(doc.get("class"), "class"), {"id", "name"}, "class")
        roles = _strings(teacher.get("roles"), "teacher.roles")
        classes = _strings(teacher.get("classes"), "teacher.classes")
        on = doc.get("on")
        on = None if on is None else _enum(Channel, on, "on")
        if on is not None and on not in (Channel.CLASS_STORY, Channel.SCHOOL_STORY):
            raise ActionError("on", "must be class_story or school_story (leave it out when not known)")
        reply = _reply(doc.get("reply"))
        points = doc.get("points")
        if points is not None:
            points = _only(_obj(points, "points"), {"value", "skill", "skill_id"}, "points")
            value = points.get("value")
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ActionError("points.value", "must be a whole number")
            points = Points(value=value, skill=_str(points.get("skill"), "points.skill"),
                            skill_id=_str(points.get("skill_id"), "points.skill_id"))
        students = doc.get("students", [])
        if not isinstance(students, list) or not all(isinstance(s, str) for s in students):
            raise ActionError("students", "must be a list of pupil ids")
        attachments = doc.get("attachments", [])
        if not isinstance(attachments, list):
            raise ActionError("attachments", "must be a list")
        problems = doc.get("problems", [])
        if not isinstance(problems, list):
            raise ActionError("problems", "must be a list of strings")
        return cls(
            kind=kind,
            channel=channel,
            at=at,
            teacher_id=_str(teacher.get("id"), "teacher.id"),
            teacher_name=_str(teacher.get("name"), "teacher.name"),
            device_address=_str(device.get("address"), "device.address"),
            class_id=_str(klass.get("id"), "class.id"),
            students=tuple(students),
            text=_str(doc.get("text"), "text"),
            points=points,
            attachments=tuple(_attachment(a, f"attachments[{i}]") for i, a in enumerate(attachments)),
            endpoint=_str(doc.get("endpoint"), "endpoint"),
            problems=tuple(str(p) for p in problems),
            teacher_roles=None if roles is None else tuple(roles),
            teacher_classes=None if classes is None else frozenset(classes),
            class_name=_str(klass.get("name"), "class.name"),
            on_channel=on,
            reply=reply,
        )


_AUDIENCES = {Channel.SCHOOL_STORY: Audience.WHOLE_SCHOOL, Channel.CLASS_STORY: Audience.CLASS,
              Channel.MESSAGE: Audience.FAMILY, Channel.PORTFOLIO: Audience.FAMILY, Channel.POINTS: Audience.FAMILY}


def _strings(value, path) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ActionError(path, "must be a list of strings")
    return value


def _reply(value) -> Reply | None:
    if value is None:
        return None
    doc = _only(_obj(value, "reply"), {"thread", "started_by", "parent_wrote_at", "nobody_waiting"}, "reply")
    started = doc.get("started_by")
    wrote = doc.get("parent_wrote_at")
    waiting = doc.get("nobody_waiting", False)
    if not isinstance(waiting, bool):
        raise ActionError("reply.nobody_waiting", "must be true or false")
    return Reply(thread_id=_str(doc.get("thread"), "reply.thread"),
                 started_by=None if started is None else _enum(StartedBy, started, "reply.started_by"),
                 parent_wrote_at=None if wrote is None else _time(wrote, "reply.parent_wrote_at"),
                 nobody_waiting=waiting)


def _attachment_dict(a: Attachment) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": str(a.kind)}
    for key in ("id", "content_type", "size", "sha256"):
        if getattr(a, key) is not None:
            doc[key] = getattr(a, key)
    if a.findings is not None:
        f = a.findings
        doc["findings"] = {
            "faces_found": f.faces_found,
            "faces_permitted": f.faces_permitted,
            "faces_not_permitted": f.faces_not_permitted,
            "faces_unidentified": f.faces_unidentified,
            "people_unverified": f.people_unverified,
            "frames_checked": f.frames_checked,
            "gps_present": f.gps_present,
            "unreadable": f.unreadable,
        }
        if f.error:
            doc["findings"]["error"] = f.error
    return doc


_FINDING_INTS = ("faces_found", "faces_permitted", "faces_not_permitted", "faces_unidentified",
                 "people_unverified", "frames_checked")


def _attachment(doc: Any, path: str) -> Attachment:
    doc = _only(_obj(doc, path), {"kind", "id", "content_type", "size", "sha256", "findings"}, path)
    findings = doc.get("findings")
    if findings is not None:
        findings = _obj(findings, f"{path}.findings")
        _only(findings, {*_FINDING_INTS, "gps_present", "unreadable", "error"}, f"{path}.findings")
        for key in _FINDING_INTS:
            value = findings.get(key, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ActionError(f"{path}.findings.{key}", "must be a whole number, 0 or more")
        findings = ImageFindings(
            **{k: findings.get(k, 0) for k in _FINDING_INTS},
            gps_present=bool(findings.get("gps_present", False)),
            unreadable=bool(findings.get("unreadable", False)),
            error=_str(findings.get("error"), f"{path}.findings.error"),
        )
    size = doc.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
        raise ActionError(f"{path}.size", "must be a whole number of bytes")
    return Attachment(
        kind=_enum(AttachmentKind, doc.get("kind"), f"{path}.kind"),
        id=_str(doc.get("id"), f"{path}.id"),
        content_type=_str(doc.get("content_type"), f"{path}.content_type"),
        size=size,
        sha256=_str(doc.get("sha256"), f"{path}.sha256"),
        findings=findings,
    )


def _only(doc: dict, known: set[str], path: str) -> dict:
    """``doc`` if every field is one of ``known``; a misspelt field is an error with a "did you mean"."""
    unknown = sorted(set(doc) - known, key=str)
    if unknown:
        field = unknown[0]
        where = f"{path}.{field}" if path else str(field)
        guess = did_you_mean(str(field), known)
        raise ActionError(where, f"unknown field; {guess + ' ' if guess else ''}"
                                 f"Known fields here: {', '.join(sorted(known))}")
    return doc


def _enum(cls, value, path):
    try:
        return cls(value)
    except ValueError:
        allowed = [m.value for m in cls]
        guess = did_you_mean(str(value), allowed)
        raise ActionError(path, f"{value!r} is not one of: {', '.join(allowed)}"
                                + (f". {guess}" if guess else "")) from None


def _obj(value, path) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ActionError(path, "must be an object")
    return value


def _str(value, path) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ActionError(path, "must be a string")
    return value


def _time(value, path) -> datetime:
    if not isinstance(value, str):
        raise ActionError(path, "must be an ISO time string")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ActionError(path, f"{value!r} is not an ISO time such as 2026-11-30T10:00:00+00:00") from None
    if at.tzinfo is None:
        raise ActionError(path, "needs a UTC offset (e.g. +00:00 or Z) so the time is not ambiguous")
    return at
