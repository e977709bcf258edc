"""YAML syntax errors read as plain English with the line to fix, never as the parser's internals."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from dojoguard import yamlfile
from dojoguard.cli import cli

CASES = {
    "indented too far": ("rules:\n  - id: a\n    when: {kind: x}\n     verdict: block\n",
                         4, "`verdict:` starts in column 6, which does not line up", "Start it in column 5"),
    "indented too little": ("rules:\n  - id: a\n    when:\n      kind: x\n   verdict: block\n",
                            5, "`verdict:` starts in column 4", "Start it in column 5"),
    "list item out of line": ("rules:\n  - id: a\n - id: b\n", 3, "this list item (`- ...`) starts in column 2",
                              "Start it in column 3"),
    "no space after a dash": ("rules:\n  -id: a\n  - id: b\n", 2, "a list item needs a space after its dash",
                              "Write `- id: a`"),
    "no colon": ("policy:\n  name x\n  version: 1\n", 2, "this line has no colon: 'name x'", "`key: value`"),
    "no space after a colon": ("policy:\n  name:x\n  version: 1\n", 2, "`name:` has no space after its colon",
                               "Write a space after the colon"),
    "a colon inside a value": ("rules:\n  - id: a\n    notice: Note: this is wrong\n", 3,
                               'this value contains ": "', 'notice: "Note: this is wrong"'),
    "an unclosed double quote": ('policy:\n  name: "St Wilfrid\'s\n  version: 1\n', 2,
                                 'the quote " opened here is never closed', 'write \\"'),
    "an unclosed single quote": ("policy:\n  name: 'abc\n  version: 1\n", 2, "the quote ' opened here is never closed",
                                 "double it"),
    "an unclosed brace": ("rules:\n  - id: a\n    when: {kind: x, text_longer_than: 5\n    verdict: block\n", 3,
                          "the { opened here is not closed with }", "{kind: message.send, channel: message}"),
    "an unclosed bracket": ("lists:\n  a:\n    phrases: [one, two\n  b: 1\n", 3,
                            "the [ opened here is not closed with ]", "[absence, meetings]"),
}


@pytest.mark.parametrize("name", CASES)
def test_a_syntax_mistake_is_explained_at_its_line(name):
    """Each common mistake: the line to fix, what is wrong in words, and what to write."""
    text, line, message, hint = CASES[name]
    with pytest.raises(yamlfile.FileProblems) as caught:
        yamlfile.parse(text, "rules.yaml")
    (problem,) = caught.value.problems
    assert (problem.code, problem.line) == ("DG-YAML-SYNTAX", line)
    assert message in problem.message and hint in problem.hint
    for internal in ("<block", "while parsing", "while scanning", "expected <"):
        assert internal not in problem.message + problem.hint


def test_an_unforeseen_syntax_error_still_has_its_place():
    """A shape not explained in words still names line and column, the parser's words last."""
    with pytest.raises(yamlfile.FileProblems) as caught:
        yamlfile.parse("a: [b, c]]\n", "x.yaml")
    (problem,) = caught.value.problems
    assert problem.line == 1 and problem.column > 0 and problem.message


def test_rules_check_shows_the_plain_words(tmp_path):
    """Through the command IT runs: file:line:column, the explanation and the hint."""
    bad = tmp_path / "rules.yaml"
    bad.write_text("default: {verdict: allow}\nrules:\n  - id: a\n    when: {kind: message.send}\n"
                   "     verdict: block\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["rules", "check", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:5:6: DG-YAML-SYNTAX `verdict:` starts in column 6" in result.output
    assert "Hint: Start it in column 5" in result.output and "block mapping" not in result.output
