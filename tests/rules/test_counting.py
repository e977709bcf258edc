"""Counting over time: `count`, `strikes`, spans, the history they read, and scheduled checks.

Each limit is also tried from the side a teacher would walk around it: blocked
actions that should not count, a new class, a clock change, an unknown sender.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dojoguard.rules.action import Action, Attachment, AttachmentKind, Channel, Kind
from dojoguard.rules.decision import Verdict
from dojoguard.rules.history import History
from dojoguard.rules.policy import load_policy
from dojoguard.rules.spans import SpanError, parse_span
from dojoguard.yamlfile import FileProblems

from .conftest import write

LONDON = ZoneInfo("Europe/London")

RULES = """
default: {verdict: allow}
rules:
  - id: photos-twice-a-week
    when:
      kind: story.post
      count: {of: {kind: story.post, attachment: photo}, per: class, within: this week, more_than: 2}
    verdict: warn
    notice: More than two picture posts this week.
    clause: pictures uploaded once or twice a week
  - id: messages-an-hour
    when: {kind: message.send, count: {of: {kind: message.send}, per: teacher, within: 1 hour, more_than: 3}}
    verdict: block
    notice: At most three an hour.
    clause: c
  - id: shouting
    when: {kind: message.send, regex: "!!!"}
    verdict: block
    notice: No shouting.
    clause: c
  - id: late
    when: {kind: message.send, text_longer_than: 1000}
    verdict: warn
    notice: long
    clause: c
  - id: repeated-misuse
    when: {strikes: {within: 7 days, at_least: 3}}
    verdict: block
    notice: Blocked after repeated misuse.
    clause: anyone misusing Class Dojo will be blocked
    alert: [headteacher]
checks:
  - id: two-videos-a-week
    clause: at least two class videos a week
    at: {days: [fri], time: "15:00"}
    count: {of: {kind: story.post, attachment: video}, per: class, within: this week, fewer_than: 2}
    alert: [headteacher]
"""

MONDAY = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return load_policy(write(tmp_path_factory.mktemp("counting") / "rules.yaml", RULES))


def _post(at, *, klass="c1", teacher="t1", kind=AttachmentKind.PHOTO) -> Action:
    return Action(Kind.STORY_POST, Channel.CLASS_STORY, at, teacher_id=teacher, class_id=klass,
                  attachments=(Attachment(kind),))


def _message(at, text="Hello", teacher="t1") -> Action:
    return Action(Kind.MESSAGE_SEND, Channel.MESSAGE, at, teacher_id=teacher, text=text)


def _decide(policy, action, history):
    decision = policy.evaluate(action, history=history)
    policy.remember(action, decision, history)
    return decision


def test_the_third_picture_post_of_a_class_in_a_week_warns_and_the_next_week_starts_again(policy):
    history = History()
    verdicts = [_decide(policy, _post(MONDAY + timedelta(days=d)), history).verdict for d in range(4)]
    assert verdicts == [Verdict.ALLOW, Verdict.ALLOW, Verdict.WARN, Verdict.WARN]
    # Monday of the next week: a calendar span starts again at Monday 00:00 school time.
    assert _decide(policy, _post(MONDAY + timedelta(days=7)), history).verdict is Verdict.ALLOW


def test_counts_are_per_class_and_a_teacher_cannot_reset_them_by_posting_as_someone_else(policy):
    history = History()
    for d in range(2):
        _decide(policy, _post(MONDAY + timedelta(hours=d), teacher=f"t{d}"), history)
    # Two different teachers posted to c1: the third post to c1 is still the third.
    assert _decide(policy, _post(MONDAY + timedelta(hours=3), teacher="t9"), history).verdict is Verdict.WARN
    assert _decide(policy, _post(MONDAY + timedelta(hours=3), klass="c2"), history).verdict is Verdict.ALLOW


def test_blocked_messages_do_not_count_towards_a_limit_but_sent_ones_do(policy):
    history = History()
    for minute in range(2):  # two: a third would be a third strike
        assert _decide(policy, _message(MONDAY + timedelta(minutes=minute), "No!!!"), history).verdict \
            is Verdict.BLOCK
    sent = [_decide(policy, _message(MONDAY + timedelta(minutes=10 + m)), history).verdict for m in range(4)]
    assert sent[:3] == [Verdict.ALLOW] * 3 and sent[3] is Verdict.BLOCK


def test_a_sliding_hour_slides(policy):
    history = History()
    for minute in (0, 1, 2):
        _decide(policy, _message(MONDAY + timedelta(minutes=minute)), history)
    assert policy.evaluate(_message(MONDAY + timedelta(minutes=59)), history=history).verdict is Verdict.BLOCK
    # "Within 1 hour" includes the message exactly an hour before.
    assert policy.evaluate(_message(MONDAY + timedelta(minutes=60)), history=history).verdict is Verdict.BLOCK
    assert policy.evaluate(_message(MONDAY + timedelta(minutes=61)), history=history).verdict is Verdict.ALLOW


def test_without_history_only_the_action_itself_counts(policy):
    assert policy.evaluate(_message(MONDAY)).verdict is Verdict.ALLOW


def test_unknown_teachers_are_counted_together_so_a_limit_comes_sooner(policy):
    history = History()
    for minute in range(3):
        _decide(policy, _message(MONDAY + timedelta(minutes=minute), teacher=None), history)
    # A fourth unknown sender is over the limit (not a fresh count of one).
    assert policy.evaluate(_message(MONDAY + timedelta(minutes=5), teacher=None),
                           history=history).verdict is Verdict.BLOCK
    assert policy.evaluate(_message(MONDAY + timedelta(minutes=5), teacher="t2"),
                           history=history).verdict is Verdict.ALLOW


def test_strikes_escalate_and_blocks_for_strikes_are_not_strikes(policy):
    history = History()
    for minute in range(3):
        _decide(policy, _message(MONDAY + timedelta(minutes=minute), "Stop!!!"), history)
    decision = _decide(policy, _message(MONDAY + timedelta(minutes=10), "Sorry"), history)
    assert decision.verdict is Verdict.BLOCK and decision.rule_ids == ("repeated-misuse",)
    assert decision.alerts == [{"rule": "repeated-misuse", "to": ["headteacher"], "when": "now"}]
    # Blocked by strikes many times more, still three strikes: after seven days they are gone.
    for minute in range(20, 30):
        _decide(policy, _message(MONDAY + timedelta(minutes=minute), "Sorry"), history)
    assert policy.evaluate(_message(MONDAY + timedelta(days=7, minutes=3), "Hello"),
                           history=history).verdict is Verdict.ALLOW
    # A warning is not a strike.
    other = History()
    for minute in range(4):
        _decide(policy, _message(MONDAY + timedelta(minutes=minute), "x" * 1200, teacher="t3"), other)
    assert policy.evaluate(_message(MONDAY + timedelta(minutes=70), teacher="t3"),
                           history=other).verdict is Verdict.ALLOW


def test_this_week_is_school_time_across_the_clock_change():
    span = parse_span("this week")
    # Sunday 29 March 2026, the clocks go forward; Monday 30 March 00:00 BST is Sunday 23:00 UTC.
    at = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)
    assert span.start(at, LONDON) == datetime(2026, 3, 29, 23, 0, tzinfo=UTC).timestamp()
    # A Sunday-night 23:30 UTC post (00:30 BST Monday) is in the new week.
    assert span.start(datetime(2026, 3, 29, 23, 30, tzinfo=UTC), LONDON) == \
        datetime(2026, 3, 29, 23, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("text", ["33 days", "5 weeks", "0 hours", "a week", "forever", "1 fortnight"])
def test_spans_dojoguard_cannot_count_are_refused(text):
    with pytest.raises(SpanError):
        parse_span(text)


def test_a_span_too_long_and_a_count_inside_a_count_are_problems_at_load(tmp_path):
    path = write(tmp_path / "rules.yaml", """
