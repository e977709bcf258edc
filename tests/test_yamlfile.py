"""Tests for the hardened YAML reader shared by config, rules and catalogue files."""

from __future__ import annotations

import time

import pytest

from dojoguard import yamlfile
from dojoguard.yamlfile import FileProblems


def codes(text, **kwargs):
    with pytest.raises(FileProblems) as caught:
        yamlfile.parse(text, "f.yaml", **kwargs)
    return [(p.code, p.line) for p in caught.value.problems]


def test_alias_bomb_is_refused_quickly():
    """A billion-laughs document is refused at its first anchor, in milliseconds."""
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)
    )
    started = time.perf_counter()
    assert codes(bomb)[0] == ("DG-YAML-ALIAS", 1)
    assert time.perf_counter() - started < 0.5


def test_duplicate_keys_are_errors_naming_both_lines():
    """A key given twice is reported at the second place, with the first place in the hint."""
    with pytest.raises(FileProblems) as caught:
        yamlfile.parse("a: 1\nb: 2\na: 3\n", "f.yaml")
    (problem,) = caught.value.problems
    assert (problem.code, problem.line, problem.column) == ("DG-YAML-DUPLICATE", 3, 1)
    assert "line 1" in problem.hint


def test_tabs_are_reported_per_line():
    """Every line indented with a tab is named."""
    assert codes("a:\n\tb: 1\nc:\n\td: 2\n") == [("DG-YAML-TAB", 2), ("DG-YAML-TAB", 4)]


def test_huge_and_deep_documents_are_refused():
    """Files over the size cap and documents nested beyond the depth cap are refused."""
    assert codes("a: " + "x" * 2000 + "\n", max_bytes=1000) == [("DG-YAML-SIZE", 0)]
    assert codes("[" * 100 + "]" * 100)[0][0] == "DG-YAML-DEPTH"


def test_syntax_errors_have_positions():
    """A syntax error names its line."""
    assert codes("a: [1, 2\nb: 3\n")[0][0] == "DG-YAML-SYNTAX"


def test_scalars_follow_yaml_1_2():
    """Times, yes/no and octal-looking strings stay text; true/false, numbers and null are typed."""
    doc = yamlfile.parse("t: 17:00\ny: yes\nn: no\no: 0800\nb: true\ni: -3\nf: 1.5\nz: null\n").data
    assert doc == {"t": "17:00", "y": "yes", "n": "no", "o": 800, "b": True, "i": -3, "f": 1.5, "z": None}


def test_marks_point_at_values_and_keys():
    """Every value keeps its position, so later schema errors can name file:line:column."""
    located = yamlfile.parse("rules:\n  - id: r1\n    when: {kind: x}\n", "f.yaml")
    assert located.mark(("rules", 0, "when", "kind")) == (3, 18)
    assert located.mark(("rules", 0, "id"), key=True) == (2, 5)
    assert located.mark(("rules", 0, "missing")) == (2, 5)


def test_non_utf8_is_a_clear_error(tmp_path):
    """A file saved in another encoding gets a hint to save it as UTF-8."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes("a: caf\xe9\n".encode("latin-1"))
    with pytest.raises(FileProblems) as caught:
        yamlfile.load(path)
    assert caught.value.problems[0].code == "DG-YAML-ENCODING"
