"""Judge one ClassDojo write: recognise it, check its images, ask the rules, record the decision.

No mitmproxy here: a ``Request`` goes in, an ``Outcome`` comes out, so the
whole path can be exercised with plain bytes. Blocking work (SQLite, image
analysis, fetching) never runs on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Callable
from urllib.parse import urlsplit

import structlog

from dojoguard.audit import durability
from dojoguard.audit.thread import AUDIT_THREAD
from dojoguard.holds.dedupe import publication_key
from dojoguard.media import kind_of
from dojoguard.proxy import enforcement, outcomes
from dojoguard.proxy.attachments import FetchError, Seen
from dojoguard.proxy.body import pick, rebuild
from dojoguard.proxy.context import post_id_of
from dojoguard.proxy.body import skeleton as body_skeleton
from dojoguard.proxy.discovery import template
from dojoguard.proxy.recognition import Recognition, Ref, Request, recognise
from dojoguard.proxy.refusal_notices import (NOTICE_CANNOT_REDACT, NOTICE_INCOMPLETE, NOTICE_INTERNAL,
                                             NOTICE_MISDIRECTED, NOTICE_NOT_QUEUED, NOTICE_NOT_RECORDED,
                                             NOTICE_TOO_LARGE, NOTICE_UNKNOWN_WRITE)
from dojoguard.proxy.services import Services
from dojoguard.cookies import session_id
from dojoguard.rules.action import Action, Attachment, AttachmentKind, Channel, ImageFindings, Kind, Points
from dojoguard.rules.decision import Decision, Verdict

log = structlog.get_logger("dojoguard.proxy")

# Bodies larger than this are parsed and hashed in a worker thread, so a 12 MP
# upload never holds the event loop while other teachers wait; small ones are
# cheaper to handle inline than to hand over.
_INLINE_BYTES = 256 * 1024


@dataclass
class Checked:
    """One image and its check, and where it sits in the body (for redaction)."""

    attachment: Attachment
    check: Any = None
    where: tuple | None = None
    data: bytes | None = None
    # Set when a referred attachment could not be analysed at all (the write then fails closed).
    problem: str | None = None


@dataclass
class Outcome:
    action: Action
    decision: Decision
    recognition: Recognition | None = None
    # Set when the forwarded body differs from the one received (blurred faces, GPS removed).
    body: bytes | None = None
    checked: list[Checked] = field(default_factory=list)
    hold_id: str | None = None
    # "hold" or "defer": the kind of the item it is kept as (a retry joins the item already waiting).
    hold_kind: str | None = None
    # The teacher sent it again while it was already queued: same item, not a new one.
    hold_duplicate: bool = False
    request: Request | None = None
    # Whether the decision's record is safe from power loss yet; a forwarded
    # write's answer waits for it (see ``Judge.record``).
    durable: durability.Durability | None = None
    # Outcomes of the teacher's held or queued items that this write tells them (see ``outcomes``),
    # and the words put before a refusal's own to do so.
    notices: list = field(default_factory=list)
    preface: str | None = None


class Judge:
    def __init__(self, services: Services):
        self.services = services
        # Writes refused because the audit log could not be written: (count, first time, error class).
        # Recorded as one audit.write_failed event as soon as the log takes writes again.
        self._unrecorded: tuple[int, str, str] | None = None

    @property
    def clock(self):
        return self.services.clock

    # -- the path of one write ------------------------------------------------

    async def judge(self, request: Request, stored: Callable[[], Any] | None = None) -> Outcome:
        """Decide a write and record the decision; returns what to do with it."""
        s = self.services
        now = self.clock.now()
        if len(request.content) > s.settings.max_write_bytes:
            return await self.too_large(request)
        if len(request.content) > _INLINE_BYTES:
            rec = await asyncio.to_thread(recognise, request, s.catalogue)
        else:
            rec = recognise(request, s.catalogue)
        checked = await self._check_images(rec)
        checked += await self._check_refs(rec)
        action = self._action(request, rec, checked, now)
        history = s.counts.history if s.counts is not None else None
        decision = s.policy.evaluate(action, s.exemptions, history)
        decision = self._floors(decision, action, rec)
        if action.kind is Kind.ATTACHMENT_UPLOAD:
            # Storage publishes nothing: a hold or defer waits on the post that names the upload.
            decision = enforcement.upload_passed(decision)
        if history is not None:
            # Counted at once, before anything awaits: two writes of one teacher at the same moment must not
            # both be judged against the count without the other. (In memory; written to the state file every
            # few seconds. A deferral that later fails to be kept stays counted: a limit comes sooner, not later.)
            s.policy.remember(action, decision, history)
        outcome = Outcome(action, decision, rec, checked=checked, request=request)
        await self._rewrite(outcome)
        if outcome.decision.verdict in (Verdict.HOLD, Verdict.DEFER):
            await self._keep(outcome, stored)
        await outcomes.attach(s, outcome)
        return await self.record(outcome)

    async def too_large(self, request: Request) -> Outcome:
        """A write over ``max_write_body_mb`` cannot be inspected, so it is blocked unread."""
        return await self.refuse_unread(request, "oversized", "proxy.body-too-large",
                                        "write body over max_write_body_mb", NOTICE_TOO_LARGE)

    async def misdirected(self, request: Request, problem: str) -> Outcome:
        """A write whose Host or authority disagrees with where it goes: blocked unread, and recorded.

        Judging it by either name would let the device choose which policy
        applies (a ClassDojo write labelled as another site goes unjudged).
        """
        return await self.refuse_unread(request, "misdirected", "proxy.misdirected", problem, NOTICE_MISDIRECTED)

    async def refuse_unread(self, request: Request, endpoint: str, rule_id: str, reason: str,
                            notice: str) -> Outcome:
        """A write the proxy blocks without reading it (``rule_id`` says why), recorded like any decision."""
        now = self.clock.now()
        decision = enforcement.proxy_block(rule_id, reason, notice,
                                           revision=getattr(self.services.policy, "revision", "unknown"), at=now)
        return await self.record(Outcome(self._bare_action(request, now, endpoint=endpoint), decision,
                                         request=request))

    async def record(self, outcome: Outcome) -> Outcome:
        """Record the decision before anything is forwarded or answered; an audit failure fails closed.

        The record is committed (written to the audit log's write-ahead log)
        before this returns, so every way the write can fail still blocks.
        Making it safe from power loss takes one disk flush: a refusal waits
        for it here; a forwarded write carries it in ``outcome.durable`` and
        the addon holds the app's answer until it is done, so the flush runs
        while ClassDojo answers instead of before the write is sent.
        """
        s = self.services
        try:
            # On the event loop when the log is free (a commit without a flush is well
            # under a millisecond); on the audit thread when it would have to wait.
            record = s.audit.try_append_decision(outcome.action, outcome.decision)
            if record is None:
                record = await AUDIT_THREAD.run(functools.partial(s.audit.append_decision, outcome.action,
                                                                  outcome.decision, durable=False))
        except Exception as exc:  # noqa: BLE001 - any failure to record must block, whatever its type
            return await self._not_recorded(outcome, type(exc).__name__)
        recovered: list[tuple[str, dict]] = []
        if self._unrecorded is not None:
            count, since, error = self._unrecorded
            self._unrecorded = None
            recovered.append(("audit.write_failed", {"failures": count, "since": since, "error": error}))
        last = await self._record_events(outcome, recovered)
        durable = durability.request(s.audit, max(record.seq, last), s.flusher)
        if outcome.decision.verdict.forwards:
            if s.audit.sync_failure is not None:
                # Asking for the flush found the flusher gone (or failed): this record can never
                # be made safe on disk, so the write is not sent.
                return await self._not_recorded(outcome, "AuditSyncFailed")
            outcome.durable = durable
        else:
            problem = await durable.wait()
            if problem is not None:
                log.error("audit.sync_failed", decision_id=outcome.decision.decision_id, error=problem)
        return outcome

    async def _not_recorded(self, outcome: Outcome, error: str) -> Outcome:
        """Block a write whose decision could not be recorded; the failures are recorded once the log is back."""
        s = self.services
        log.error("audit.write_failed", decision_id=outcome.decision.decision_id, error=error)
        count, since, _ = self._unrecorded or (0, outcome.decision.at.isoformat(), "")
        self._unrecorded = (count + 1, since, error)
        if outcome.hold_id and not outcome.hold_duplicate and s.holds is not None:
            await asyncio.to_thread(_discard, s.holds, outcome.hold_id)
        outcome.decision = enforcement.proxy_block("proxy.audit-unavailable", "the audit log could not be "
                                                   "written", NOTICE_NOT_RECORDED,
                                                   revision=outcome.decision.policy_revision,
                                                   at=outcome.decision.at)
        outcome.body = None
        return outcome

    async def fail_closed(self, request: Request, error: BaseException) -> Outcome:
        """The answer when judging itself broke: a block with its own decision id, recorded if possible."""
        return await self.refuse_unread(request, "error", "proxy.internal-error",
                                        f"judging failed: {type(error).__name__}", NOTICE_INTERNAL)

    # -- pieces ---------------------------------------------------------------

    def _bare_action(self, request: Request, now: datetime, *, endpoint: str) -> Action:
        teacher_id, teacher_name = self.services.sessions.teacher(session_id(request.header("cookie")))
        return Action(kind=Kind.UNCLASSIFIED_WRITE, channel=Channel.UNKNOWN, at=now, teacher_id=teacher_id,
                      teacher_name=teacher_name, device_address=request.client_address or None,
                      endpoint=endpoint, problems=("the request could not be inspected",),
                      **self._teacher_context(teacher_id, teacher_name))

    def _teacher_context(self, teacher_id: str | None, teacher_name: str | None) -> dict[str, Any]:
        """The teacher's roles and classes, as far as the settings and ClassDojo's class lists say."""
        s = self.services
        roles = None
        if s.staff is not None and teacher_id:
            # A name in the staff lists is compared only with the name the school imported for this id, never
            # with the ClassDojo profile name (a teacher can rename themselves "Mrs Ann Jones, headteacher" in
            # ClassDojo; the school's records they cannot). Looked up only when some list uses names.
            names = (s.names.imported("teacher", teacher_id),) if s.staff.wants_names else ()
            roles = s.staff.roles_of(teacher_id, *names)
        classes = s.classes.classes_of(teacher_id) if s.classes is not None else None
        return {"teacher_roles": roles, "teacher_classes": classes}

    def _write_context(self, rec: Recognition) -> dict[str, Any]:
        """The class's name, the story a comment is on, the thread a message answers."""
        s = self.services
        # Looked up (a keyed read of the state file) only when some rule names classes; only the name the school
        # imported counts: a class's name in ClassDojo is its teacher's to change ("Reception", to dodge a rule).
        wanted = rec.class_id and getattr(s.policy, "uses_class_names", True)
        context: dict[str, Any] = {"class_name": s.names.imported("class", rec.class_id) if wanted else None}
        if rec.kind is Kind.COMMENT_POST and s.posts is not None:
            context["on_channel"] = s.posts.channel(rec.post_id)
        if rec.kind is Kind.MESSAGE_SEND and s.threads is not None:
            context["reply"] = s.threads.reply(rec.thread_id)
        return context

    def _action(self, request: Request, rec: Recognition, checked: list[Checked], now: datetime) -> Action:
        s = self.services
        teacher_id, teacher_name = s.sessions.teacher(session_id(request.header("cookie")))
        problems = list(rec.problems) + [c.problem for c in checked if c.problem]
        points = None
        # An unclassified write carrying points or a skill is judged as the award it may be.
        if rec.kind is Kind.POINTS_AWARD or rec.points is not None or rec.skill_id is not None:
            value, name = rec.points, None
            if rec.skill_id:
                known = s.skills.lookup(rec.class_id, rec.skill_id)
                if known is not None:
                    # The server may apply the skill's value or the body's: the worse of the two is judged.
                    name, value = known[0], known[1] if value is None else min(known[1], value)
                elif value is None:
                    problems.append("the award names a skill whose point value has not been seen")
            points = Points(value=value, skill=name, skill_id=rec.skill_id)
        return Action(
            kind=rec.kind, channel=rec.channel, at=now, teacher_id=teacher_id, teacher_name=teacher_name,
            device_address=request.client_address or None, class_id=rec.class_id, students=rec.students,
            text=rec.text, text_chars=rec.text_chars, points=points, attachments=tuple(c.attachment for c in checked),
            endpoint=f"{rec.endpoint_label} {request.method} {request.host}",
            problems=tuple(problems),
            **self._teacher_context(teacher_id, teacher_name), **self._write_context(rec),
        )

    async def _check_images(self, rec: Recognition) -> list[Checked]:
        if rec.body is None:
            return []
        out = []
        for slot in rec.body.images:
            attachment, check = await self._analyse(slot.data, slot.content_type, rec.channel, rec.class_id)
            if rec.kind is Kind.ATTACHMENT_UPLOAD and check is not None:
                attachment = replace(attachment, findings=detection_only(check))
            out.append(Checked(attachment, check, slot.where, slot.data))
        return out

    async def _analyse(self, data: bytes, content_type: str | None, channel: Channel,
                       class_id: str | None) -> tuple[Attachment, Any]:
        checker = self.services.checker
        digest = await _sha256(data)
        kind = kind_of(data, content_type) or AttachmentKind.FILE
        if checker is None:
            findings = ImageFindings(error="image checks are not available")
            return Attachment(kind, content_type=content_type, size=len(data), sha256=digest, findings=findings), None
        check = await checker.check(data, channel=str(channel), class_id=class_id, content_type=content_type)
        kind = _kind(getattr(check, "kind", None) or content_type)
        return Attachment(kind, content_type=content_type, size=len(data), sha256=digest,
                          findings=check.findings), check

    async def _check_refs(self, rec: Recognition) -> list[Checked]:
        out = []
        for ref in rec.refs:
            out.append(await self._check_ref(ref, rec))
        return out

    async def _check_ref(self, ref: Ref, rec: Recognition) -> Checked:
        """Findings for an attachment a post names: remembered if they still apply, else fetched and analysed."""
        s = self.services
        seen = s.memory.recall(ref.id, ref.url)
        url = ref.url or (seen.url if seen else None)
        if seen is not None and (seen.applies_to(rec.channel, rec.class_id) or seen.incomplete):
            # An upload whose check could not complete is judged on that: the strictest finding
            # there is (a video is held for a leader). Fetching it again would meet the same bytes,
            # or fail to fetch and turn that hold into a block for a file the proxy did see.
            return Checked(replace(seen.attachment, id=ref.id or seen.attachment.id))
        if not url or s.catalogue.role_of(_host(url)) is None:
            return _unanalysed(ref, "the attachment was never seen by the proxy and cannot be fetched")
        try:
            data, ctype = await asyncio.to_thread(s.fetcher.fetch, url)
        except FetchError as exc:
            return _unanalysed(ref, str(exc))
        attachment, check = await self._analyse(data, ctype, rec.channel, rec.class_id)
        s.memory.remember([k for k in (ref.id, url) if k], Seen(attachment, rec.channel, rec.class_id, url))
        return Checked(replace(attachment, id=ref.id), check)

    def remember_upload(self, outcome: Outcome, response: Any) -> None:
        """After an upload went through, remember its findings under the id and URL ClassDojo gave it."""
        rec = outcome.recognition
        if rec is None or rec.endpoint is None or not outcome.checked or outcome.request is None:
            return
        keys = {}
        for name, locations in rec.endpoint.remember.items():
            for loc in locations:
                value = outcome.request.url if loc == "request:url" else pick(response, loc)
                if isinstance(value, str) and value:
                    keys[name] = value
                    break
        if keys:
            attachment = outcome.checked[0].attachment
            self.services.memory.remember(list(keys.values()),
                                          Seen(replace(attachment, id=keys.get("id")), rec.channel, rec.class_id,
                                               keys.get("url")))

    def remember_answered(self, outcome: Outcome, response: Any) -> None:
        """After a story post or a message went through: the new post's channel, the thread answered."""
        s, rec = self.services, outcome.recognition
        if rec is None or not outcome.decision.verdict.forwards:
            return
        if rec.kind is Kind.STORY_POST and s.posts is not None:
            s.posts.remember(post_id_of(response), rec.channel)
        elif rec.kind is Kind.MESSAGE_SEND and s.threads is not None:
            s.threads.answered(rec.thread_id)

    def _floors(self, decision: Decision, action: Action, rec: Recognition) -> Decision:
        """Proxy-level fail-closed checks laid over the rules' decision (they only ever tighten it)."""
        if action.problems:
            decision = enforcement.tighten(decision, "proxy.incomplete-action", "the request could not be fully "
                                           "read: " + "; ".join(action.problems), NOTICE_INCOMPLETE)
        if rec.endpoint is None and rec.body is not None and rec.body.format == "binary" \
                and not rec.body.texts and not rec.body.images and not action.problems:
            # A write nobody has described, in bytes with no words and no picture in them (UTF-16,
            # compressed, encrypted): the content rules would judge nothing, so it is not sent.
            decision = enforcement.tighten(decision, "proxy.incomplete-action", "the request could not be fully "
                                           "read: an unrecognised write whose body holds no readable text",
                                           NOTICE_INCOMPLETE)
        if rec.endpoint is None and self.services.settings.unknown_writes == "block":
            decision = enforcement.tighten(decision, "proxy.unknown-write", "unknown_writes is block",
                                           NOTICE_UNKNOWN_WRITE)
        return decision

    async def _rewrite(self, outcome: Outcome) -> None:
        """Blur faces (redact) and strip GPS tags in the body that is forwarded."""
        s = self.services
        verdict = outcome.decision.verdict
        if not verdict.forwards or outcome.recognition is None:
            return
        replacements: dict[tuple, bytes] = {}
        for item in outcome.checked:
            findings = item.attachment.findings
            if findings is None:
                continue
            if verdict is Verdict.REDACT and findings.faces_not_permitted + findings.faces_unidentified > 0:
                if item.where is None or item.check is None:
                    outcome.decision = enforcement.tighten(outcome.decision, "proxy.cannot-redact",
                                                           "the photo to redact was uploaded earlier",
                                                           NOTICE_CANNOT_REDACT)
                    return
                replacements[item.where] = await _call(s.checker.redact, item.data, item.check)
            elif findings.gps_present and s.settings.images.get("strip_gps", True) and item.where is not None \
                    and s.checker is not None:
                replacements[item.where] = await _call(s.checker.strip_gps, item.data)
        if replacements:
            outcome.body = rebuild(outcome.recognition.body, replacements)

    async def _keep(self, outcome: Outcome, stored: Callable[[], Any] | None) -> None:
        s = self.services
        kind = str(outcome.decision.verdict)
        if s.holds is None or stored is None:
            outcome.decision = enforcement.tighten(outcome.decision, "proxy.hold-unavailable",
                                                   "the hold store is not available", NOTICE_NOT_QUEUED)
            return
        try:
            request = stored()
            key = publication_key(kind, outcome.action, request, _references(outcome.recognition),
                                  **_parsed_body(outcome.recognition))
            item = await asyncio.to_thread(functools.partial(
                s.holds.keep, kind, request, outcome.decision, outcome.action, outcome.decision.release_at,
                content_key=key))
        except Exception as exc:  # noqa: BLE001 - a request that cannot be kept must not be sent or lost silently
            log.error("hold.keep_failed", decision_id=outcome.decision.decision_id, error=type(exc).__name__)
            outcome.decision = enforcement.tighten(outcome.decision, "proxy.hold-unavailable",
                                                   f"the hold store failed: {type(exc).__name__}", NOTICE_NOT_QUEUED)
            return
        outcome.hold_id = item.id
        outcome.hold_kind = str(item.kind)
        outcome.hold_duplicate = item.is_duplicate
        if kind == "hold" and not item.is_duplicate and outcome.recognition is not None and outcome.recognition.refs:
            await self._keep_previews(item.id, outcome.recognition)

    async def _keep_previews(self, item_id: str, rec: Recognition) -> None:
        """Fetch the uploads a held post names, so the leader deciding on it can see them.

        Best effort: the hold stands without them, and the console then says
        that no preview could be kept. Fetched from ClassDojo's own hosts only
        (as ``_check_ref`` does), off the event loop.
        """
        s = self.services
        found = []
        for ref in rec.refs:
            seen = s.memory.recall(ref.id, ref.url)
            url = ref.url or (seen.url if seen else None)
            if not url or s.catalogue.role_of(_host(url)) is None:
                continue
            try:
                data, content_type = await asyncio.to_thread(s.fetcher.fetch, url)
                found.append((content_type, data))
            except FetchError as exc:
                log.warning("hold.preview_failed", hold=item_id, error=str(exc))
        if found:
            try:
                await asyncio.to_thread(s.holds.keep_previews, item_id, found)
            except Exception as exc:  # noqa: BLE001 - a preview is for viewing; the hold itself is kept
                log.warning("hold.preview_failed", hold=item_id, error=type(exc).__name__)

    async def _record_events(self, outcome: Outcome, events: list[tuple[str, dict]]) -> int:
        """Record the events that go with a decision (committed, synced with it); the last seq, or 0."""
        s, d, rec = self.services, outcome.decision, outcome.recognition
        for exemption in d.exemptions_used:
            events.append(("exemption.used", {"exemption": exemption, "decision_id": d.decision_id,
                                              "rules": [m.rule_id for m in d.exempted]}))
        if outcome.hold_id:
            events.append(_kept(outcome))
        if rec is not None and rec.endpoint is None and outcome.request is not None:
            req = outcome.request
            events.append(("write.unclassified", {"method": req.method, "host": req.host,
                                                  "path": template(req.path)[:300], "verdict": str(d.verdict),
                                                  "decision_id": d.decision_id}))
            skeleton = body_skeleton(rec.body.json) if rec.body is not None and rec.body.format == "json" else None
            try:
                await asyncio.to_thread(s.discovery.record, req.method, req.host, req.path,
                                        req.header("content-type"), skeleton, d.at)
            except Exception as exc:  # noqa: BLE001 - the summary is a convenience; the decision stands
                log.error("discovery.record_failed", error=type(exc).__name__)
        if outcome.notices:
            try:
                events.extend(await asyncio.to_thread(outcomes.told, s, outcome.notices, d.decision_id))
            except Exception as exc:  # noqa: BLE001 - kept, the teacher is told again on their next write
                log.error("teacher.told_failed", error=type(exc).__name__)
        last = 0
        for name, fields in events:
            try:
                written = await AUDIT_THREAD.run(functools.partial(s.audit.append_event, name, fields, durable=False))
                last = max(last, written.seq)
            except Exception as exc:  # noqa: BLE001 - the decision itself is recorded; say this one is not
                log.error("audit.event_failed", audit_event=name, error=type(exc).__name__)
        return last


def _parsed_body(rec: Recognition | None) -> dict[str, Any]:
    """``body=`` for ``publication_key``: the parsed JSON or form, or nothing when the body was not parsed."""
    body = rec.body if rec is not None else None
    if body is None:
        return {}
    if body.format == "json":
        return {"body": body.json}
    if body.fields is not None:
        return {"body": {"fields": body.fields, "documents": body.documents}}
    return {}


def _references(rec: Recognition | None) -> list[str]:
    """The strings a write uses to name its attachments (upload ids, file URLs)."""
    if rec is None:
        return []
    return [value for ref in rec.refs for value in (ref.id, ref.url) if value]


def _kept(outcome: Outcome) -> tuple[str, dict]:
    """The event linking a held or deferred write's decision to its item: created, or joined by a retry."""
    d = outcome.decision
    kind = outcome.hold_kind or str(d.verdict)
    if outcome.hold_duplicate:
        return f"{kind}.joined", {"hold": outcome.hold_id, "decision_id": d.decision_id}
    fields = {"hold": outcome.hold_id, "decision_id": d.decision_id, "rules": list(d.rule_ids)}
    if kind == "defer":
        fields["release_at"] = d.release_at.isoformat() if d.release_at else None
    return f"{kind}.created", fields


def detection_only(check: Any) -> ImageFindings:
    """What an upload's check found, without a consent conclusion.

    An upload publishes nothing: the post that names it later says where it
    goes, and is checked against that audience then. So an upload with faces
    is not "incomplete" merely because its audience is not known yet; a
    failure to read or analyse the picture itself still is.
    """
    f = check.findings
    # Faces were looked for: boxes for a photo; for a video, frames checked (it has no boxes).
    detected = f.error is None or bool(getattr(check, "boxes", ())) or f.frames_checked > 0
    return ImageFindings(faces_found=f.faces_found, frames_checked=f.frames_checked, gps_present=f.gps_present,
                         unreadable=f.unreadable, error=None if detected else f.error)


async def _sha256(data: bytes) -> str:
    if len(data) > _INLINE_BYTES:
        return await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
    return hashlib.sha256(data).hexdigest()


def _unanalysed(ref: Ref, why: str) -> Checked:
    # Unknown contents are treated as the strictest kind: a photo whose check did not complete.
    findings = ImageFindings(error=why)
    return Checked(Attachment(AttachmentKind.PHOTO, id=ref.id, findings=findings),
                   problem=f"an attachment could not be analysed: {why}")


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:  # an unreadable URL names no host, so it is never fetched (and the post fails closed)
        return ""


def _kind(content_type: str | None) -> AttachmentKind:
    if content_type and content_type.startswith("image/"):
        return AttachmentKind.PHOTO
    if content_type and content_type.startswith("video/"):
        return AttachmentKind.VIDEO
    try:
        return AttachmentKind(content_type)
    except ValueError:
        return AttachmentKind.FILE


def _discard(holds, item_id: str) -> None:
    try:
        holds.remove(item_id)
    except Exception:  # noqa: BLE001 - best effort: the item was never acknowledged to the teacher
        log.error("hold.discard_failed", hold=item_id)


async def _call(fn, *args):
    """Run a possibly-blocking image operation off the event loop."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    return await asyncio.to_thread(fn, *args)


def unrecorded_block(services: Services) -> Outcome:
    """The last resort when even recording a failure failed: an unrecorded block (the log says why)."""
    now = services.clock.now()
    decision = enforcement.proxy_block("proxy.internal-error", "judging and recording failed", NOTICE_INTERNAL,
                                       revision=getattr(services.policy, "revision", "unknown"), at=now)
    action = Action(kind=Kind.UNCLASSIFIED_WRITE, channel=Channel.UNKNOWN, at=now, endpoint="error",
                    problems=("the request could not be inspected",))
    return Outcome(action, decision)
