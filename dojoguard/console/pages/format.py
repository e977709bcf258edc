"""How the pages write times, people, verdicts and charts (Jinja filters and globals)."""

from __future__ import annotations

from datetime import datetime

from markupsafe import Markup, escape

from dojoguard.console.app import console
from dojoguard.console.figures import VERDICTS

VERDICT_WORDS = {"allow": "allowed", "warn": "allowed with a warning", "redact": "changed", "defer": "delayed",
                 "hold": "held for a leader", "block": "blocked"}


def local(at: datetime | str | None, fmt: str = "%a %d %b %Y %H:%M") -> str:
    if at is None or at == "":
        return "-"
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            return at
    return at.astimezone(console().config.timezone).strftime(fmt)


def person(table: dict, kind: str, id_: str | None) -> Markup:
    """A teacher's or class's name with its id beside it in small type; the id alone when no name is known."""
    if not id_:
        return Markup('<span class="muted">unknown</span>')
    name = table.get((kind, id_))
    if name:
        return Markup(f'{escape(name)} <small><code>{escape(id_[:8])}</code></small>')
    return Markup(f"<code>{escape(id_)}</code>")


def bars(series: list[tuple[str, dict[str, int]]], *, width: int = 720, height: int = 220) -> Markup:
    """A stacked bar chart as inline SVG: whole-number axis, one bar per label, one colour per verdict."""
    left, bottom, top = 40, 28, 10
    inner_h = height - bottom - top
    peak = max([sum(v.values()) for _, v in series] + [1])
    step = _nice_step(peak)
    axis_top = ((peak + step - 1) // step) * step
    slot = (width - left - 10) / max(1, len(series))
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}">']
    for tick in range(0, axis_top + 1, step):
        y = top + inner_h - inner_h * tick / axis_top
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}"></line>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:,}</text>')
    for i, (label, counts) in enumerate(series):
        x = left + i * slot + slot * 0.15
        y = top + inner_h
        for verdict in reversed(VERDICTS):
            n = counts.get(verdict, 0)
            if not n:
                continue
            h = inner_h * n / axis_top
            y -= h
            parts.append(f'<rect class="bar-{verdict}" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
                         f'height="{h:.1f}"><title>{escape(label)}: {n:,} {VERDICT_WORDS[verdict]}</title></rect>')
        parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{height - 10}" text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _nice_step(peak: int) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 50000):
        if peak / step <= 5:
            return step
    return 10 ** len(str(peak))


def install(app) -> None:
    app.jinja_env.filters["local"] = local
    app.jinja_env.globals.update(person=person, bars=bars, VERDICTS=VERDICTS, VERDICT_WORDS=VERDICT_WORDS)
