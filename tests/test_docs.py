"""Documentation coverage: every command, setting and shipped notice is in docs/, and every --help ends with an example.

Rule keys and error codes are checked by tests/rules/test_docs.py and audit
events by tests/audit/test_events.py; the last tests here make sure those
checks stay in place rather than repeating them.
"""

from __future__ import annotations

import importlib
import re
from importlib import resources
from pathlib import Path

import click
import pytest
import yaml

from dojoguard.cli import cli
from dojoguard.rules.policy import builtin_path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _docs() -> dict[str, str]:
    return {p.name: p.read_text("utf-8") for p in sorted(DOCS.glob("*.md"))}


def _commands(group: click.Group = cli, prefix: tuple[str, ...] = ("dojoguard",)):
    """(words, command) for every command and group under the root, depth first."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        words = (*prefix, name)
        yield words, command
        if isinstance(command, click.Group):
            yield from _commands(command, words)


COMMANDS = list(_commands())


def _settings(node, path: tuple[str, ...] = ()):
    """Every key path of the embedded settings; keys inside list items are reported under the list's path."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key)
            yield from _settings(value, (*path, key))
    elif isinstance(node, list):
        for item in node:
            yield from _settings(item, path)


EMBEDDED = yaml.safe_load(resources.files("dojoguard").joinpath("config.yaml").read_text("utf-8"))
SETTINGS = sorted(set(_settings(EMBEDDED)))


def test_the_click_tree_is_walked():
    """The walk finds the top-level commands and the nested ones (so an empty walk cannot pass)."""
    names = {" ".join(words) for words, _ in COMMANDS}
    assert {"dojoguard run", "dojoguard demo", "dojoguard audit verify", "dojoguard consent import"} <= names
    assert len(COMMANDS) > 25


@pytest.mark.parametrize("words", [w for w, _ in COMMANDS], ids=lambda w: " ".join(w[1:]))
def test_every_command_is_documented(words):
    """Each command's full name (e.g. `dojoguard held approve`) appears in docs/."""
    name = " ".join(words)
    assert any(name in text for text in _docs().values()), f"{name} is not in docs/"


@pytest.mark.parametrize("words,command", COMMANDS, ids=lambda v: " ".join(v[1:]) if isinstance(v, tuple) else "")
def test_every_help_ends_with_an_example(words, command):
    """Each command's --help ends with an "Example:" block whose lines run dojoguard."""
    ctx = click.Context(command, info_name=" ".join(words))
    text = command.get_help(ctx).split("\nOptions:")[0].split("\nCommands:")[0].rstrip()
    blocks = text.split("\n\n")
    last = blocks[-1].strip().splitlines()
    assert last and last[0].strip() == "Example:", f"{' '.join(words)} --help does not end with an example"
    assert len(last) > 1 and " ".join(words) in "\n".join(last[1:]), \
        f"the example of {' '.join(words)} does not run it"


def _documented_setting(path: tuple[str, ...], docs: dict[str, str]) -> bool:
    if any(".".join(path) in text for text in docs.values()):
        return True
    # Keys inside a section may be documented by name (`key` or a YAML `key:` line)
    # in a page that names the section itself.
    for cut in range(len(path) - 1, 0, -1):
        section = ".".join(path[:cut])
        for text in docs.values():
            if section in text and all(f"`{key}`" in text or re.search(rf"^\s*-?\s*{re.escape(key)}:", text, re.M)
                                       for key in path[cut:]):
                return True
    return False


def test_settings_are_walked():
    """The embedded settings yield nested keys, list-item keys included."""
    assert ("proxy", "device_groups") in SETTINGS and ("consent", "import", "sims", "codes", "code") in SETTINGS
    assert len(SETTINGS) > 60


@pytest.mark.parametrize("path", SETTINGS, ids=".".join)
def test_every_setting_is_documented(path):
    """Each key of the embedded config.yaml (nested) is documented in docs/."""
    assert _documented_setting(path, _docs()), f"{'.'.join(path)} is not documented in docs/"


def test_rule_keys_and_error_codes_are_checked_by_the_rules_docs_test():
    """The rules package's documentation test still checks every rule key, error code and rules command."""
    module = importlib.import_module("tests.rules.test_docs")
    for name in ("test_every_rule_key_is_documented", "test_every_exemption_key_is_documented",
                 "test_every_error_code_is_documented", "test_every_action_field_is_documented"):
        assert callable(getattr(module, name, None)), name


def test_audit_events_are_checked_by_the_audit_events_test():
    """The audit package's test still checks that every event is documented with its fields."""
    module = importlib.import_module("tests.audit.test_events")
    assert callable(getattr(module, "test_every_event_is_documented_with_its_fields", None))


# -- what teachers are told must be what the proxy says ---------------------------

def _notices() -> list[str]:
    """Every notice a teacher can see: the shipped policy's and the proxy's own."""
    policy = yaml.safe_load(builtin_path().read_text("utf-8"))
    found = [r["notice"] for r in policy["rules"] if r.get("notice")]
    proxy = importlib.import_module("dojoguard.proxy.refusal_notices")
    found += [v for k, v in vars(proxy).items() if k.startswith("NOTICE_") and isinstance(v, str)]
    return [" ".join(n.split()) for n in found]


def test_teachers_guide_quotes_only_real_notices():
    """Every notice quoted in docs/teachers.md's table is word for word part of a notice dojoguard really shows."""
    text = (DOCS / "teachers.md").read_text("utf-8")
    quoted = re.findall(r"^\| \"([^\"]+)\"", text, flags=re.M)
    assert len(quoted) >= 8
    notices = _notices()
    stray = [q for q in quoted if not any(" ".join(q.split()).rstrip(".…") in n for n in notices)]
    assert stray == []


def test_every_blocking_notice_of_the_shipped_policy_is_in_the_teachers_guide():
    """Each block or hold notice of the shipped policy is quoted (at least its opening) in docs/teachers.md."""
    text = " ".join((DOCS / "teachers.md").read_text("utf-8").split())
    policy = yaml.safe_load(builtin_path().read_text("utf-8"))
    missing = [r["id"] for r in policy["rules"]
               if r["verdict"] in ("block", "hold", "defer") and " ".join(r["notice"].split())[:40] not in text]
    assert missing == []


# -- the map of the docs -----------------------------------------------------------

def test_index_links_every_page_and_every_link_resolves():
    """docs/index.md links every page, and every relative link in docs/ points at a file that exists."""
    index = (DOCS / "index.md").read_text("utf-8")
    pages = sorted(p.name for p in DOCS.glob("*.md") if p.name != "index.md")
    assert [p for p in pages if f"({p}" not in index] == []
    broken = []
    for name, text in _docs().items():
        for target in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", text):
            if not (DOCS / target).exists():
                broken.append(f"{name} -> {target}")
    assert broken == []
