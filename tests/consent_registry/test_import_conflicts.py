"""A re-import never undoes what the office recorded later, and says so pupil by pupil.

The Protection of Freedoms Act 2012 (s.27) requires a withdrawal of
biometric consent to be honoured: an MIS export made before it must not
grant it again. The same holds for any consent recorded by hand (a paper
form, a parent's email, the pupil's own objection).
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import date, datetime, timedelta

import pytest

from dojoguard.consent_registry import importer
from dojoguard.consent_registry.registry import BIOMETRIC, State
from dojoguard.yamlfile import FileProblems
from tests.consent_registry.conftest import NOW
from tests.consent_registry.test_cli import events, run, setup  # noqa: F401 - the fixture
from tests.consent_registry.test_importer import SETTINGS, SIMS, write

LONDON = zoneinfo.ZoneInfo("Europe/London")

ARBOR_DATED = ("Student ID,First Name,Last Name,Registration Form,Consent Type,Consent Status,Responded By,"
               "Date Responded\n"
               "S1,Alfred,Smith,3O,Biometric recognition,Given,Mrs Smith,{when}\n"
               "S2,Olivia,Jones,3O,ClassDojo Class Story photos,Pending,,\n"
               "S3,Harry,Brown,3O,ClassDojo Class Story photos,,,\n")


@pytest.fixture
def registry(registry_both):
    """Every test here runs on a SQLite file and on a school's schema on PostgreSQL."""
    return registry_both


@pytest.fixture
def school(setup):  # noqa: F811 - the fixture imported above
    """The consent commands' settings, with the SIMS file imported once."""
    cfg, data, export = setup
    assert run(cfg, "consent", "import", str(export), "--format", "sims").exit_code == 0
    return cfg, data, export


def state(cfg, ref, purpose):
    """What the register (where the settings keep it) holds for ``ref``'s ``purpose``."""
    from dojoguard import config
    from dojoguard.consent_registry.opening import open_registry

    with open_registry(config.load(cfg)) as registry:
        person = registry.find(ref)
        return registry.consents(person.id)[purpose], registry.has_biometric_consent(person.id)


def test_a_reimport_never_grants_again_a_biometric_withdrawal_recorded_by_hand(school):
    """The office records a parent's withdrawal; the same (older) SIMS file imported again keeps it, by name."""
    cfg, data, export = school
    withdrawn = run(cfg, "consent", "withdraw-biometric", "1001", "--source", "parent", "--by", "office")
    assert withdrawn.exit_code == 0, withdrawn.output
    again = run(cfg, "consent", "import", str(export), "--format", "sims")
    assert again.exit_code == 0, again.output
    assert re.search(r"conflict Alfred Smith \(MIS 1001, line 2\): biometric_matching: the file says granted, "
                     r"kept refused: withdrawn by hand \(parent, by office, \d+ \w{3} \d{4} \d\d:\d\d \w+\), and the file's answer "
                     r"has no date", again.output)
    assert "0 consent(s) changed, 1 conflict(s)" in again.output
    held, permitted = state(cfg, "1001", BIOMETRIC)
    assert held.state is State.REFUSED and held.source == "parent" and not permitted
    assert events(data, "consent.imported")[-1]["conflicts"] == 1
    assert not [e for e in events(data, "consent.changed") if e["purpose"] == BIOMETRIC and e["to"] == "granted"
                and e["source"] == "sims import"][1:]


def test_a_class_story_grant_from_a_paper_form_survives_a_blank_reimport(school):
    """Harry's SIMS cell is blank; the office entered a paper form's grant; the re-import keeps it and names him."""
    cfg, data, export = school
    assert run(cfg, "consent", "set", "1003", "class_story", "granted", "--source", "paper form",
               "--by", "office").exit_code == 0
    again = run(cfg, "consent", "import", str(export), "--format", "sims")
    assert "conflict Harry Brown (MIS 1003, line 4): class_story: the file says unknown, kept granted: " \
           "granted by hand (paper form, by office" in again.output
    assert "blank    Harry Brown (MIS 1003, line 4): no consent recorded for biometric_matching, class_story, " \
           "portfolio, school_story" in again.output
    assert state(cfg, "1003", "class_story")[0].state is State.GRANTED


