"""Fixtures for the rules tests: the shipped policy and small actions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import shutil

import pytest

from dojoguard.rules.action import Action
from dojoguard.rules.policy import builtin_calendar, builtin_path, load_policy

EXAMPLE_CALENDAR = builtin_calendar()


@pytest.fixture(scope="session")
def policy():
    """St Wilfrid's rules with the example school calendar."""
    return load_policy("builtin", calendar=EXAMPLE_CALENDAR)


def make_action(**fields) -> Action:
    """An action from its JSON form, with a school-day default time, device and teacher."""
    doc = {"kind": "message.send", "channel": "message", "at": "2026-11-30T10:00:00+00:00",
           "teacher": {"id": "t1"}, "device": {"address": "10.20.1.5"}, "class": {"id": "c1"}}
    doc.update(fields)
    return Action.from_dict(doc)


MONDAY_10 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


DEFER_OPTION = ("    verdict: block\n    # verdict: defer\n    # release_window: school-hours\n",
                "    verdict: defer\n    release_window: school-hours\n")


def deferring_copy(folder: Path) -> Path:
    """St Wilfrid's rules with the commented `defer` option for out-of-hours messages switched on."""
    source = builtin_path()
    text = source.read_text("utf-8")
    assert DEFER_OPTION[0] in text, "the shipped rules no longer offer defer as a commented option"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source.parent / "lists", folder / "lists", dirs_exist_ok=True)
    return write(folder / "st-wilfrids-defer.yaml", text.replace(*DEFER_OPTION))


@pytest.fixture(scope="session")
def deferring_policy(tmp_path_factory):
    """The shipped rules with out-of-hours messages deferred rather than refused."""
    path = deferring_copy(tmp_path_factory.mktemp("defer"))
    return load_policy(path, calendar=EXAMPLE_CALENDAR)
