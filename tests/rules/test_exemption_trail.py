"""Comparing the exemptions file with the audit trail of the `exempt` commands: every hand edit is found."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dojoguard.rules import grants
from dojoguard.rules.exemption_trail import (EDITED, GRANTED, REVOKED, Record, compare, granted_fields, version,
                                             without_widening)
from dojoguard.rules.exemptions import load_exemptions
from dojoguard.rules.policy import load_policy

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CONCERT_START = NOW + timedelta(days=9, hours=8)


@pytest.fixture(scope="module")
def shipped():
    return load_policy("builtin")


class Trail:
    """An exemptions file written by the real grant/revoke code, and the records the commands would leave."""

    def __init__(self, path: Path, policy):
        self.path, self.policy, self.records = path, policy, []

    def add(self, type_: str, fields: dict, at: datetime = NOW) -> None:
        self.records.append(Record(len(self.records) + 1, type_, at, fields))

    def grant(self, **changes):
        args = dict(policy=self.policy, rules=["messaging-hours"], teachers=["t1"], classes=[], everyone=False,
                    starts=CONCERT_START, ends=CONCERT_START + timedelta(hours=3), granted_by="Mrs Patel",
                    reason="Christmas concert", now=NOW, max_days=14)
        args.update(changes)
        return grants.grant(self.path, before_commit=lambda e: self.add(GRANTED, granted_fields(e)), **args)

    def revoke(self, exemption_id: str, at: datetime = NOW):
        return grants.revoke(self.path, exemption_id, by="Mrs Patel", reason="cancelled", now=at,
                             before_commit=lambda e: self.add(REVOKED, {"exemption": e.id, "revoked_by": e.revoked.by,
                                                                        "at": e.revoked.at.isoformat()}))

    def by_hand(self, old: str, new: str) -> None:
        text = self.path.read_text("utf-8")
        assert old in text
        self.path.write_text(text.replace(old, new, 1), "utf-8")

    def append_by_hand(self, text: str) -> None:
        self.path.write_text(self.path.read_text("utf-8") + text, "utf-8")

    def edits(self, at: datetime = NOW):
        return compare(load_exemptions(self.path, max_days=14), self.records, now=at)

    def record(self, edits) -> None:
        for edit in edits:
            self.add(EDITED, edit.fields(str(self.path)))


HAND_ADDED = """\
- id: ex-by-hand
  rules: [messaging-hours]
  everyone: true
  from: '2026-12-01T00:00:00+00:00'
  until: '2026-12-14T00:00:00+00:00'
  granted_by: nobody asked
  reason: added with an editor
