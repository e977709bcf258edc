"""The consent and image commands, run in-process, with the audit events they write."""

from __future__ import annotations

import json
import re
import shutil
import uuid

import pytest
from click.testing import CliRunner

from dojoguard.audit.log import AuditLog
from dojoguard import config
from dojoguard.cli import cli
from dojoguard.consent_registry.opening import open_registry
from tests.consent_registry.conftest import gps_exif, jpeg
from tests.consent_registry.test_importer import SIMS


@pytest.fixture(params=["sqlite", "postgresql"])
def setup(request, tmp_path):
    """Settings whose register is a SQLite file, then a school's schema on a real PostgreSQL server."""
    data = tmp_path / "data"
    cfg = tmp_path / "config.yaml"
    text = f"data_dir: {data}\n"
    if request.param == "postgresql":
        school = "t" + uuid.uuid4().hex[:12]
        text += f"storage: {request.getfixturevalue('registers_dsn')}\ntrust:\n  school: {school}\n"
    cfg.write_text(text, encoding="utf-8")
    export = tmp_path / "sims.csv"
    export.write_text(SIMS, encoding="utf-8")
    return cfg, data, export


def run(cfg, *args, input=None):
    return CliRunner().invoke(cli, ["--config", str(cfg), *args], input=input, catch_exceptions=False)


def events(data, name):
    log = AuditLog.open(data / "audit.sqlite")
    try:
        return [r.fields for r in log.records(types=(name,))]
    finally:
        log.close()


