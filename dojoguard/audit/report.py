"""What senior leaders read: the audit trail of a period, counted and grouped.

``build_report`` reads the records of the period once and returns a plain
``Report`` value; ``render`` turns it into HTML, CSV or JSON. Everything in it
comes from the audit trail, so it holds no message text or images, and no
names unless the caller passes ``names``: then teachers and classes are shown
by name with their ids beside them (devices and pupils always by id or
pseudonym).
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from collections.abc import Callable
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.audit import verification
from dojoguard.audit.events import EVENTS, HEALTH_EVENTS
from dojoguard.audit.record import format_time, parse_time
from dojoguard.rules.decision import Verdict

VERDICTS = tuple(str(v) for v in Verdict)
STOPPED = ("block", "hold", "defer")
# The rule row of decisions no rule matched (the policy's default decided).
NO_RULE = "(no rule: default)"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# The trend shows this many weeks (Monday to Sunday, local), ending with the period's last week.
TREND_WEEKS = 12
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
# System health flags the school calendar this many days before its last day.
CALENDAR_WARN_DAYS = 30
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
    # Who acted (a leader's approval or rejection, an exemption's revocation), by staff id.
    by: str = ""


class Grant(NamedTuple):
    """One exemption granted in the period, as the grant recorded it, and its revocation if that followed."""

    seq: int
    record_id: str
    at: str  # local time of the grant
    exemption: str
    rules: tuple[str, ...] = ()
    teachers: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    everyone: bool = False
    starts: str = ""  # local time, "YYYY-MM-DD HH:MM", or "" when not recorded
    ends: str = ""
    granted_by: str = ""
    reason: str = ""
    revoked_by: str = ""
    revoked_at: str = ""


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
    exemptions_granted: tuple[Grant, ...]
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
    # Held items still waiting for a leader's decision when the period ended.
    waiting_for_leader: int = 0
    # Each approval and rejection of the period, with who made it (``by``).
    hold_decisions: tuple[Item, ...] = ()
    # Every revocation of an exemption in the period (``by``: who revoked it).
    revocations: tuple[Item, ...] = ()
    # Decisions per week by verdict, oldest first, ending with the week of the period's last day:
    # key is the week's Monday (YYYY-MM-DD); the last week stops at the period's end.
    trend: tuple[Row, ...] = ()
    # Display names of the teachers and classes the report shows, by kind then id (only those known).
    names: dict[str, dict[str, str]] = field(default_factory=lambda: {"teacher": {}, "class": {}})
    # What the policy's scheduled checks found (check.found), in time order.
    checks: tuple[Item, ...] = ()
    # The school calendar's last day, for System health ("" when the report was made without the settings),
    # and whether it has ended, ends within CALENDAR_WARN_DAYS, or is missing.
    calendar_line: str = ""
    calendar_attention: bool = False
    all_items: tuple[Item, ...] = field(default=(), repr=False)

    def name(self, kind: str, key: str) -> str | None:
        """The display name of a teacher or class id, or None when the report was given none."""
        return self.names.get(kind, {}).get(key)

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
            "exemptions": {"granted": [_grant_dict(g) for g in self.exemptions_granted], "used": self.exemptions_used,
                           "revoked": items(self.revocations), "use_by_exemption": rows(self.exemption_use)},
            "consent": {"changes": items(self.consent_changes), "erasures": items(self.erasures)},
            "health": {"counts": self.health, "items": items(self.health_items),
                       "calendar": {"line": self.calendar_line, "needs_attention": self.calendar_attention}},
            "checks": items(self.checks),
            "policy": {"revisions": [r.__dict__ for r in self.revisions], "events": items(self.policy_events),
                       "reviewed": self.policy_reviewed, "review_due": self.review_due,
                       "review_overdue": self.is_review_overdue},
            "holds": {"counts": {r.key: r.total for r in self.hold_outcomes},
                      "waiting_for_a_leader": self.waiting_for_leader, "decisions": items(self.hold_decisions),
                      "by_outcome": rows(self.hold_outcomes), "wait_for_leader": dict(self.hold_wait),
                      "needs_a_person": items(self.needs_person), "looked_back_to": self.holds_since},
            "audit_log": {"intact": self.chain_ok, "records": self.chain_records, "detail": self.chain_detail,
                          "last_checkpoint": self.last_checkpoint},
            "trend": {"weeks": rows(self.trend)},
            "names": {kind: dict(known) for kind, known in self.names.items()},
        }


def period_bounds(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) in UTC for the local days ``first`` to ``last`` inclusive."""
    start = datetime.combine(first, time(0), tz)
    end = datetime.combine(last + timedelta(days=1), time(0), tz)
    return start, end


