"""Turning JSON Schema errors into problems people can fix: file:line:column, a code, a hint.

jsonschema reports what is wrong in schema terms ("'yes' is not of type
'boolean'"); the people editing rule files need to know where, and what to
write instead. Unknown keys get a "did you mean"; the classic YAML traps
(yes/no, unquoted times) get a hint of their own; a schema may add an
``x-hint`` beside any keyword to explain its pattern.
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from dojoguard.rules.codes import SchemaCodes
from dojoguard.yamlfile import Located, Problem


@cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    """The validator for a schema shipped in this package (compiled once)."""
    # The shipped schemas are checked against the meta-schema by the tests, not
    # here: doing it at start-up costs more than loading the whole policy.
    schema = json.loads(resources.files("dojoguard.rules").joinpath(name).read_text("utf-8"))
    return jsonschema.Draft202012Validator(schema)


def check(located: Located, schema_name: str, codes: SchemaCodes) -> list[Problem]:
    """Every schema problem of ``located``, each pointing at the line to fix."""
    problems: list[Problem] = []
    seen: set[tuple] = set()
    for error in validator(schema_name).iter_errors(located.data):
        for problem in _explain(located, _narrow(error), codes):
            key = (problem.line, problem.column, problem.code)
            if key not in seen:
                seen.add(key)
                problems.append(problem)
    return sorted(problems, key=lambda p: (p.line, p.column))


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


def _explain(located: Located, error: ValidationError, codes: SchemaCodes) -> list[Problem]:
    path = tuple(error.absolute_path)
    where = ".".join(map(str, path)) or "(top level)"
    kind = error.validator
    if kind == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(known), key=str)
        return [located.problem(path + (key,), codes.unknown_key, f"unknown key {key!r} in {where}",
                                _did_you_mean(str(key), known), key=True) for key in extra]
    if kind == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return [located.problem(path, codes.missing_key, f"{where}: the key {k!r} is missing",
                                f"Add `{k}:` here.", key=True) for k in missing]
    if kind == "type":
        hint = " ".join(filter(None, [_type_hint(error), error.schema.get("x-hint", "")]))
        return [located.problem(path, codes.type, f"{where}: {_shown(error.instance)} is not {_types(error)}",
                                hint)]
    hint = error.schema.get("x-hint", "")
    if kind == "pattern":
        return [located.problem(path, codes.value, f"{where}: {_shown(error.instance)} is not in the expected form",
                                hint)]
    if kind == "enum":
        allowed = [str(v) for v in error.validator_value]
        close = difflib.get_close_matches(str(error.instance), allowed, n=1, cutoff=0.6)
        hint = (f"Did you mean {close[0]!r}? " if close else "") + "Allowed: " + ", ".join(allowed) + "."
    elif kind == "const":
        hint = hint or f"Write {error.validator_value!r}."
    return [located.problem(path, codes.value, f"{where}: {error.message}", hint)]


def _did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"Did you mean {close[0]!r}?"
    return f"Known keys here: {', '.join(known)}." if known else "Remove it."


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


def _type_hint(error: ValidationError) -> str:
    expected = error.validator_value
    expected = expected if isinstance(expected, list) else [expected]
    value = error.instance
    if "boolean" in expected and isinstance(value, str):
        return f"Write true or false without quotes ({value!r} is text in dojoguard files)."
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
    return ""
