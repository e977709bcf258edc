"""Hardened YAML reading for every file IT staff edit (config, rules, catalogue).

Why not plain ``yaml.safe_load``:

- It accepts aliases, so a ten-line "billion laughs" file can expand into
  gigabytes. Our files never need anchors, so aliases are refused outright.
- It silently keeps the last of two duplicate keys; a rule edited twice by
  mistake would lose half of itself. Duplicates are errors here.
- YAML 1.1 turns ``17:00`` into the integer 1020 and ``no`` into ``False``
  (the "Norway problem"). This loader resolves only ``true``/``false``,
  ``null``, decimal integers and floats, so times and words stay strings.
- Errors must name ``file:line:column`` so they can be fixed; values keep the
  position they came from (``Located.marks``) for later schema errors too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from dojoguard import yamlsyntax

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 32


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file, in the shape people need to fix it."""

    code: str
    message: str
    file: str
    line: int = 0
    column: int = 0
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        text = f"{where}: {self.code} {self.message}"
        return f"{text}\n  Hint: {self.hint}" if self.hint else text

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "hint": self.hint,
        }


class FileProblems(Exception):
    """Raised with every problem found, never just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class Located:
    """A loaded document and the (line, column) of every value, keyed by its path."""

    data: Any
    file: str
    marks: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    # Where each mapping key itself is written (for "unknown key" errors).
    key_marks: dict[tuple, tuple[int, int]] = field(default_factory=dict)

    def mark(self, path: tuple | list, *, key: bool = False) -> tuple[int, int]:
        """The position of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        if key and path in self.key_marks:
            return self.key_marks[path]
        while path not in self.marks and path:
            path = path[:-1]
        return self.marks.get(path, (1, 1))

    def problem(self, path, code: str, message: str, hint: str = "", *, key: bool = False) -> Problem:
        line, column = self.mark(path, key=key)
        return Problem(code, message, self.file, line, column, hint)


class _StrictResolver(yaml.resolver.BaseResolver):
    pass


# YAML 1.2 core-schema scalars only: no yes/no/on/off booleans, no sexagesimal ints.
_StrictResolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_StrictResolver.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789")
)
_StrictResolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)
_StrictResolver.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)


class _Loader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    yaml.composer.Composer,
    yaml.constructor.SafeConstructor,
    _StrictResolver,
):
    def __init__(self, stream):
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        _StrictResolver.__init__(self)
        self._depth = 0

    def construct_yaml_int(self, node):
        # YAML 1.2: decimal only, so "0800" is 800, never an octal surprise.
        try:
            return int(self.construct_scalar(node).replace("_", ""))
        except ValueError:
            raise _Refused("DG-YAML-NUMBER", "this number is too long", node.start_mark) from None

    def compose_node(self, parent, index):
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise _Refused(
                "DG-YAML-ALIAS",
                "YAML aliases (*name) are not allowed in dojoguard files",
                event.start_mark,
                "Write the value out in full; aliases can expand into huge documents.",
            )
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise _Refused(
                "DG-YAML-ALIAS",
                "YAML anchors (&name) are not allowed in dojoguard files",
                event.start_mark,
                "Remove the anchor and write each value out in full.",
            )
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(
                "DG-YAML-DEPTH",
                f"the document is nested more than {MAX_DEPTH} levels deep",
                event.start_mark,
                "Rule files are shallow; check the indentation.",
            )
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


class _Refused(Exception):
    def __init__(self, code, message, mark, hint=""):
        self.code, self.message, self.mark, self.hint = code, message, mark, hint