def test_import_dry_run_then_real_then_again(setup):
    """A dry run saves nothing; the import records consent changes in the audit log; a re-import changes nothing."""
    cfg, data, export = setup
    dry = run(cfg, "consent", "import", str(export), "--format", "sims", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run: nothing was saved" in dry.output and "6 consent(s) changed" in dry.output
    real = run(cfg, "consent", "import", str(export), "--format", "sims")
    assert real.exit_code == 0, real.output
    again = run(cfg, "consent", "import", str(export), "--format", "sims")
    assert "0 consent(s) changed" in again.output
    changed = events(data, "consent.changed")
    assert len(changed) == 6 and {c["to"] for c in changed} == {"granted"}
    assert all("Alfred" not in json.dumps(c) and "Smith" not in json.dumps(c) for c in changed)
    assert [e["changed"] for e in events(data, "consent.imported")] == [6, 0]


def test_import_errors_listed_with_lines(setup, tmp_path):
    """A bad export exits 2 listing file:line and code for each problem."""
    cfg, _, _ = setup
    bad = tmp_path / "bad.csv"
    bad.write_text(SIMS + "1009,,,Nobody,3,3O,P\n", encoding="utf-8")
    result = run(cfg, "consent", "import", str(bad), "--format", "sims")
    assert result.exit_code == 2
    assert "bad.csv:5:1: DG-IMPORT-MISSING" in result.output and "Hint:" in result.output


def test_set_show_and_withdraw_biometric(setup):
    """Setting, showing and withdrawing consent works by UPN and audits registry ids only."""
    cfg, data, export = setup
    run(cfg, "consent", "import", str(export), "--format", "sims")
    result = run(cfg, "consent", "set", "A123456789012", "portfolio", "refused", "--source", "email",
                 "--by", "office")
    assert result.exit_code == 0, result.output
    shown = run(cfg, "consent", "show", "A123456789012", "--history")
    assert "portfolio            refused (email, by office" in shown.output
    withdrawn = run(cfg, "consent", "withdraw-biometric", "1001", "--source", "pupil", "--by", "teacher")
    assert withdrawn.exit_code == 0, withdrawn.output
    shown = run(cfg, "consent", "show", "1001").output
    (biometric,) = [line for line in shown.splitlines() if "biometric_matching" in line]
    assert "not permitted: the pupil objected" in biometric and "overridden" in biometric
    assert "granted" not in biometric  # the parents' consent stands overridden, never "granted" beside it
    last = events(data, "consent.changed")[-2:]
    assert [(e["purpose"], e["to"]) for e in last] == [("portfolio", "refused"), ("biometric_matching", "objection")]
    assert set(last[0]) >= {"pupil", "purpose", "from", "to", "source"}


def test_unknown_pupil_and_purpose_are_clear_errors(setup):
    """An unknown pupil or purpose exits non-zero with a message saying which."""
    cfg, _, export = setup
    run(cfg, "consent", "import", str(export), "--format", "sims")
    assert "no person" in run(cfg, "consent", "show", "nobody").output
    bad = run(cfg, "consent", "set", "1001", "website", "granted", "--source", "x", "--by", "y")
    assert bad.exit_code == 1 and "unknown consent purpose 'website'" in bad.output


def test_links_list_confirm_and_set(setup):
    """Doubtful roster links are listed and can be confirmed or set by command."""
    cfg, data, export = setup
    run(cfg, "consent", "import", str(export), "--format", "sims")
    # Where the settings keep it: the file, or the school's schema on the server.
    with open_registry(config.load(cfg)) as reg:
        reg.learn_class("c1", "3O")
        reg.learn_roster("c1", [("d1", "Alfie", "S."), ("d2", "Harry", ""), ("d3", "Zed", "Quux")])
    listed = run(cfg, "consent", "links")
    assert "doubtful  d2" in listed.output and "none      d3" in listed.output and "d1" not in listed.output
    done = run(cfg, "consent", "links", "--confirm", "d2", "--set", "d3=1002", "--class", "c1=3O")
    assert done.exit_code == 0, done.output
    assert "confirmed d2 (Harry  on ClassDojo) -> Harry Brown (MIS 1003, registry id 3)" in done.output
    assert "set d3 (Zed Quux on ClassDojo) -> Olivia Jones (MIS 1002, registry id 2)" in done.output
    assert "every ClassDojo pupil seen so far (3) is linked" in run(cfg, "consent", "links").output


def test_erase(setup):
    """Erase removes the pupil and writes pupil.erased with the registry id and template count only."""
    cfg, data, export = setup
    run(cfg, "consent", "import", str(export), "--format", "sims")
    result = run(cfg, "consent", "erase", "1003", "--by", "dpo", "--yes")
    assert result.exit_code == 0, result.output
    assert run(cfg, "consent", "show", "1003").exit_code == 1
    (erased,) = events(data, "pupil.erased")
    assert erased["templates_removed"] == 0 and erased["requested_by"] == "dpo" and "Harry" not in json.dumps(erased)


@pytest.mark.slow
def test_enrol_reports_per_photo(setup, samples, tmp_path):
    """Enrolment shows progress, lists per-photo problems and enrols the eligible pupil."""
    cfg, data, export = setup
    run(cfg, "consent", "import", str(export), "--format", "sims")
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(samples / "astronaut.jpg", photos / "1001.jpg")
    shutil.copy(samples / "astronaut.jpg", photos / "1002.jpg")
    result = run(cfg, "consent", "enrol", str(photos))
    assert result.exit_code == 0, result.output
    assert "1002.jpg: no photo permission with biometric consent" in result.output
    assert "1 of 2 photo(s) enrolled" in result.output
    assert "face templates: 1" in run(cfg, "consent", "show", "1001").output


@pytest.mark.slow
def test_image_check_json(setup, samples, tmp_path):
    """image check --json prints findings, boxes in original pixels and the policy's verdict."""
    cfg, _, export = setup
    run(cfg, "consent", "import", str(export), "--format", "sims")
    photo = tmp_path / "trip.jpg"
    from PIL import Image
    photo.write_bytes(jpeg(Image.open(samples / "astronaut.jpg"), exif=gps_exif()))
    result = run(cfg, "image", "check", str(photo), "--channel", "class_story", "--class", "never-seen",
                 "--device", "127.0.0.1", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output[result.output.index("{"):])
    assert doc["findings"]["faces_found"] == 1 and doc["findings"]["gps_present"]
    top, right, bottom, left = doc["boxes"][0]
    assert 60 <= top < bottom <= 190 and 160 <= left < right <= 290
    assert doc["verdict"] == "block" and "photo-consent" in [m["rule"] for m in doc["decision"]["matched"]]
    text = run(cfg, "image", "check", str(samples / "coffee.jpg"), "--device", "127.0.0.1")
    assert "faces found 0" in text.output and "verdict: allow" in text.output


def test_set_names_the_person_and_the_state_before_and_after(setup):
    """`set` says whose record changed and from what to what; the same again says nothing changed."""
    cfg, _, export = setup
    run(cfg, "consent", "import", str(export), "--format", "sims")
    result = run(cfg, "consent", "set", "1003", "class_story", "granted", "--source", "paper form", "--by", "office")
    assert result.output.startswith("Harry Brown (MIS 1003, registry id 3): class_story was unknown; now granted "
                                    "(source paper form, by office)")
    again = run(cfg, "consent", "set", "1003", "class_story", "granted", "--source", "paper form", "--by", "office")
    assert again.output == "Harry Brown (MIS 1003, registry id 3): class_story was already granted; nothing changed\n"
    objects = run(cfg, "consent", "set", "1001", "biometric_matching", "refused", "--source", "pupil", "--by", "office")
    assert "biometric_matching was not objected to by the pupil; now objected to by the pupil" in objects.output
    assert "biometric matching is now not permitted (the parents' answer: granted)" in objects.output


def test_withdrawing_what_was_never_granted_does_not_say_withdrawn(setup):
    """A withdrawal with no grant says so, and is recorded so that no older export can grant it."""
    cfg, data, export = setup
    run(cfg, "consent", "import", str(export), "--format", "sims")
    never = run(cfg, "consent", "withdraw-biometric", "1003", "--source", "parent", "--by", "office")
    assert never.exit_code == 0, never.output
    assert "withdrawn" not in never.output
    assert "Harry Brown (MIS 1003, registry id 3): biometric matching was not granted (it was unknown); " \
           "recorded as refused (source parent)" in never.output
    granted = run(cfg, "consent", "withdraw-biometric", "1001", "--source", "parent", "--by", "office")
    assert "Alfred Smith (MIS 1001, registry id 1): biometric matching withdrawn: was granted, now refused" \
        in granted.output
    twice = run(cfg, "consent", "withdraw-biometric", "1001", "--source", "parent", "--by", "office")
    assert "already refused (parent); nothing changed" in twice.output
    pupil = run(cfg, "consent", "withdraw-biometric", "1002", "--source", "pupil", "--by", "office")
    assert "the pupil's own objection to biometric matching recorded (the parents' answer: unknown)" in pupil.output
    assert [e["to"] for e in events(data, "consent.changed") if e["purpose"] == "biometric_matching"][-3:] == [
        "refused", "refused", "objection"]


def test_a_refusal_an_import_recorded_is_restated_by_hand_so_an_older_export_cannot_undo_it(setup, tmp_path):
    """The registry said refused (from the MIS); the parent confirms by hand; an older export granting it is refused."""
    cfg, data, export = setup
    refused = tmp_path / "refused.csv"
    refused.write_text(SIMS.replace('"P, SS, BIO"', '"P, SS"'), encoding="utf-8")
    run(cfg, "consent", "import", str(export), "--format", "sims")
    run(cfg, "consent", "import", str(refused), "--format", "sims")
    said = run(cfg, "consent", "withdraw-biometric", "1001", "--source", "parent", "--by", "office")
    assert "recorded as refused (source parent)" in said.output
    again = run(cfg, "consent", "import", str(export), "--format", "sims")
    assert "conflict Alfred Smith (MIS 1001, line 2): biometric_matching" in again.output


def test_show_prints_times_to_the_minute_in_the_schools_time_zone(setup):
    """No raw ISO timestamps: times read as '4 Dec 2026 09:12' in the configured zone."""
    cfg, _, export = setup
    run(cfg, "consent", "import", str(export), "--format", "sims")
    shown = run(cfg, "consent", "show", "1001", "--history").output
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:", shown)
    assert re.search(r"class_story +granted \(sims import, by parent, \d{1,2} \w{3} \d{4} \d\d:\d\d \w+\)", shown)


def test_erase_asks_by_name(setup):
    """The confirmation names the person; answering no erases nothing."""
    cfg, _, export = setup
    run(cfg, "consent", "import", str(export), "--format", "sims")
    asked = run(cfg, "consent", "erase", "1003", "--by", "dpo", input="n\n")
    assert "Erase Harry Brown (MIS 1003, registry id 3) and everything held about them" in asked.output
    assert asked.exit_code == 1 and run(cfg, "consent", "show", "1003").exit_code == 0


def test_links_on_an_empty_registry_says_there_is_nothing_to_link(setup):
    """With no pupils and no rosters seen, `links` does not claim that every pupil is linked."""
    cfg, _, _ = setup
    empty = run(cfg, "consent", "links").output
    assert "linked" in empty and "every" not in empty
    assert "no ClassDojo pupils seen yet" in empty and "dojoguard consent import" in empty
