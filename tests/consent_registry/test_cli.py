"""The consent and image commands, run in-process, with the audit events they write."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from dojoguard.audit.log import AuditLog
from dojoguard.cli import cli
from dojoguard.consent_registry.registry import Registry
from tests.consent_registry.conftest import gps_exif, jpeg
from tests.consent_registry.test_importer import SIMS


@pytest.fixture
def setup(tmp_path):
    data = tmp_path / "data"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"data_dir: {data}\n", encoding="utf-8")
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
    assert "objection to biometric processing recorded" in run(cfg, "consent", "show", "1001").output
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
    with Registry.open(data / "registry.sqlite") as reg:
        reg.learn_class("c1", "3O")
        reg.learn_roster("c1", [("d1", "Alfie", "S."), ("d2", "Harry", ""), ("d3", "Zed", "Quux")])
    listed = run(cfg, "consent", "links")
    assert "doubtful  d2" in listed.output and "none      d3" in listed.output and "d1" not in listed.output
    done = run(cfg, "consent", "links", "--confirm", "d2", "--set", "d3=1002", "--class", "c1=3O")
    assert done.exit_code == 0, done.output
    assert "every ClassDojo pupil seen so far is linked" in run(cfg, "consent", "links").output


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
