"""One explainer for schema problems: the same mistake gets the same hint in every file IT staff edit."""

from __future__ import annotations

import re

from pathlib import Path

import jsonschema
import pytest

from dojoguard import schemaproblems

from dojoguard import config, yamlfile
from dojoguard.proxy import catalogue
from dojoguard.rules.policy import load_policy
from dojoguard.yamlfile import FileProblems

RULES = """default: {verdict: allow}
rules:
  - id: a
    when: {kind: message.send, incomplete: true}
    verdict: block
    notice: Please use the school office email.
    clause: The policy sentence.
"""
CATALOGUE = """version: 1
hosts:
  - {host: teach.classdojo.com, role: api, confidence: confirmed}
"""
SETTINGS = """timezone: Europe/London
rules:
  reload: true
"""


def _rules(tmp_path: Path, text: str):
    path = tmp_path / "rules.yaml"
    path.write_text(text, "utf-8")
    return load_policy(path)


def _settings(tmp_path: Path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text, "utf-8")
    return config.load(path)


def _catalogue(tmp_path: Path, text: str):
    path = tmp_path / "catalogue.yaml"
    path.write_text(text, "utf-8")
    return catalogue.load(path)


LOADERS = {"rules": (_rules, RULES), "settings": (_settings, SETTINGS), "catalogue": (_catalogue, CATALOGUE)}

# (mistake, file, what is replaced, by what, expected code, line, hint): each mistake made in all three files.
CASES = [
    ("misspelt key", "rules", "    verdict: block", "    verdic: block",
     "DG-RULES-UNKNOWN-KEY", 5, "Did you mean 'verdict'?"),
    ("misspelt key", "settings", "  reload: true", "  reloda: true",
     "DG-CONFIG-UNKNOWN", 3, "Did you mean 'reload'?"),
    ("misspelt key", "catalogue", "hosts:", "hots:",
     "DG-CATALOGUE-UNKNOWN", 2, "Did you mean 'hosts'?"),
    ("yes for true", "rules", "incomplete: true", "incomplete: yes",
     "DG-RULES-TYPE", 4, "Write true or false without quotes: yes, no, on and off are text in dojoguard files."),
    ("yes for true", "settings", "reload: true", "reload: yes",
     "DG-CONFIG-INVALID", 3, "Write true or false without quotes: yes, no, on and off are text in dojoguard files."),
    ("number for text", "rules", "notice: Please use the school office email.", "notice: 1600",
     "DG-RULES-TYPE", 6, "Quote the value: unquoted, 1600 is a number."),
    ("number for text", "settings", "timezone: Europe/London", "data_dir: 1600",
     "DG-CONFIG-INVALID", 1, "Quote the value: unquoted, 1600 is a number."),
    ("one value for a list", "rules", "default: {verdict: allow}",
     'default: {verdict: allow}\nwindows:\n  day: {days: mon, from: "08:00", to: "17:00"}',
     "DG-RULES-TYPE", 3, "Write a list: one `- item` per line, or [a, b]."),
    ("one value for a list", "settings", "reload: true", "reload: true\nproxy:\n  connect_ports: 443",
     "DG-CONFIG-INVALID", 5, "Write a list: one `- item` per line, or [a, b]."),
    ("one value for a list", "catalogue", "hosts:\n  - {host: teach.classdojo.com, role: api, confidence: confirmed}",
     "hosts: teach.classdojo.com", "DG-CATALOGUE-INVALID", 2, "Write a list: one `- item` per line, or [a, b]."),
    ("text for a number", "rules", "incomplete: true", "text_longer_than: '500'",
     "DG-RULES-TYPE", 4, "Write the number without quotes."),
    ("text for a number", "settings", "reload: true", "reload: true\nproxy:\n  max_write_body_mb: '500'",
     "DG-CONFIG-INVALID", 5, "Write the number without quotes."),
    ("missing key", "rules", "    verdict: block\n", "",
     "DG-RULES-MISSING-KEY", 3, "Add `verdict:` here (required here: id, when, verdict, notice, clause)."),
    ("missing key", "settings", "reload: true",
     "reload: true\nconsent:\n  import:\n    generic:\n      consent_columns:\n        - {column: Photos}",
     "DG-CONFIG-INVALID", 8, "Add `purpose:` here (required here: column, purpose)."),
    ("missing key", "catalogue", " role: api,", "",
     "DG-CATALOGUE-INVALID", 3, "Add `role:` here (required here: host, role, confidence)."),
    ("misspelt value", "rules", "verdict: block", "verdict: blok",
     "DG-RULES-VALUE", 5, "Did you mean 'block'? Allowed: allow, warn, redact, defer, hold, block."),
    ("misspelt value", "settings", "reload: true", "reload: true\nproxy:\n  unknown_writes: blok",
     "DG-CONFIG-INVALID", 5, "Did you mean 'block'? Allowed: audit, block."),
    ("misspelt value", "catalogue", "confidence: confirmed", "confidence: confirmd",
     "DG-CATALOGUE-INVALID", 3, "Did you mean 'confirmed'? Allowed: confirmed, old, inferred, unknown."),
]