"""


@pytest.fixture
def trail(tmp_path, shipped):
    return Trail(tmp_path / "exemptions.yaml", shipped)


def test_a_file_written_only_by_the_commands_has_no_hand_edits(trail):
    """Grants and a revocation made by the commands match their records exactly."""
    trail.grant()
    second = trail.grant(teachers=[], classes=["c1"])
    trail.revoke(second.id)
    assert trail.edits() == []


def test_an_exemption_appended_by_hand_is_found_with_what_it_says(trail):
    """An exemption with no exemption.granted record is 'added', with its rules, scope and dates."""
    trail.grant()
    trail.append_by_hand(HAND_ADDED)
    (edit,) = trail.edits()
    assert (edit.exemption, edit.change, edit.recorded, edit.widens) == ("ex-by-hand", "added", None, True)
    assert edit.now["everyone"] is True and edit.now["ends"] == "2026-12-14T00:00:00+00:00"
    assert edit.now["granted_by"] == "nobody asked" and not edit.already_recorded


@pytest.mark.parametrize("old, new, change, changed", [
    ("until: '2026-12-10T20:00:00+00:00'", "until: '2026-12-14T20:00:00+00:00'", "changed", ("ends",)),
    ("- t1", "- t2", "changed", ("teacher",)),
    ("- messaging-hours", "- messaging-hours\n  - personal-devices", "changed", ("rules",)),
    ("reason: Christmas concert", "reason: Christmas concert and fair", "changed", ("reason",)),
])
def test_a_granted_exemption_changed_by_hand_names_the_fields(trail, old, new, change, changed):
    """Widening the dates, the scope or the rules, or rewording the reason, each shows as the fields changed."""
    trail.grant()
    trail.by_hand(old, new)
    (edit,) = trail.edits()
    assert (edit.change, edit.changed) == (change, changed)
    assert edit.recorded["ends"] == "2026-12-10T20:00:00+00:00"


def test_the_same_instant_written_with_another_offset_is_not_a_change(trail):
    """Rewriting a time in another offset (same moment) is not reported."""
    trail.grant()
    trail.by_hand("from: '2026-12-10T17:00:00+00:00'", "from: '2026-12-10T18:00:00+01:00'")
    assert trail.edits() == []


def test_revocations_removed_added_or_moved_by_hand_are_found(trail):
    """Un-revoking widens; revoking by hand narrows; moving a revocation later is a change."""
    a, b, c = trail.grant(), trail.grant(teachers=["t2"]), trail.grant(teachers=["t3"])
    trail.revoke(a.id)
    trail.revoke(c.id)
    text = trail.path.read_text("utf-8")
    blocks = text.split("\n- ")
    blocks[1] = blocks[1].split("  revoked:")[0].rstrip("\n")  # a: revocation deleted
    blocks[2] += "\n  revoked:\n    at: '2026-12-02T00:00:00+00:00'\n    by: IT\n    reason: by hand"  # b
    blocks[3] = blocks[3].replace("    at: '2026-12-01T09:00:00+00:00'", "    at: '2026-12-10T18:00:00+00:00'")  # c
    trail.path.write_text("\n- ".join(blocks) + "\n", "utf-8")
    found = {e.exemption: (e.change, e.widens) for e in trail.edits()}
    assert found == {a.id: ("unrevoked", True), b.id: ("revoked", False), c.id: ("changed", True)}


def test_an_exemption_deleted_by_hand_is_found(trail):
    """A granted exemption missing from the file is 'removed'."""
    first = trail.grant()
    trail.path.write_text("[]\n", "utf-8")
    (edit,) = trail.edits()
    assert (edit.exemption, edit.change, edit.now, edit.version) == (first.id, "removed", None, "absent")


def test_a_recorded_hand_edit_is_not_reported_twice_but_a_new_one_is(trail):
    """Once recorded, the same version is known; another edit, or undoing it, is reported again."""
    trail.grant()
    trail.by_hand("- t1", "- t2")
    trail.record(trail.edits())
    assert [e.already_recorded for e in trail.edits()] == [True]
    trail.by_hand("- t2", "- t3")
    assert [(e.change, e.already_recorded) for e in trail.edits()] == [("changed", False)]
    trail.record(trail.edits())
    trail.by_hand("- t3", "- t1")  # back to what was granted
    (restored,) = trail.edits()
    assert restored.change == "restored" and not restored.widens and not restored.already_recorded
    trail.record([restored])
    assert trail.edits() == []  # as granted, and the return to it is on record


def test_a_version_recorded_before_a_command_changed_it_is_reported_again(trail):
    """A revocation by the command resets the trail: the same hand version is reported afresh."""
    granted = trail.grant()
    trail.by_hand("- t1", "- t2")
    trail.record(trail.edits())
    trail.revoke(granted.id)
    (edit,) = trail.edits()
    assert edit.change == "changed" and not edit.already_recorded


def test_history_that_can_no_longer_apply_is_not_reported(trail):
    """Ended exemptions edited or deleted by hand change nothing from now on, so they are not reported."""
    trail.grant()
    trail.by_hand("reason: Christmas concert", "reason: tidied")
    assert trail.edits(at=CONCERT_START + timedelta(days=1)) == []
    assert trail.edits(at=NOW) != []


def test_without_widening_leaves_out_what_could_exempt_more_and_keeps_revocations(trail):
    """When edits cannot be recorded, added/changed/un-revoked exemptions are dropped; a hand revocation stays."""
    kept, narrowed = trail.grant(), trail.grant(teachers=["t2"])
    trail.append_by_hand(HAND_ADDED)
    text = trail.path.read_text("utf-8").replace(
        "- t2\n", "- t2\n  revoked:\n    at: '2026-12-02T00:00:00+00:00'\n    by: IT\n    reason: by hand\n")
    trail.path.write_text(text, "utf-8")
    exemptions = load_exemptions(trail.path)
    left = without_widening(exemptions, compare(exemptions, trail.records, now=NOW))
    assert [r.id for r in left.records] == [kept.id, narrowed.id]
    assert left.get(narrowed.id).revoked is not None


def test_versions_fingerprint_the_whole_record(trail):
    """Any change to a record, even one the comparison ignores, gives another fingerprint; none is 'absent'."""
    granted = trail.grant()
    before = version(load_exemptions(trail.path).get(granted.id))
    trail.by_hand("granted_at: '2026-12-01T09:00:00+00:00'", "granted_at: '2026-12-01T09:00:01+00:00'")
    assert version(load_exemptions(trail.path).get(granted.id)) not in (before, "absent")
    assert version(None) == "absent"
