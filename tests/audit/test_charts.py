"""Tests for the report's charts: counts of decisions are whole numbers, and the axes say so."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from dojoguard.audit import charts
from dojoguard.audit.report import VERDICTS, Row


def tick_values(axis) -> list[float]:
    lo, hi = sorted(axis.get_view_interval())
    return [t for t in axis.get_majorticklocs() if lo - 1e-9 <= t <= hi + 1e-9]


def assert_whole(axis) -> None:
    figure = axis.axes.figure
    figure.canvas.draw()
    values = tick_values(axis)
    assert values, "the axis shows no ticks"
    assert all(float(v).is_integer() for v in values), values
    plt.close(figure)


@pytest.mark.parametrize("counts", [{"allow": 0, "block": 1}, {"allow": 3, "warn": 1, "block": 2}])
def test_verdict_bars_count_in_whole_decisions(counts):
    """One block in a week gives ticks 0 and 1, not 0.0, 0.2, ... 1.0."""
    by_verdict = {v: counts.get(v, 0) for v in VERDICTS}
    assert_whole(charts.verdict_figure(by_verdict).axes[0].xaxis)


def test_rule_bars_count_in_whole_decisions():
    rows = [Row("photo-consent", 1, {v: int(v == "block") for v in VERDICTS}),
            Row("points-five-areas", 2, {v: 2 * int(v == "warn") for v in VERDICTS})]
    assert_whole(charts.rule_figure(rows).axes[0].xaxis)


def test_heatmap_scale_counts_in_whole_decisions():
    counts = [[0] * 24 for _ in range(7)]
    counts[0][9] = 1
    figure = charts.heatmap_figure(counts)
    colour_scale = figure.axes[1]
    assert_whole(colour_scale.yaxis)
