"""What a decision knows around a write (proxy/context.py, proxy/staff.py): the teacher's roles and classes, the
class's name, the story a comment is on and the thread a message answers, learned from ClassDojo's answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from dojoguard import config
from dojoguard.cookies import session_id
from dojoguard.proxy import flows, learning, staff
from dojoguard.proxy.context import ClassTeachers, thread_state
from dojoguard.proxy.judge import Judge
from dojoguard.proxy.recognition import recognise
from dojoguard.rules.action import Channel, Reply, StartedBy
from dojoguard.standin import data
from dojoguard.yamlfile import FileProblems
from tests.proxy.conftest import MONDAY_10, running_proxy, signed_in, write_config, write_flow
from tests.support.waiting import eventually

A = data.TEACHER["_id"]
B = "5f0000000000000000000a02"
C = "5f0000000000000000000a03"
CLASS_X = "5f0000000000000000000c0a"
CLASS_Y = "5f0000000000000000000c0b"
COOKIE_A = "dojo_teach_login.sid=s%3Aaaaa.1"
COOKIE_B = "dojo_teach_login.sid=s%3Abbbb.2"
MESSAGE = f"/api/message-thread/{data.THREAD_ID}/message"


def _teacher(id_: str, first: str, last: str, **more) -> dict:
    return {"_id": id_, "title": "Mrs.", "firstName": first, "lastName": last, **more}


def _learn(services, what: str, doc, cookie: str | None = None, **params) -> None:
    learning.learn(services, what, doc, params=params, session=session_id(cookie), at=MONDAY_10)


def _action(services, path: str, body, cookie: str | None = None):
    request = flows.request_of(write_flow(path, body, cookie=cookie))
    return Judge(services)._action(request, recognise(request, services.catalogue), [], MONDAY_10)


def _sign_in(services, cookie: str, teacher: dict) -> None:
    _learn(services, "session", {"type": "teacher", "teacher": teacher}, cookie)


# -- the teacher: classes and roles ----------------------------------------


def test_a_known_teacher_gets_their_classes_roles_and_the_class_name(services):
    _sign_in(services, COOKIE_A, data.TEACHER)
    _learn(services, "classes", {"_items": [data.CLASS]}, COOKIE_A)
    services.names.set([("teacher", A, "Mrs. Ex Ample")], datetime(2026, 11, 30, tzinfo=UTC))  # the school's
    services.staff = staff.load({"dsl": ["mrs ex   AMPLE"], "headteacher": [A]}, None)
    action = _action(services, MESSAGE, {"body": "See you tomorrow", "classId": data.CLASS_ID}, COOKIE_A)
    assert action.teacher_id == A
    assert action.teacher_classes == frozenset({data.CLASS_ID})
    assert action.teacher_roles == ("dsl", "headteacher")
    # The class's name is looked up only for a policy that names classes (`class: {in: [3B]}`).
    assert action.class_name is None
    services.policy.uses_class_names = True
    action = _action(services, MESSAGE, {"body": "See you tomorrow", "classId": data.CLASS_ID}, COOKIE_A)
    assert action.class_name is None  # ClassDojo's name for it is its teacher's to change
    services.names.set([("class", data.CLASS_ID, "3B")], datetime(2026, 11, 30, tzinfo=UTC))
    action = _action(services, MESSAGE, {"body": "See you tomorrow", "classId": data.CLASS_ID}, COOKIE_A)
    assert action.class_name == "3B"


def test_a_known_teacher_no_list_names_is_a_teacher_and_a_name_matches_without_its_title(services):
    _sign_in(services, COOKIE_A, data.TEACHER)
    services.names.set([("teacher", A, "Mrs. Ex Ample")], datetime(2026, 11, 30, tzinfo=UTC))
    services.staff = staff.load({"pastoral": ["Someone Else"]}, None)
    assert _action(services, MESSAGE, {"body": "Hi"}, COOKIE_A).teacher_roles == ("teacher",)
    services.staff = staff.load({"pastoral": ["ex ample"]}, None)
    assert _action(services, MESSAGE, {"body": "Hi"}, COOKIE_A).teacher_roles == ("pastoral",)


def test_a_role_by_name_is_never_taken_from_the_teachers_own_classdojo_profile(services):
    """A teacher who names themselves after the headteacher in ClassDojo does not become the headteacher: names
    are matched only against the names the school imported."""
    impostor = dict(data.TEACHER, title="Mrs.", firstName="Ann", lastName="Jones")
    _sign_in(services, COOKIE_A, impostor)
    services.staff = staff.load({"headteacher": ["Mrs Ann Jones"]}, None)
    assert _action(services, MESSAGE, {"body": "Hi"}, COOKIE_A).teacher_roles == ("teacher",)
    # Learned from ClassDojo's class lists too: still not the school's record.
    _learn(services, "classes", {"_items": [dict(data.CLASS, collaborators=[dict(impostor, isMe=True)])]}, COOKIE_A)
    assert _action(services, MESSAGE, {"body": "Hi"}, COOKIE_A).teacher_roles == ("teacher",)
    # The school's own record of who Mrs Ann Jones is decides.
    services.names.set([("teacher", "5f00000000000000000000ff", "Mrs Ann Jones")], datetime(2026, 11, 30, tzinfo=UTC))
    assert _action(services, MESSAGE, {"body": "Hi"}, COOKIE_A).teacher_roles == ("teacher",)


def test_an_unknown_teacher_has_no_roles_and_no_classes_not_empty_ones(services):
    _sign_in(services, COOKIE_A, data.TEACHER)
    _learn(services, "classes", {"_items": [data.CLASS]}, COOKIE_A)
    services.staff = staff.load({"headteacher": [A]}, None)
    services.policy.uses_class_names = True
    services.names.set([("class", data.CLASS_ID, "3B")], datetime(2026, 11, 30, tzinfo=UTC))
    for cookie in (None, "dojo_teach_login.sid=s%3Anever-seen.3"):
        action = _action(services, MESSAGE, {"body": "Hello", "classId": data.CLASS_ID}, cookie)
        assert action.teacher_id is None
        assert action.teacher_roles is None and action.teacher_classes is None
        assert action.class_name == "3B"  # the class is known whoever writes to it


def test_a_teacher_no_class_list_has_named_has_unknown_classes(services):
    _sign_in(services, COOKIE_A, data.TEACHER)
    action = _action(services, MESSAGE, {"body": "Hello"}, COOKIE_A)
    assert action.teacher_classes is None and action.teacher_roles == ("teacher",)


def test_another_teachers_class_list_gives_only_the_classes_classdojo_says(services):
    """B's session lists two classes; A is a collaborator on one, C only invited to the other."""
    _sign_in(services, COOKIE_A, data.TEACHER)
    _sign_in(services, COOKIE_B, _teacher(B, "Bea", "Bee"))
    x = {"_id": CLASS_X, "name": "4X", "collaborators": [_teacher(B, "Bea", "Bee", isMe=True),
                                                          _teacher(A, "Ex", "Ample")]}
    y = {"_id": CLASS_Y, "name": "4Y", "collaborators": [_teacher(B, "Bea", "Bee", isMe=True),
                                                          _teacher(C, "Cy", "See", sharingStatus="requested")]}
    _learn(services, "classes", {"_items": [x, y]}, COOKIE_B)
    assert _action(services, MESSAGE, {"body": "Hi"}, COOKIE_A).teacher_classes == frozenset({CLASS_X})
    assert _action(services, MESSAGE, {"body": "Hi"}, COOKIE_B).teacher_classes == frozenset({CLASS_X, CLASS_Y})
    assert services.classes.classes_of(C) is None
    # The class sent again without A: replaced, and A now teaches nothing (known, not unknown).
    _learn(services, "class", dict(x, collaborators=[_teacher(B, "Bea", "Bee")]), COOKIE_B)
    assert _action(services, MESSAGE, {"body": "Hi"}, COOKIE_A).teacher_classes == frozenset()
    # An answer without a collaborators list changes nothing.
    _learn(services, "class", {"_id": CLASS_Y, "name": "4Y"}, COOKIE_B)
    assert services.classes.teachers_of(CLASS_Y) == frozenset({B})


