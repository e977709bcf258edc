"""What senior leaders read: the audit trail of a period, counted and grouped.

``build_report`` reads the records of the period once and returns a plain
``Report`` value; ``render`` turns it into HTML, CSV or JSON. Everything in it
comes from the audit trail, so it holds no message text, images or names
either: teachers, classes and devices appear by their ids.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.audit import verification
from dojoguard.audit.events import EVENTS, HEALTH_EVENTS
from dojoguard.audit.record import parse_time
from dojoguard.rules.decision import Verdict

VERDICTS = tuple(str(v) for v in Verdict)
STOPPED = ("block", "hold", "defer")
# The rule row of decisions no rule matched (the policy's default decided).
NO_RULE = "(no rule: default)"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# The HTML lists at most this many stopped items and events; the CSV has all.
LIST_LIMIT = 500

# The steps of a held or queued item. ``defer.created`` is named even while the
# catalogue may not list it yet: a log written by a newer proxy carries it.
HOLD_EVENTS = tuple(sorted({n for n in EVENTS if n.startswith(("hold.", "defer."))}
                           | {"hold.created", "defer.created"}))
# What the "Held and queued items" section counts, in the order it shows them.
HOLD_OUTCOMES = ("held", "queued", "approved", "rejected", "released", "failed", "expired", "uncertain", "closed")
HOLD_KINDS = ("hold", "defer")
# States that need a person, in the order they are listed: an uncertain item may
# already be on ClassDojo, so it is the most urgent to look at.
NEEDS_A_PERSON = ("uncertain", "failed", "expired", "waiting")
# A hold still waiting for a leader after this long is listed as needing one.
HOLD_DECISION_DUE = timedelta(days=1)
# An item needs a person until someone acts, however long ago it failed. The report
# looks for them beyond holds.max_age_days (the longest an item waits before it
# expires) by this much more, so an untouched item stays in four more weekly
# reports; `held list --failed` lists every one, however old.
HOLD_GRACE_DAYS = 28
# Item ids are 12 hex characters; anything else read from the log is not offered
# as a command to paste into a shell.
_SAFE_HOLD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class Row:
    """One group (a rule, class or teacher) with its count per verdict."""

    key: str
    total: int
    verdicts: dict[str, int]


class Item(NamedTuple):
    """One record listed in the report, flattened for tables and CSV.

    A named tuple rather than a dataclass: a year's report makes a quarter of
    a million of them, and tuples are built several times faster.
    """

    seq: int
    record_id: str
    at: str  # local time, "YYYY-MM-DD HH:MM"
    type: str
    verdict: str = ""
    kind: str = ""
    channel: str = ""
    teacher: str = ""
    klass: str = ""
    device: str = ""
    rules: str = ""
    reason: str = ""
    exemptions: str = ""
    pupils: int = 0
    faces_found: int = 0
    faces_not_permitted: int = 0
    details: str = ""
    # Held and queued items only: the item's id, its state and the command(s) that act on it.
    hold: str = ""
    state: str = ""
    command: str = ""


@dataclass(frozen=True)
class Revision:
    revision: str
    first_seen: str
    last_seen: str
    decisions: int


@dataclass(frozen=True)
class Report:
    # The period as shown to readers (local), e.g. "23 November 2026 to 27 November 2026".
    period: str
    period_start: str
    period_end: str
    timezone: str
    generated_at: str
    decisions: int
    by_verdict: dict[str, int]
    by_rule: tuple[Row, ...]
    by_class: tuple[Row, ...]
    by_teacher: tuple[Row, ...]
    # [weekday][hour] counts of decisions that were not simply allowed.
    heatmap: tuple[tuple[int, ...], ...]
    stopped: tuple[Item, ...]
    exemptions_granted: tuple[Item, ...]
    exemptions_used: int
    exemption_use: tuple[Row, ...]
    consent_changes: tuple[Item, ...]
    erasures: tuple[Item, ...]
    health: dict[str, int]
    health_items: tuple[Item, ...]
    revisions: tuple[Revision, ...]
    policy_events: tuple[Item, ...]
    policy_reviewed: str | None
    review_due: str | None
    is_review_overdue: bool
    chain_ok: bool
    chain_records: int
    chain_detail: str
    last_checkpoint: str | None
    # Held and queued items: one row per outcome, split by kind (hold, defer).
    hold_outcomes: tuple[Row, ...] = ()
    # How long holds decided in the period waited for a leader: decisions, median and longest hours.
    hold_wait: dict[str, Any] = field(default_factory=lambda: {"decisions": 0, "median_hours": None,
                                                               "longest_hours": None})
    # Items whose latest step needs a person (uncertain first), from records back to ``holds_since``.
    needs_person: tuple[Item, ...] = ()
    holds_since: str = ""
    all_items: tuple[Item, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        def rows(rs):
            return [{"key": r.key, "total": r.total, "verdicts": r.verdicts} for r in rs]

        def items(its):
            return [_item_dict(i) for i in its]

        return {
            "period": {"label": self.period, "start": self.period_start, "end": self.period_end,
                       "timezone": self.timezone},
            "generated_at": self.generated_at,
            "decisions": self.decisions,
            "by_verdict": self.by_verdict,
            "by_rule": rows(self.by_rule), "by_class": rows(self.by_class), "by_teacher": rows(self.by_teacher),
            "heatmap": {"weekdays": list(WEEKDAYS), "hours": list(range(24)),
                        "counts": [list(r) for r in self.heatmap]},
            "stopped": items(self.stopped),
            "exemptions": {"granted": items(self.exemptions_granted), "used": self.exemptions_used,
                           "use_by_exemption": rows(self.exemption_use)},
            "consent": {"changes": items(self.consent_changes), "erasures": items(self.erasures)},
            "health": {"counts": self.health, "items": items(self.health_items)},
            "policy": {"revisions": [r.__dict__ for r in self.revisions], "events": items(self.policy_events),
                       "reviewed": self.policy_reviewed, "review_due": self.review_due,
                       "review_overdue": self.is_review_overdue},
            "holds": {"counts": {r.key: r.total for r in self.hold_outcomes},
                      "by_outcome": rows(self.hold_outcomes), "wait_for_leader": dict(self.hold_wait),
                      "needs_a_person": items(self.needs_person), "looked_back_to": self.holds_since},
            "audit_log": {"intact": self.chain_ok, "records": self.chain_records, "detail": self.chain_detail,
                          "last_checkpoint": self.last_checkpoint},
        }


def period_bounds(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) in UTC for the local days ``first`` to ``last`` inclusive."""
    start = datetime.combine(first, time(0), tz)
    end = datetime.combine(last + timedelta(days=1), time(0), tz)
    return start, end


