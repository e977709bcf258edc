"""MIS imports: SIMS codes, Arbor consent types, generic columns; validation, dry run, idempotence."""

from __future__ import annotations

import pytest

from dojoguard import config
from dojoguard.consent_registry import importer
from dojoguard.consent_registry.registry import BIOMETRIC, PersonKind, State
from dojoguard.yamlfile import FileProblems

SETTINGS = config.load()["consent"]["import"]

SIMS = """Adno,UPN,Legal Forename,Legal Surname,Year,Reg,Parental Consent
1001,A123456789012,Alfred,Smith,3,3O,"P, SS, BIO"
1002,,Olivia,Jones,3,3O,P
1003,,Harry,Brown,3,3O,
"""

ARBOR = """Student ID,UPN,First Name,Last Name,Year Group,Registration Form,Consent Type,Consent Status,Responded By
S1,,Alfred,Smith,Year 3,3O,ClassDojo Class Story photos,Given,Mrs Smith
S1,,Alfred,Smith,Year 3,3O,Biometric recognition,Refused,Mrs Smith
S1,,Alfred,Smith,Year 3,3O,School trips,Given,Mrs Smith
S2,,Olivia,Jones,Year 3,3O,ClassDojo Class Story photos,Pending,
"""

GENERIC = """MIS ID,UPN,First name,Last name,Year,Registration group,Class Story,School Story,Portfolio,Biometrics
G1,,Alfred,Smith,3,3O,yes,no,,Y
G2,,Olivia,Jones,3,3O,pending,yes,no,no
"""


@pytest.fixture
def registry(registry_both):
    """Every test here runs on a SQLite file and on a school's schema on PostgreSQL."""
    return registry_both