def test_class_teachers_are_kept_in_the_proxy_state(open_state):
    state = open_state()
    ClassTeachers(state).learn(CLASS_X, [A, B], MONDAY_10)
    state.close()
    again = open_state()
    assert ClassTeachers(again).classes_of(A) == frozenset({CLASS_X})
    assert ClassTeachers(again).classes_of(C) is None


def test_a_class_sent_again_replaces_its_teachers_in_the_proxy_state(open_state):
    state = open_state()
    ClassTeachers(state).learn(CLASS_X, [A, B], MONDAY_10)
    ClassTeachers(state).learn(CLASS_X, [B], MONDAY_10)
    state.close()
    again = ClassTeachers(open_state())
    assert again.teachers_of(CLASS_X) == frozenset({B}) and again.classes_of(A) is None


# -- staff settings -------------------------------------------------------


def test_the_staff_csv_gives_roles_by_id_and_by_name(tmp_path):
    path = tmp_path / "staff.csv"
    path.write_text(f"id,name,role\n{A},Mrs. Ex Ample,headteacher\n\n{A},,dsl\n,\"Okafor, Ben\",pastoral\n")
    roles = staff.load({"senior_leader": [B]}, path)
    assert roles.roles_of(A) == ("dsl", "headteacher")
    assert roles.roles_of(C, "Okafor, Ben") == ("pastoral",)
    assert roles.roles_of(B) == ("senior_leader",)
    assert roles.roles_of(None, "Okafor, Ben") is None