@pytest.mark.parametrize(("mistake", "kind", "old", "new", "code", "line", "hint"), CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_the_same_mistake_gets_the_same_hint_in_every_file(tmp_path, mistake, kind, old, new, code, line, hint):
    """A mistake in a rules file, the settings file or the catalogue is reported at its line with one wording."""
    load, text = LOADERS[kind]
    assert old in text
    with pytest.raises(FileProblems) as caught:
        load(tmp_path, text.replace(old, new, 1))
    problems = [p for p in caught.value.problems if p.code == code]
    assert [(p.line, p.hint) for p in problems] == [(line, hint)], str(caught.value)
    assert problems[0].file.endswith(".yaml")


def test_every_mistake_is_made_in_at_least_two_kinds_of_file():
    """The table compares files: each mistake is made in more than one; where the hint names no key, it is
    word for word the same."""
    for mistake in {c[0] for c in CASES}:
        rows = [c for c in CASES if c[0] == mistake]
        assert len({c[1] for c in rows}) >= 2, mistake
        if mistake in ("yes for true", "number for text", "text for a number", "one value for a list"):
            assert len({c[6] for c in rows}) == 1, mistake


def test_the_good_base_files_load(tmp_path):
    """The files the table breaks are valid as written, so each problem comes from the one change made."""
    for load, text in LOADERS.values():
        load(tmp_path, text)


def _explain(text: str, schema: dict, **kwargs) -> list[yamlfile.Problem]:
    located = yamlfile.parse(text, "example.yaml")
    codes = schemaproblems.SchemaCodes("X-UNKNOWN", "X-MISSING", "X-TYPE", "X-VALUE")
    return schemaproblems.check(located, jsonschema.Draft202012Validator(schema), codes, **kwargs)


def test_an_unknown_key_with_nothing_close_lists_the_known_keys_or_says_to_remove_it():
    """No "did you mean" without a close key: the hint lists the keys that exist there, or says to remove it."""
    closed = {"type": "object", "additionalProperties": False,
              "properties": {"school": {"type": "object", "additionalProperties": False},
                             "hours": {}, "days": {}}}
    problems = _explain("school:\n  zzz: 1\nqqq: 2\n", closed)
    assert [(p.code, p.line, p.column, p.message, p.hint) for p in problems] == [
        ("X-UNKNOWN", 2, 3, "unknown key 'zzz' in school", "Remove it."),
        ("X-UNKNOWN", 3, 1, "unknown key 'qqq' in (top level)", "Known keys here: days, hours, school."),
    ]


def test_keys_matching_pattern_properties_are_not_unknown():
    """A key allowed by ``patternProperties`` is not reported, even beside a misspelt one."""
    schema = {"type": "object", "additionalProperties": False, "properties": {"name": {}},
              "patternProperties": {"^x-": {}}}
    problems = _explain("x-note: fine\nnmae: a\n", schema)
    assert [(p.message, p.hint) for p in problems] == [("unknown key 'nmae' in (top level)", "Did you mean 'name'?")]


def test_a_pattern_without_its_own_hint_names_the_pattern():
    """A value in the wrong form gets the schema's ``x-hint``, or else the pattern it must match."""
    schema = {"type": "object", "properties": {
        "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "time": {"type": "string", "pattern": "^[0-9]{2}:[0-9]{2}$", "x-hint": "Write the time as \"HH:MM\"."}}}
    problems = _explain("code: ab\ntime: '8:00'\n", schema)
    assert [(p.code, p.line, p.message, p.hint) for p in problems] == [
        ("X-VALUE", 1, 'code: "ab" is not in the expected form', "It must match the pattern ^[A-Z]{3}$."),
        ("X-VALUE", 2, 'time: "8:00" is not in the expected form', 'Write the time as "HH:MM".'),
    ]