def test_accept_mis_takes_the_files_value_deliberately_but_not_over_the_pupils_own_objection(school):
    """--accept-mis names the person whose file values win; a pupil's own objection still stands."""
    cfg, data, export = school
    run(cfg, "consent", "withdraw-biometric", "1001", "--source", "parent", "--by", "office")
    run(cfg, "consent", "set", "1001", BIOMETRIC, "refused", "--source", "pupil", "--by", "office")
    taken = run(cfg, "consent", "import", str(export), "--format", "sims", "--accept-mis", "1001")
    assert taken.exit_code == 0, taken.output
    assert "biometric_matching: refused -> granted" in taken.output and "0 conflict(s)" in taken.output
    held, permitted = state(cfg, "1001", BIOMETRIC)
    assert held.state is State.GRANTED and not permitted  # the parents' answer, outranked by the pupil's objection
    unknown = run(cfg, "consent", "import", str(export), "--format", "sims", "--accept-mis", "9999")
    assert unknown.exit_code == 2 and "--accept-mis 9999: nobody in the file" in unknown.output


def test_the_pupils_objection_is_a_conflict_for_a_file_granting_biometrics(registry, tmp_path):
    """Parents' consent never recorded, the pupil objected: a file granting it is left alone and reported."""
    importer.import_file(registry, write(tmp_path, SIMS.replace('"P, SS, BIO"', '"P, SS"')), "sims", SETTINGS)
    alfred = registry.find("1001")
    registry.set_consent(alfred.id, BIOMETRIC, State.REFUSED, source="pupil", informed_by="office")
    report = importer.import_file(registry, write(tmp_path, SIMS), "sims", SETTINGS)
    ((pupil, conflict),) = report.conflicts
    assert pupil.name == "Alfred Smith" and "the pupil objected" in conflict.reason
    assert registry.consents(alfred.id)[BIOMETRIC].state is State.UNKNOWN


def test_an_arbor_response_dated_after_the_hand_entry_wins_and_one_dated_before_does_not(registry, tmp_path):
    """Arbor's Date Responded is when consent was given: a later answer replaces an older hand entry."""
    importer.import_file(registry, write(tmp_path, ARBOR_DATED.format(when="01/09/2026")), "arbor", SETTINGS)
    alfred = registry.find("S1")
    registry.set_consent(alfred.id, BIOMETRIC, State.REFUSED, source="parent email", informed_by="office")
    older = importer.import_file(registry, write(tmp_path, ARBOR_DATED.format(when="01/09/2026")), "arbor",
                                 SETTINGS, timezone=LONDON)
    assert [c.reason for _, c in older.conflicts] == [
        "withdrawn by hand (parent email, by office, 30 Nov 2026 10:00 GMT), after the file's answer of 1 Sep 2026 "
        "00:00 BST"]
    assert registry.consents(alfred.id)[BIOMETRIC].state is State.REFUSED
    later = (NOW + timedelta(hours=2)).astimezone(LONDON).strftime("%d/%m/%Y %H:%M")
    newer = importer.import_file(registry, write(tmp_path, ARBOR_DATED.format(when=later)), "arbor", SETTINGS,
                                 timezone=LONDON)
    assert newer.conflicts == [] and [(c.before, c.state) for c in newer.changes] == [(State.REFUSED, State.GRANTED)]
    held = registry.consents(alfred.id)[BIOMETRIC]
    assert datetime.fromisoformat(held.given_at) == NOW + timedelta(hours=2) and held.informed_by == "Mrs Smith"


def test_a_same_day_response_does_not_outrank_a_withdrawal_recorded_that_morning(registry, tmp_path):
    """A date without a time is the start of that day: the office's entry later that day is the newer."""
    importer.import_file(registry, write(tmp_path, SIMS), "sims", SETTINGS)
    alfred = registry.find("1001")
    registry.set_consent(alfred.id, BIOMETRIC, State.REFUSED, source="parent", informed_by="office")
    report = importer.import_file(registry, write(tmp_path, SIMS), "sims", SETTINGS, exported_on=NOW.date())
    assert len(report.conflicts) == 1 and not registry.has_biometric_consent(alfred.id)


def test_a_file_cannot_outrank_a_withdrawal_by_claiming_a_future_date(registry, tmp_path):
    """A response or export date in the future would beat every later withdrawal: refused, nothing imported."""
    with pytest.raises(FileProblems) as caught:
        importer.import_file(registry, write(tmp_path, ARBOR_DATED.format(when="01/01/2031")), "arbor", SETTINGS)
    assert [(p.line, p.code) for p in caught.value.problems] == [(2, "DG-IMPORT-DATE")]
    assert "in the future" in caught.value.problems[0].message
    with pytest.raises(FileProblems) as caught:
        importer.import_file(registry, write(tmp_path, SIMS), "sims", SETTINGS, exported_on=date(2031, 1, 1))
    assert caught.value.problems[0].code == "DG-IMPORT-DATE"
    with pytest.raises(FileProblems) as caught:
        importer.import_file(registry, write(tmp_path, ARBOR_DATED.format(when="next Tuesday")), "arbor", SETTINGS)
    assert "is not a date" in caught.value.problems[0].message
    assert registry.people() == []


