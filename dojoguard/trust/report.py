"""The trust report: every school's decisions over a period, side by side, from the central store.

It is read with the reader's own database account, so row-level security
decides which schools it covers: a school's leaders get their school, a
trust-wide account every school. The figures are SQL aggregates over the
columns the store derives from each record (``schema``), so a year of a
thirty-school trust (millions of decisions) is read in seconds, not parsed
record by record. Only identifiers and counts appear: the records hold no
message text, no names and no images.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import jinja2

from dojoguard.audit.events import HEALTH_EVENTS
from dojoguard.audit.record import format_time
from dojoguard.rules.decision import Verdict
from dojoguard.trust.central import Central

VERDICTS = [str(v) for v in Verdict]
TOP_RULES = 10


@dataclass
class SchoolFigures:
    school: str
    decisions: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    teachers: int = 0
    rules: list[tuple[str, int]] = field(default_factory=list)
    health: dict[str, int] = field(default_factory=dict)
    nodes: list[dict] = field(default_factory=list)

    @property
    def stepped_in(self) -> int:
        """Decisions that were not a plain allow."""
        return self.decisions - self.verdicts.get("allow", 0)


@dataclass
class TrustReport:
    start: datetime
    end: datetime
    made_at: datetime
    schools: list[SchoolFigures]

    @property
    def decisions(self) -> int:
        return sum(s.decisions for s in self.schools)

    def totals(self) -> dict[str, int]:
        out = {v: 0 for v in VERDICTS}
        for s in self.schools:
            for verdict, n in s.verdicts.items():
                out[verdict] = out.get(verdict, 0) + n
        return out

    def to_json(self) -> str:
        data = {"from": self.start.isoformat(), "to": self.end.isoformat(), "made_at": self.made_at.isoformat(),
                "decisions": self.decisions, "schools": [asdict(s) for s in self.schools]}
        return json.dumps(data, indent=2, default=str) + "\n"


def gather(central: Central, start: datetime, end: datetime, *, school: str | None = None,
           now: datetime | None = None) -> TrustReport:
    """The figures of every school the account may read (or only ``school``) for [start, end)."""
    conn = central.connection
    window = [format_time(start), format_time(end)]
    only = " AND school = %s" if school else ""
    params = window + ([school] if school else [])
    figures: dict[str, SchoolFigures] = {}

    def of(name: str) -> SchoolFigures:
        return figures.setdefault(name, SchoolFigures(name))

    with conn.transaction():
        # One snapshot for every query, so the sections agree with each other.
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for (name,) in conn.execute("SELECT school FROM schools" + (" WHERE school = %s" if school else ""),
                                    [school] if school else None):
            of(name)
        for name, verdict, kind, n in conn.execute(
                "SELECT school, verdict, kind, count(*) FROM records WHERE type = 'decision' AND at >= %s AND "
                f"at < %s{only} GROUP BY 1, 2, 3", params):
            s = of(name)
            s.decisions += n
            s.verdicts[verdict] = s.verdicts.get(verdict, 0) + n
            s.kinds[kind] = s.kinds.get(kind, 0) + n
        for name, n in conn.execute(
                "SELECT school, count(DISTINCT teacher) FROM records WHERE type = 'decision' AND at >= %s AND "
                f"at < %s{only} GROUP BY 1", params):
            of(name).teachers = n
        # Only decisions that stepped in name rules worth counting; they are a small share, parsed here.
        for name, rule, n in conn.execute(
                "SELECT school, rule, count(*) FROM records, jsonb_array_elements_text(body::jsonb -> 'rules') "
                "AS r(rule) WHERE type = 'decision' AND verdict <> 'allow' AND at >= %s AND "
                f"at < %s{only} GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2", params):
            s = of(name)
            if len(s.rules) < TOP_RULES:
                s.rules.append((rule, n))
        for name, type_, n in conn.execute(
                "SELECT school, type, count(*) FROM records WHERE type = ANY(%s) AND at >= %s AND "
                f"at < %s{only} GROUP BY 1, 2", [sorted(HEALTH_EVENTS)] + params):
            of(name).health[type_] = n
        for name, node, last_seq, last_at, shipped_at, covered in conn.execute(
                "SELECT n.school, n.node, n.last_seq, n.last_at, n.shipped_at, "
                "(SELECT max(c.seq) FROM checkpoints c WHERE c.node = n.node) FROM nodes n"
                + (" WHERE n.school = %s" if school else "") + " ORDER BY 1, 2", [school] if school else None):
            of(name).nodes.append({"node": node, "last_seq": last_seq, "last_at": last_at,
                                   "shipped_at": shipped_at.isoformat() if shipped_at else None,
                                   "checkpointed_seq": covered or 0})
    made = now or datetime.now(start.tzinfo)
    return TrustReport(start, end, made, [figures[k] for k in sorted(figures)])


def render_text(report: TrustReport) -> str:
    lines = [f"Trust report {report.start:%Y-%m-%d} to {report.end:%Y-%m-%d}: {report.decisions} decisions, "
             f"{len(report.schools)} schools", ""]
    header = f"{'school':<24}{'decisions':>11}{'teachers':>10}" + "".join(f"{v:>9}" for v in VERDICTS)
    lines.append(header)
    for s in report.schools:
        lines.append(f"{s.school:<24}{s.decisions:>11}{s.teachers:>10}"
                     + "".join(f"{s.verdicts.get(v, 0):>9}" for v in VERDICTS))
    totals = report.totals()
    lines.append(f"{'all schools':<24}{report.decisions:>11}{'':>10}" + "".join(f"{totals[v]:>9}" for v in VERDICTS))
    for s in report.schools:
        lines.append("")
        lines.append(f"{s.school}:")
        if s.rules:
            lines.append("  rules that stepped in most: " + ", ".join(f"{r} ({n})" for r, n in s.rules))
        if s.health:
            lines.append("  system health: " + ", ".join(f"{k} {n}" for k, n in sorted(s.health.items())))
        for n in s.nodes:
            lines.append(f"  proxy {n['node']}: shipped up to record {n['last_seq']} ({n['last_at'] or 'none yet'}), "
                         f"checkpointed up to {n['checkpointed_seq']}")
    return "\n".join(lines) + "\n"


def render_html(report: TrustReport) -> str:
    env = jinja2.Environment(loader=jinja2.PackageLoader("dojoguard.trust", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    return env.get_template("trust-report.html.j2").render(report=report, verdicts=VERDICTS,
                                                           totals=report.totals())


def write(report: TrustReport, path: Path, fmt: str) -> None:
    text = {"html": render_html, "json": TrustReport.to_json, "text": render_text}[fmt](report)
    path.write_text(text, encoding="utf-8")