default: {verdict: allow}
rules:
  - id: a
    when: {count: {of: {kind: message.send}, within: 40 days, at_least: 1}}
    verdict: warn
    notice: n
    clause: c
  - id: b
    when: {count: {of: {strikes: {within: 1 day, at_least: 1}}, within: 1 day, at_least: 1}}
    verdict: warn
    notice: n
    clause: c
""")
    with pytest.raises(FileProblems) as raised:
        load_policy(path)
    codes = sorted(p.code for p in raised.value.problems)
    assert codes == ["DG-RULES-COUNT", "DG-RULES-SPAN"]


def test_a_scheduled_check_finds_a_class_that_posted_nothing_and_only_this_weeks_videos_count(policy):
    history = History()
    friday = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
    for hours in (1, 2):
        _decide(policy, _post(MONDAY + timedelta(hours=hours), klass="c1", kind=AttachmentKind.VIDEO), history)
    # c2's videos were last week.
    for hours in (1, 2, 3):
        _decide(policy, _post(MONDAY - timedelta(days=3, hours=hours), klass="c2", kind=AttachmentKind.VIDEO),
                history)
    _decide(policy, _post(MONDAY, klass="c3", kind=AttachmentKind.VIDEO), history)
    [check] = policy.checks
    assert check.due_at(friday.astimezone(LONDON)) and not check.due_at(friday.replace(hour=14))
    found = check.run(friday, history, ["c1", "c2", "c3", "c4"], LONDON)
    assert found == [("c2", 0), ("c3", 1), ("c4", 0)]


def test_a_history_survives_being_written_and_read_back():
    history = History()
    history.add("t", "k", 10.0)
    history.add("t", "k", 5.0)
    rows = history.take_pending()
    again = History()
    again.load(rows)
    assert again.count("t", "k", 0, 11) == 2 and again.count("t", "k", 6, 11) == 1
    assert history.take_pending() == []
    again.forget_before(6)
    assert again.count("t", "k", 0, 11) == 1


def test_reloading_the_same_rules_keeps_counting_the_same_tallies(policy, tmp_path):
    reloaded = load_policy(write(tmp_path / "rules.yaml", RULES))
    assert sorted(t.id for t in reloaded.tallies) == sorted(t.id for t in policy.tallies)


def test_strikes_naming_a_rule_the_policy_lacks_is_a_problem_not_a_silent_zero(tmp_path):
    path = write(tmp_path / "rules.yaml", """
default: {verdict: allow}
rules:
  - {id: shouting, when: {regex: "!!!"}, verdict: block, notice: n, clause: c}
  - {id: misuse, when: {strikes: {within: 7 days, at_least: 3, rules: [shoutng]}}, verdict: block, notice: n,
     clause: c}
""")
    with pytest.raises(FileProblems) as raised:
        load_policy(path)
    [problem] = raised.value.problems
    assert problem.code == "DG-RULES-UNDEFINED" and "'shoutng'" in problem.message
    assert "Did you mean 'shouting'?" in problem.hint