def configured(config) -> dict[str, Any]:
    """The report's arguments that come from the settings, for every place that builds one."""
    return {"calendar": calendar_file(config),
            "policy_reviewed": config["reports"].get("policy_reviewed"),
            "checkpoint_dir": config.path("audit", "checkpoint_dir"),
            "publish_dir": config.path("audit", "checkpoint_publish_dir"),
            "retention_days": config["audit"]["retention_days"],
            "hold_max_age_days": config["holds"]["max_age_days"]}


def calendar_file(config) -> Path | None:
    """The school calendar the proxy uses: the setting, or the shipped example for the shipped policy."""
    from dojoguard.rules.policy import BUILTIN, builtin_calendar

    path = config.path("rules", "calendar")
    if path is None and str(config["rules"].get("policy")) == BUILTIN:
        return builtin_calendar()
    return path


def calendar_health(calendar: Path | None, now: datetime, tz: ZoneInfo) -> tuple[str, bool]:
    """A line about the school calendar for System health, and whether it needs attention now."""
    from dojoguard.rules.calendar import load_calendar

    if calendar is None:
        return ("No school calendar is set: windows closed on school holidays, INSET days or closures are "
                "closed every day until one is (setting rules.calendar).", True)
    try:
        covers = load_calendar(calendar).covers
    except Exception as exc:  # noqa: BLE001 - any reason it cannot be read is reported, not raised
        return f"The school calendar {Path(calendar).name} cannot be read: {str(exc)[:200]}", True
    if covers is None:
        return f"The school calendar {Path(calendar).name} has no terms.", True
    today = now.astimezone(tz).date()
    last = covers[1]
    if last < today:
        return (f"The school calendar ended on {last:%A %-d %B %Y}: messaging windows that follow it are closed "
                "(or as their outside_calendar says) until next year's terms are added.", True)
    soon = (last - today).days <= CALENDAR_WARN_DAYS
    return (f"The school calendar runs to {last:%A %-d %B %Y}" +
            (f", {(last - today).days} days away: add next year's terms." if soon else "."), soon)