def build_report(log, start: datetime, end: datetime, *, tz: ZoneInfo, now: datetime, label: str | None = None,
                 policy_reviewed: str | None = None, checkpoint_dir=None, publish_dir=None,
                 retention_days: int | None = None, hold_max_age_days: int = 7) -> Report:
    """Count and group the records written in [start, end); also verify the whole log as ``audit verify`` does.

    The chain, every retention purge (signed, and within ``retention_days``)
    and the newest checkpoints, local and published: a log whose history was
    cut by a forged purge is reported as broken, not as intact.

    Held and queued items are followed further back (``hold_max_age_days``,
    the setting holds.max_age_days, plus ``HOLD_GRACE_DAYS``): an item held
    last week whose send was cut short this week still needs a person.
    """
    if end <= start:
        raise ValueError(f"the period ends ({end:%Y-%m-%d %H:%M}) before it starts ({start:%Y-%m-%d %H:%M})")
    if isinstance(hold_max_age_days, bool) or not isinstance(hold_max_age_days, int) or hold_max_age_days < 0:
        raise ValueError(f"holds.max_age_days must be a whole number of days, not {hold_max_age_days!r}")
    tally = _Tally(tz)
    holds = _Holds(tz, start, end, as_of=min(end, now))
    holds_since = start - timedelta(days=hold_max_age_days + HOLD_GRACE_DAYS)
    with log.snapshot() as conn:
        for row in log.rows(start=start, end=end, conn=conn):
            tally.add(row)
        # Read a second time over the longer look-back, through the type index: hold
        # steps are a few records a day, so this costs milliseconds even for a year.
        for row in log.rows(start=holds_since, end=end, types=HOLD_EVENTS, conn=conn):
            holds.add(row)
    hold_fields = holds.summary(log.get, _local(holds_since, tz))
    checked = _verify(log, checkpoint_dir, publish_dir, retention_days, now)
    chain = checked.chain
    chain_detail = _integrity_detail(checked)
    latest = checkpoints.files(checkpoint_dir)[-1:] if checkpoint_dir else []
    last_checkpoint = None
    if latest:
        try:
            c = checkpoints.read(latest[0])
            last_checkpoint = f"record {c.seq}, {_local(parse_time(c.written_at), tz)}"
        except checkpoints.CheckpointError as exc:
            last_checkpoint = f"unreadable: {exc}"
    reviewed, due, overdue = _review(policy_reviewed, now, tz)
    label = label or f"{_local(start, tz)} to {_local(end, tz)}"
    return tally.report(label, _local(start, tz), _local(end, tz), now=now, chain_ok=checked.is_ok,
                        chain_records=chain.records, chain_detail=chain_detail, last_checkpoint=last_checkpoint,
                        reviewed=reviewed, due=due, overdue=overdue, holds=hold_fields)