def test_a_replaced_key_says_what_replaced_it():
    """A retired key is reported as replaced, with what to write instead, not as a typo."""
    schema = {"type": "object", "additionalProperties": False, "properties": {"new_name": {}}}
    problems = _explain("old_name: 1\n", schema, replaced={("old_name",): "new_name"})
    assert [(p.code, p.message, p.hint) for p in problems] == [
        ("X-UNKNOWN", "the key 'old_name' was replaced", "Use new_name.")]


def test_every_missing_key_of_one_mapping_is_reported():
    """Two keys missing from one mapping are two problems, not one."""
    schema = {"type": "object", "required": ["id", "when", "verdict"]}
    problems = _explain("id: a\n", schema)
    assert [p.message for p in problems] == ["(top level): the key 'when' is missing",
                                             "(top level): the key 'verdict' is missing"]


def test_an_unknown_key_inside_a_settings_list_is_reported(tmp_path):
    """A misspelt key in a list of mappings in the settings (once silently ignored) is now an error."""
    with pytest.raises(FileProblems) as caught:
        _settings(tmp_path, "consent:\n  import:\n    generic:\n      consent_columns:\n"
                            "        - {column: Photos, purpose: class_story, purpse: x}\n")
    assert [(p.code, p.line, p.hint) for p in caught.value.problems] == [
        ("DG-CONFIG-UNKNOWN", 5, "Did you mean 'purpose'?")]


def test_a_settings_time_in_the_wrong_form_gets_the_time_hint(tmp_path):
    """The settings schema explains its patterns too: a time written 16.00 is told to be "HH:MM"."""
    with pytest.raises(FileProblems) as caught:
        _settings(tmp_path, "reports:\n  weekly_time: '16.00'\n")
    assert [(p.code, p.line, p.hint) for p in caught.value.problems] == [
        ("DG-CONFIG-INVALID", 2, 'Write the time as "HH:MM" in quotes, e.g. "16:00".')]


def test_a_rule_is_named_by_its_id_and_a_case_by_its_name(tmp_path):
    """Paths inside a rule read `rules[doorstep-length].verdict`, not a position people must count."""
    load, text = LOADERS["rules"]
    with pytest.raises(FileProblems) as caught:
        load(tmp_path, text.replace("verdict: block", "verdict: blok", 1))
    (problem,) = [p for p in caught.value.problems if p.code == "DG-RULES-VALUE"]
    assert re.match(r"rules\[[a-z0-9-]+\]\.verdict: \"blok\" is not an allowed value$", problem.message), problem.message


def test_items_without_a_name_keep_their_position():
    """A list item without id or name is named by its position (counted from 0)."""
    data = {"rules": [{"id": "late"}, {"when": {}}], "lists": {"a": {"phrases": ["x"]}}}
    assert schemaproblems.dotted(("rules", 0, "when"), data) == "rules[late].when"
    assert schemaproblems.dotted(("rules", 1, "when"), data) == "rules.1.when"
    assert schemaproblems.dotted(("lists", "a", "phrases", 0), data) == "lists.a.phrases.0"
    assert schemaproblems.dotted((), data) == "(top level)"


