"""Which rules can never match anything ClassDojo's traffic produces, for `rules check` to warn about.

A rule is accepted when it is well formed, but "a comment on the School
Story" written as ``kind: comment.post`` with ``channel: school_story`` can
never match: a comment's channel is always ``comment`` (its story is
``on``). ``REACHABLE`` is every pair of kind and channel the proxy can give an
action (the endpoint catalogue's entries, plus unrecognised writes); a test
checks it against the shipped catalogue, so the two cannot drift apart.
"""

from __future__ import annotations

from dojoguard.rules.action import Channel, Kind

Pair = tuple[Kind, Channel]

REACHABLE: frozenset[Pair] = frozenset({
    (Kind.MESSAGE_SEND, Channel.MESSAGE),
    (Kind.STORY_POST, Channel.CLASS_STORY),
    (Kind.STORY_POST, Channel.SCHOOL_STORY),
    (Kind.COMMENT_POST, Channel.COMMENT),
    (Kind.POINTS_AWARD, Channel.POINTS),
    (Kind.PORTFOLIO_POST, Channel.PORTFOLIO),
    (Kind.ATTACHMENT_UPLOAD, Channel.UNKNOWN),
    (Kind.UNCLASSIFIED_WRITE, Channel.UNKNOWN),
})

# Conditions that hold only for some kinds of action, whatever their value.
_ONLY_KINDS = {"on": {Kind.COMMENT_POST, Kind.ATTACHMENT_UPLOAD}, "reply": {Kind.MESSAGE_SEND},
               "points": {Kind.POINTS_AWARD}}


def _many(value) -> list:
    return [value] if isinstance(value, str) else list(value)


def possible(cond: dict, pairs: frozenset[Pair] = REACHABLE) -> frozenset[Pair]:
    """The pairs of ``pairs`` for which ``cond`` might hold (an over-estimate: never leaves one out)."""
    if not isinstance(cond, dict):
        return pairs
    if "kind" in cond:
        kinds = {Kind(k) for k in _many(cond["kind"])}
        pairs = frozenset(p for p in pairs if p[0] in kinds)
    if "channel" in cond:
        channels = {Channel(c) for c in _many(cond["channel"])}
        pairs = frozenset(p for p in pairs if p[1] in channels)
    for key, kinds in _ONLY_KINDS.items():
        if key in cond:
            pairs = frozenset(p for p in pairs if p[0] in kinds)
    for child in cond.get("all") or ():
        pairs = possible(child, pairs)
    if "any" in cond:
        pairs = frozenset().union(*(possible(child, pairs) for child in cond["any"]))
    # `not` cannot narrow (its condition may fail for other reasons); counts are judged on the action itself.
    return pairs


def unreachable_rules(rules) -> list[str]:
    """A sentence for each rule (with its ``when``) that no action the proxy can see could match."""
    found = []
    for rule in rules:
        when = getattr(rule, "when", None)
        if when is not None and not possible(when):
            found.append(f"rule {rule.id!r} can never match: no action has the kind and channel it asks for "
                         f"(a comment's channel is always `comment`, use `on:` for its story; an upload's is "
                         f"`unknown`). See docs/rules.md, `on`.")
    return found
