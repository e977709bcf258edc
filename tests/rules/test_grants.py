"""Granting and revoking exemptions: refused when unsafe, written atomically, never half-applied."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dojoguard import yamlfile
from dojoguard.rules import grants
from dojoguard.rules.exemptions import load_exemptions
from dojoguard.rules.policy import load_policy

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def shipped():
    return load_policy("builtin")


def _grant(path: Path, policy, **changes):
    args = dict(policy=policy, rules=["messaging-hours"], teachers=["t1"], classes=[], everyone=False,
                starts=NOW + timedelta(days=9, hours=8), ends=NOW + timedelta(days=9, hours=11),
                granted_by="Mrs Patel", reason="Christmas concert", now=NOW, max_days=14)
    args.update(changes)
    return grants.grant(path, **args)


def test_grant_writes_a_file_the_loader_accepts(tmp_path, shipped):
    """A grant adds a record with a new id; the file reads back through the ordinary loader."""
    path = tmp_path / "exemptions.yaml"
    first = _grant(path, shipped)
    second = _grant(path, shipped, teachers=[], classes=["c1"])
    assert first.id == "ex-20261201-1" and second.id == "ex-20261201-2"
    loaded = load_exemptions(path, max_days=14)
    assert [r.id for r in loaded.records] == [first.id, second.id]
    assert loaded.get(first.id) == first
    assert path.read_text("utf-8").startswith("# Exemptions granted by the headteacher")
    assert yamlfile.load(path).data[1]["classes"] == ["c1"]
    assert [p.name for p in tmp_path.iterdir()] == ["exemptions.yaml"]  # no temporary file left


@pytest.mark.parametrize("changes, message", [
    ({"rules": ["no-such-rule"]}, "no rule 'no-such-rule'"),
    ({"rules": ["photo-check-incomplete"]}, "cannot be exempted"),
    ({"rules": []}, "at least one rule"),
    ({"teachers": []}, "exactly one of"),
    ({"everyone": True}, "exactly one of"),
    ({"ends": NOW + timedelta(days=30)}, "the most allowed is 14 days"),
    ({"ends": NOW - timedelta(hours=1), "starts": NOW - timedelta(hours=3)}, "already have ended"),
    ({"ends": NOW + timedelta(days=9)}, "must end after it starts"),
    ({"reason": "  "}, "why (--reason)"),
    ({"reason": "x" * 400}, "under 300 characters"),
])
def test_unsafe_grants_are_refused(tmp_path, shipped, changes, message):
    """Unknown or fail-closed rules, missing scope, open-ended, over-long or past grants are refused."""
    path = tmp_path / "exemptions.yaml"
    with pytest.raises(grants.GrantError) as caught:
        _grant(path, shipped, **changes)
    assert message in str(caught.value)
    assert not path.exists()


def test_failed_audit_leaves_the_old_file(tmp_path, shipped):
    """If the step before the rename fails (the audit write), the old file is untouched and no temp is left."""
    path = tmp_path / "exemptions.yaml"
    _grant(path, shipped)
    before = path.read_bytes()

    def broken(_exemption):
        raise OSError("audit log unavailable")

    with pytest.raises(OSError):
        _grant(path, shipped, before_commit=broken)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["exemptions.yaml"]


def test_grant_refuses_to_rewrite_a_broken_file(tmp_path, shipped):
    """A hand-broken exemptions file is not overwritten (nothing in it is lost)."""
    path = tmp_path / "exemptions.yaml"
    path.write_text("- id: a\n\trules: [x]\n", "utf-8")
    with pytest.raises(yamlfile.FileProblems):
        _grant(path, shipped)
    assert path.read_text("utf-8") == "- id: a\n\trules: [x]\n"


def test_revoke_marks_and_keeps_the_record(tmp_path, shipped):
    """Revoking keeps the record, marked with who, when and why; revoking twice is refused."""
    path = tmp_path / "exemptions.yaml"
    record = _grant(path, shipped)
    seen = []
    revoked = grants.revoke(path, record.id, by="Mrs Patel", reason="Concert cancelled",
                            now=NOW + timedelta(hours=1), before_commit=seen.append)
    assert seen == [revoked]
    loaded = load_exemptions(path).get(record.id)
    assert loaded.revoked.by == "Mrs Patel" and loaded.revoked.at == NOW + timedelta(hours=1)
    with pytest.raises(grants.GrantError, match="already revoked"):
        grants.revoke(path, record.id, by="x", reason="y", now=NOW)
    with pytest.raises(grants.GrantError, match="no exemption with id"):
        grants.revoke(path, "ex-nope", by="x", reason="y", now=NOW)


def test_written_file_is_private(tmp_path, shipped):
    """The exemptions file is written readable by its owner only (it names staff)."""
    path = tmp_path / "exemptions.yaml"
    _grant(path, shipped)
    assert os.stat(path).st_mode & 0o077 == 0
