"""`rules check` warns about rules no real action can match; what is reachable agrees with the catalogue."""

from __future__ import annotations

from dojoguard.rules.action import Channel, Kind
from dojoguard.rules.policy import load_policy
from dojoguard.rules.reachable import REACHABLE, possible, unreachable_rules

from .conftest import write

RULES = """
default: {verdict: allow}
rules:
  - {id: comment-on-school-story, when: {kind: comment.post, channel: school_story}, verdict: block, notice: n,
     clause: c}
  - {id: upload-to-class-story, when: {all: [{kind: attachment.upload}, {channel: class_story}]}, verdict: block,
     notice: n, clause: c}
  - {id: reply-to-a-post, when: {kind: story.post, reply: {unknown: true}}, verdict: warn, notice: n, clause: c}
  - {id: fine, when: {any: [{kind: comment.post, on: school_story}, {kind: story.post, channel: school_story}]},
     verdict: block, notice: n, clause: c}
  - {id: fine-negated, when: {not: {kind: comment.post}}, verdict: warn, notice: n, clause: c}
"""


def test_rules_no_action_can_match_are_named(tmp_path):
    policy = load_policy(write(tmp_path / "rules.yaml", RULES))
    warnings = unreachable_rules(policy.rules)
    assert [w.split("'")[1] for w in warnings] == ["comment-on-school-story", "upload-to-class-story",
                                                  "reply-to-a-post"]


def test_rules_check_prints_the_warnings_and_still_succeeds(tmp_path):
    from .test_cli import run

    path = write(tmp_path / "rules.yaml", RULES)
    result = run(write(tmp_path / "config.yaml", f"data_dir: {tmp_path / 'data'}\n"), "rules", "check", str(path))
    assert result.exit_code == 0, result.output
    assert "warning: rule 'comment-on-school-story' can never match" in result.output


def test_the_shipped_policy_has_no_rule_that_can_never_match():
    assert unreachable_rules(load_policy("builtin").rules) == []


def test_possible_never_leaves_out_a_pair_a_condition_could_hold_for():
    assert possible({"not": {"kind": "message.send"}}) == REACHABLE
    assert possible({"any": [{"kind": "points.award"}, {"channel": "message"}]}) == {
        (Kind.POINTS_AWARD, Channel.POINTS), (Kind.MESSAGE_SEND, Channel.MESSAGE)}


def test_reachable_is_what_the_shipped_catalogue_and_unrecognised_writes_give():
    from dojoguard.proxy import catalogue

    shipped = catalogue.load(catalogue.BUILTIN)
    pairs = {(Kind(e.kind), Channel(e.channel)) for e in shipped.endpoints}
    assert pairs | {(Kind.UNCLASSIFIED_WRITE, Channel.UNKNOWN)} == set(REACHABLE)