def test_arbor_unknown_responders_stay_unknown_and_blank_statuses_are_named(registry, tmp_path):
    """An empty Responded By is "unknown", never "parent" (also for Pending); a blank status is reported."""
    report = importer.import_file(registry, write(tmp_path, ARBOR_DATED.format(when="01/09/2026")), "arbor",
                                  SETTINGS, timezone=LONDON)
    olivia, harry = registry.find("S2"), registry.find("S3")
    assert registry.consents(olivia.id)["class_story"].informed_by == "unknown"
    assert registry.consents(olivia.id)["class_story"].state is State.REQUESTED
    assert [(p.name, p.blanks) for p in report.pupils if p.blanks] == [("Harry Brown", ["class_story"])]
    assert not registry.is_permitted(harry.id, "class_story")
    alfred = registry.consents(registry.find("S1").id)[BIOMETRIC]
    assert datetime.fromisoformat(alfred.given_at) == datetime(2026, 9, 1, tzinfo=LONDON)


def test_blanking_a_pupil_in_sims_names_them_and_each_consent_ended(registry, tmp_path):
    """Grants an import made end when the cell is blanked, and the report says whose and which."""
    importer.import_file(registry, write(tmp_path, SIMS), "sims", SETTINGS)
    blanked = importer.import_file(registry, write(tmp_path, SIMS.replace('"P, SS, BIO"', "")), "sims", SETTINGS)
    (alfred,) = [p for p in blanked.pupils if p.changes]
    assert alfred.name == "Alfred Smith" and alfred.line == 2
    assert {(c.purpose, c.before, c.state) for c in alfred.changes} == {
        (p, State.GRANTED, State.UNKNOWN) for p in ("class_story", "portfolio", "school_story", BIOMETRIC)}
    lines = blanked.summary()
    assert lines.index("  changed  Alfred Smith (MIS 1001, line 2)") + 1 == lines.index(
        "             biometric_matching: granted -> unknown")
    assert "             class_story: granted -> unknown" in lines
    assert any(line.startswith("  blank    Alfred Smith (MIS 1001, line 2)") for line in lines)
    assert not any(registry.is_permitted(registry.find("1001").id, p) for p in registry.purposes)


def test_the_reports_numbers_agree_with_its_list(registry, tmp_path):
    """Every count in the summary is the number of matching lines below it."""
    importer.import_file(registry, write(tmp_path, SIMS), "sims", SETTINGS)
    registry.set_consent(registry.find("1001").id, BIOMETRIC, State.REFUSED, source="parent", informed_by="office")
    text = SIMS.replace('"P, SS, BIO"', '"P, BIO"').replace("1002,,Olivia,Jones,3,3O,P", "1002,,Olivia,Jones,3,3O,")
    text += "1004,,Ivy,Green,3,3O,SS\n"
    report = importer.import_file(registry, write(tmp_path, text), "sims", SETTINGS)
    lines = report.summary()
    head = re.match(r"(\d+) row\(s\) read: (\d+) person\(s\): (\d+) added, (\d+) updated, (\d+) unchanged", lines[0])
    rows, people, added, updated, unchanged = map(int, head.groups())
    assert (rows, people) == (4, added + updated + unchanged) == (4, 4) and added == 1
    counts = re.match(r"(\d+) consent\(s\) changed, (\d+) conflict\(s\) left as they are, (\d+) person\(s\) with no "
                      r"consent recorded", lines[1])
    changed, conflicts, blanks = map(int, counts.groups())
    assert changed == sum(1 for line in lines if re.match(r" {13}\w+: \w+ -> \w+$", line)) == len(report.changes)
    assert conflicts == sum(1 for line in lines if line.startswith("  conflict ")) == 1
    assert blanks == sum(1 for line in lines if line.startswith("  blank ")) == 2
    assert sum(1 for line in lines if line.startswith("  added ")) == added