# The report checks the newest checkpoints of each folder: they pin everything before them.
_CHECKPOINTS_CHECKED = 3


def _verify(log, checkpoint_dir, publish_dir, retention_days, now: datetime) -> verification.Verification:
    files: list = []
    for folder in (checkpoint_dir, publish_dir):
        if folder is not None and Path(folder).is_dir():
            files += checkpoints.files(folder)[-_CHECKPOINTS_CHECKED:]
    key = None
    exported = Path(checkpoint_dir) / checkpoints.PUBLIC_KEY_NAME if checkpoint_dir else None
    if exported is not None and exported.exists():
        try:
            key = checkpoints.load_public_key(exported)
        except checkpoints.CheckpointError:
            key = None  # every checkpoint and purge then fails to verify, and the report says so
    return verification.verify(log, checkpoint_files=files, public_key=key, retention_days=retention_days, now=now)


def _integrity_detail(checked: verification.Verification) -> str:
    chain = checked.chain
    if not chain.is_intact:
        return f"BROKEN: {chain.first_break}"
    problems = [f"retention purge record {p.seq}: {p.problem}" for p in checked.purges if not p.is_ok]
    problems += [f"checkpoint {Path(c.source).name}: {c.detail}" for c in checked.checkpoints if c.status == "failed"]
    problems += list(checked.problems)
    if problems:
        return "BROKEN: " + "; ".join(problems)
    detail = f"all {chain.records} records verified"
    tail = checked.tail
    if tail is not None and tail.after_seq is not None:
        detail += f"; {tail.records} record(s) after the newest checkpoint (record {tail.after_seq})"
    return detail


def day_label(first: date, last: date) -> str:
    return f"{first:%d %B %Y}" if first == last else f"{first:%d %B %Y} to {last:%d %B %Y}"


def review_due(policy_reviewed: str, tz: ZoneInfo | None = None) -> date:
    """The date the annual review falls due ("This policy will be reviewed annually")."""
    reviewed = date.fromisoformat(policy_reviewed)
    try:
        return reviewed.replace(year=reviewed.year + 1)
    except ValueError:  # 29 February
        return reviewed.replace(year=reviewed.year + 1, day=28)


def _review(policy_reviewed, now, tz):
    if not policy_reviewed:
        return None, None, False
    due = review_due(policy_reviewed)
    return policy_reviewed, due.isoformat(), now.astimezone(tz).date() >= due


