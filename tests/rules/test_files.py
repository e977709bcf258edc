"""Hostile and broken rule files each get the right error, quickly; good ones load and pass their cases."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dojoguard.rules.casebook import load_casebook, run_cases
from dojoguard.rules.policy import companion_tests, load_policy
from dojoguard.yamlfile import FileProblems

HERE = Path(__file__).parent
INVALID = sorted((HERE / "invalid").glob("*.yaml"))
VALID = sorted(p for p in (HERE / "valid").glob("*.yaml") if not p.name.endswith(".tests.yaml"))


def _header(path: Path, key: str) -> list[str]:
    lines = path.read_bytes().split(b"\n")[:4]
    prefix = f"# {key}:".encode()
    return [line[len(prefix):].strip().decode() for line in lines if line.startswith(prefix)]


def test_the_folders_are_not_empty():
    """The parametrised tests below really run over files."""
    assert len(INVALID) >= 30
    assert len(VALID) >= 3


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_file_reports_its_code(path: Path):
    """Each invalid file is refused with the code named in its header, at a line, within a second."""
    expected = _header(path, "expect")
    assert expected, f"{path.name} needs a '# expect: CODE' line"
    start = time.perf_counter()
    with pytest.raises(FileProblems) as caught:
        load_policy(path)
    elapsed = time.perf_counter() - start
    problems = caught.value.problems
    codes = [p.code for p in problems]
    assert expected[0] in codes, "\n".join(map(str, problems))
    assert elapsed < 1.0
    wanted = [p for p in problems if p.code == expected[0]][0]
    assert wanted.file.endswith(".yaml") or wanted.file.endswith(".txt")
    for hint in _header(path, "hint"):
        assert any(hint in p.hint for p in problems), "\n".join(map(str, problems))


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_problem_points_at_a_line(path: Path):
    """Problems inside a readable document carry a line number people can go to."""
    with pytest.raises(FileProblems) as caught:
        load_policy(path)
    structural = [p for p in caught.value.problems if p.code not in
                  ("DG-YAML-ENCODING", "DG-YAML-SIZE", "DG-RULES-DEFAULT", "DG-RULES-EMPTY",
                   "DG-LIST-EMPTY")]
    assert all(p.line >= 1 for p in structural), "\n".join(map(str, structural))


def test_huge_file_is_refused_before_parsing(tmp_path: Path):
    """A rule file over the size limit is refused at once, without being parsed."""
    huge = tmp_path / "huge.yaml"
    huge.write_text("default: {verdict: allow}\nrules:\n" + "# padding\n" * 120_000, "utf-8")
    start = time.perf_counter()
    with pytest.raises(FileProblems) as caught:
        load_policy(huge)
    assert [p.code for p in caught.value.problems] == ["DG-YAML-SIZE"]
    assert time.perf_counter() - start < 0.5


def test_every_problem_is_reported_at_once(tmp_path: Path):
    """A file with several mistakes gets all of them in one report, not just the first."""
    path = tmp_path / "many.yaml"
    path.write_text(
        "default: {verdict: allow}\n"
        "rules:\n"
        "  - {id: a, when: {kind: message.send, outside: nowhere}, verdict: block, notice: n, clause: c}\n"
        "  - {id: b, when: {regex: '(?<=x)y'}, verdict: block, notice: n, clause: c}\n"
        "  - {id: a, when: {kind: story.post}, verdict: warn, notice: n, clause: c}\n", "utf-8")
    with pytest.raises(FileProblems) as caught:
        load_policy(path)
    found = {(p.code, p.line) for p in caught.value.problems}
    assert ("DG-RULES-UNDEFINED", 3) in found
    assert ("DG-RULES-REGEX", 4) in found
    assert ("DG-RULES-DUPLICATE-ID", 5) in found


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_file_loads(path: Path):
    """Each valid file loads, and passes its companion cases when it has some."""
    policy = load_policy(path)
    assert policy.rules
    tests = companion_tests(path)
    if tests.exists():
        outcomes = run_cases(load_casebook(tests), policy)
        assert outcomes
        failed = [(o.case.name, o.failures) for o in outcomes if not o.passed]
        assert not failed


def test_catastrophic_regex_runs_in_linear_time():
    """(a+)+$ against a long run of a's ending in b decides in milliseconds (RE2), not years."""
    from dojoguard.rules.action import Action, Channel, Kind
    from datetime import UTC, datetime

    policy = load_policy(HERE / "valid" / "catastrophic-regex.yaml")
    hostile = Action(Kind.MESSAGE_SEND, Channel.MESSAGE, datetime(2026, 11, 30, 10, tzinfo=UTC),
                     text="a" * 100_000 + "b")
    start = time.perf_counter()
    decision = policy.evaluate(hostile)
    assert time.perf_counter() - start < 0.5
    assert str(decision.verdict) == "allow"
    assert policy.evaluate(hostile.__class__(Kind.MESSAGE_SEND, Channel.MESSAGE, hostile.at,
                                             text="aaaa")).rule_ids == ("nested-quantifier",)
