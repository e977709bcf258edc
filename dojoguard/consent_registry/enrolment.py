"""Enrolment: face templates for the people whose records allow it, from a folder of photos.

A photo is named after the person it shows: ``<ref>.jpg``, or any picture in
a folder ``<ref>/``, where ``<ref>`` is the registry id, MIS id or UPN.
Eligibility is checked *before* the photo is read, so no template is ever
computed for someone without photo permission and biometric consent, or with
an objection. Problems with one photo are reported, never fatal.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dojoguard.consent_registry import faces
from dojoguard.consent_registry.registry import Registry, RegistryError

PICTURE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".heic", ".heif", ".webp", ".tif", ".tiff", ".bmp"})
MAX_PHOTO_BYTES = 50 * 1024 * 1024


class Outcome(enum.StrEnum):
    ENROLLED = "enrolled"
    ALREADY = "already enrolled"
    UNKNOWN_PERSON = "no such person in the registry"
    NOT_ELIGIBLE = "no photo permission with biometric consent (or an objection): skipped"
    NO_FACE = "no face found"
    SEVERAL_FACES = "more than one face: use a photo of this person alone"
    UNREADABLE = "unreadable picture"


@dataclass(frozen=True)
class Result:
    photo: Path
    outcome: Outcome
    person_id: int | None = None


def photos_in(folder: Path) -> list[tuple[str, Path]]:
    """(person reference, photo) pairs, in a stable order."""
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix.lower() in PICTURE_SUFFIXES:
            found.append((entry.stem, entry))
        elif entry.is_dir():
            found.extend((entry.name, p) for p in sorted(entry.iterdir())
                         if p.is_file() and p.suffix.lower() in PICTURE_SUFFIXES)
    return found


def enrol(registry: Registry, folder: Path, settings: faces.Settings) -> Iterator[Result]:
    """Enrol every photo in ``folder``, yielding one result per photo as it is done."""
    for ref, photo in photos_in(folder):
        try:
            person = registry.find(ref)
        except RegistryError:
            yield Result(photo, Outcome.UNKNOWN_PERSON)
            continue
        if not (registry.has_biometric_consent(person.id) and registry.has_photo_permission(person.id)):
            yield Result(photo, Outcome.NOT_ELIGIBLE, person.id)
            continue
        try:
            if photo.stat().st_size > MAX_PHOTO_BYTES:
                yield Result(photo, Outcome.UNREADABLE, person.id)
                continue
            data = photo.read_bytes()
        except OSError:
            yield Result(photo, Outcome.UNREADABLE, person.id)
            continue
        templates, problem = faces.templates_of(data, settings)
        if problem is not None:
            yield Result(photo, Outcome.UNREADABLE, person.id)
        elif not templates:
            yield Result(photo, Outcome.NO_FACE, person.id)
        elif len(templates) > 1:
            yield Result(photo, Outcome.SEVERAL_FACES, person.id)
        else:
            added = registry.add_template(person.id, templates[0], hashlib.sha256(data).hexdigest())
            yield Result(photo, Outcome.ENROLLED if added else Outcome.ALREADY, person.id)
