"""The demo school: its settings, its pupils' consents (as an MIS would export them) and the demo day's date.

The three pupils are the stand-in's class 3B. Everyone has Class Story
consent in the morning; only Cy's parents gave written biometric consent, so
only Cy's portrait may be enrolled. Names here are made up.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays

from dojoguard.standin import data

TIMEZONE = "Europe/London"

# MIS id, first name, last name, Class Story, School Story, Portfolio, Biometrics.
PUPILS = (
    ("DEMO-001", "Ada", "Lawrence", "yes", "no", "yes", "no"),
    ("DEMO-002", "Bo", "Kowalski", "yes", "yes", "yes", "not asked"),
    ("DEMO-003", "Cy", "Mensah", "yes", "yes", "yes", "yes"),
)
# The stand-in's ClassDojo ids of the same pupils, in the same order.
DOJO_IDS = tuple(p["_id"] for p in data.PUPILS)
ENROLLED = "DEMO-003"
CLASS_GROUP = "3B"
HEADER = ("MIS ID", "UPN", "First name", "Last name", "Year", "Registration group",
          "Class Story", "School Story", "Portfolio", "Biometrics")


def consents_csv() -> str:
    """The class's consents as a generic MIS export (the embedded column names)."""
    lines = [",".join(HEADER)]
    for mis_id, first, last, class_story, school_story, portfolio, bio in PUPILS:
        lines.append(",".join((mis_id, "", first, last, "3", CLASS_GROUP, class_story, school_story, portfolio, bio)))
    return "\n".join(lines) + "\n"


def write_config(folder: Path, *, data_dir: Path) -> Path:
    """Settings for the demo: embedded defaults, a private data folder, this machine as a school device."""
    doc = {
        "timezone": TIMEZONE,
        "data_dir": str(data_dir),
        "proxy": {
            # The demo's "school iPad" is this machine.
            "device_groups": {"school-devices": ["127.0.0.0/8", "::1/128"]},
            # The stand-in receives photo uploads on its own storage host too.
            "extra_hosts": [r"^dojo-uploads\.s3\.amazonaws\.com:\d+$"],
        },
        # One worker: the demo shares the machine with whoever runs it.
        "images": {"workers": 1},
        "rules": {"reload": True},
        "logging": {"format": "json"},
    }
    path = folder / "config.yaml"
    path.write_text(json.dumps(doc, indent=2) + "\n", "utf-8")  # JSON is YAML; the hardened reader takes it
    return path


def demo_day(today: date) -> date:
    """The next school day after ``today``: a weekday that is not a bank holiday in England.

    Always in the future, so the headteacher's exemption (granted now, for
    that evening) has not already ended.
    """
    bank_holidays = holidays.country_holidays("GB", subdiv="ENG", years=range(today.year, today.year + 2))
    day = today + timedelta(days=1)
    while day.weekday() >= 5 or day in bank_holidays:
        day += timedelta(days=1)
    return day


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """A wall-clock time on the demo day, in the school's time zone."""
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(TIMEZONE))