def build_report(log, start: datetime, end: datetime, *, tz: ZoneInfo, now: datetime, label: str | None = None,
                 calendar: Path | None | bool = False,
                 policy_reviewed: str | None = None, checkpoint_dir=None, publish_dir=None,
                 retention_days: int | None = None, hold_max_age_days: int = 7,
                 names: Callable[[str, str], str | None] | None = None) -> Report:
    """Count and group the records written in [start, end); also verify the whole log as ``audit verify`` does.

    The chain, every retention purge (signed, and within ``retention_days``)
    and the newest checkpoints, local and published: a log whose history was
    cut by a forged purge is reported as broken, not as intact.

    Held and queued items are followed further back (``hold_max_age_days``,
    the setting holds.max_age_days, plus ``HOLD_GRACE_DAYS``): an item held
    last week whose send was cut short this week still needs a person.

    ``names(kind, id)``, when given, is asked once for each teacher ("teacher")
    and class ("class") id the report shows, and returns its display name or
    None; the report then shows the name, with the id beside it.
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
        trend = _trend(conn, end, tz)
    hold_fields = holds.summary(log.get, _local(holds_since, tz),
                                known={i.record_id: (i.teacher, i.klass) for i in tally.stopped
                                       if i.verdict != "block"})
    checked = verify_log(log, checkpoint_dir, publish_dir, retention_days, now)
    chain = checked.chain
    chain_detail = integrity_detail(checked)
    latest = checkpoints.files(checkpoint_dir)[-1:] if checkpoint_dir else []
    last_checkpoint = None
    if latest:
        try:
            c = checkpoints.read(latest[0])
            last_checkpoint = f"record {c.seq}, {_local(parse_time(c.written_at), tz)}"
        except checkpoints.CheckpointError as exc:
            last_checkpoint = f"unreadable: {exc}"
    reviewed, due, overdue = _review(policy_reviewed, now, tz)
    # False: not asked (a report of a log alone, without the settings).
    calendar_line, calendar_attention = ("", False) if calendar is False else calendar_health(calendar, now, tz)
    label = label or f"{_local(start, tz)} to {_local(end, tz)}"
    return tally.report(label, _local(start, tz), _local(end, tz), now=now, chain_ok=checked.is_ok,
                        chain_records=chain.records, chain_detail=chain_detail, last_checkpoint=last_checkpoint,
                        reviewed=reviewed, due=due, overdue=overdue, holds=hold_fields, trend=trend,
                        names=_resolve_names(names, tally, hold_fields), calendar_line=calendar_line,
                        calendar_attention=calendar_attention)


# Group keys that stand for "no id": never looked up.
_NO_TEACHER, _NO_CLASS = "(unknown)", "(no class)"


def _resolve_names(names, tally: _Tally, hold_fields: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The display name of each teacher and class id the report shows, asking ``names`` once per id."""
    found: dict[str, dict[str, str]] = {"teacher": {}, "class": {}}
    if names is None:
        return found
    wanted = {"teacher": set(tally.groups["teacher"]), "class": set(tally.groups["class"])}
    for item in (*hold_fields["needs_person"], *hold_fields["hold_decisions"]):
        wanted["teacher"].add(item.teacher)
        wanted["class"].add(item.klass)
    for grant in tally.grants.values():
        wanted["teacher"].update(grant.teachers)
        wanted["class"].update(grant.classes)
    wanted["teacher"] -= {"", _NO_TEACHER}
    wanted["class"] -= {"", _NO_CLASS}
    for kind, ids in wanted.items():
        for key in sorted(ids):
            name = names(kind, key)
            if isinstance(name, str) and name.strip() and name.strip() != key:
                found[kind][key] = name.strip()
    return found


def trend_weeks(end: datetime, tz: ZoneInfo, weeks: int = TREND_WEEKS) -> list[date]:
    """The Mondays of the ``weeks`` weeks ending with the week of the last moment before ``end`` (local)."""
    last_day = (end - timedelta(microseconds=1)).astimezone(tz).date()
    monday = last_day - timedelta(days=last_day.weekday())
    return [monday - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]


def _trend(conn, end: datetime, tz: ZoneInfo) -> list[Row]:
    """Decisions per week by verdict, counted by SQLite in one pass over the weeks' decisions.

    The verdicts are read with json_extract and grouped in SQL, so the twelve
    weeks cost no Python per record (the period's own records are parsed once,
    by the tally).
    """
    mondays = trend_weeks(end, tz)
    bounds = [datetime.combine(day, time(0), tz) for day in mondays]
    bounds.append(min(end, datetime.combine(mondays[-1] + timedelta(days=7), time(0), tz)))
    stamps = [format_time(b) for b in bounds]
    buckets = " ".join(f"WHEN at < ? THEN {i}" for i in range(len(mondays)))
    # "+type": read the weeks through the time index, not every decision through the type index.
    sql = (f"SELECT CASE {buckets} END, json_extract(body, '$.verdict'), COUNT(*) FROM records "
           f"WHERE +type = 'decision' AND at >= ? AND at < ? GROUP BY 1, 2")
    counts: list[Counter] = [Counter() for _ in mondays]
    for week, verdict, n in conn.execute(sql, [*stamps[1:], stamps[0], stamps[-1]]):
        if week is not None:
            counts[week][verdict or ""] += n
    return [Row(day.isoformat(), sum(c.values()), {v: c.get(v, 0) for v in VERDICTS})
            for day, c in zip(mondays, counts, strict=True)]


