"""The scripted school day: what the teacher does, and what dojoguard decided about each thing.

Every verdict shown comes from the proxy's answer (the decision id in the
``X-Dojoguard-Decision`` header) and the audit record of that decision, never
from what the script expects. Whether ClassDojo received the request is read
from the stand-in's own record of what arrived.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from dojoguard.demo import photos, school
from dojoguard.demo.world import DemoError, World, attached_photo, photo_attachment
from dojoguard.proxy.enforcement import DECISION_HEADER
from dojoguard.standin import data

TEACH = "https://teach.classdojo.com"
CLASS = f"{TEACH}/api/dojoClass/{data.CLASS_ID}"
# The head names the teacher as the proxy learned it from ClassDojo's answer at log-in, not by id.
TEACHER_NAME = "Mrs Ex Ample"
STORY = f"{CLASS}/storyFeed"
AWARD = f"{CLASS}/awardBatch"
MESSAGE = f"{TEACH}/api/message-thread/{data.THREAD_ID}/message"
UNKNOWN = f"{TEACH}/api/classPoll/{data.CLASS_ID}"

# What the teacher writes. Made up; the privacy test checks that none of it
# reaches the logs or the audit trail.
TEXT_UPDATE = "Lovely morning in 3B: we planted daffodil bulbs in the school garden and counted the worms we found."
FAIR_MESSAGE = "Reminder: the summer fair starts at 6pm on the field tonight. Cakes for the cake stall to the hall please!"
LONG_PERSONAL = (
    "Dear Mr and Mrs Mensah, thank you for telling me about the family situation at home and about "
    "Grandad, who I know Cy was very close to. I am so sorry. I wanted to let you know how Cy has been in "
    "class this week: quieter than usual, a little tired in the afternoons, but still joining in with "
    "reading and asking brilliant questions in science. We will keep a gentle eye on things and Cy knows "
    "the door is always open. If it would help, Cy can have some quiet time in the library at lunch, and "
    "our learning mentor is around every morning. Please let me know anything that would make this week "
    "easier for Cy, and take care of yourselves too."
)
POLL = {"question": "Which trip should 3B vote for?", "options": ["Zoo", "Museum"]}
EXEMPTION_REASON = "Summer fair: reminders to parents this evening"


@dataclass(frozen=True)
class StepResult:
    """One step of the day as it happened."""

    number: int
    time: str
    title: str
    status: int | None = None
    decision_id: str | None = None
    verdict: str | None = None
    rules: tuple[str, ...] = ()
    exemptions_used: tuple[str, ...] = ()
    notice: str | None = None
    reached_classdojo: bool | None = None
    note: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    # A stable name for scripts (the title is for people and may be reworded).
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.number, "name": self.name, "time": self.time, "title": self.title, "status": self.status,
                "decision_id": self.decision_id, "verdict": self.verdict, "rules": list(self.rules),
                "exemptions_used": list(self.exemptions_used), "notice": self.notice,
                "reached_classdojo": self.reached_classdojo, "note": self.note, **self.facts}


class Day:
    """Plays the day through ``world``; ``steps()`` yields each result as soon as it is known."""

    def __init__(self, world: World):
        self.world = world
        self.number = 0

    @property
    def client(self) -> httpx.Client:
        return self.world.client

    def steps(self) -> Iterator[StepResult]:
        for step in (self.log_in, self.load_class, self.text_update, self.class_photo, self.consent_withdrawn,
                     self.photo_without_consent, self.photo_with_location, self.positive_point,
                     self.needs_work_point, self.long_personal_message, self.evening_message,
                     self.exemption_granted, self.evening_message_exempt, self.unknown_endpoint):
            self.number += 1
            yield replace(step(), name=step.__name__)

    # -- the pieces every write step shares ------------------------------------

    def _clock(self, hour: int, minute: int) -> str:
        return self.world.set_time(hour, minute).strftime("%H:%M")

    def _write(self, when: str, title: str, method: str, url: str, path_part: str, *,
               check: Callable[[httpx.Response], dict] | None = None, **request) -> StepResult:
        before = len(self.world.received(method, path_part))
        response = self.client.request(method, url, **request)
        decision_id = response.headers.get(DECISION_HEADER)
        if decision_id is None:
            raise DemoError(f"{title}: the proxy's answer names no decision (HTTP {response.status_code})")
        record = self.world.record(decision_id)
        if record is None:
            raise DemoError(f"{title}: decision {decision_id} is not in the audit log")
        fields = record.fields
        notice = _notice(response) if response.status_code >= 400 else None
        reached = len(self.world.received(method, path_part)) > before
        facts = check(response) if check else {}
        counts = fields.get("counts", {})
        if counts.get("attachments"):
            facts["faces_found"] = counts.get("faces_found", 0)
            facts["faces_not_permitted"] = counts.get("faces_not_permitted", 0)
        notes = [n for n in (_faces(counts), facts.pop("note", "")) if n]
        return StepResult(self.number, when, title, response.status_code, decision_id, fields.get("verdict"),
                          tuple(fields.get("rules", ())), tuple(fields.get("exemptions_used", ())), notice,
                          reached, "; ".join(notes), facts)

    # -- the day ------------------------------------------------------------

    def log_in(self) -> StepResult:
        when = self._clock(7, 45)
        response = self.client.post(f"{TEACH}/api/session?duration=long",
                                    json={"login": data.TEACHER["emailAddress"], "password": data.PASSWORD})
        if response.status_code != 200:
            raise DemoError(f"logging in to the stand-in failed: HTTP {response.status_code}")
        return StepResult(self.number, when, "Teacher logs in on a school iPad", response.status_code,
                          reached_classdojo=True, note="a login is not judged; the proxy learns the session")

    def load_class(self) -> StepResult:
        when = self._clock(8, 40)
        for url in (f"{TEACH}/api/dojoClass", f"{CLASS}/student", f"{CLASS}/behavior"):
            response = self.client.get(url)
            if response.status_code != 200:
                raise DemoError(f"loading {url} failed: HTTP {response.status_code}")
        self.world.wait_for_roster(len(data.PUPILS))
        # IT confirms the links the registry proposed, as `dojoguard consent links` would list them.
        links = [f"--set={dojo}={mis}" for dojo, (mis, *_) in zip(school.DOJO_IDS, school.PUPILS, strict=True)]
        self.world.dojoguard("consent", "links", *links, f"--class={data.CLASS_ID}={school.CLASS_GROUP}")
        return StepResult(self.number, when, "Opens class 3B: roster and skills", 200, reached_classdojo=True,
                          note=f"roster of {len(data.PUPILS)} learned and linked to the MIS (consent links)")

    def text_update(self) -> StepResult:
        when = self._clock(10, 0)
        return self._write(when, "Text update on Class Story", "POST", STORY, "/storyFeed",
                           json={"body": TEXT_UPDATE})

    def class_photo(self) -> StepResult:
        when = self._clock(10, 15)
        return self._write(when, "Class photo (every pupil has consent)", "POST", STORY, "/storyFeed",
                           json={"body": "Our science corner", "attachments": [photo_attachment(photos.class_photo())]})

    def consent_withdrawn(self) -> StepResult:
        when = self._clock(11, 0)
        seq = self.world.head_seq()
        self.world.dojoguard("consent", "set", school.ENROLLED, "class_story", "refused",
                             "--source", "email to the office", "--by", "office")
        recorded = bool(self.world.events("consent.changed", seq))
        return StepResult(self.number, when, "Office records: Cy's consent withdrawn",
                          note=("dojoguard consent set: " + ("consent.changed recorded" if recorded else "consent.changed NOT recorded")),
                          facts={"consent_change_recorded": recorded})

    def photo_without_consent(self) -> StepResult:
        when = self._clock(11, 30)
        return self._write(when, "Photo showing Cy (no consent now)", "POST", STORY, "/storyFeed",
                           json={"body": "Rocket scientist", "attachments": [photo_attachment(photos.pupil_photo())]})

    def photo_with_location(self) -> StepResult:
        when = self._clock(12, 0)
        sent = photos.field_trip_photo()

        def arrived(response: httpx.Response) -> dict:
            posts = self.world.received("POST", "/storyFeed")
            if response.status_code != 200 or not posts:
                return {"gps_sent": True, "gps_received": None}
            gps = photos.has_gps(attached_photo(posts[-1]))
            return {"gps_sent": photos.has_gps(sent), "gps_received": gps,
                    "note": "ClassDojo received it WITH its GPS tag" if gps else "GPS tag stripped before it left"}

        return self._write(when, "Photo with a GPS location tag", "POST", STORY, "/storyFeed",
                           json={"body": "Launch day on the field", "attachments": [photo_attachment(sent)]},
                           check=arrived)

    def positive_point(self) -> StepResult:
        when = self._clock(13, 30)
        skill = data.BEHAVIORS[0]
        return self._write(when, f"Positive point: {skill['name']}", "POST", AWARD, "/awardBatch",
                           json={"behaviorId": skill["_id"], "studentIds": [data.PUPILS[0]["_id"]]})

    def needs_work_point(self) -> StepResult:
        when = self._clock(13, 35)
        skill = data.BEHAVIORS[2]
        return self._write(when, f"\"Needs work\" point: {skill['name']}", "POST", AWARD, "/awardBatch",
                           json={"behaviorId": skill["_id"], "studentIds": [data.PUPILS[1]["_id"]]})

    def long_personal_message(self) -> StepResult:
        when = self._clock(15, 30)
        return self._write(when, f"Long personal message ({len(LONG_PERSONAL)} characters)", "POST",
                           MESSAGE, "/message", json={"body": LONG_PERSONAL})

    def evening_message(self) -> StepResult:
        when = self._clock(17, 30)
        return self._write(when, "Message to a parent after 17:00", "POST", MESSAGE, "/message",
                           json={"body": FAIR_MESSAGE})

    def exemption_granted(self) -> StepResult:
        when = self._clock(17, 32)
        seq = self.world.head_seq()
        day = self.world.day.isoformat()
        output = self.world.dojoguard("exempt", "grant", "--rule", "messaging-hours",
                                      "--teacher", TEACHER_NAME, "--from", f"{day}T17:00",
                                      "--until", f"{day}T20:00", "--reason", EXEMPTION_REASON,
                                      "--by", "Headteacher")
        # The running proxy notices the changed exemptions file and says so in the audit log.
        reloaded = self.world.wait_for_event("policy.reloaded", seq)
        granted = self.world.events("exemption.granted", seq)
        exemption = granted[-1].fields.get("exemption") if granted else None
        return StepResult(self.number, when, "Head grants a summer fair exemption",
                          note=f"dojoguard exempt grant: exemption {exemption or '?'} for messaging-hours, 17:00-20:00; "
                               f"proxy {'reloaded it' if reloaded else 'has NOT reloaded it'}",
                          facts={"exemption": exemption, "proxy_reloaded": reloaded, "grant_output": output.strip()})

    def evening_message_exempt(self) -> StepResult:
        when = self._clock(17, 40)
        return self._write(when, "Same message, under the exemption", "POST", MESSAGE, "/message",
                           json={"body": FAIR_MESSAGE})

    def unknown_endpoint(self) -> StepResult:
        when = self._clock(17, 45)
        seq = self.world.head_seq()

        def audited(response: httpx.Response) -> dict:
            events = self.world.events("write.unclassified", seq)
            path = events[-1].fields.get("path") if events else None
            return {"unclassified_path": path,
                    "note": f"write.unclassified recorded for {path}" if path else "write.unclassified NOT recorded"}

        return self._write(when, "A feature the catalogue does not know", "POST", UNKNOWN, "/classPoll",
                           json=POLL, check=audited)


def _faces(counts: dict) -> str:
    """What the image check found, as the audit record counts it (never who)."""
    if not counts.get("attachments"):
        return ""
    return (f"photo check: {counts.get('faces_found', 0)} face(s), "
            f"{counts.get('faces_not_permitted', 0)} without consent, "
            f"{'a' if counts.get('gps_present') else 'no'} location tag")


def _notice(response: httpx.Response) -> str | None:
    """The message the app shows the teacher, from a refusal's ClassDojo-shaped error body."""
    try:
        return response.json().get("error", {}).get("fallbackMessage")
    except (ValueError, AttributeError):
        return None