def test_every_bad_line_of_the_staff_csv_is_an_error_naming_it(tmp_path):
    path = tmp_path / "staff.csv"
    path.write_text(f"id,name,role\n{A},,headteacher\nnot-an-id,,dsl\n,,pastoral\n{B},,Head Teacher\n"
                    f",Ann Jones,teacher,extra\n")
    with pytest.raises(FileProblems) as caught:
        staff.load({}, path)
    problems = caught.value.problems
    assert [p.line for p in problems] == [3, 4, 5, 6]
    assert all(p.code == "DG-CONFIG-STAFF" and p.file == str(path) for p in problems)
    assert "'not-an-id' is not a ClassDojo id" in problems[0].message
    assert "names no teacher" in problems[1].message and "'Head Teacher'" in problems[2].message
    with pytest.raises(FileProblems, match="role and id or name"):
        staff.parse_csv("teacher,job\nA,dsl\n")


def test_a_role_name_in_the_settings_must_be_a_lower_case_word(tmp_path):
    path = write_config(tmp_path)
    doc = json.loads(path.read_text())
    doc["staff"] = {"roles": {"Head Teacher": ["Ann Jones"]}}
    path.write_text(json.dumps(doc))
    with pytest.raises(FileProblems) as caught:
        config.load(path)
    assert "lower-case word" in str(caught.value.problems[0])
    doc["staff"] = {"roles": {"head_of_year": ["Ann Jones"], "dsl": [A]}}
    path.write_text(json.dumps(doc))
    assert config.load(path)["staff"]["roles"]["head_of_year"] == ["Ann Jones"]


# -- comments: the story they are on ------------------------------------------


def _comment(services, post: str):
    return _action(services, f"/api/dojoClass/{data.CLASS_ID}/storyFeed/{post}/comments", {"body": "Lovely!"})


def test_a_comment_is_on_the_story_its_post_was_seen_in(services):
    _learn(services, "class-story", {"_items": data.CLASS_STORY}, classId=data.CLASS_ID)
    _learn(services, "school-story", {"_items": [{"_id": "6a00000000000000000000ff"}]}, schoolId=data.SCHOOL_ID)
    # The home feed mixes both: each item's own targetType says where it is.
    _learn(services, "story-feed", {"_items": data.SCHOOL_STORY + [{"_id": "6a00000000000000000000ee"}]})
    assert _comment(services, data.CLASS_POST_ID).on_channel is Channel.CLASS_STORY
    assert _comment(services, data.SCHOOL_POST_ID).on_channel is Channel.SCHOOL_STORY
    assert _comment(services, "6a00000000000000000000ff").on_channel is Channel.SCHOOL_STORY
    assert _comment(services, "6a00000000000000000000ee").on_channel is None  # no targetType, no feed kind
    assert _comment(services, "6a0000000000000000000999").on_channel is None
    assert _action(services, MESSAGE, {"body": "Hi"}).on_channel is None


# -- messages: the thread they answer ----------------------------------------


def _message(sender: str, at: str) -> dict:
    return {"_id": f"m{at}", "senderType": sender, "createdAt": f"2026-11-30T{at}:00.000Z", "body": "words"}


def test_a_thread_never_read_gives_only_its_id(services):
    assert _action(services, MESSAGE, {"body": "Hi"}).reply == Reply(thread_id=data.THREAD_ID)
    assert _action(services, "/api/channel/abc/message", {"body": "Hi"}).reply is None


def test_a_thread_read_says_who_started_it_and_whether_a_parent_is_waiting(services):
    services.threads.learn(data.THREAD_ID, {"_items": [_message("teacher", "08:00"), _message("parent", "09:00"),
                                                        _message("guardian", "09:30")]})
    reply = _action(services, MESSAGE, {"body": "Hi"}).reply
    assert reply == Reply(data.THREAD_ID, StartedBy.TEACHER, datetime(2026, 11, 30, 9, 30, tzinfo=UTC), False)
    # Listed newest first: put in time order.
    services.threads.learn(data.THREAD_ID, {"_items": [_message("teacher", "10:00"), _message("parent", "09:00")]})
    assert _action(services, MESSAGE, {"body": "Hi"}).reply == Reply(data.THREAD_ID, StartedBy.PARENT, None, True)


