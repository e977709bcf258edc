"""Turning JSON Schema errors into problems people can fix: file:line:column, a code, a hint.

Every YAML file IT staff edit (settings, rules, calendars, exemptions, rule
tests, the endpoint catalogue) is checked against a JSON Schema, and every
one explains the same mistake the same way, here. jsonschema reports what is
wrong in schema terms ("'yes' is not of type 'boolean'"); the people editing
the file need to know where, and what to write instead. Unknown keys and
misspelt values get a "did you mean"; a missing key names everything
required there; the classic YAML traps (yes/no, unquoted times) get a hint of
their own; a schema may add an ``x-hint`` beside any keyword to explain its
pattern or limit.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from dojoguard.yamlfile import Located, Problem


@dataclass(frozen=True)
class SchemaCodes:
    """The codes a kind of file reports its structural problems under (a file may use one code for several)."""

    unknown_key: str
    missing_key: str
    type: str
    value: str


@cache
def validator(package: str, name: str) -> jsonschema.Draft202012Validator:
    """The validator for a schema shipped in ``package`` (read and compiled once)."""
    # The shipped schemas are checked against the meta-schema by the tests, not
    # here: doing it at start-up costs more than loading the whole policy.
    schema = json.loads(resources.files(package).joinpath(name).read_text("utf-8"))
    return jsonschema.Draft202012Validator(schema)


def check(located: Located, schema: jsonschema.Draft202012Validator, codes: SchemaCodes, *,
          replaced: Mapping[tuple, str] | None = None) -> list[Problem]:
    """Every schema problem of ``located.data``, each pointing at the line to fix, in file order.

    ``replaced`` maps the path of a key that was retired to what to write
    instead; such a key is reported as replaced rather than unknown.
    """
    problems: list[Problem] = []
    seen: set[tuple] = set()
    errors = [_narrow(e) for e in schema.iter_errors(located.data)]
    # One mistake, one error: a required key missing only because it is misspelt
    # is reported once, as the misspelt key (with its "did you mean").
    misspelt = _misspelt_required(errors)
    for error in errors:
        for problem in explain(located, error, codes, replaced=replaced, misspelt=misspelt):
            key = (problem.line, problem.column, problem.code, problem.message)
            if key not in seen:
                seen.add(key)
                problems.append(problem)
    return sorted(problems, key=lambda p: (p.line, p.column))


def broken_parts(data: Any, schema: jsonschema.Draft202012Validator) -> frozenset[tuple]:
    """The paths of the parts of ``data`` the schema refuses, so that a reader can build the rest.

    A part is the value at the error's path, except that an unknown key, a
    missing key and a refused name are parts of their own (``P + (key,)``):
    a misspelt key breaks the item it is in, not its neighbours. Errors are
    taken as jsonschema gives them (an ``anyOf`` that failed breaks the whole
    value, not only the branch the message names).
    """
    parts = set()
    for error in schema.iter_errors(data):
        path = tuple(error.absolute_path)
        if "propertyNames" in error.absolute_schema_path:
            parts.add(path + (error.instance,))
        elif error.validator == "additionalProperties" and isinstance(error.instance, dict) \
                and isinstance(error.schema, dict):
            parts.update(path + (k,) for k in _extra_keys(error.instance, error.schema))
        elif error.validator == "required" and isinstance(error.instance, dict):
            parts.update(path + (k,) for k in error.validator_value if k not in error.instance)
        else:
            parts.add(path)
    return frozenset(parts)


def sound(broken: frozenset[tuple] | set[tuple], path: tuple) -> bool:
    """Whether the part at ``path`` is clear of every broken part: none inside it, and none above it."""
    return not any(b[:len(path)] == path or path[:len(b)] == b for b in broken)


def explain(located: Located, error: ValidationError, codes: SchemaCodes, *,
            replaced: Mapping[tuple, str] | None = None, misspelt: frozenset | set = frozenset()) -> list[Problem]:
    """The problems one jsonschema error stands for (one per unknown or missing key), with hints."""
    error = _narrow(error)
    path = tuple(error.absolute_path)
    where = dotted(path, located.data)
    kind = error.validator
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        return [_unknown_key(located, path, key, error.schema, codes, replaced or {})
                for key in _extra_keys(error.instance, error.schema)]
    if kind == "required" and isinstance(error.instance, dict):
        required = list(error.validator_value)
        others = f" (required here: {', '.join(required)})" if len(required) > 1 else ""
        return [located.problem(path, codes.missing_key, f"{where}: the key {k!r} is missing",
                                f"Add `{k}:` here{others}.", key=True)
                for k in required if k not in error.instance and (path, k) not in misspelt]
    x_hint = error.schema.get("x-hint", "")
    if kind == "type":
        hint = " ".join(filter(None, [_type_hint(error), x_hint]))
        return [located.problem(path, codes.type, f"{where}: {_shown(error.instance)} is not {_types(error)}",
                                hint)]
    if kind == "pattern":
        hint = x_hint or f"It must match the pattern {error.validator_value}."
        return [located.problem(path, codes.value, f"{where}: {_shown(error.instance)} is not in the expected form",
                                hint)]
    if kind == "enum":
        allowed = [str(v) for v in error.validator_value]
        # Only when the value differs from an allowed one by capitals alone is that worth saying.
        capitals = next((a for a in allowed if a.casefold() == str(error.instance).casefold()), None)
        hint = " ".join(filter(None, [f"Write {capitals!r}: values are written exactly, capitals included."
                                      if capitals else did_you_mean(str(error.instance), allowed),
                                      f"Allowed: {', '.join(allowed)}.", x_hint]))
        return [located.problem(path, codes.value, f"{where}: {_shown(error.instance)} is not an allowed value",
                                hint)]
    elif kind == "const":
        hint = x_hint or f"Write {error.validator_value!r}."
    else:
        hint = x_hint
    return [located.problem(path, codes.value, f"{where}: {error.message}", hint)]


def _misspelt_required(errors: list[ValidationError]) -> set[tuple]:
    """(path, key) of each required key that is missing because an unknown key beside it is its misspelling."""
    missing: dict[tuple, set] = {}
    extra: dict[tuple, list] = {}
    for error in errors:
        path = tuple(error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            missing.setdefault(path, set()).update(k for k in error.validator_value if k not in error.instance)
        elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
            extra.setdefault(path, []).extend(_extra_keys(error.instance, error.schema))
    found = set()
    for path, keys in missing.items():
        for key in extra.get(path, []):
            close = difflib.get_close_matches(str(key), sorted(keys), n=1, cutoff=0.6)
            if close:
                found.add((path, close[0]))
    return found


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``"Did you mean 'x'?"`` for the closest of ``known`` to a misspelt ``word``, or ``""`` if none is close."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"Did you mean {close[0]!r}?" if close else ""


def dotted(path: Iterable, data: Any = None) -> str:
    """A YAML path as people read it; the document itself is ``(top level)``.

    An item of a list is named by its ``id`` (or ``name``) where it has one,
    as people know it (``rules[late-messages].verdict``), else by position
    (``rules.3.verdict``, counted from 0).
    """
    text = ""
    node = data
    for step in path:
        label = _label(node, step)
        if label is not None:
            text += f"[{label}]"
        else:
            text += f".{step}" if text else str(step)
        node = _child(node, step)
    return text or "(top level)"


def _label(node: Any, step: Any) -> str | None:
    if not isinstance(node, list) or not isinstance(step, int) or not 0 <= step < len(node):
        return None
    item = node[step]
    if isinstance(item, dict):
        for key in ("id", "name"):
            if isinstance(item.get(key), str) and item[key].strip():
                return item[key]
    return None


def _child(node: Any, step: Any) -> Any:
    if isinstance(node, dict):
        return node.get(step)
    if isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
        return node[step]
    return None


def _narrow(error: ValidationError) -> ValidationError:
    # "is not valid under any of the given schemas" helps nobody: descend to
    # the branch whose type the value has (a string for "one or a list"), or
    # else the one that came closest.
    while error.validator in ("anyOf", "oneOf") and error.context:
        wrong_type = {e.schema_path[0] for e in error.context
                      if e.validator == "type" and not e.relative_path}
        fitting = [e for e in error.context if e.schema_path[0] not in wrong_type]
        error = best_match(fitting or error.context)
    return error


def _extra_keys(instance: dict, schema: dict) -> list:
    # The keys additionalProperties refused: named by neither properties nor patternProperties.
    known = schema.get("properties", {})
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    extra = [k for k in instance if k not in known and not any(p.search(str(k)) for p in patterns)]
    return sorted(extra, key=str)


def _unknown_key(located: Located, path: tuple, key: Any, schema: dict, codes: SchemaCodes,
                 replaced: Mapping[tuple, str]) -> Problem:
    here = path + (key,)
    if here in replaced:
        return located.problem(here, codes.unknown_key, f"the key {dotted(here, located.data)!r} was replaced",
                               f"Use {replaced[here]}.", key=True)
    known = sorted(map(str, schema.get("properties", {})))
    hint = did_you_mean(str(key), known) or (f"Known keys here: {', '.join(known)}." if known else "Remove it.")
    return located.problem(here, codes.unknown_key, f"unknown key {key!r} in {dotted(path, located.data)}", hint,
                           key=True)


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _types(error: ValidationError) -> str:
    expected = error.validator_value
    names = {"string": "text", "integer": "a whole number", "number": "a number", "boolean": "true or false",
             "object": "a mapping of keys", "array": "a list", "null": "empty"}
    if isinstance(expected, list):
        return " or ".join(names.get(t, t) for t in expected)
    return names.get(expected, str(expected))


# Words older YAML read as true/false and the hardened reader keeps as text (the "Norway problem").
_YAML11_BOOLEANS = {"yes", "no", "on", "off", "y", "n"}


def _type_hint(error: ValidationError) -> str:
    expected = error.validator_value
    expected = expected if isinstance(expected, list) else [expected]
    value = error.instance
    if "boolean" in expected and isinstance(value, str):
        if value.lower() in _YAML11_BOOLEANS:
            return "Write true or false without quotes: yes, no, on and off are text in dojoguard files."
        return f"Write true or false without quotes ({value!r} is text)."
    if "string" in expected and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'Quote the value: unquoted, {value} is a number.'
    if "string" in expected and isinstance(value, bool):
        return 'Quote the value, e.g. "yes".'
    if ("integer" in expected or "number" in expected) and isinstance(value, str):
        return "Write the number without quotes."
    if "array" in expected and not isinstance(value, list):
        return "Write a list: one `- item` per line, or [a, b]."
    if "object" in expected:
        return "Write `key: value` lines indented under this key."
    if isinstance(value, (list, dict)):
        return "Write a single value here, not a list or `key: value` lines."
    return ""
