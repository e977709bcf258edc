"""How the day is shown: a table a person can read as it fills in, or JSON lines for scripts."""

from __future__ import annotations

import json
import textwrap
from typing import IO

import click

from dojoguard.demo.day import StepResult

COLOURS = {"allow": "green", "warn": "yellow", "redact": "cyan", "defer": "magenta", "hold": "magenta",
           "block": "red"}
COLUMNS = (("#", 2), ("time", 5), ("what happened", 46), ("verdict", 7), ("reached ClassDojo", 17), ("rules", 0))


def _cells(values: list[str]) -> str:
    return "  ".join(v.ljust(width) for v, (_, width) in zip(values, COLUMNS, strict=True)).rstrip()


class Table:
    def __init__(self, out: IO[str]):
        self.out = out

    def header(self) -> None:
        click.echo(_cells([name for name, _ in COLUMNS]), file=self.out)
        click.echo(_cells(["-" * (width or len(name)) for name, width in COLUMNS]), file=self.out)

    def row(self, step: StepResult) -> None:
        verdict = step.verdict or "-"
        reached = "-" if step.reached_classdojo is None else ("yes" if step.reached_classdojo else "no")
        line = _cells([str(step.number), step.time, step.title[:46], verdict, reached,
                       ", ".join(step.rules) or "-"])
        if step.verdict in COLOURS:
            line = line.replace(f"  {verdict}", "  " + click.style(verdict, fg=COLOURS[verdict], bold=True), 1)
        click.echo(line, file=self.out)
        indent = " " * 9
        details = []
        if step.decision_id:
            details.append(f"decision {step.decision_id}")
        if step.exemptions_used:
            details.append("exemption used: " + ", ".join(step.exemptions_used))
        if step.note:
            details.append(step.note)
        if details:
            click.echo(indent + "; ".join(details), file=self.out)
        if step.notice:
            for text in textwrap.wrap(f"teacher sees: {step.notice}", 100 - len(indent)):
                click.echo(indent + click.style(text, dim=True), file=self.out)

    def footer(self, report: str, folder: str | None) -> None:
        click.echo("", file=self.out)
        click.echo(f"Leaders' report: {report}", file=self.out)
        if folder:
            click.echo(f"Demo data (settings, audit log, registry, proxy CA) kept in: {folder}", file=self.out)


class JsonLines:
    def __init__(self, out: IO[str]):
        self.out = out

    def header(self) -> None:
        pass

    def row(self, step: StepResult) -> None:
        click.echo(json.dumps(step.to_dict(), ensure_ascii=False), file=self.out)

    def footer(self, report: str, folder: str | None) -> None:
        click.echo(json.dumps({"report": report, "kept": folder}), file=self.out)
