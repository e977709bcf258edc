"""What the proxy knows around a write: the classes a teacher teaches, the story a comment is on, the thread a
message answers.

Learned from ClassDojo's own answers (the catalogue's ``learn`` entries and the
answers to the teacher's own posts), best effort: anything not learned is
None, which the rules read as unknown. Nothing here holds text or names:

* ``ClassTeachers`` - class id -> the ids of its teachers (ClassDojo's
  ``collaborators``), in the proxy's state database so it outlives a restart.
  A class's list is replaced whenever ClassDojo sends the class again.
* ``StoryPosts`` - story post id -> the channel it is on (class or school
  story), in memory, the most recently seen ``limit`` posts.
* ``Threads`` - message thread id -> who started it and whether a parent is
  waiting for an answer (a time, never the text), in memory, the most
  recently read ``limit`` threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dojoguard.proxy.inbound import PARENT, TEACHER, messages_of
from dojoguard.rules.action import Channel, Reply, StartedBy
from dojoguard.state import State

# Collaborators ClassDojo lists who have not joined the class yet (an invitation, a request to join).
_NOT_YET = frozenset({"requested", "pending", "invited"})


class ClassTeachers:
    """Which teachers teach which class; loaded at start, written from worker threads."""

    def __init__(self, state: State):
        self.state = state
        self._lock = threading.Lock()
        self._teachers: dict[str, frozenset[str]] = {}
        # Teachers some class list has named since the start (or is in the database): for them "no class" is
        # known, not unknown, once ClassDojo takes them off their last class.
        self._named: set[str] = set()
        with state.lock:
            rows = state.database.execute("SELECT class_id, teacher_id FROM class_teachers").fetchall()
        found: dict[str, set[str]] = {}
        for class_id, teacher_id in rows:
            found.setdefault(class_id, set()).add(teacher_id)
        self._teachers = {c: frozenset(t) for c, t in found.items()}
        self._by_teacher = _invert(self._teachers)
        self._named = set(self._by_teacher)

    def learn(self, class_id: str, teacher_ids: list[str], at: datetime) -> None:
        """Replace the teachers of ``class_id`` with those ClassDojo just listed (blocking: worker thread)."""
        teachers = frozenset(teacher_ids)
        with self._lock:
            if self._teachers.get(class_id) == teachers:
                return
            with self.state.database.transaction():
                self.state.database.execute("DELETE FROM class_teachers WHERE class_id = ?", (class_id,))
                self.state.database.executemany(
                    "INSERT INTO class_teachers (class_id, teacher_id, learned_at) VALUES (?, ?, ?)",
                    [(class_id, t, at.isoformat()) for t in sorted(teachers)])
            table = dict(self._teachers)
            if teachers:
                table[class_id] = teachers
            else:
                table.pop(class_id, None)
            # Readers on the event loop see either the old maps or the new ones, never half of a change.
            self._by_teacher = _invert(table)
            self._teachers = table
            self._named |= teachers

    def classes_of(self, teacher_id: str | None) -> frozenset[str] | None:
        """The classes ``teacher_id`` teaches; None when no class list has ever named them (memory only)."""
        if not teacher_id:
            return None
        found = self._by_teacher.get(teacher_id)
        if found is not None:
            return found
        return frozenset() if teacher_id in self._named else None

    def teachers_of(self, class_id: str) -> frozenset[str] | None:
        return self._teachers.get(class_id)


def _invert(table: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for class_id, teachers in table.items():
        for t in teachers:
            out.setdefault(t, set()).add(class_id)
    return {t: frozenset(c) for t, c in out.items()}


def collaborator_ids(klass: dict) -> list[str] | None:
    """The ids of a class's teachers, or None when the answer does not list them (then nothing is replaced)."""
    people = klass.get("collaborators")
    if not isinstance(people, list):
        return None
    ids = []
    for person in people:
        if not isinstance(person, dict) or not isinstance(person.get("_id"), str) or not person["_id"]:
            continue
        status = person.get("sharingStatus")
        if isinstance(status, str) and status.strip().lower() in _NOT_YET:
            continue
        ids.append(person["_id"])
    return ids


class _Bounded:
    """A small thread-safe LRU map: the least recently used entries go first beyond ``limit``."""

    def __init__(self, limit: int):
        self.limit = max(1, int(limit))
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str | None) -> Any:
        if not key:
            return None
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.limit:
                self._items.popitem(last=False)


# Where a story item says what it was posted to, and what that means.
_TARGET_TYPES = {"class": Channel.CLASS_STORY, "school": Channel.SCHOOL_STORY}
_ID_KEYS = ("_id", "id")


