"""Fixtures for the consent registry and image checks: registries, sample photos, built pictures."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from dojoguard.clock import FixedClock
from dojoguard.consent_registry import sample_photos
from dojoguard.consent_registry.registry import PersonKind, Registry

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def samples() -> Path:
    """The sample photos that ship with dojoguard (public domain / CC0)."""
    return sample_photos.folder()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def registry(tmp_path, clock) -> Registry:
    reg = Registry.open(tmp_path / "data" / "registry.sqlite", clock=clock)
    yield reg
    reg.close()


@pytest.fixture(scope="session")
def registers_dsn(postgres) -> str:
    """One database on the session's PostgreSQL server; each test's register is a school schema of its own."""
    return postgres.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_both(request, tmp_path, clock) -> Registry:
    """The register in a SQLite file, then in a school's schema on a real PostgreSQL server.

    A module that opts in (``registry = registry_both`` style, see test_registry.py)
    runs each of its tests on both backends.
    """
    if request.param == "sqlite":
        reg = Registry.open(tmp_path / "data" / "registry.sqlite", clock=clock)
    else:
        from dojoguard.consent_registry.replica import open_central
        from dojoguard.storage.location import Storage

        school = "t" + uuid.uuid4().hex[:12]
        reg = open_central(Storage(dsn=request.getfixturevalue("registers_dsn"), school=school), clock=clock)
    yield reg
    reg.close()


def add_pupil(reg: Registry, mis_id: str, first: str, last: str, group: str = "3O", *,
              consents: dict[str, str] | None = None, upn: str | None = None) -> int:
    """A pupil with the given consents recorded from a paper form."""
    pid = reg.add_person(PersonKind.PUPIL, mis_id, first, last, reg_group=group, year="3", upn=upn)
    for purpose, state in (consents or {}).items():
        reg.set_consent(pid, purpose, state, source="paper form", informed_by="office")
    return pid


def jpeg(image: Image.Image, *, exif: Image.Exif | None = None, quality: int = 90) -> bytes:
    return sample_photos.encode_jpeg(image, exif=exif, quality=quality)


def gps_exif(orientation: int = 1) -> Image.Exif:
    """EXIF placing a photo in central London, as a phone would."""
    return sample_photos.location_exif(orientation)


class_photo = sample_photos.class_photo


def inside(face_box, tile_box) -> bool:
    """Whether a detected face's centre lies inside a tile."""
    top, right, bottom, left = face_box
    cy, cx = (top + bottom) / 2, (left + right) / 2
    return tile_box[0] <= cy <= tile_box[2] and tile_box[3] <= cx <= tile_box[1]