def _local(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M")


class _Tally:
    def __init__(self, tz: ZoneInfo):
        self.tz = tz
        self.by_verdict: Counter = Counter()
        self.groups = {"rule": defaultdict(Counter), "class": defaultdict(Counter), "teacher": defaultdict(Counter)}
        self.heat = [[0] * 24 for _ in range(7)]
        self.stopped: list[Item] = []
        self.lists: dict[str, list[Item]] = defaultdict(list)
        self.health: Counter = Counter()
        self.exemption_use: Counter = Counter()
        self.revisions: dict[str, list] = {}
        self.items: list[Item] = []
        self._local_cache: dict[str, tuple[int, int, str, bool]] = {}

    def _when(self, at: str) -> tuple[int, int, str]:
        """(weekday, hour, "YYYY-MM-DD HH:MM") in local time for a stored UTC time.

        Converted once per UTC hour, not per record: a year's report reads a
        quarter of a million records. Zones whose offset is not whole hours
        are converted per minute instead.
        """
        key = at[:13]
        hour = self._local_cache.get(key)
        if hour is None:
            moment = parse_time(at[:13] + ":00:00Z").astimezone(self.tz)
            whole = moment.utcoffset().total_seconds() % 3600 == 0
            hour = (moment.weekday(), moment.hour, moment.strftime("%Y-%m-%d %H"), whole)
            self._local_cache[key] = hour
        if hour[3]:
            return hour[0], hour[1], hour[2] + at[13:16]
        moment = parse_time(at).astimezone(self.tz)
        return moment.weekday(), moment.hour, moment.strftime("%Y-%m-%d %H:%M")

    def add(self, row) -> None:
        seq, record_id, at, type_, body, _prev, _hash = row
        fields = json.loads(body)
        local = self._when(at)
        when = local[2]
        if type_ == "decision":
            item = self._decision(seq, record_id, when, local, fields)
        else:
            item = self._event(seq, record_id, when, type_, fields)
        self.items.append(item)

    def _decision(self, seq, record_id, when, local, f) -> Item:
        verdict = f.get("verdict", "")
        self.by_verdict[verdict] += 1
        # Each rule row counts the verdict that rule gave (a warn-only rule that matched
        # beside a blocking one is counted as a warning, not as a block). Records from
        # before "matched" was written give only the rule ids: the decision's verdict.
        matched = f.get("matched")
        if matched:
            by_rule = self.groups["rule"]
            for m in matched:
                by_rule[m.get("rule") or "(unnamed rule)"][m.get("verdict") or verdict] += 1
        else:
            for rule in f.get("rules") or [NO_RULE]:
                self.groups["rule"][rule][verdict] += 1
        self.groups["class"][f.get("class") or "(no class)"][verdict] += 1
        self.groups["teacher"][f.get("teacher") or "(unknown)"][verdict] += 1
        if verdict != "allow":
            self.heat[local[0]][local[1]] += 1
        # Exemption use is counted from decisions, not from exemption.used
        # events, so a proxy that writes both does not count twice.
        for exemption in f.get("exemptions_used") or ():
            self.exemption_use[exemption] += 1
        revision = f.get("policy_revision", "")
        seen = self.revisions.get(revision)
        if seen is None:
            self.revisions[revision] = [when, when, 1]
        else:
            seen[1] = when
            seen[2] += 1
        counts = f.get("counts") or {}
        item = Item(seq, record_id, when, "decision", verdict=verdict, kind=f.get("kind", ""),
                    channel=f.get("channel", ""), teacher=f.get("teacher") or "", klass=f.get("class") or "",
                    device=f.get("device") or "", rules=", ".join(f.get("rules") or ()),
                    reason=f.get("reason", ""), exemptions=", ".join(f.get("exemptions_used") or ()),
                    pupils=len(f.get("pupils") or ()), faces_found=counts.get("faces_found", 0),
                    faces_not_permitted=counts.get("faces_not_permitted", 0))
        if verdict in STOPPED:
            self.stopped.append(item)
        return item

    def _event(self, seq, record_id, when, type_, f) -> Item:
        details = "; ".join(f"{k}={_short(v)}" for k, v in sorted(f.items()))
        item = Item(seq, record_id, when, type_, teacher=str(f.get("teacher") or ""),
                    klass=str(f.get("class") or ""), rules=", ".join(map(str, _as_list(f.get("rules")))),
                    reason=str(f.get("reason") or ""), details=details)
        if type_ in HEALTH_EVENTS:
            self.health[type_] += 1
            self.lists["health"].append(item)
        if type_ == "exemption.granted":
            self.lists["granted"].append(item)
        elif type_ == "consent.changed" or type_ == "consent.imported":
            self.lists["consent"].append(item)
        elif type_ == "pupil.erased":
            self.lists["erased"].append(item)
        if type_.startswith("policy.") or type_ == "proxy.started":
            self.lists["policy"].append(item)
        return item

    def report(self, label, start, end, *, now, chain_ok, chain_records, chain_detail, last_checkpoint,
               reviewed, due, overdue, holds: dict[str, Any] | None = None) -> Report:
        def rows(groups) -> tuple[Row, ...]:
            out = [Row(key, sum(c.values()), {v: c.get(v, 0) for v in VERDICTS}) for key, c in groups.items()]
            return tuple(sorted(out, key=lambda r: (-r.total, r.key)))

        health = {name: self.health.get(name, 0) for name in sorted(HEALTH_EVENTS)}
        return Report(
            period=label, period_start=start, period_end=end, timezone=str(self.tz),
            generated_at=_local(now, self.tz),
            decisions=sum(self.by_verdict.values()),
            by_verdict={v: self.by_verdict.get(v, 0) for v in VERDICTS},
            by_rule=rows(self.groups["rule"]), by_class=rows(self.groups["class"]),
            by_teacher=rows(self.groups["teacher"]),
            heatmap=tuple(tuple(r) for r in self.heat),
            stopped=tuple(self.stopped),
            exemptions_granted=tuple(self.lists["granted"]),
            exemptions_used=sum(self.exemption_use.values()),
            exemption_use=tuple(Row(k, n, {}) for k, n in self.exemption_use.most_common() if n),
            consent_changes=tuple(self.lists["consent"]),
            erasures=tuple(self.lists["erased"]),
            health=health, health_items=tuple(self.lists["health"]),
            revisions=tuple(Revision(r, *v) for r, v in self.revisions.items()),
            policy_events=tuple(self.lists["policy"]),
            policy_reviewed=reviewed, review_due=due, is_review_overdue=overdue,
            chain_ok=chain_ok, chain_records=chain_records, chain_detail=chain_detail,
            last_checkpoint=last_checkpoint, all_items=tuple(self.items), **(holds or {}),
        )


class _Track:
    """What the log says so far about one held or queued item."""

    __slots__ = ("kind", "teacher", "klass", "rules", "decision_id", "created_at", "approved", "decided", "last")

    def __init__(self) -> None:
        self.kind = ""
        self.teacher = ""
        self.klass = ""
        self.rules = ""
        self.decision_id = ""
        self.created_at: datetime | None = None
        self.approved = False
        self.decided = False
        # The latest step: (seq, record id, time, event, fields).
        self.last: tuple[int, str, datetime, str, dict] | None = None


class _Holds:
    """The "Held and queued items" section: the period's counts, waits for a leader, and what needs a person.

    Fed every hold and deferral record from the look-back start to the end of
    the period, in log order; only records inside the period are counted.
    """

    def __init__(self, tz: ZoneInfo, start: datetime, end: datetime, *, as_of: datetime):
        self.tz = tz
        self.start, self.end, self.as_of = start, end, as_of
        self.counts: dict[str, Counter] = {outcome: Counter() for outcome in HOLD_OUTCOMES}
        self.waits: list[timedelta] = []
        self.tracks: dict[str, _Track] = {}

    def add(self, row) -> None:
        seq, record_id, at, type_, body = row[:5]
        fields = json.loads(body)
        hold = fields.get("hold")
        if not isinstance(hold, str) or not hold:
            return  # not about one item (none is written today); nothing to follow
        prefix, step = type_.split(".", 1)
        track = self.tracks.setdefault(hold, _Track())
        when = parse_time(at)
        if step == "tampered":
            # Set aside and never sent (System health lists it). Its fields are what was
            # found in a row changed by hand, so they do not replace what the log says.
            track.last = (seq, record_id, when, type_, fields)
            return
        kind = fields.get("kind")
        # hold.approved and hold.created name no kind: only holds are approved, and
        # deferred items are created as defer.created.
        track.kind = kind if kind in HOLD_KINDS else track.kind or ("defer" if prefix == "defer" else "hold")
        track.teacher = str(fields.get("teacher_id") or track.teacher)
        track.klass = str(fields.get("class_id") or track.klass)
        track.decision_id = str(fields.get("decision_id") or track.decision_id)
        if step == "created":
            track.created_at = when
            track.rules = ", ".join(map(str, _as_list(fields.get("rules"))))
        elif step == "approved":
            track.approved = True
        if self.start <= when < self.end:
            self._count(track, step, when)
        if step in ("approved", "rejected"):
            track.decided = True
        track.last = (seq, record_id, when, type_, fields)

    def _count(self, track: _Track, step: str, when: datetime) -> None:
        outcome = {"created": "held" if track.kind == "hold" else "queued", "closed": "closed"}.get(step, step)
        if outcome in self.counts:
            self.counts[outcome][track.kind] += 1
        # The wait for a leader: from the hold to its first decision (a queued item
        # rejected by a leader never waited for one).
        if (step in ("approved", "rejected") and track.kind == "hold" and not track.decided
                and track.created_at is not None):
            self.waits.append(when - track.created_at)

    def summary(self, lookup, since: str) -> dict[str, Any]:
        """The Report fields of this section; ``lookup(decision_id)`` finds a hold's decision record."""
        outcomes = tuple(Row(outcome, sum(c.values()), {k: c.get(k, 0) for k in HOLD_KINDS})
                         for outcome, c in self.counts.items())
        hours = sorted(w.total_seconds() / 3600 for w in self.waits)
        wait = {"decisions": len(hours),
                "median_hours": round(statistics.median(hours), 1) if hours else None,
                "longest_hours": round(hours[-1], 1) if hours else None}
        listed = [item for hold, track in self.tracks.items() if (item := self._needs(hold, track, lookup))]
        listed.sort(key=lambda i: (NEEDS_A_PERSON.index(i.state), i.seq))
        return {"hold_outcomes": outcomes, "hold_wait": wait, "needs_person": tuple(listed), "holds_since": since}

    def _needs(self, hold: str, track: _Track, lookup) -> Item | None:
        """The item as listed under "needs a person", or None when its latest step does not need one."""
        seq, record_id, when, type_, fields = track.last
        step = type_.split(".", 1)[1]
        if step in ("uncertain", "failed", "expired"):
            state, since = step, when
        elif step == "created" and track.kind == "hold" and self.as_of - when > HOLD_DECISION_DUE:
            state, since = "waiting", when
        else:
            return None
        if not (track.teacher and track.klass) and track.decision_id:
            # hold.created names only the decision; the decision record says whose it was.
            record = lookup(track.decision_id)
            if record is not None and record.type == "decision":
                track.teacher = track.teacher or str(record.fields.get("teacher") or "")
                track.klass = track.klass or str(record.fields.get("class") or "")
        return Item(seq, record_id, _local(since, self.tz), type_, kind=track.kind, teacher=track.teacher,
                    klass=track.klass, rules=track.rules, reason=self._what(state, fields, since),
                    hold=hold, state=state, command=self._commands(hold, state, track))

    def _what(self, state: str, fields: dict, since: datetime) -> str:
        """What happened, in a line a leader can act on (from the record's own fields)."""
        error = _short(str(fields.get("error") or ""))
        if state == "uncertain":
            began = self._moment(fields.get("sent_at"))
            return (f"uncertain: send began {began}" if began else "uncertain: the send was cut short") + \
                f"; {error or 'no answer'}; it may or may not be on ClassDojo"
        if state == "failed":
            attempts = fields.get("attempts")
            tried = f" after {attempts} attempt(s)" if isinstance(attempts, int) and attempts > 0 else ""
            return f"failed{tried}: {error or 'no reason recorded'}; not sent"
        if state == "expired":
            waiting = self._moment(fields.get("waiting_since"))
            return f"expired: waiting since {waiting}, never sent" if waiting else "expired: never sent"
        waited = self.as_of - since
        age = f"{waited.days} day(s)" if waited.days >= 2 else f"{int(waited.total_seconds() // 3600)} hours"
        return f"waiting for a leader's decision since {self._moment(since)} ({age})"

    def _moment(self, value) -> str:
        """ "08:00 Mon 12 Apr" in local time, or "" for a missing or unreadable time."""
        try:
            at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        except ValueError:
            return ""
        if at.tzinfo is None:
            return ""
        return at.astimezone(self.tz).strftime("%H:%M %a %d %b")

    @staticmethod
    def _commands(hold: str, state: str, track: _Track) -> str:
        """The commands that act on the item, one a line."""
        if not _SAFE_HOLD_ID.fullmatch(hold):
            return "its id holds unexpected characters: find it with dojoguard held list --failed"
        by = '--by "YOUR NAME"'
        if state == "uncertain":
            lines = [f"dojoguard held show {hold}",
                     f"dojoguard held resend {hold} {by}",
                     f'dojoguard held close {hold} --reason "It is on ClassDojo" {by}']
        elif state == "waiting" or (state == "expired" and track.kind == "hold" and not track.approved
                                    and track.created_at is not None):
            lines = [f"dojoguard held show {hold}",
                     f"dojoguard held approve {hold} {by}",
                     f'dojoguard held reject {hold} --reason "WHY" {by}']
        else:
            lines = [f"dojoguard held retry {hold} {by}",
                     f'dojoguard held close {hold} --reason "WHAT YOU FOUND" {by}']
        return "\n".join(lines)


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _short(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def _item_dict(item: Item) -> dict[str, Any]:
    doc = item._asdict()
    doc["class"] = doc.pop("klass")
    return {k: v for k, v in doc.items() if v not in ("", None)}
