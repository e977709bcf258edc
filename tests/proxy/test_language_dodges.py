"""The language check through a real `dojoguard run`, as a teacher would try to dodge it: in school hours,
from a school device, each disguise is refused, and clean school words still go."""

from __future__ import annotations

import pytest

from dojoguard.standin import data
from tests.proxy.conftest import running_proxy, signed_in

MESSAGE = f"https://teach.classdojo.com/api/message-thread/{data.THREAD_ID}/message"
STORY = f"https://teach.classdojo.com/api/dojoClass/{data.CLASS_ID}/storyFeed"

DODGES = {
    "zero-width space inside": "That was sh\u200bit, sorry.",
    "fullwidth letters": "That was \uff53\uff48\uff49\uff54, sorry.",
    "spaced out": "That was s h i t, sorry.",
    "digits for letters": "That was sh1t, sorry.",
    "Cyrillic lookalikes": "That was \u0455hit, sorry.",
    "repeated for emphasis": "That was shiiiiit, sorry.",
    "dotted": "That was s.h.i.t, sorry.",
    "one uneven gap": "That was s h i  t, sorry.",
    "slashes": "That was s/h/i/t, sorry.",
    "dotless i": "That was sh\u0131t, sorry.",
    "small capitals": "That was \ua731\u029c\u026a\u1d1b, sorry.",
}
CLEAN = ["Our trip to Scunthorpe is on Friday.", "We are reading Dickens in Year 6.",
         "The assessment week starts on Monday.", "The class assembly is at 9.10.",
         "P.E. is on Tuesday; please bring kit, e.g. trainers."]


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    with running_proxy(tmp_path_factory.mktemp("dodges"), policy="builtin") as found:
        yield found


@pytest.mark.parametrize("how", sorted(DODGES))
def test_a_disguised_swear_word_is_refused(proxy, how):
    with signed_in(proxy["proxy"]) as client:
        refused = client.post(MESSAGE, json={"body": DODGES[how]})
    assert refused.status_code == 403, (how, refused.text)
    assert "not appropriate for ClassDojo" in refused.json()["error"]["fallbackMessage"]


def test_clean_school_words_still_go(proxy):
    with signed_in(proxy["proxy"]) as client:
        for text in CLEAN:
            sent = client.post(MESSAGE, json={"body": text})
            assert sent.status_code == 200, (text, sent.text)