# The report checks the newest checkpoints of each folder: they pin everything before them.
_CHECKPOINTS_CHECKED = 3


def verify_log(log, checkpoint_dir, publish_dir, retention_days, now: datetime) -> verification.Verification:
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


def integrity_detail(checked: verification.Verification) -> str:
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


def this_week(today: date) -> tuple[date, date]:
    """Monday of ``today``'s week to ``today``."""
    return today - timedelta(days=today.weekday()), today


def last_week(today: date) -> tuple[date, date]:
    """Monday to Sunday of the week before ``today``'s."""
    monday = today - timedelta(days=today.weekday() + 7)
    return monday, monday + timedelta(days=6)


def easter_sunday(year: int) -> date:
    """Easter Sunday in the Gregorian calendar (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 19 * l_) // 433
    month = (h + l_ - 7 * m + 90) // 25
    return date(year, month, (h + l_ - 7 * m + 33 * month + 19) % 32)


def conventional_term(today: date) -> tuple[str, date, date]:
    """The school term ``today`` falls in by UK convention, when no school calendar says otherwise.

    Autumn is September to December, spring January to Easter Sunday, summer
    Easter Monday to the end of July; August belongs to the summer term just
    ended. Returns (name, first day, last day) of the whole term.
    """
    easter = easter_sunday(today.year)
    if today.month >= 9:
        return f"Autumn term {today.year}", date(today.year, 9, 1), date(today.year, 12, 31)
    if today <= easter:
        return f"Spring term {today.year}", date(today.year, 1, 1), easter
    return f"Summer term {today.year}", easter + timedelta(days=1), date(today.year, 7, 31)


def calendar_term(today: date, terms) -> tuple[date, date] | None:
    """The school calendar's term holding ``today`` or, in a holiday, the term just ended.

    None when the calendar does not cover ``today`` (it lists only other years).
    """
    terms = sorted(terms)
    if not terms or today < terms[0][0] or today > terms[-1][1]:
        return None
    started = [t for t in terms if t[0] <= today]
    return started[-1] if started else None


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
        # Exemptions granted in the period, by id (a later grant of the same id replaces the earlier).
        self.grants: dict[str, Grant] = {}
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
        self.groups["class"][f.get("class") or _NO_CLASS][verdict] += 1
        self.groups["teacher"][f.get("teacher") or _NO_TEACHER][verdict] += 1
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
        by = f.get("revoked_by") if type_ == "exemption.revoked" else f.get("by")
        item = Item(seq, record_id, when, type_, teacher=_joined(f.get("teacher")), klass=_joined(f.get("class")),
                    rules=_joined(f.get("rules")), reason=str(f.get("reason") or ""),
                    exemptions=str(f.get("exemption") or "") if type_.startswith("exemption.") else "",
                    details=describe(type_, f, self.tz), by=str(by or ""))
        if type_ in HEALTH_EVENTS:
            self.health[type_] += 1
            self.lists["health"].append(item)
        if type_ == "exemption.granted":
            exemption = str(f.get("exemption") or "")
            self.grants[exemption] = Grant(
                seq, record_id, when, exemption, rules=_ids(f.get("rules")), teachers=_ids(f.get("teacher")),
                classes=_ids(f.get("class")), everyone=f.get("everyone") is True,
                starts=_local_text(f.get("starts"), self.tz), ends=_local_text(f.get("ends"), self.tz),
                granted_by=str(f.get("granted_by") or ""), reason=str(f.get("reason") or ""))
        elif type_ == "exemption.revoked":
            self.lists["revoked"].append(item)
            exemption = str(f.get("exemption") or "")
            grant = self.grants.get(exemption)
            if grant is not None:
                self.grants[exemption] = grant._replace(revoked_by=item.by, revoked_at=when)
        elif type_ == "consent.changed" or type_ == "consent.imported":
            self.lists["consent"].append(item)
        elif type_ == "pupil.erased":
            self.lists["erased"].append(item)
        elif type_ == "check.found":
            self.lists["checks"].append(item)
        if type_.startswith("policy.") or type_ == "proxy.started":
            self.lists["policy"].append(item)
        return item

    def report(self, label, start, end, *, now, chain_ok, chain_records, chain_detail, last_checkpoint,
               reviewed, due, overdue, holds: dict[str, Any] | None = None, trend=(),
               names: dict[str, dict[str, str]] | None = None, calendar_line: str = "",
               calendar_attention: bool = False) -> Report:
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
            exemptions_granted=tuple(self.grants.values()), revocations=tuple(self.lists["revoked"]),
            exemptions_used=sum(self.exemption_use.values()),
            exemption_use=tuple(Row(k, n, {}) for k, n in self.exemption_use.most_common() if n),
            consent_changes=tuple(self.lists["consent"]),
            erasures=tuple(self.lists["erased"]),
            health=health, health_items=tuple(self.lists["health"]),
            revisions=tuple(Revision(r, *v) for r, v in self.revisions.items()),
            policy_events=tuple(self.lists["policy"]),
            policy_reviewed=reviewed, review_due=due, is_review_overdue=overdue,
            chain_ok=chain_ok, chain_records=chain_records, chain_detail=chain_detail,
            last_checkpoint=last_checkpoint, all_items=tuple(self.items), trend=tuple(trend),
            names=names or {"teacher": {}, "class": {}}, checks=tuple(self.lists["checks"]),
            calendar_line=calendar_line, calendar_attention=calendar_attention, **(holds or {}),
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
        # The period's approvals and rejections: (seq, record id, time, event, fields, the item's track).
        self.decisions: list[tuple[int, str, datetime, str, dict, _Track]] = []

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
                self.decisions.append((seq, record_id, when, type_, fields, track))
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

    def summary(self, lookup, since: str, known=None) -> dict[str, Any]:
        """The Report fields of this section; ``lookup(decision_id)`` finds a hold's decision record.

        ``known`` maps decision ids already read (the period's stopped decisions) to
        their (teacher, class), so most items need no lookup.
        """
        outcomes = tuple(Row(outcome, sum(c.values()), {k: c.get(k, 0) for k in HOLD_KINDS})
                         for outcome, c in self.counts.items())
        hours = sorted(w.total_seconds() / 3600 for w in self.waits)
        wait = {"decisions": len(hours),
                "median_hours": round(statistics.median(hours), 1) if hours else None,
                "longest_hours": round(hours[-1], 1) if hours else None}
        known = known or {}

        def whose(track: _Track) -> None:
            """Fill in the item's teacher and class from its decision (hold.created names only the decision)."""
            if (track.teacher and track.klass) or not track.decision_id:
                return
            found = known.get(track.decision_id)
            if found is None:
                record = lookup(track.decision_id)
                if record is None or record.type != "decision":
                    return
                found = (str(record.fields.get("teacher") or ""), str(record.fields.get("class") or ""))
            track.teacher = track.teacher or found[0]
            track.klass = track.klass or found[1]

        listed = [item for hold, track in self.tracks.items() if (item := self._needs(hold, track, whose))]
        listed.sort(key=lambda i: (NEEDS_A_PERSON.index(i.state), i.seq))
        decided = []
        for seq, record_id, when, type_, fields, track in self.decisions[:LIST_LIMIT]:
            whose(track)
            decided.append(Item(seq, record_id, _local(when, self.tz), type_, kind=track.kind, teacher=track.teacher,
                                klass=track.klass, rules=track.rules, reason=_short(str(fields.get("reason") or "")),
                                hold=str(fields.get("hold")), state=type_.split(".", 1)[1],
                                by=str(fields.get("by") or "")))
        waiting = sum(1 for track in self.tracks.values() if self._waiting(track))
        return {"hold_outcomes": outcomes, "hold_wait": wait, "needs_person": tuple(listed), "holds_since": since,
                "hold_decisions": tuple(decided), "waiting_for_leader": waiting}

    @staticmethod
    def _waiting(track: _Track) -> bool:
        """Whether a held item is still waiting for a leader's decision at the end of the period."""
        if track.kind != "hold" or track.decided or track.created_at is None or track.last is None:
            return False
        # Expired, closed or set aside as tampered: no longer waiting (an expired one needs a person).
        return track.last[3].split(".", 1)[1] not in ("expired", "closed", "tampered")

    def _needs(self, hold: str, track: _Track, whose) -> Item | None:
        """The item as listed under "needs a person", or None when its latest step does not need one."""
        seq, record_id, when, type_, fields = track.last
        step = type_.split(".", 1)[1]
        if step in ("uncertain", "failed", "expired"):
            state, since = step, when
        elif step == "created" and track.kind == "hold" and self.as_of - when > HOLD_DECISION_DUE:
            state, since = "waiting", when
        else:
            return None
        whose(track)  # hold.created names only the decision; the decision record says whose it was
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


def _ids(value) -> tuple[str, ...]:
    """A field that names one id or a list of them (or none), as a tuple of ids."""
    return tuple(str(v) for v in _as_list(value) if v not in (None, ""))


def _joined(value) -> str:
    return ", ".join(_ids(value))


def _local_text(value, tz: ZoneInfo) -> str:
    """A stored ISO time as local "YYYY-MM-DD HH:MM"; "" when absent; as stored when it cannot be read."""
    if value in (None, ""):
        return ""
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return _local(at, tz) if at.tzinfo is not None else at.strftime("%Y-%m-%d %H:%M")


def _empty(value) -> bool:
    return value is None or (isinstance(value, (str, list, tuple, dict)) and not value)


def _readable(value) -> str:
    """A field's value for people: lists joined with commas, yes/no for flags, no JSON brackets or nulls."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_readable(v) for v in value if not _empty(v))
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {_readable(v)}" for k, v in sorted(value.items()) if not _empty(v))
    return str(value)


def _plural(n, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def scope(teachers, classes, everyone: bool) -> str:
    """Whom an exemption applies to, in words: "everyone", "teacher t-1", "class 3B", "teachers t-1, t-2"."""
    if everyone:
        return "everyone"
    parts = []
    if teachers:
        parts.append(("teacher " if len(teachers) == 1 else "teachers ") + ", ".join(teachers))
    if classes:
        parts.append(("class " if len(classes) == 1 else "classes ") + ", ".join(classes))
    return " and ".join(parts) or "no one named"


def describe(type_: str, f: dict, tz: ZoneInfo) -> str:
    """An event's fields in a line a leader can read (the CSV's "details" and the report's tables)."""
    describer = _DESCRIBERS.get(type_)
    if describer is not None:
        return _short(describer(f, tz), 300)
    return "; ".join(f"{k.replace('_', ' ')}: {_short(_readable(v))}" for k, v in sorted(f.items())
                     if not _empty(v))


def _person(f: dict) -> str:
    if f.get("pupil"):
        return f"pupil {f['pupil']}"
    if f.get("staff"):
        return f"staff member {f['staff']}"
    return "someone"


def _consent_changed(f: dict, tz) -> str:
    text = (f"{_person(f)}: {f.get('purpose') or 'consent'} changed from {_readable(f.get('from')) or '(none)'} "
            f"to {_readable(f.get('to')) or '(none)'}")
    if f.get("source"):
        text += f"; source: {_readable(f['source'])}"
    if isinstance(f.get("templates_removed"), int) and f["templates_removed"]:
        text += f"; {_plural(f['templates_removed'], 'face template')} deleted"
    return text


def _consent_imported(f: dict, tz) -> str:
    counts = [_plural(f[k], one) for k, one in (("pupils", "pupil"), ("changed", "change")) if isinstance(f.get(k), int)]
    text = f"imported {_readable(f.get('source')) or 'a file'}" + (f": {', '.join(counts)}" if counts else "")
    if isinstance(f.get("conflicts"), int) and f["conflicts"]:
        text += f"; {_plural(f['conflicts'], 'answer')} kept as recorded by hand"
    if isinstance(f.get("accepted"), int) and f["accepted"]:
        text += f"; file taken over hand-recorded answers for {_plural(f['accepted'], 'person', 'people')}"
    return text


def _erased(f: dict, tz) -> str:
    text = f"{_person(f)} erased"
    if isinstance(f.get("templates_removed"), int):
        text += f"; {_plural(f['templates_removed'], 'face template')} deleted"
    if f.get("requested_by"):
        text += f"; requested by {_readable(f['requested_by'])}"
    return text


def _granted(f: dict, tz) -> str:
    text = (f"{f.get('exemption') or 'exemption'}: {_readable(f.get('rules')) or 'no rules'} switched off for "
            f"{scope(_ids(f.get('teacher')), _ids(f.get('class')), f.get('everyone') is True)}")
    starts, ends = _local_text(f.get("starts"), tz), _local_text(f.get("ends"), tz)
    if starts or ends:
        text += f", {starts or '?'} to {ends or '?'}"
    if f.get("granted_by"):
        text += f"; granted by {_readable(f['granted_by'])}"
    if f.get("reason"):
        text += f"; reason: {_readable(f['reason'])}"
    return text


def _revoked(f: dict, tz) -> str:
    return f"{f.get('exemption') or 'exemption'} revoked by {_readable(f.get('revoked_by')) or 'someone unrecorded'}"


def _alert_failed(f: dict, tz) -> str:
    alerts = f.get("alerts")
    counted = _plural(alerts, "alert") if isinstance(alerts, int) else "alerts"
    text = (f"an email to the {_readable(f.get('group')) or 'unknown'} recipient group ({counted}) could not be sent "
            f"after {_plural(f.get('attempts') or 1, 'try', 'tries')}: {_readable(f.get('error'))}")
    next_try = _local_text(f.get("next_try"), tz)
    return text + (f"; tried again from {next_try}" if next_try else "")


def _check_found(f: dict, tz) -> str:
    per = "class" if f.get("per") == "class" else "teacher"
    who = _readable(f.get(per)) or "?"
    comparison = _readable(f.get("comparison")).replace("_", " ")
    return (f"{f.get('check') or 'a scheduled check'}: {per} {who} had {_readable(f.get('count'))} "
            f"({comparison} {_readable(f.get('limit'))}, {_readable(f.get('within'))})")


_DESCRIBERS = {"consent.changed": _consent_changed, "consent.imported": _consent_imported,
               "pupil.erased": _erased, "exemption.granted": _granted, "exemption.revoked": _revoked,
               "alert.failed": _alert_failed, "check.found": _check_found}


def _short(value, width: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[:width - 3] + "..."


def _grant_dict(grant: Grant) -> dict[str, Any]:
    doc = grant._asdict()
    doc["rules"], doc["teachers"], doc["classes"] = list(grant.rules), list(grant.teachers), list(grant.classes)
    return {k: v for k, v in doc.items() if v not in ("", None)}


def _item_dict(item: Item) -> dict[str, Any]:
    doc = item._asdict()
    doc["class"] = doc.pop("klass")
    return {k: v for k, v in doc.items() if v not in ("", None)}
