"""Teachers' and classes' display names: learned from ClassDojo's answers, imported from the school's list,
resolved for grants, forgotten on request; and `dojoguard names`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from dojoguard.cli import cli
from dojoguard.clock import FixedClock
from dojoguard.environment import Environment
from dojoguard.proxy import learning
from dojoguard.names import IMPORTED, ImportRefused, NameProblem, Names, read_staff_csv
from dojoguard.proxy.sessions import Sessions
from dojoguard.standin import data

AT = datetime(2026, 12, 4, 9, tzinfo=UTC)
T1, T2, C1 = "5f00000000000000000000a1", "5f00000000000000000000a2", "5f00000000000000000000c1"


@pytest.fixture
def names(open_state):
    return Names(open_state())


def test_learned_from_the_stand_ins_session_and_class_list(open_state):
    """The session answer names the teacher; the class list names the class and every collaborator."""
    state = open_state()
    services = SimpleNamespace(sessions=Sessions(state), names=Names(state), registry=None, classes=None, posts=None)
    learning.learn(services, "session", {"type": "teacher", "teacher": data.TEACHER}, params={}, session="s1", at=AT)
    colleague = {"_id": T2, "title": "Mr", "firstName": "Sam", "lastName": "Okafor"}
    klass = dict(data.CLASS, collaborators=[*data.CLASS["collaborators"], colleague])
    learning.learn(services, "classes", {"_items": [klass]}, params={}, session="s1", at=AT)
    assert services.names.table() == {("teacher", data.TEACHER["_id"]): "Mrs. Ex Ample",
                                      ("teacher", T2): "Mr Sam Okafor", ("class", data.CLASS_ID): "3B"}
    state.close()


def test_the_schools_name_is_kept_when_classdojo_gives_another(names):
    names.learn("teacher", T1, "Mrs J", AT)
    names.set([("teacher", T1, "Mrs Jones")], AT)
    names.learn("teacher", T1, "Jenny J", AT)
    assert names.name("teacher", T1) == "Mrs Jones"
    assert names.all("teacher")[0].source == IMPORTED


def test_a_learned_name_follows_classdojo(names):
    names.learn("class", C1, "3B", AT)
    names.learn("class", C1, "4B", AT)
    assert names.name("class", C1) == "4B"


def test_names_are_bounded_and_blank_ones_ignored(names):
    names.learn("teacher", T1, "   ", AT)
    names.learn("pupil", T2, "Ada", AT)  # only teachers and classes are ever kept
    names.learn("teacher", T2, "x" * 500, AT)
    assert names.name("teacher", T1) is None and names.name("pupil", T2) is None
    assert len(names.name("teacher", T2)) == 120


def test_resolve_by_id_name_and_spelling(names):
    names.set([("teacher", T1, "Mrs. Jones"), ("teacher", T2, "Mr Okafor"), ("class", C1, "3B")], AT)
    assert names.resolve("teacher", "mrs jones").id == T1
    assert names.resolve("teacher", T2.upper()).id == T2
    assert names.resolve("class", "3b").id == C1
    with pytest.raises(NameProblem, match="Did you mean: Mr Okafor"):
        names.resolve("teacher", "Mr Okafr")
    with pytest.raises(NameProblem, match="is the teacher Mrs. Jones, not a class"):
        names.resolve("class", T1)
    unseen = names.resolve("teacher", "5F00000000000000000000FF")
    assert (unseen.id, unseen.source) == ("5f00000000000000000000ff", "unseen")


def test_names_are_listed_by_kind_then_name_ignoring_ascii_case_then_id(names):
    """The order SQLite's NOCASE gave, on every backend: only A-Z fold, other letters after them."""
    t3 = "5f00000000000000000000a3"
    names.set([("teacher", T1, "Mrs Émile"), ("teacher", T2, "Mrs Baker"), ("teacher", t3, "mrs adams"),
               ("class", C1, "3B")], AT)
    assert [(n.kind, n.name) for n in names.all()] == [
        ("class", "3B"), ("teacher", "mrs adams"), ("teacher", "Mrs Baker"), ("teacher", "Mrs Émile")]


def test_forgetting_an_id_removes_its_names(names):
    names.set([("teacher", T1, "Mrs Jones"), ("class", C1, "3B")], AT)
    assert names.forget(T1) == 1 and names.forget(T1) == 0
    assert names.table() == {("class", C1): "3B"}


def test_resolve_with_nothing_known_says_how_names_arrive(names):
    with pytest.raises(NameProblem, match="no teacher names are known yet"):
        names.resolve("teacher", "Mrs Jones")


