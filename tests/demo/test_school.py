"""The demo school: the day it plays, its settings, and its consents as an MIS export."""

from __future__ import annotations

import json
from datetime import date

from dojoguard import config
from dojoguard.consent_registry import importer
from dojoguard.consent_registry.registry import Registry
from dojoguard.demo import school


def test_demo_day_is_the_next_weekday_that_is_not_a_bank_holiday():
    """From a Friday the demo plays Monday; from Christmas Eve 2026 it skips Christmas and Boxing Day (Monday 28th)."""
    assert school.demo_day(date(2026, 11, 27)) == date(2026, 11, 30)
    assert school.demo_day(date(2026, 11, 30)) == date(2026, 12, 1)
    assert school.demo_day(date(2026, 12, 24)) == date(2026, 12, 29)


def test_at_is_wall_clock_time_in_london():
    """17:30 on a summer demo day is 16:30 UTC (British Summer Time)."""
    assert school.at(date(2027, 6, 7), 17, 30).utcoffset().total_seconds() == 3600


def test_settings_make_this_machine_a_school_device(tmp_path):
    """The demo's settings load through the real settings reader and put 127.0.0.1 in school-devices."""
    path = school.write_config(tmp_path, data_dir=tmp_path / "data")
    loaded = config.load(path)
    assert loaded["proxy"]["device_groups"]["school-devices"][0] == "127.0.0.0/8"
    assert loaded.data_dir == tmp_path / "data"
    assert json.loads(path.read_text())["rules"]["reload"] is True


def test_consents_import_cleanly_with_only_cy_eligible_for_enrolment(tmp_path):
    """The generated MIS export imports with the embedded column map; only Cy may have a face template."""
    export = tmp_path / "consents.csv"
    export.write_text(school.consents_csv(), "utf-8")
    settings = config.load(None)["consent"]["import"]
    with Registry.open(tmp_path / "registry.sqlite") as registry:
        report = importer.import_file(registry, export, "generic", settings, dry_run=False)
        assert report.rows == 3
        eligible = [p.mis_id for p in registry.people()
                    if registry.has_biometric_consent(p.id) and registry.has_photo_permission(p.id)]
        assert eligible == [school.ENROLLED]
        assert all(registry.is_permitted(p.id, "class_story") for p in registry.people())