def _convert(loader: _Loader, node, path: tuple, marks: dict, file: str, problems: list[Problem],
             key_marks: dict):
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                problems.append(
                    Problem("DG-YAML-KEY", "mapping keys must be plain text", file,
                            key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                )
                continue
            key = loader.construct_object(key_node)
            if key in result:
                problems.append(
                    Problem(
                        "DG-YAML-DUPLICATE",
                        f"duplicate key {key!r}",
                        file,
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                        f"{key!r} is already set at line {key_marks[path + (key,)][0]}; keep one.",
                    )
                )
                continue
            key_marks[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = _convert(loader, value_node, path + (key,), marks, file, problems, key_marks)
        return result
    if isinstance(node, SequenceNode):
        return [
            _convert(loader, item, path + (i,), marks, file, problems, key_marks)
            for i, item in enumerate(node.value)
        ]
    return loader.construct_object(node)


def _tab_problems(text: str, file: str) -> list[Problem]:
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        indent = len(line) - len(line.lstrip(" \t"))
        if "\t" in line[:indent]:
            problems.append(
                Problem(
                    "DG-YAML-TAB",
                    "a tab is used for indentation",
                    file,
                    number,
                    line.index("\t") + 1,
                    "YAML indents with spaces only; replace the tab with spaces.",
                )
            )
    return problems


def parse(text: str | bytes, file: str = "<string>", *, max_bytes: int = MAX_BYTES) -> Located:
    """Parse one YAML document, raising ``FileProblems`` with every problem found."""
    if isinstance(text, bytes):
        if len(text) > max_bytes:
            raise FileProblems([_too_big(file, len(text), max_bytes)])
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FileProblems(
                [Problem("DG-YAML-ENCODING", f"not UTF-8 text (byte {exc.start})", file,
                         hint="Save the file as UTF-8.")]
            ) from None
    if len(text.encode("utf-8")) > max_bytes:
        raise FileProblems([_too_big(file, len(text.encode("utf-8")), max_bytes)])
    tabs = _tab_problems(text, file)
    if tabs:
        raise FileProblems(tabs)
    loader = _Loader(text)
    problems: list[Problem] = []
    marks: dict[tuple, tuple[int, int]] = {}
    key_marks: dict[tuple, tuple[int, int]] = {}
    try:
        node = loader.get_single_node()
        data = None if node is None else _convert(loader, node, (), marks, file, problems, key_marks)
    except RecursionError:
        raise FileProblems([Problem("DG-YAML-DEPTH", "the document is nested too deeply", file)]) from None
    except _Refused as exc:
        raise FileProblems(
            [Problem(exc.code, exc.message, file, exc.mark.line + 1, exc.mark.column + 1, exc.hint)]
        ) from None
    except yaml.MarkedYAMLError as exc:
        plain = yamlsyntax.explain(exc, text)
        raise FileProblems(
            [Problem("DG-YAML-SYNTAX", plain.message, file, plain.line, plain.column, plain.hint)]
        ) from None
    except yaml.YAMLError as exc:
        raise FileProblems([Problem("DG-YAML-SYNTAX", str(exc), file)]) from None
    finally:
        loader.dispose()
    if problems:
        raise FileProblems(problems)
    return Located(data, file, marks, key_marks)


def load(path: str | Path, *, max_bytes: int = MAX_BYTES) -> Located:
    """Read and parse a YAML file, with the size checked before reading it all."""
    path = Path(path)
    name = str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise FileProblems([_too_big(name, size, max_bytes)])
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise FileProblems([Problem("DG-FILE-MISSING", "file not found", name)]) from None
    except IsADirectoryError:
        raise FileProblems([Problem("DG-FILE-MISSING", "is a folder, not a file", name)]) from None
    except PermissionError:
        raise FileProblems(
            [Problem("DG-FILE-UNREADABLE", "permission denied", name,
                     hint="Run as the dojoguard service user, or fix the file's permissions.")]
        ) from None
    return parse(raw, name, max_bytes=max_bytes)


def _too_big(file: str, size: int, limit: int) -> Problem:
    return Problem(
        "DG-YAML-SIZE",
        f"the file is {size:,} bytes; the limit is {limit:,}",
        file,
        hint="Split it into several files, or check that this is the right file.",
    )
