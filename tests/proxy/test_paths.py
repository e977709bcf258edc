"""Paths read as Express and a normalising front server route them."""

from __future__ import annotations

import pytest

from dojoguard.proxy import catalogue, paths

BUILTIN = catalogue.load("builtin")
CLASS = "5f0000000000000000000c01"


@pytest.mark.parametrize("raw, canonical", [
    ("/a/./b/../c", "/a/c"),
    ("//api//awardBatch", "/api/awardBatch"),
    ("/x/../api/awardBatch", "/api/awardBatch"),
    ("/../../api/awardBatch", "/api/awardBatch"),
    ("/api/%61wardBatch", "/api/awardBatch"),
    ("/api/%2e%2e/x", "/x"),
    ("/api/a%2Fb", "/api/a%2Fb"),
    ("/a/b/..", "/a/"),
])
def test_canonical_form(raw, canonical):
    """Dot segments (RFC 3986 5.2.4), repeated slashes and escaped unreserved characters are resolved; %2F is not."""
    assert paths.canonical(raw) == canonical


@pytest.mark.parametrize("path", [
    f"/api/dojoClass/{CLASS}/awardBatch",
    f"/api/dojoClass/{CLASS}/awardBatch/",
    f"/api/dojoclass/{CLASS}/AWARDBATCH",
    f"//api/dojoClass/{CLASS}/awardBatch",
    f"/x/../api/dojoClass/{CLASS}/awardBatch",
    f"/api/dojoClass/{CLASS}/%61wardBatch?x=1",
])
def test_every_spelling_express_routes_to_an_award_is_an_award(path):
    """The catalogue matches case-insensitively, with an optional trailing slash, after normalising."""
    found = BUILTIN.endpoint("POST", "api", path.split("?")[0])
    assert found is not None and found[0].kind == "points.award"
    assert found[1]["classId"].lower() == CLASS


def test_a_different_route_is_not_matched():
    """Matching stays anchored: an extra segment or a prefix is not the award route."""
    assert BUILTIN.endpoint("POST", "api", f"/api/dojoClass/{CLASS}/awardBatch/extra") is None
    assert BUILTIN.endpoint("POST", "api", f"/v2/api/dojoClass/{CLASS}/awardBatch") is None


def test_sign_in_passes_only_when_every_reading_is_sign_in():
    """A path one server reads as sign-in and another as something else is judged, not passed."""
    assert BUILTIN.passes("POST", "api", "/api/session")
    assert BUILTIN.passes("POST", "api", "/API/Session/")
    assert not BUILTIN.passes("POST", "api", "/api/awardBatch/../session")
    assert not BUILTIN.passes("POST", "api", "/api/session/../awardBatch")
