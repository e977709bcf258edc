"""How fast the rule engine decides, beside json.loads of the same actions as a yardstick.

Evaluates the default policy (St Wilfrid's) over generated actions of a
realistic mix (mostly short messages and positive points in school hours,
some photos, a few out-of-hours messages, off-topic texts, negative points
and personal devices) on one core, and prints:

- decisions per second and microseconds per decision;
- microseconds per json.loads of the same actions' JSON, measured in the same
  run, and the ratio of the two (so the figure travels between machines);
- how long loading the default policy takes.

Run:  .venv/bin/python benchmarks/rules_bench.py [--actions 10000] [--repeat 7]
Targets: >= 20,000 decisions/s, evaluation < 2x json.loads, load < 200 ms; also >= 20,000
decisions/s when every text must be normalised (the language check's slow path), and >= 20,000
decisions/s with counting rules on (St Wilfrid's rules plus four `count` rules and a `strikes` rule,
each decision also counted into the history the next one reads, as the proxy does).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from datetime import UTC, datetime, timedelta

from dojoguard.rules.action import Action
from dojoguard.rules.history import History
from dojoguard.rules.policy import builtin_folder, load_policy

# Counting rules of the kinds other schools' policies need, added to St Wilfrid's for the counting figure.
COUNTING = """
rules:
  - id: pictures-once-or-twice-a-week
    when: {kind: story.post, attachment: photo,
           count: {of: {kind: story.post, attachment: photo}, per: class, within: this week, more_than: 2}}
    verdict: warn
    notice: n
    clause: c
  - id: messages-an-hour
    when: {kind: message.send, count: {of: {kind: message.send}, per: teacher, within: 1 hour, more_than: 20}}
    verdict: warn
    notice: n
    clause: c
  - id: points-a-day
    when: {kind: points.award, count: {of: {kind: points.award}, per: [teacher, class], within: today, more_than: 50}}
    verdict: warn
    notice: n
    clause: c
  - id: comments-a-week
    when: {kind: comment.post, count: {of: {kind: comment.post}, per: teacher, within: 7 days, more_than: 30}}
    verdict: warn
    notice: n
    clause: c
  - id: repeated-misuse
    when: {strikes: {within: 30 days, at_least: 3}}
    verdict: block
    notice: n
    clause: c