def test_staff_csv_reads_excel_exports_and_refuses_whole_on_any_bad_line():
    rows = read_staff_csv("\ufeffClassDojo ID,Name,Type\r\n"
                          f"{T1.upper()},Mrs Jones,Teacher\r\n{C1},3B,class\r\n,,\r\n")
    assert rows == [("teacher", T1, "Mrs Jones"), ("class", C1, "3B")]
    with pytest.raises(ImportRefused) as refused:
        read_staff_csv(f"id,name\n{T1},Mrs Jones\nnot-an-id,Mr X\n{T1},Again\n{T2},\n")
    assert [p.line for p in refused.value.problems] == [3, 4, 5]
    with pytest.raises(ImportRefused, match="must name the columns"):
        read_staff_csv("teacher,email\nMrs Jones,j@example.org\n")


def run(tmp_path: Path, *args: str):
    config = tmp_path / "config.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n")
    return CliRunner().invoke(cli, ["--config", str(config), *args], obj=Environment(clock=FixedClock(AT)))


def test_names_cli_import_list_forget_with_audit(tmp_path):
    """Import (dry run first), list, forget; the audit log records counts and ids, never a name."""
    from dojoguard.audit.log import AuditLog

    assert "No names are known yet" in run(tmp_path, "names", "list").output
    staff = tmp_path / "staff.csv"
    staff.write_text(f"ClassDojo ID,Name,Type\n{T1},Mrs Jones,teacher\n{T2},Mr Okafor,teacher\n{C1},3B,class\n")
    dry = run(tmp_path, "names", "import", str(staff), "--dry-run")
    assert dry.exit_code == 0 and "2 teachers, 1 class would be set" in dry.output
    assert not (tmp_path / "data" / "proxy.sqlite").exists()
    done = run(tmp_path, "names", "import", str(staff))
    assert done.exit_code == 0, done.output
    listed = run(tmp_path, "names", "list", "--json").output.splitlines()
    assert [json.loads(line)["name"] for line in listed] == ["3B", "Mr Okafor", "Mrs Jones"]
    assert run(tmp_path, "names", "forget", T2).exit_code == 0
    assert "Okafor" not in run(tmp_path, "names", "list").output
    assert run(tmp_path, "names", "forget", T2).exit_code == 1
    log = AuditLog.open(tmp_path / "data" / "audit.sqlite")
    try:
        records = list(log.records(types=("names.imported", "names.forgotten")))
        raw = b"".join(row[4].encode() if isinstance(row[4], str) else row[4] for row in log.rows())
    finally:
        log.close()
    assert [(r.type, r.fields.get("teachers"), r.fields.get("id")) for r in records] == [
        ("names.imported", 2, None), ("names.forgotten", None, T2)]
    assert b"Jones" not in raw and b"Okafor" not in raw


def test_names_cli_import_refuses_a_bad_file_and_changes_nothing(tmp_path):
    staff = tmp_path / "staff.csv"
    staff.write_text(f"ClassDojo ID,Name\n{T1},Mrs Jones\n12345,Mr X\n")
    result = run(tmp_path, "names", "import", str(staff))
    assert result.exit_code == 1
    assert "staff.csv:line 3: '12345' is not a ClassDojo id" in result.output
    assert "nothing imported: 1 problem(s)" in result.output
    assert not (tmp_path / "data" / "proxy.sqlite").exists()


def test_imported_names_on_a_server_are_read_from_a_snapshot_never_from_the_server(open_state):
    """Decisions ask for the school's imported names on the proxy's event loop, which must never wait on the
    network: with the state on PostgreSQL they come from a snapshot, read again off the loop."""
    state = open_state("school")
    names = Names(state)
    names.set([("teacher", T1, "Mrs Jones")], AT)
    assert names.imported("teacher", T1) == "Mrs Jones"
    # Another process (`dojoguard names import`) names a second teacher.
    other = Names(open_state("school"))
    other.set([("teacher", T2, "Mr Okafor")], AT)
    if state.database.dialect == "sqlite":
        assert not names.snapshots_imported and names.imported("teacher", T2) == "Mr Okafor"
        return
    assert names.snapshots_imported
    statements = []
    real = state.database.execute
    state.database.execute = lambda *args: statements.append(args) or real(*args)
    assert names.imported("teacher", T2) is None and names.imported("teacher", T1) == "Mrs Jones"
    assert statements == []
    names.refresh_imported()
    assert names.imported("teacher", T2) == "Mr Okafor"