class StoryPosts(_Bounded):
    """Story post id -> the channel it is on (class or school story)."""

    def __init__(self, limit: int = 50_000):
        super().__init__(limit)

    def channel(self, post_id: str | None) -> Channel | None:
        return self.get(post_id)

    def remember(self, post_id: Any, channel: Channel) -> None:
        if isinstance(post_id, str) and post_id and channel in (Channel.CLASS_STORY, Channel.SCHOOL_STORY):
            self.put(post_id, channel)

    def learn_feed(self, doc: Any, default: Channel | None) -> int:
        """Remember the posts of a story feed answer; an item's own ``targetType`` wins over the feed's kind."""
        items = doc.get("_items") if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            return 0
        learned = 0
        for item in items:
            if not isinstance(item, dict):
                continue
            post_id = next((item[k] for k in _ID_KEYS if isinstance(item.get(k), str) and item[k]), None)
            target = item.get("targetType")
            channel = _TARGET_TYPES.get(target.strip().lower()) if isinstance(target, str) else None
            channel = channel or default
            if post_id and channel is not None:
                self.remember(post_id, channel)
                learned += 1
        return learned


def post_id_of(response: Any) -> str | None:
    """The new post's id in ClassDojo's answer to a story post (``_id`` or ``id``, at the top or in ``post``)."""
    for where in (response, response.get("post") if isinstance(response, dict) else None):
        if isinstance(where, dict):
            found = next((where[k] for k in _ID_KEYS if isinstance(where.get(k), str) and where[k]), None)
            if found:
                return found
    return None


@dataclass(frozen=True)
class ThreadState:
    started_by: StartedBy | None
    parent_wrote_at: datetime | None
    nobody_waiting: bool


# Query parameters that page through a thread: such an answer is not its latest messages.
_PAGING = ("before", "after", "page", "cursor", "until", "since", "skip", "offset")


def pages_back(query: dict[str, Any]) -> bool:
    """Whether a thread read asks for a page other than the latest (so who is waiting cannot be told)."""
    return any(k.lower() in _PAGING for k in query)


def thread_state(doc: Any) -> ThreadState:
    """Who started a thread and whether a parent is waiting, from ClassDojo's answer listing its messages.

    Messages are put in time order when every one has a time (else taken in
    the order listed, oldest first). ``started_by`` is told only when the
    answer shows no other page (``_links.next``/``prev``): on one page of many,
    the first message listed need not be the thread's first. A parent is
    waiting when they wrote after the school's last message; a message whose
    sender is neither plainly a parent nor a teacher after it leaves it
    unknown (not "nobody waiting").
    """
    messages = messages_of(doc)
    if messages and all(m.at is not None for m in messages):
        messages = sorted(messages, key=lambda m: m.at)
    links = doc.get("_links") if isinstance(doc, dict) else None
    paged = isinstance(links, dict) and any(links.get(k) for k in ("next", "prev", "previous"))
    started = None
    if messages and not paged:
        started = {PARENT: StartedBy.PARENT, TEACHER: StartedBy.TEACHER}.get(messages[0].sender)
    last_teacher = max((i for i, m in enumerate(messages) if m.sender == TEACHER), default=-1)
    after = messages[last_teacher + 1:]
    if not after:
        return ThreadState(started, None, True)
    if any(m.sender != PARENT for m in after):
        return ThreadState(started, None, False)
    times = [m.at for m in after if m.at is not None]
    return ThreadState(started, max(times) if len(times) == len(after) else None, False)


class Threads(_Bounded):
    """Thread id -> what its last read showed (``ThreadState``): no text, no names, no message ids."""

    def __init__(self, limit: int = 20_000):
        super().__init__(limit)

    def learn(self, thread_id: str, doc: Any) -> ThreadState | None:
        if not thread_id:
            return None
        state = thread_state(doc)
        self.put(thread_id, state)
        return state

    def answered(self, thread_id: str | None) -> None:
        """The teacher's message went to a thread read before: the school wrote last, nobody is waiting."""
        known = self.get(thread_id)
        if known is not None:
            self.put(thread_id, ThreadState(known.started_by, None, True))

    def reply(self, thread_id: str | None) -> Reply | None:
        if not thread_id:
            return None
        known: ThreadState | None = self.get(thread_id)
        if known is None:
            return Reply(thread_id=thread_id)
        return Reply(thread_id=thread_id, started_by=known.started_by, parent_wrote_at=known.parent_wrote_at,
                     nobody_waiting=known.nobody_waiting)