"""

MESSAGES = [
    "Just a reminder that it's PE tomorrow, please bring kit.",
    "Thanks for sending the reading book back!",
    "Sam did some lovely writing today, ask him about it.",
    "Don't forget the trip letter needs returning by Friday.",
    "Harvest festival donations can come in from Monday. Thank you!",
    "Could you pop a named water bottle in her bag please?",
    "Great effort with spellings this week.",
    "Reminder: school photos on Thursday morning.",
    "The class assembly starts at 9.10 on Wednesday, you are very welcome to come along and watch.",
    "Lost property: a blue jumper with no name has been found in our classroom.",
]
OFF_TOPIC = [
    "I'm afraid he was off sick this morning.",
    "There was an incident at lunchtime I need to tell you about.",
    "Can we meet after school on Tuesday?",
    "This is urgent, please call the office.",
    "He was rude to the dinner staff and got a detention.",
]
STORY = ["What a wonderful trip to the museum today!", "Look at our fantastic Roman shields!",
         "Science week: making volcanoes.", "Our new class reading corner."]
SKILLS = ["Polite", "Positive attitude", "Good behaviour", "Moving forward", "Good standard of work"]
OTHER_SKILLS = ["Teamwork", "Helping others"]


def generate(count: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    # A school's devices are a few hundred iPads and laptops, used again and again.
    school = [f"10.20.{rng.randrange(4)}.{rng.randrange(1, 255)}" for _ in range(240)]
    personal = [f"192.168.1.{rng.randrange(2, 250)}" for _ in range(20)]
    base = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    docs = []
    for _ in range(count):
        day = rng.randrange(0, 5) + 7 * rng.randrange(0, 3)
        minute = rng.randrange(0, 9 * 60) if rng.random() < 0.92 else rng.randrange(9 * 60, 14 * 60)
        at = base + timedelta(days=day, minutes=minute)
        doc: dict = {
            "at": at.isoformat(),
            "teacher": {"id": f"{rng.randrange(16**24):024x}"},
            "device": {"address": rng.choice(school) if rng.random() < 0.97 else rng.choice(personal)},
            "class": {"id": f"{rng.randrange(16**24):024x}"},
        }
        roll = rng.random()
        if roll < 0.45:
            text = rng.choice(OFF_TOPIC) if rng.random() < 0.05 else rng.choice(MESSAGES)
            doc.update(kind="message.send", channel="message", text=text,
                       students=[f"{rng.randrange(16**24):024x}"])
        elif roll < 0.70:
            value = 1 if rng.random() < 0.95 else -1
            skill = rng.choice(SKILLS) if rng.random() < 0.93 else rng.choice(OTHER_SKILLS)
            doc.update(kind="points.award", channel="points", points={"value": value, "skill": skill},
                       students=[f"{rng.randrange(16**24):024x}" for _ in range(rng.randrange(1, 4))])
        elif roll < 0.85:
            photos = []
            for _ in range(rng.randrange(1, 4)):
                faces = rng.randrange(0, 6)
                blocked = 1 if faces and rng.random() < 0.05 else 0
                photos.append({"kind": "photo", "content_type": "image/jpeg", "size": rng.randrange(10**5, 10**7),
                               "sha256": f"{rng.randrange(16**64):064x}",
                               "findings": {"faces_found": faces, "faces_permitted": faces - blocked,
                                            "faces_not_permitted": blocked, "faces_unidentified": 0,
                                            "gps_present": rng.random() < 0.2, "unreadable": False}})
            doc.update(kind="story.post", channel="class_story", text=rng.choice(STORY), attachments=photos)
        elif roll < 0.95:
            doc.update(kind="comment.post", channel="comment", text=rng.choice(MESSAGES))
        else:
            doc.update(kind="unclassified.write", channel="unknown", text=rng.choice(MESSAGES))
        docs.append(doc)
    return docs


def best(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core

    start = time.perf_counter()
    policy = load_policy("builtin")
    first_load = time.perf_counter() - start
    loads = [best(1, lambda: load_policy("builtin")) for _ in range(args.repeat)]

    docs = generate(args.actions)
    texts = [json.dumps(d) for d in docs]
    actions = [Action.from_dict(d) for d in docs]
    evaluate = policy.evaluate
    loads_json = json.loads

    def parse_all():
        for text in texts:
            loads_json(text)

    def decide_all():
        for action in actions:
            evaluate(action)

    def build_all():
        for doc in docs:
            Action.from_dict(doc)

    decide_all()  # warm the caches a running proxy would have warm
    # Interleaved, best of each: a busy machine slows both measures alike.
    t_json = t_eval = t_build = float("inf")
    for _ in range(args.repeat):
        t_json = min(t_json, best(1, parse_all))
        t_eval = min(t_eval, best(1, decide_all))
        t_build = min(t_build, best(1, build_all))
    n = len(actions)
    verdicts: dict[str, int] = {}
    for action in actions:
        v = str(evaluate(action).verdict)
        verdicts[v] = verdicts.get(v, 0) + 1

    print(f"actions: {n} (verdicts: {', '.join(f'{k} {v}' for k, v in sorted(verdicts.items()))})")
    print(f"evaluate:        {n / t_eval:>10,.0f} decisions/s  {t_eval / n * 1e6:6.2f} us each  (target >= 20,000/s)")
    print(f"json.loads:      {n / t_json:>10,.0f} actions/s    {t_json / n * 1e6:6.2f} us each  (yardstick)")
    print(f"ratio evaluate / json.loads: {t_eval / t_json:.2f}x  (target < 2x)")
    print(f"Action.from_dict (for reference): {t_build / n * 1e6:.2f} us each")
    print(f"policy load: first {first_load * 1000:.1f} ms, then median {statistics.median(loads) * 1000:.1f} ms "
          f"(target < 200 ms)")

    # The worst case for the language check's normalisation: every text needs it (a zero-width
    # space inside, as a disguise would have), so none takes the plain-ASCII fast path.
    disguised = [action if not action.text else dataclasses.replace(action, text="\u200b" + action.text)
                 for action in actions]

    def decide_disguised():
        for action in disguised:
            evaluate(action)

    t_disguised = min(best(1, decide_disguised) for _ in range(args.repeat))
    print(f"every text normalised (a zero-width space in each): {n / t_disguised:,.0f} decisions/s, "
          f"{t_disguised / t_eval:.2f}x the time of the mix above (target >= 20,000/s)")

    # Counting rules on: the same actions in time order, each decided against the history of those before
    # it and then counted into it. A school's teachers and classes recur (60 and 20), so histories grow.
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "policy"
        shutil.copytree(builtin_folder(), folder)
        (folder / "counting.yaml").write_text(COUNTING)
        counting = load_policy(folder)
    rng = random.Random(11)
    teachers = [f"{rng.randrange(16**24):024x}" for _ in range(60)]
    classes = [f"{rng.randrange(16**24):024x}" for _ in range(20)]
    ordered = sorted((dataclasses.replace(a, teacher_id=rng.choice(teachers), class_id=rng.choice(classes))
                      for a in actions), key=lambda a: a.at)
    remember, evaluate_counting = counting.remember, counting.evaluate

    def decide_counting():
        history = History()
        for action in ordered:
            remember(action, evaluate_counting(action, None, history), history)

    def decide_plain():
        for action in ordered:
            evaluate(action)

    t_counting = t_plain = float("inf")
    for _ in range(args.repeat):
        t_plain = min(t_plain, best(1, decide_plain))
        t_counting = min(t_counting, best(1, decide_counting))
    history = History()
    warned = 0
    for action in ordered:
        decision = evaluate_counting(action, None, history)
        remember(action, decision, history)
        warned += any(m.rule_id in ("pictures-once-or-twice-a-week", "messages-an-hour", "points-a-day",
                                    "comments-a-week", "repeated-misuse") for m in decision.matches)
    print(f"counting rules on ({len(counting.tallies)} tallies, decided and counted): {n / t_counting:,.0f} "
          f"decisions/s, {t_counting / t_plain:.2f}x the time of the same actions without them; "
          f"{warned} decisions matched a counting rule (target >= 20,000/s)")


if __name__ == "__main__":
    main()
