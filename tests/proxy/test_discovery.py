"""The discovery summary keeps shapes and counts, never values."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from dojoguard.proxy.discovery import Discovery, template

AT = datetime(2026, 11, 30, 10, tzinfo=UTC)


def test_ids_in_paths_become_placeholders():
    """ObjectIds, UUIDs and numbers in a path are replaced by {id}; the query is dropped."""
    assert template("/api/dojoClass/5f0000000000000000000c01/thing/42?secret=x") == "/api/dojoClass/{id}/thing/{id}"
    assert template("/api/x/123e4567-e89b-12d3-a456-426614174000") == "/api/x/{id}"


def test_same_shape_is_counted_once(open_state):
    """Two writes of one shape are one line with a count of two; id-like keys are anonymised."""
    found = Discovery(open_state())
    for _ in range(2):
        found.record("POST", "teach.classdojo.com", "/api/new/5f0000000000000000000c01", "application/json",
                     {"5f0000000000000000000501": "string"}, AT)
    shapes = found.shapes()
    assert len(shapes) == 1 and shapes[0].count == 2
    assert json.loads(shapes[0].skeleton) == {"{id}": "string"}
