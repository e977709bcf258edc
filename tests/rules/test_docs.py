"""The rule language and its error codes are documented: a key or code missing from the docs fails here."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

from dojoguard.rules.codes import Code

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _schema(name: str) -> dict:
    return json.loads(resources.files("dojoguard.rules").joinpath(name).read_text("utf-8"))


def _keys(node, found: set[str]) -> set[str]:
    """Every property name and enum value anywhere in a schema."""
    if isinstance(node, dict):
        for key, value in node.get("properties", {}).items():
            found.add(key)
            _keys(value, found)
        for value in node.get("enum", []):
            found.add(str(value))
        for key, value in node.items():
            if key != "properties":
                _keys(value, found)
    elif isinstance(node, list):
        for item in node:
            _keys(item, found)
    return found


def _documented(text: str, word: str) -> bool:
    return f"`{word}`" in text or re.search(rf"`[^`\n]*\b{re.escape(word)}\b[^`\n]*`", text) is not None


@pytest.mark.parametrize("schema_name", ["schema.json", "calendar.schema.json", "ruletests.schema.json"])
def test_every_rule_key_is_documented(schema_name):
    """Every key, condition, verdict and enum value of the rule, calendar and test schemas is in docs/rules.md."""
    text = (DOCS / "rules.md").read_text("utf-8")
    missing = sorted(k for k in _keys(_schema(schema_name), set()) if not _documented(text, k))
    assert missing == []


def _conditions_table(text: str) -> list[str]:
    """The condition names in the first column of the table under "## Conditions"."""
    section = text.split("\n## Conditions\n", 1)[1].split("\n## ", 1)[0]
    table = section.split("| condition | holds when | example |\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.M)


def test_every_condition_is_in_the_schema_and_the_docs():
    """The conditions the engine declares, the schema allows and docs/rules.md's table lists are the same keys."""
    from dojoguard.rules.conditions import CONDITIONS

    in_schema = list(_schema("schema.json")["$defs"]["condition"]["properties"])
    in_docs = _conditions_table((DOCS / "rules.md").read_text("utf-8"))
    assert len(in_docs) == len(set(in_docs)) > 10
    assert sorted(in_schema) == sorted(CONDITIONS)
    assert sorted(in_docs) == sorted(CONDITIONS)


def test_every_exemption_key_is_documented():
    """Every key of the exemptions file is in docs/exemptions.md."""
    text = (DOCS / "exemptions.md").read_text("utf-8")
    missing = sorted(k for k in _keys(_schema("exemptions.schema.json"), set()) if not _documented(text, k))
    assert missing == []


def test_every_action_field_is_documented():
    """Every kind, channel, attachment kind and finding of an action is in docs/actions.md."""
    from dojoguard.rules.action import AttachmentKind, Channel, ImageFindings, Kind

    text = (DOCS / "actions.md").read_text("utf-8")
    words = [str(v) for v in (*Kind, *Channel, *AttachmentKind)]
    words += [f for f in ImageFindings.__dataclass_fields__ if f != "boxes_not_permitted"]
    words += ["teacher.id", "device.address", "class.id", "students", "text", "points.value", "points.skill",
              "attachments", "problems", "at"]
    assert [w for w in words if not _documented(text, w)] == []


def _codes_in_source() -> set[str]:
    found = {str(code) for code in Code}
    for path in [*(ROOT / "dojoguard" / "rules").glob("*.py"), ROOT / "dojoguard" / "yamlfile.py",
                 ROOT / "dojoguard" / "config.py"]:
        found |= set(re.findall(r'"(DG-[A-Z0-9-]+)"', path.read_text("utf-8")))
    return found


def test_every_error_code_is_documented():
    """Every error code raised by the rules package, the YAML reader and the settings is in docs/errors.md."""
    text = (DOCS / "errors.md").read_text("utf-8")
    codes = _codes_in_source()
    assert len(codes) > 40
    assert sorted(c for c in codes if f"### {c}" not in text) == []


def test_no_stray_codes_in_the_docs():
    """docs/errors.md documents no code that the code cannot raise."""
    text = (DOCS / "errors.md").read_text("utf-8")
    documented = set(re.findall(r"^### (DG-[A-Z0-9-]+)$", text, flags=re.M))
    assert documented - _codes_in_source() == set()


def test_every_invalid_example_code_is_documented():
    """Each code the invalid rule files expect is a documented code."""
    text = (DOCS / "errors.md").read_text("utf-8")
    for path in (Path(__file__).parent / "invalid").glob("*.yaml"):
        for line in path.read_bytes().split(b"\n")[:3]:
            if line.startswith(b"# expect:"):
                assert f"### {line.split(b':', 1)[1].strip().decode()}" in text


def test_every_command_is_documented():
    """Each rules-package command appears in the docs with an example."""
    rules = (DOCS / "rules.md").read_text("utf-8")
    exemptions = (DOCS / "exemptions.md").read_text("utf-8")
    for command in ("dojoguard rules check", "dojoguard rules test", "dojoguard decide"):
        assert command in rules
    for command in ("dojoguard exempt grant", "dojoguard exempt list", "dojoguard exempt revoke"):
        assert command in exemptions


@pytest.mark.parametrize("schema_name", ["schema.json", "calendar.schema.json", "ruletests.schema.json",
                                         "exemptions.schema.json"])
def test_shipped_schemas_are_valid_json_schema(schema_name):
    """Each shipped schema is itself valid JSON Schema (draft 2020-12), so editors can use it."""
    import jsonschema

    schema = _schema(schema_name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
