"""Enrolment: templates only for eligible people; per-photo problems reported, never fatal."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

from dojoguard.consent_registry import enrolment, faces
from dojoguard.consent_registry.registry import BIOMETRIC
from tests.consent_registry.conftest import add_pupil, class_photo, jpeg

pytestmark = pytest.mark.slow

ELIGIBLE = {"class_story": "granted", BIOMETRIC: "granted"}


@pytest.fixture
def registry(registry_both):
    """Every test here runs on a SQLite file and on a school's schema on PostgreSQL."""
    return registry_both


def test_enrolment_outcomes(registry, samples, tmp_path):
    """Eligible people are enrolled; others, faceless, crowded, unreadable and unknown photos are reported."""
    ada = add_pupil(registry, "A1", "Ada", "One", consents=ELIGIBLE)
    bea = add_pupil(registry, "B1", "Bea", "Two", consents={"class_story": "granted"})  # no biometric consent
    cal = add_pupil(registry, "C1", "Cal", "Three", consents=ELIGIBLE)
    dev = add_pupil(registry, "D1", "Dev", "Four", consents=ELIGIBLE)
    eve = add_pupil(registry, "E1", "Eve", "Five", consents=ELIGIBLE)
    folder = tmp_path / "photos"
    (folder / "A1").mkdir(parents=True)
    shutil.copy(samples / "astronaut.jpg", folder / "A1" / "front.jpg")
    shutil.copy(samples / "astronaut.jpg", folder / "B1.jpg")
    shutil.copy(samples / "coffee.jpg", folder / "C1.jpg")
    group, _ = class_photo(Image.open(samples / "astronaut.jpg"), columns=2, rows=1)
    (folder / "D1.jpg").write_bytes(jpeg(group))
    (folder / "E1.jpg").write_bytes(b"\xff\xd8\xff not a photo")
    shutil.copy(samples / "astronaut.jpg", folder / "nobody.jpg")
    (folder / "notes.txt").write_text("ignored")
    results = {r.photo.name: r.outcome for r in enrolment.enrol(registry, folder, faces.Settings())}
    assert results == {"front.jpg": enrolment.Outcome.ENROLLED, "B1.jpg": enrolment.Outcome.NOT_ELIGIBLE,
                       "C1.jpg": enrolment.Outcome.NO_FACE, "D1.jpg": enrolment.Outcome.SEVERAL_FACES,
                       "E1.jpg": enrolment.Outcome.UNREADABLE, "nobody.jpg": enrolment.Outcome.UNKNOWN_PERSON}
    assert registry.template_count(ada) == 1
    assert registry.template_count() == 1 and all(registry.template_count(p) == 0 for p in (bea, cal, dev, eve))
    again = {r.photo.name: r.outcome for r in enrolment.enrol(registry, folder, faces.Settings())}
    assert again["front.jpg"] is enrolment.Outcome.ALREADY and registry.template_count(ada) == 1


def test_ineligible_photo_is_never_read(registry, tmp_path):
    """Eligibility is checked before the photo is opened: an ineligible pupil's photo is skipped, however broken."""
    add_pupil(registry, "R1", "Rae", "Refused", consents={"class_story": "granted", BIOMETRIC: "refused"})
    folder = tmp_path / "photos"
    folder.mkdir()
    photo = folder / "R1.jpg"
    photo.write_bytes(b"secret")
    photo.chmod(0)
    (result,) = list(enrolment.enrol(registry, folder, faces.Settings()))
    assert result.outcome is enrolment.Outcome.NOT_ELIGIBLE