def test_what_a_thread_answer_cannot_tell_stays_unknown():
    paged = thread_state({"_items": [_message("parent", "09:00")], "_links": {"next": {"href": "/x?before=1"}}})
    assert paged.started_by is None and paged.parent_wrote_at is not None
    unknown_sender = thread_state({"_items": [_message("teacher", "08:00"), _message("robot", "09:00")]})
    assert unknown_sender.nobody_waiting is False and unknown_sender.parent_wrote_at is None
    no_time = thread_state([{"senderType": "parent", "body": "x"}])
    assert no_time.nobody_waiting is False and no_time.parent_wrote_at is None
    assert thread_state({"_items": []}).nobody_waiting is True
    assert thread_state("not a thread").started_by is None


def test_the_thread_memory_is_bounded(services):
    from dojoguard.proxy.context import Threads

    threads = Threads(limit=3)
    for i in range(5):
        threads.learn(f"t{i}", [_message("parent", "09:00")])
    assert len(threads) == 3 and threads.reply("t0") == Reply("t0") and threads.reply("t4").started_by


# -- through a real proxy ----------------------------------------------------

CLASS_FEED = f"https://teach.classdojo.com/api/dojoClass/{data.CLASS_ID}/storyFeed"
SCHOOL_FEED = f"https://teach.classdojo.com/api/school/{data.SCHOOL_ID}/storyFeed"
THREAD = f"https://teach.classdojo.com{MESSAGE}"


def _contexts(proxy) -> list[dict]:
    found = []
    for line in proxy.log().splitlines():
        if '"request.context"' in line:
            try:
                found.append(json.loads(line[line.index("{"):]))
            except ValueError:
                continue
    return found




@pytest.mark.slow
def test_a_real_proxy_learns_the_context_and_keeps_the_classes_across_a_restart(tmp_path):
    settings = {"logging": {"level": "debug"}, "staff": {"roles": {"dsl": [data.TEACHER["_id"]]}}}
    parent_waiting = [_message("teacher", "08:00"), dict(_message("parent", "08:30"), senderId=data.PARENT_ID)]
    with running_proxy(tmp_path, settings=settings) as world:
        standin = world["standin"]
        standin.threads[data.THREAD_ID] = parent_waiting
        standin.classes.append({"_id": CLASS_X, "name": "4X", "collaborators": [_teacher(B, "Bea", "Bee")]})
        with signed_in(world["proxy"]) as client:
            assert client.get("https://teach.classdojo.com/api/dojoClass").status_code == 200
            assert client.get(CLASS_FEED).json()["_items"] == data.CLASS_STORY
            assert client.get(SCHOOL_FEED).status_code == 200
            answer = client.get(THREAD)
            assert answer.status_code == 200 and answer.json()["_items"] == parent_waiting  # passed on unchanged
            eventually(lambda: '"thread.read"' in world["proxy"].log())
            posted = client.post(f"https://teach.classdojo.com/api/dojoClass/{data.CLASS_ID}/storyFeed",
                                 json={"body": "Our science week"})
            assert posted.status_code == 200
            for post in (data.CLASS_POST_ID, data.SCHOOL_POST_ID, posted.json()["_id"], "6a0000000000000000000999"):
                assert client.post(f"{CLASS_FEED}/{post}/comments", json={"body": "Lovely"}).status_code == 200
            for _ in range(2):
                assert client.post(THREAD, json={"body": "Thank you", "classId": data.CLASS_ID}).status_code == 200
        contexts = eventually(lambda: len(_contexts(world["proxy"])) >= 7 and _contexts(world["proxy"]))
    story, *comments, first, second = contexts
    assert all(c["roles"] == ["dsl"] and c["classes"] == 1 for c in contexts)
    # (The test policy names no class, so no class name is looked up.)
    assert story["teaches_class"] is True and story["class_named"] is False
    assert [c["on"] for c in comments] == ["class_story", "school_story", "class_story", None]
    assert first["reply"] == {"thread": data.THREAD_ID, "started_by": "teacher",
                              "parent_wrote_at": "2026-11-30T08:30:00+00:00", "nobody_waiting": False}
    # The first message went through: the school wrote last.
    assert second["reply"] == {"thread": data.THREAD_ID, "started_by": "teacher", "parent_wrote_at": None,
                               "nobody_waiting": True}

    with running_proxy(tmp_path, settings=settings, at=MONDAY_10 + timedelta(hours=1)) as world:
        with signed_in(world["proxy"]) as client:
            assert client.post(THREAD, json={"body": "Morning", "classId": data.CLASS_ID}).status_code == 200
        (after,) = eventually(lambda: _contexts(world["proxy"]))
    # Classes came from the state kept on disk; threads and posts were in memory only.
    assert after["classes"] == 1 and after["teaches_class"] is True and after["roles"] == ["dsl"]
    assert after["reply"] == {"thread": data.THREAD_ID, "started_by": None, "parent_wrote_at": None,
                              "nobody_waiting": False}
