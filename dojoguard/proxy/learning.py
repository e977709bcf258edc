"""Learn from ClassDojo's answers: who a session belongs to, teachers' and class names, rosters and skills.

Reads only the responses the catalogue's ``learn`` entries name. Names of
pupils go straight to the consent registry (for linking) and nowhere else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from dojoguard.proxy.context import collaborator_ids
from dojoguard.proxy.services import Services
from dojoguard.rules.action import Channel

log = structlog.get_logger("dojoguard.proxy")

_SKILL_VALUE_KEYS = ("points", "weight", "value", "pointValue")
# Story feeds, and the channel their posts are on unless an item's own targetType says otherwise.
_FEEDS = {"class-story": Channel.CLASS_STORY, "school-story": Channel.SCHOOL_STORY, "story-feed": None}


def learn(services: Services, what: str, doc: Any, *, params: dict[str, str], session: str | None,
          at: datetime) -> None:
    """Apply one learnable response (blocking: run in a worker thread)."""
    if what == "session":
        _session(services, doc, session, at)
    elif what in ("classes", "class"):
        for klass in _items(doc) if what == "classes" else [doc]:
            _class(services, klass, session, at)
    elif what == "roster":
        class_id = params.get("classId")
        pupils = [(p["_id"], str(p.get("firstName") or ""), str(p.get("lastName") or ""))
                  for p in _items(doc) if isinstance(p, dict) and isinstance(p.get("_id"), str)]
        if class_id and pupils and services.registry is not None:
            services.registry.learn_roster(class_id, pupils)
    elif what in _FEEDS:
        if services.posts is not None:
            services.posts.learn_feed(doc, _FEEDS[what])
    elif what == "skills":
        class_id = params.get("classId")
        skills = []
        for item in _items(doc):
            if not isinstance(item, dict) or not isinstance(item.get("_id"), str):
                continue
            value = next((item[k] for k in _SKILL_VALUE_KEYS
                          if isinstance(item.get(k), int) and not isinstance(item.get(k), bool)), None)
            if value is None:
                continue  # a skill whose value we cannot read stays unknown: its awards fail closed
            skills.append((item["_id"], item.get("name") if isinstance(item.get("name"), str) else None, value))
        if class_id and skills:
            services.skills.learn(class_id, skills, at)


def _items(doc: Any) -> list:
    if isinstance(doc, dict) and isinstance(doc.get("_items"), list):
        return doc["_items"]
    return doc if isinstance(doc, list) else []


def _name(person: dict) -> str | None:
    parts = [person.get(k) for k in ("title", "firstName", "lastName")]
    name = " ".join(p for p in parts if isinstance(p, str) and p)
    return name or None


def _session(services: Services, doc: Any, session: str | None, at: datetime) -> None:
    if not session or not isinstance(doc, dict) or doc.get("type") != "teacher":
        return
    teacher = doc.get("teacher")
    if isinstance(teacher, dict) and isinstance(teacher.get("_id"), str):
        services.sessions.remember(session, teacher["_id"], _name(teacher), at)
        services.names.learn("teacher", teacher["_id"], _name(teacher), at)


def _class(services: Services, klass: Any, session: str | None, at: datetime) -> None:
    if not isinstance(klass, dict) or not isinstance(klass.get("_id"), str):
        return
    if isinstance(klass.get("name"), str):
        services.names.learn("class", klass["_id"], klass["name"], at)
        if services.registry is not None:
            services.registry.learn_class(klass["_id"], klass["name"])
    # Who teaches it, as ClassDojo lists it: the class's whole list, replaced each time it comes.
    teachers = collaborator_ids(klass)
    if teachers is not None and services.classes is not None:
        services.classes.learn(klass["_id"], teachers, at)
    # Every teacher of the class, so a headteacher can name a colleague who has not used the proxy yet.
    for person in klass.get("collaborators") or []:
        if isinstance(person, dict) and isinstance(person.get("_id"), str):
            services.names.learn("teacher", person["_id"], _name(person), at)
    me = next((c for c in klass.get("collaborators") or [] if isinstance(c, dict) and c.get("isMe")), None)
    if session and me and isinstance(me.get("_id"), str):
        teacher_id, _ = services.sessions.teacher(session)
        if teacher_id in (None, me["_id"]):
            services.sessions.remember(session, me["_id"], _name(me), at)