def write(tmp_path, text, name="export.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_sims_codes_become_consents(registry, tmp_path):
    """SIMS parental-consent codes grant the purposes they are mapped to."""
    report = importer.import_file(registry, write(tmp_path, SIMS), "sims", SETTINGS)
    assert (report.rows, report.people_added) == (3, 3)
    alfred = registry.find("A123456789012")
    states = {p: c.state for p, c in registry.consents(alfred.id).items()}
    assert states == {"class_story": State.GRANTED, "school_story": State.GRANTED, "portfolio": State.GRANTED,
                      BIOMETRIC: State.GRANTED}
    harry = registry.find("1003")
    assert not any(registry.is_permitted(harry.id, p) for p in registry.purposes)
    assert alfred.reg_group == "3O" and registry.consents(alfred.id)["class_story"].source == "sims import"


def test_reimport_is_idempotent_and_withdrawal_is_seen(registry, tmp_path):
    """The same file again changes nothing; a code removed in SIMS withdraws that consent."""
    importer.import_file(registry, write(tmp_path, SIMS), "sims", SETTINGS)
    again = importer.import_file(registry, write(tmp_path, SIMS), "sims", SETTINGS)
    assert again.changes == [] and again.people_unchanged == 3
    changed = importer.import_file(registry, write(tmp_path, SIMS.replace('"P, SS, BIO"', '"P, SS"')), "sims",
                                   SETTINGS)
    assert [(c.purpose, c.state) for c in changed.changes] == [(BIOMETRIC, State.UNKNOWN)]
    assert not registry.has_biometric_consent(registry.find("1001").id)


def test_row_errors_are_all_reported_and_nothing_is_imported(registry, tmp_path):
    """Every bad row is reported with its line and a stable code, and no row is imported."""
    bad = SIMS + "1004,NOTAUPN,Ivy,Green,3,3O,P\n,,Nameless,Pupil,3,3O,P\n1005,,Jack,White,3,3O,XYZ\n" \
                 "1001,,Alfred,Again,3,3O,P\n"
    with pytest.raises(FileProblems) as caught:
        importer.import_file(registry, write(tmp_path, bad), "sims", SETTINGS)
    found = {(p.line, p.code) for p in caught.value.problems}
    assert found == {(5, "DG-IMPORT-UPN"), (6, "DG-IMPORT-MISSING"), (7, "DG-IMPORT-CODE"),
                     (8, "DG-IMPORT-DUPLICATE")}
    assert all(p.file.endswith("export.csv") and p.hint for p in caught.value.problems)
    assert registry.people() == []


def test_missing_column_is_reported(registry, tmp_path):
    """A file without a required column names the column it looked for."""
    with pytest.raises(FileProblems) as caught:
        importer.import_file(registry, write(tmp_path, "Adno,Forename\n1,Ann\n"), "sims", SETTINGS)
    assert {p.code for p in caught.value.problems} == {"DG-IMPORT-COLUMN"}


def test_dry_run_reports_but_saves_nothing(registry, tmp_path):
    """A dry run reports exactly what an import would change and leaves the registry untouched."""
    dry = importer.import_file(registry, write(tmp_path, SIMS), "sims", SETTINGS, dry_run=True)
    assert dry.people_added == 3 and len(dry.changes) == 6 and dry.dry_run
    assert registry.people() == []


def test_arbor_types_and_statuses(registry, tmp_path):
    """Arbor rows map consent types to purposes and statuses to states; unmapped types are counted."""
    report = importer.import_file(registry, write(tmp_path, ARBOR), "arbor", SETTINGS)
    alfred, olivia = registry.find("S1"), registry.find("S2")
    assert registry.consents(alfred.id)["class_story"].state is State.GRANTED
    assert registry.consents(alfred.id)["class_story"].informed_by == "Mrs Smith"
    assert registry.consents(alfred.id)[BIOMETRIC].state is State.REFUSED
    assert registry.consents(olivia.id)["class_story"].state is State.REQUESTED
    assert report.ignored == {"School trips": 1}


def test_arbor_conflicting_rows_are_refused(registry, tmp_path):
    """Two rows for the same pupil and consent type are an error, not a silent last-wins."""
    text = ARBOR + "S1,,Alfred,Smith,Year 3,3O,ClassDojo Class Story photos,Refused,Mr Smith\n"
    with pytest.raises(FileProblems) as caught:
        importer.import_file(registry, write(tmp_path, text), "arbor", SETTINGS)
    assert [(p.line, p.code) for p in caught.value.problems] == [(6, "DG-IMPORT-DUPLICATE")]


def test_generic_columns_and_values(registry, tmp_path):
    """The generic format reads the columns and consent words set in config."""
    importer.import_file(registry, write(tmp_path, GENERIC), "generic", SETTINGS)
    alfred, olivia = registry.find("G1"), registry.find("G2")
    assert {p: c.state for p, c in registry.consents(alfred.id).items()} == {
        "class_story": State.GRANTED, "school_story": State.REFUSED, "portfolio": State.UNKNOWN,
        BIOMETRIC: State.GRANTED}
    assert registry.consents(olivia.id)["class_story"].state is State.REQUESTED


def test_generic_staff_rows(registry, tmp_path):
    """A kind column lets staff be imported alongside pupils."""
    settings = {"generic": {**SETTINGS["generic"], "columns": {**SETTINGS["generic"]["columns"], "kind": "Kind"}}}
    text = GENERIC.replace("Biometrics\n", "Biometrics,Kind\n").replace(",Y\n", ",Y,staff\n").replace(",no\n", ",no,\n")
    importer.import_file(registry, write(tmp_path, text), "generic", settings)
    assert registry.find("G1").kind is PersonKind.STAFF and registry.find("G2").kind is PersonKind.PUPIL


def test_generic_unknown_value_is_an_error(registry, tmp_path):
    """A consent word the settings do not define is an error naming the known words."""
    with pytest.raises(FileProblems) as caught:
        importer.import_file(registry, write(tmp_path, GENERIC.replace("pending", "maybe")), "generic", SETTINGS)
    (problem,) = caught.value.problems
    assert (problem.line, problem.code) == (3, "DG-IMPORT-STATE")
    assert "'maybe'" in problem.message and "granted" in problem.hint


def test_windows_1252_export(registry, tmp_path):
    """An older SIMS export in Windows-1252 is read with its accents intact."""
    path = tmp_path / "old.csv"
    path.write_bytes(SIMS.replace("Olivia", "Zoë").encode("cp1252"))
    importer.import_file(registry, path, "sims", SETTINGS)
    assert registry.find("1002").first_name == "Zoë"
