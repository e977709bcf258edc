"""A teacher whose video was held hears what became of it, on their next write through the real proxy.

The world of tests/proxy/test_held_posts.py: a real ``dojoguard run`` with
St Wilfrid's rules in front of the stand-in, a teacher's client trusting
only the proxy's CA, and the real ``held`` commands. A video the proxy
cannot read is held for a leader (``video-review``). Each case is run for a
teacher the proxy knows, and for one whose ClassDojo login was made before
the proxy started (the proxy has not yet learned whose it is): such an
item used to be kept with no teacher, and its outcome was never told.
"""

from __future__ import annotations

import ssl
import time
from contextlib import contextmanager
from typing import Iterator

import httpx
import pytest

from dojoguard.consent_registry import sample_photos
from dojoguard.standin import data
from tests.proxy.conftest import running_proxy, signed_in
from tests.proxy.test_held_posts import (STORY, UPLOAD, assert_held, held, item_of, multipart, posts_arrived, records,
                                         wait_until)
from tests.proxy.test_videos import clip, registry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """St Wilfrid's rules and the consent registry of test_videos; the releaser looks every 0.3 s."""
    folder = tmp_path_factory.mktemp("held-outcomes")
    registry(folder)
    with running_proxy(folder, policy="builtin", settings={"images": {"workers": 2}, "holds": {"check_every_s": 0.3}},
                       extra_hosts=[r"^dojo-uploads\.s3\.amazonaws\.com:\d+$"]) as found:
        with signed_in(found["proxy"], timeout=120) as client:
            yield dict(found, client=client)


@pytest.fixture(scope="module")
def cut_video() -> bytes:
    """A video cut off half way: it cannot be checked, so St Wilfrid's holds its post for a leader."""
    video = clip((sample_photos.open_sample("astronaut.jpg"), 2))
    return video[:len(video) // 2]


@contextmanager
def teacher(world, known: bool) -> Iterator[httpx.Client]:
    """The teacher's device: signed in through the proxy, or with a login made before the proxy started."""
    if known:
        yield world["client"]
        return
    sid = f"s:earlier-login-{time.monotonic_ns()}.made-before-the-proxy"
    world["standin"].sessions[sid] = data.TEACHER["_id"]  # ClassDojo knows it; the proxy never saw it made
    context = ssl.create_default_context(cafile=str(world["proxy"].ca_cert))
    with httpx.Client(proxy=world["proxy"].url, verify=context, timeout=120,
                      cookies={"dojo_login.sid": sid.replace(":", "%3A")}) as client:
        yield client


def held_video(world, client: httpx.Client, video: bytes, marker: str) -> dict:
    """Upload the video, post it: the post is held; its item."""
    body, headers = multipart(video, f"boundary-{marker.replace(' ', '-')}")
    uploaded = client.post(UPLOAD, content=body, headers=headers)
    assert uploaded.status_code == 200, uploaded.text
    ref = uploaded.json()
    posted = client.post(STORY, json={"body": marker, "attachments": [{"_id": ref["_id"], "path": ref["path"]}]})
    assert_held(posted)
    return item_of(world, posted)


def told_of(world, item: dict) -> list[str]:
    return [e["outcome"] for e in records(world, "teacher.told") if e["hold"] == item["id"]]


@pytest.mark.parametrize("known", [True, False], ids=["known-teacher", "login-not-yet-learned"])
def test_a_rejected_video_is_told_with_the_reason_on_the_next_post(world, cut_video, known):
    """`held reject`: the teacher's next post is refused once with the rejection and the leader's reason (and
    recorded as teacher.told); sent again, it goes."""
    with teacher(world, known) as client:
        item = held_video(world, client, cut_video, f"Sports day video rejected {known}")
        if not known:
            assert item["teacher_id"] is None  # kept before the proxy knew whose login it was
        held(world, "reject", item["id"], "--reason", "Please choose one without the visitors", "--by", "Mrs Head")
        time.sleep(1)  # the proxy re-reads who has notices waiting on each release pass (every 0.3 s here)

        marker = f"Well done Year 3 after rejection {known}"
        first = client.post(STORY, json={"body": marker})
        assert first.status_code == 403 and first.json()["error"]["code"] == "DOJOGUARD_BLOCKED", first.text
        message = first.json()["error"]["fallbackMessage"]
        assert "was not approved by a senior leader, so it was not posted" in message, message
        assert "The reason given: Please choose one without the visitors" in message, message
        assert "Sports day" not in message
        assert posts_arrived(world, marker) == 0
        assert told_of(world, item) == ["rejected"]

        again = client.post(STORY, json={"body": marker})
        assert again.status_code == 200, again.text
        assert "x-dojoguard-notice" not in again.headers
        assert posts_arrived(world, marker) == 1


@pytest.mark.parametrize("known", [True, False], ids=["known-teacher", "login-not-yet-learned"])
def test_an_approved_video_is_told_once_it_is_posted(world, cut_video, known):
    """`held approve`: nothing is told before the post reaches ClassDojo; after it, the next post goes through and
    its answer carries "approved ... and has now been posted" (recorded as teacher.told), once."""
    with teacher(world, known) as client:
        marker = f"Sports day video approved {known}"
        item = held_video(world, client, cut_video, marker)
        held(world, "approve", item["id"], "--by", "Mrs Head")
        wait_until(lambda: posts_arrived(world, marker) == 1)
        wait_until(lambda: [e for e in records(world, "hold.released") if e["hold"] == item["id"]])
        time.sleep(1)  # the releaser keeps the notice just after recording the release
        if not known:
            # The app asks ClassDojo who is logged in: the proxy learns the login is this teacher's.
            assert client.get("https://teach.classdojo.com/api/session").status_code == 200

        answer = client.post(STORY, json={"body": f"Thank you for coming to sports day {known}"})
        assert answer.status_code == 200, answer.text
        notice = answer.headers.get("x-dojoguard-notice", "")
        assert "was approved by a senior leader and has now been posted" in notice, dict(answer.headers)
        assert told_of(world, item) == ["released"]

        later = client.post(STORY, json={"body": f"And thank you to the PTA {known}"})
        assert later.status_code == 200 and "x-dojoguard-notice" not in later.headers
