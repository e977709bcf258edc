"""YAML syntax errors in plain English: what is wrong, on which line, and what to write.

PyYAML reports syntax errors in parser terms ("while parsing a block mapping
expected <block end>, but found '<block mapping start>'"). The people who
edit dojoguard's files are school IT staff; they need the line to look at
and the usual cause. Each known shape of error is explained here; anything
else still gets its line and column, with the parser's words last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml


@dataclass(frozen=True)
class Explained:
    line: int
    column: int
    message: str
    hint: str


def explain(exc: yaml.MarkedYAMLError, text: str) -> Explained:
    """The plain-English form of a PyYAML syntax error in ``text``."""
    lines = text.splitlines()
    problem = exc.problem or ""
    context = exc.context or ""
    at = exc.problem_mark or exc.context_mark
    line, column = (at.line + 1, at.column + 1) if at else (0, 0)
    opened = (exc.context_mark.line + 1, exc.context_mark.column + 1) if exc.context_mark else (line, column)
    for explainer in (_indentation, _unclosed_quote, _unclosed_bracket, _colon):
        found = explainer(problem, context, lines, (line, column), opened)
        if found is not None:
            return found
    words = " ".join(filter(None, [context, problem]))
    return Explained(line, column, "this is not valid YAML here",
                     f"Check the indentation, colons and quotes on this line and the one above "
                     f"(the YAML parser says: {words}).")


def _text(lines: list[str], line: int) -> str:
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


def _indentation(problem, context, lines, at, opened) -> Explained | None:
    if not problem.startswith("expected <block end>"):
        return None
    line, column = at
    # "-id: a" (no space) is a key named "-id", and the next "- id:" then looks misplaced.
    dashed = next((n for n in range(line - 1, max(opened[0], 1) - 1, -1)
                   if re.match(r"^\s*-[^\s-]", _text(lines, n))), 0)
    if dashed:
        item = _text(lines, dashed).strip()
        return Explained(dashed, _indent(_text(lines, dashed)) + 1, f"{item[:30]!r}: a list item needs a space "
                         "after its dash", f"Write `- {item[1:30]}`.")
    this = _text(lines, line)
    if this.lstrip().startswith("-"):
        what = "this list item (`- ...`)"
    else:
        what = f"`{this.strip().split(':')[0]}:`" if ":" in this else "this line"
    columns = _columns_above(lines, line)
    if not columns:
        return Explained(line, column, f"{what} is indented, but nothing above it is",
                         "Start the file's top-level keys in column 1.")
    # The column it was probably meant to start in: the nearest used above (the deeper one on a tie).
    meant = min(columns, key=lambda c: (abs(c - column), -c))
    return Explained(line, column, f"{what} starts in column {column}, which does not line up with the lines "
                                   "above it",
                     f"Start it in column {meant}, like the keys it belongs with. YAML reads indentation as "
                     "structure: keys of one mapping start in the same column, and so do the `- ` of one list.")


def _columns_above(lines: list[str], line: int) -> set[int]:
    """The columns keys and list dashes start in on the lines above ``line``."""
    columns = set()
    for n in range(1, line):
        text = _text(lines, n)
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        col = _indent(text) + 1
        columns.add(col)
        stripped = text.strip()
        while stripped.startswith("- "):
            col += 2
            stripped = stripped[2:].lstrip()
            columns.add(col)
    return columns


def _unclosed_quote(problem, context, lines, at, opened) -> Explained | None:
    if "quoted scalar" not in context:
        return None
    quote = _text(lines, opened[0])[opened[1] - 1:opened[1]] or '"'
    return Explained(opened[0], opened[1], f"the quote {quote} opened here is never closed",
                     f"End the text with {quote} on the same line. To put {quote} inside the text, "
                     + ("double it ('')." if quote == "'" else 'write \\" (or quote the text with \' instead).'))


def _unclosed_bracket(problem, context, lines, at, opened) -> Explained | None:
    found = re.search(r"flow (mapping|sequence)", context)
    if not found:
        return None
    bracket, closing = ("{", "}") if found.group(1) == "mapping" else ("[", "]")
    example = "{kind: message.send, channel: message}" if bracket == "{" else "[absence, meetings]"
    return Explained(opened[0], opened[1], f"the {bracket} opened here is not closed with {closing}",
                     f"Close it with {closing} on the same line, and separate the items with commas "
                     f"(e.g. {example}).")


def _colon(problem, context, lines, at, opened) -> Explained | None:
    if problem != "mapping values are not allowed here" and "could not find expected ':'" not in problem:
        return None
    line, column = at
    this = _text(lines, line)
    key, sep, value = this.partition(": ")
    if sep and ": " in value:
        return Explained(line, column, "this value contains \": \", which YAML reads as the start of another key",
                         f"Put the value in quotes: {key.strip()}: \"{value.strip()}\".")
    # The parser stops at the first line that looks like a key; the mistake is usually the line before.
    above = next((n for n in range(line - 1, 0, -1) if _text(lines, n).strip()), line)
    previous = _text(lines, above).strip()
    if re.match(r"^-?\s*[\w.-]+:\S", previous):
        name = previous.lstrip("- ").split(":")[0]
        return Explained(above, 1, f"`{name}:` has no space after its colon",
                         f"Write a space after the colon: `{name}: ...`.")
    if previous and ":" not in previous and not previous.startswith("- "):
        return Explained(above, _indent(_text(lines, above)) + 1,
                         f"this line has no colon: {previous[:40]!r}",
                         "Every line of a mapping is `key: value` (with a space after the colon); "
                         "a list item starts with `- `.")
    return Explained(line, column, "a colon here is not where YAML expects one",
                     "Quote a value that contains a colon, and check that this line is indented like "
                     "the keys it belongs with.")