def test_a_dry_run_prints_the_same_report_as_the_import(school, tmp_path):
    """--dry-run shows exactly what the import then does, line for line."""
    cfg, _, export = school
    run(cfg, "consent", "withdraw-biometric", "1001", "--source", "parent", "--by", "office")
    changed = tmp_path / "changed.csv"
    changed.write_text(SIMS.replace("1002,,Olivia,Jones,3,3O,P", "1002,,Olivia,Jones,3,3O,SS"), encoding="utf-8")
    dry = run(cfg, "consent", "import", str(changed), "--format", "sims", "--dry-run").output.splitlines()
    real = run(cfg, "consent", "import", str(changed), "--format", "sims").output.splitlines()
    assert dry[-1] == "dry run: nothing was saved" and dry[:-1] == real
    assert any("Olivia Jones" in line for line in real) and any("conflict Alfred Smith" in line for line in real)


def test_a_windows_sims_export_with_bom_crlf_and_accents_keeps_the_withdrawal(registry, tmp_path):
    """BOM, CRLF line ends and Windows-1252: read as the office sees it, and the conflict still found."""
    importer.import_file(registry, write(tmp_path, SIMS), "sims", SETTINGS)
    registry.set_consent(registry.find("1001").id, BIOMETRIC, State.REFUSED, source="parent", informed_by="office")
    for name, data in (("bom.csv", b"\xef\xbb\xbf" + SIMS.replace("\n", "\r\n").encode("utf-8")),
                       ("cp1252.csv", SIMS.replace("Olivia", "Zoë").replace("\n", "\r\n").encode("cp1252"))):
        path = tmp_path / name
        path.write_bytes(data)
        report = importer.import_file(registry, path, "sims", SETTINGS)
        assert [(p.name, c.purpose) for p, c in report.conflicts] == [("Alfred Smith", BIOMETRIC)]
        assert [(p.name, p.line) for p in report.pupils] == [("Alfred Smith", 2), (
            "Zoë Jones" if name == "cp1252.csv" else "Olivia Jones", 3), ("Harry Brown", 4)]
    assert not registry.has_biometric_consent(registry.find("1001").id)


def test_the_same_pupil_twice_in_a_file_names_both_lines(registry, tmp_path):
    """A duplicated row is an error naming the first line; nothing is imported."""
    with pytest.raises(FileProblems) as caught:
        importer.import_file(registry, write(tmp_path, SIMS + "1002,,Olivia,Jones,3,3O,SS\n"), "sims", SETTINGS)
    ((problem),) = caught.value.problems
    assert (problem.line, problem.code) == (5, "DG-IMPORT-DUPLICATE") and "first on line 3" in problem.message
    assert registry.people() == []


def test_a_blank_generic_cell_is_no_consent_and_is_reported(registry, tmp_path):
    """The generic format's empty cell is "no consent recorded", named in the report, never a grant."""
    from tests.consent_registry.test_importer import GENERIC

    report = importer.import_file(registry, write(tmp_path, GENERIC), "generic", SETTINGS)
    assert [(p.name, p.blanks) for p in report.pupils if p.blanks] == [("Alfred Smith", ["portfolio"])]
    assert not registry.is_permitted(registry.find("G1").id, "portfolio")
    assert registry.consents(registry.find("G1").id)["class_story"].informed_by == "unknown"


def test_a_hand_entry_cannot_pass_as_an_import(school):
    """`--source "sims import"` by hand would let the next import overwrite it silently: refused."""
    cfg, data, export = school
    for args in (("set", "1001", BIOMETRIC, "refused"), ("withdraw-biometric", "1001")):
        result = run(cfg, "consent", *args, "--source", "SIMS import ", "--by", "office")
        assert result.exit_code == 1 and "is kept for MIS imports" in result.output, result.output
    assert state(cfg, "1001", BIOMETRIC)[0].state is State.GRANTED


def test_an_older_dated_export_does_not_undo_a_newer_imported_answer(registry, tmp_path):
    """Arbor said Refused on 1 Nov; a copy of the September export imported afterwards does not grant it again."""
    newer = ARBOR_DATED.format(when="01/11/2026").replace("Biometric recognition,Given", "Biometric recognition,Refused")
    importer.import_file(registry, write(tmp_path, ARBOR_DATED.format(when="01/09/2026")), "arbor", SETTINGS)
    importer.import_file(registry, write(tmp_path, newer), "arbor", SETTINGS, timezone=LONDON)
    alfred = registry.find("S1")
    assert registry.consents(alfred.id)[BIOMETRIC].state is State.REFUSED
    older = importer.import_file(registry, write(tmp_path, ARBOR_DATED.format(when="01/09/2026")), "arbor",
                                 SETTINGS, timezone=LONDON)
    ((pupil, conflict),) = older.conflicts
    assert pupil.name == "Alfred Smith" and "is newer than the file's answer of 1 Sep 2026 00:00 BST" in conflict.reason
    assert registry.consents(alfred.id)[BIOMETRIC].state is State.REFUSED
