"""Facts about one action: the one-scan text screen is exact, and clean texts skip text rules."""

from __future__ import annotations

import pytest

from dojoguard.rules.facts import Facts, carries

from .conftest import make_action


@pytest.mark.parametrize("text", ["Sam is off sick", "There was an incident", "can we meet?", "URGENT!",
                                  "it was a complaint", "a family matter", "text 07700 900123", "sh1t"])
def test_screen_never_hides_a_match(policy, text):
    """The one-scan text screen agrees with running each text test on its own."""
    action = make_action(text=text)
    facts = Facts(action, policy._indexes)
    assert facts.screened()
    direct = {key for key, search in policy._indexes.text.searches.items() if search(text) is not None}
    via_facts = {key for key in policy._indexes.text.searches if facts.text_hit(key)}
    assert direct == via_facts and direct


def test_clean_text_skips_text_rules(policy):
    """A text the screen clears is offered no phrase, word or pattern rule at all."""
    action = make_action(text="PE kit tomorrow please")
    facts = Facts(action, policy._indexes)
    offered = policy._candidates[action.kind][carries(action, facts)]
    assert "absence-notes" not in {r.id for _, r in offered}
    assert "messaging-hours" in {r.id for _, r in offered}


def test_no_text_means_no_text_hit(policy):
    """An action without text matches no phrase, word or pattern test."""
    facts = Facts(make_action(kind="points.award", channel="points", points={"value": 1}), policy._indexes)
    assert not facts.screened()
    assert not any(facts.text_hit(key) for key in policy._indexes.text.searches)


def test_lone_surrogate_in_text_is_searched_not_fatal(policy):
    """A text with a lone surrogate (valid JSON, invalid UTF-8) is still checked, without an error."""
    from dojoguard.rules.action import Action

    action = Action.from_dict({"kind": "message.send", "channel": "message", "at": "2026-11-30T10:00:00Z",
                               "device": {"address": "10.20.1.5"}, "text": "\ud800 he is off sick"})
    assert policy.evaluate(action).rule_ids == ("absence-notes",)
