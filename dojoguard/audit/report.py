"""What senior leaders read: the audit trail of a period, counted and grouped.

``build_report`` reads the records of the period once and returns a plain
``Report`` value; ``render`` turns it into HTML, CSV or JSON. Everything in it
comes from the audit trail, so it holds no message text, images or names
either: teachers, classes and devices appear by their ids.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.audit import verification
from dojoguard.audit.events import HEALTH_EVENTS
from dojoguard.audit.record import parse_time
from dojoguard.rules.decision import Verdict

VERDICTS = tuple(str(v) for v in Verdict)
STOPPED = ("block", "hold", "defer")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# The HTML lists at most this many stopped items and events; the CSV has all.
LIST_LIMIT = 500


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
                 retention_days: int | None = None) -> Report:
    """Count and group the records written in [start, end); also verify the whole log as ``audit verify`` does.

    The chain, every retention purge (signed, and within ``retention_days``)
    and the newest checkpoints, local and published: a log whose history was
    cut by a forged purge is reported as broken, not as intact.
    """
    if end <= start:
        raise ValueError(f"the period ends ({end:%Y-%m-%d %H:%M}) before it starts ({start:%Y-%m-%d %H:%M})")
    tally = _Tally(tz)
    with log.snapshot() as conn:
        for row in log.rows(start=start, end=end, conn=conn):
            tally.add(row)
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
                        reviewed=reviewed, due=due, overdue=overdue)


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
        for rule in f.get("rules") or ["(no rule: default)"]:
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
               reviewed, due, overdue) -> Report:
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
            last_checkpoint=last_checkpoint, all_items=tuple(self.items),
        )


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
