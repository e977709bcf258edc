"""The Oakfield example policy through a real `dojoguard run`: roles from the staff settings, classes learned
from ClassDojo's class lists and comment stories from its feeds decide real writes, and unknowns fail closed."""

from __future__ import annotations

from datetime import UTC, datetime

from dojoguard.names import Names
from dojoguard.rules.policy import builtin_folder
from dojoguard.state import State
from dojoguard.standin import data
from tests.proxy.conftest import audit_rows, running_proxy, signed_in

API = "https://teach.classdojo.com/api"
CLASS_FEED = f"{API}/dojoClass/{data.CLASS_ID}/storyFeed"
SCHOOL_FEED = f"{API}/school/{data.SCHOOL_ID}/storyFeed"
OTHER_CLASS = "5f0000000000000000000c99"


def _oakfield(roles: dict | None = None) -> dict:
    folder = builtin_folder("oakfield")
    settings = {"rules": {"policy": str(folder), "calendar": str(folder / "example.calendar.yaml")}}
    if roles is not None:
        settings["staff"] = {"roles": roles}
    return settings


def _decided(folder) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(r.get("kind"), r["verdict"], tuple(r.get("rules") or ())) for r in audit_rows(folder / "data" /
                                                                                         "audit.sqlite")]


def test_a_teacher_posts_to_their_own_class_but_not_the_school_story_nor_another_class(tmp_path):
    with running_proxy(tmp_path, settings=_oakfield()) as world, signed_in(world["proxy"]) as client:
        # Before the app has read the class lists, the teacher's classes are not known: held, not let through.
        early = client.post(CLASS_FEED, json={"body": "Our science week"})
        assert early.status_code != 200
        assert client.get(f"{API}/dojoClass").status_code == 200
        assert client.post(CLASS_FEED, json={"body": "Our science week"}).status_code == 200
        other = client.post(f"{API}/dojoClass/{OTHER_CLASS}/storyFeed", json={"body": "Hello Hawks"})
        school = client.post(SCHOOL_FEED, json={"body": "Harvest festival"})
        assert other.status_code != 200 and school.status_code == 403
        assert "Only the headteacher, senior leaders and the pastoral team" in school.text
        # A comment on a School Story post (learned from the feed) waits for a leader; one on the class's
        # own story is posted.
        assert client.get(SCHOOL_FEED).status_code == 200 and client.get(CLASS_FEED).status_code == 200
        on_school = client.post(f"{CLASS_FEED}/{data.SCHOOL_POST_ID}/comments", json={"body": "Lovely"})
        on_class = client.post(f"{CLASS_FEED}/{data.CLASS_POST_ID}/comments", json={"body": "Lovely"})
        assert on_school.status_code != 200 and on_class.status_code == 200
    decided = _decided(tmp_path)
    assert decided == [
        ("story.post", "hold", ("own-class-only",)),
        ("story.post", "allow", ()),
        ("story.post", "hold", ("own-class-only",)),
        ("story.post", "block", ("school-story-leaders-only",)),
        ("comment.post", "hold", ("school-story-comments-leaders-only",)),
        ("comment.post", "allow", ()),
    ]


def test_the_headteacher_named_in_the_staff_settings_posts_on_the_school_story(tmp_path):
    with running_proxy(tmp_path, settings=_oakfield({"headteacher": [data.TEACHER["_id"]]})) as world, \
            signed_in(world["proxy"]) as client:
        assert client.post(SCHOOL_FEED, json={"body": "Harvest festival"}).status_code == 200
    assert _decided(tmp_path) == [("story.post", "allow", ())]


def test_a_role_by_name_is_not_given_by_the_teachers_own_classdojo_profile_name(tmp_path):
    """The stand-in's teacher is "Mrs. Ex Ample" in ClassDojo; a roles list naming "Mrs Ex Ample" gives the role only
    once the school has imported that name for that id (a profile name is the teacher's own to type)."""
    settings = _oakfield({"headteacher": ["Mrs Ex Ample"]})
    with running_proxy(tmp_path, settings=settings) as world, signed_in(world["proxy"]) as client:
        assert client.post(SCHOOL_FEED, json={"body": "Harvest festival"}).status_code == 403
    assert _decided(tmp_path)[-1] == ("story.post", "block", ("school-story-leaders-only",))


def test_a_class_named_in_a_rule_is_known_by_the_name_the_school_gave_it_not_classdojos(tmp_path):
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "rules.yaml").write_text(
        "default: {verdict: allow}\nrules:\n"
        "  - {id: year-3-reminder, when: {kind: story.post, class: {in: [3b]}}, verdict: warn,"
        " notice: Year 3 posts are checked by the phase leader., clause: c}\n")
    folder = tmp_path / "run"
    folder.mkdir()
    with running_proxy(folder, policy=str(policy)) as world, signed_in(world["proxy"]) as client:
        assert client.get(f"{API}/dojoClass").status_code == 200  # ClassDojo calls the class "3B"...
        assert client.post(CLASS_FEED, json={"body": "Learned only"}).status_code == 200
    # ... but a class's name in ClassDojo is its teacher's to change: only the school's own name counts.
    state = State(folder / "data" / "proxy.sqlite")
    try:
        Names(state).set([("class", data.CLASS_ID, "3B")], datetime(2026, 11, 30, tzinfo=UTC))
    finally:
        state.close()
    with running_proxy(folder, policy=str(policy)) as world, signed_in(world["proxy"]) as client:
        assert client.post(CLASS_FEED, json={"body": "Imported"}).status_code == 200
    assert _decided(folder) == [("story.post", "allow", ()), ("story.post", "warn", ("year-3-reminder",))]
