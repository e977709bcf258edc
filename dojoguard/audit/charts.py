"""The report's charts, drawn with matplotlib and embedded as PNG data URIs.

PNG rather than SVG so that nothing from a rule file or a teacher id can reach
the page as markup: labels are pixels. The file needs no network to open.
"""

from __future__ import annotations

import base64
import io
from datetime import date

import matplotlib

matplotlib.use("Agg")  # no display on a server; must precede pyplot

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

# Colours per verdict, distinguishable for the common colour-vision deficiencies.
VERDICT_COLOURS = {"allow": "#4c9a2a", "warn": "#e0b000", "redact": "#2c7fb8", "defer": "#8c6bb1",
                   "hold": "#e66101", "block": "#b2182b"}
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _whole(axis) -> None:
    """Ticks on whole numbers only: every axis here counts decisions (never "0.5 decisions")."""
    axis.set_major_locator(MaxNLocator(integer=True))


def verdict_bars(by_verdict: dict[str, int]) -> str:
    return _png(verdict_figure(by_verdict))


def verdict_figure(by_verdict: dict[str, int]):
    labels = list(by_verdict)
    values = [by_verdict[v] for v in labels]
    fig, ax = plt.subplots(figsize=(6.4, 2.6))
    bars = ax.barh(labels, values, color=[VERDICT_COLOURS.get(v, "#777") for v in labels])
    ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=3, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("decisions")
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_xlim(0, max(values + [1]) * 1.15)
    _whole(ax.xaxis)
    return fig


def rule_bars(rows, limit: int = 12) -> str:
    """Stopped/changed decisions per rule (the top ``limit``), stacked by verdict."""
    return _png(rule_figure(rows, limit))


def rule_figure(rows, limit: int = 12):
    rows = [r for r in rows if r.total - r.verdicts.get("allow", 0) > 0][:limit]
    fig, ax = plt.subplots(figsize=(6.4, 0.35 * max(len(rows), 3) + 0.8))
    names = [_clip(r.key) for r in rows]
    left = [0] * len(rows)
    for verdict in ("warn", "redact", "defer", "hold", "block"):
        values = [r.verdicts.get(verdict, 0) for r in rows]
        if any(values):
            ax.barh(names, values, left=left, color=VERDICT_COLOURS[verdict], label=verdict)
            left = [a + b for a, b in zip(left, values, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("decisions (allowed ones not shown)")
    ax.spines[["top", "right"]].set_visible(False)
    if rows:
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.text(0.5, 0.5, "no rule stopped or changed anything", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_yticks([])
    _whole(ax.xaxis)
    return fig


def heatmap(counts) -> str:
    """Hour of day by weekday: when the policy had to step in."""
    return _png(heatmap_figure(counts))


def heatmap_figure(counts):
    fig, ax = plt.subplots(figsize=(7.2, 2.8))
    image = ax.imshow(counts, aspect="auto", cmap="Oranges", interpolation="nearest")
    ax.set_yticks(range(7), WEEKDAYS)
    ax.set_xticks(range(0, 24, 2), [f"{h:02d}:00" for h in range(0, 24, 2)], fontsize=7)
    ax.set_xlabel("hour of day (local time)")
    bar = fig.colorbar(image, ax=ax, label="not simply allowed", shrink=0.9)
    _whole(bar.ax.yaxis)
    return fig


def trend(weeks) -> str:
    """Decisions per week, stacked by verdict (``weeks``: rows keyed by each week's Monday)."""
    return _png(trend_figure(weeks))


def trend_figure(weeks):
    fig, ax = plt.subplots(figsize=(7.2, 2.8))
    labels = [_week_label(w.key) for w in weeks]
    bottom = [0] * len(weeks)
    for verdict, colour in VERDICT_COLOURS.items():
        values = [w.verdicts.get(verdict, 0) for w in weeks]
        if any(values):
            ax.bar(labels, values, bottom=bottom, color=colour, label=verdict, width=0.7)
            bottom = [a + b for a, b in zip(bottom, values, strict=True)]
    ax.set_ylabel("decisions")
    ax.set_xlabel("week beginning")
    ax.tick_params(axis="x", labelsize=7, rotation=45)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_ylim(0, max(bottom + [1]) * 1.1)
    _whole(ax.yaxis)
    if any(bottom):
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _week_label(monday: str) -> str:
    """ "2026-11-23" -> "23 Nov"."""
    return f"{date.fromisoformat(monday):%d %b}".lstrip("0")


def _clip(text: str, width: int = 38) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