def test_a_value_wrong_only_in_its_capitals_says_so(tmp_path):
    """`verdict: Block` is one capital away: the hint writes the value to use, not a guess."""
    load, text = LOADERS["rules"]
    with pytest.raises(FileProblems) as caught:
        load(tmp_path, text.replace("verdict: block", "verdict: Block", 1))
    (problem,) = [p for p in caught.value.problems if p.code == "DG-RULES-VALUE"]
    assert problem.hint.startswith("Write 'block': values are written exactly, capitals included.")


@pytest.mark.parametrize(("kind", "old", "new", "code", "hint"), [
    ("rules", "    verdict: block", "    verdcit: block", "DG-RULES-UNKNOWN-KEY", "Did you mean 'verdict'?"),
    ("rules", "    when: {", "    wen: {", "DG-RULES-UNKNOWN-KEY", "Did you mean 'when'?"),
    ("catalogue", " role: api,", " rol: api,", "DG-CATALOGUE-UNKNOWN", "Did you mean 'role'?"),
])
def test_a_misspelt_required_key_is_one_error_not_two(tmp_path, kind, old, new, code, hint):
    """`wen:` for `when:` is one mistake: reported once as the misspelt key, not also as `when` missing."""
    load, text = LOADERS[kind]
    with pytest.raises(FileProblems) as caught:
        load(tmp_path, text.replace(old, new, 1))
    (problem,) = caught.value.problems
    assert (problem.code, problem.hint) == (code, hint), str(caught.value)


def test_a_required_key_really_missing_is_still_reported(tmp_path):
    """Without a misspelling beside it, the missing key is reported as before (the walk-around)."""
    load, text = LOADERS["rules"]
    with pytest.raises(FileProblems) as caught:
        load(tmp_path, text.replace("    verdict: block\n", "    colour: blue\n", 1))
    assert {p.code for p in caught.value.problems} == {"DG-RULES-MISSING-KEY", "DG-RULES-UNKNOWN-KEY"}


def _patterns_without_words(node, path=""):
    if isinstance(node, dict):
        if "pattern" in node and "x-hint" not in node:
            yield path
        for key, value in node.items():
            yield from _patterns_without_words(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _patterns_without_words(value, f"{path}/{i}")


def test_every_pattern_in_the_shipped_schemas_is_explained_in_words():
    """No error ever shows a raw regular expression (`weekly_time: 4pm` gets "e.g. 16:00"): each pattern has an x-hint."""
    import json
    from pathlib import Path

    import dojoguard

    schemas = sorted(Path(dojoguard.__file__).parent.rglob("*.json"))
    assert len(schemas) >= 6
    bare = [f"{schema.name}{where}" for schema in schemas
            for where in _patterns_without_words(json.loads(schema.read_text("utf-8")))]
    assert bare == []


def test_broken_parts_are_the_refused_values_and_the_unknown_missing_or_misnamed_keys():
    """What a reader must skip: a misspelt or missing key breaks its item, a bad name its own entry, not the rest."""
    schema = schemaproblems.validator("dojoguard.rules", "schema.json")
    data = {"windows": {"Bad Name": {"days": ["mon"], "from": "08:00", "to": "17:00"},
                        "day": {"days": ["mon"], "from": 800, "to": "17:00"}},
            "rules": [{"id": "a", "when": {"kind": "message.send"}, "verdic": "block", "notice": "n", "clause": "c"},
                      {"id": "b", "when": {"kind": "message.send"}, "verdict": "block", "notice": "n", "clause": "c"}],
            "colour": "red"}
    broken = schemaproblems.broken_parts(data, schema)
    assert broken == {("windows", "Bad Name"), ("windows", "day", "from"), ("rules", 0, "verdic"),
                      ("rules", 0, "verdict"), ("colour",)}
    assert not schemaproblems.sound(broken, ("rules", 0)) and schemaproblems.sound(broken, ("rules", 0, "when"))
    assert schemaproblems.sound(broken, ("rules", 1)) and not schemaproblems.sound(broken, ("windows",))
