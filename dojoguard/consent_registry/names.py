"""Name matching between ClassDojo rosters and the MIS, to propose links.

Teachers type pupils' names into ClassDojo by hand ("Alfie S.", "Ollie
Smith"), so names rarely agree exactly with the MIS. A link is proposed only
when one MIS pupil is clearly the best; anything less is listed as doubtful
for a person to confirm. A wrong automatic link would let a photo through on
someone else's consent, so doubt always goes to a person.
"""

from __future__ import annotations

import difflib
import unicodedata
from dataclasses import dataclass

# Scores are 0..1. A proposal needs a strong score and a clear lead over the
# runner-up; below CONFIDENT it is doubtful, below PLAUSIBLE it is no match.
CONFIDENT = 0.92
PLAUSIBLE = 0.6
CLEAR_LEAD = 0.08

# Common English short forms teachers use on ClassDojo.
_NICKNAMES = {
    "alfie": "alfred", "alf": "alfred", "ollie": "oliver", "olly": "oliver", "charlie": "charles",
    "harry": "henry", "jack": "john", "bill": "william", "will": "william", "billy": "william",
    "tom": "thomas", "tommy": "thomas", "sam": "samuel", "alex": "alexander", "ben": "benjamin",
    "dan": "daniel", "danny": "daniel", "josh": "joshua", "joe": "joseph", "matt": "matthew",
    "freddie": "frederick", "freddy": "frederick", "teddy": "edward", "ted": "edward", "ed": "edward",
    "izzy": "isabella", "bella": "isabella", "ellie": "eleanor", "katie": "katherine", "kate": "katherine",
    "lizzie": "elizabeth", "libby": "elizabeth", "beth": "elizabeth", "maddie": "madison", "millie": "amelia",
    "evie": "eve", "abbie": "abigail", "abby": "abigail", "gabe": "gabriel", "zach": "zachary",
}


@dataclass(frozen=True)
class Candidate:
    person_id: int
    score: float


@dataclass(frozen=True)
class Proposal:
    """The best MIS pupil for one ClassDojo pupil, and whether a person must confirm it."""

    person_id: int | None
    score: float
    is_doubtful: bool


def normalise(name: str) -> str:
    """Lower case, accents and punctuation removed, single spaces."""
    decomposed = unicodedata.normalize("NFKD", name)
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    cleaned = "".join(c if c.isalnum() else " " for c in letters.casefold())
    return " ".join(cleaned.split())


def _first_name_score(dojo: str, mis: str) -> float:
    if not dojo or not mis:
        return 0.0
    if dojo == mis:
        return 1.0
    if _NICKNAMES.get(dojo, dojo) == _NICKNAMES.get(mis, mis):
        return 0.95
    return difflib.SequenceMatcher(None, dojo, mis).ratio()


def _last_name_score(dojo: str, mis: str) -> float:
    if not dojo:
        return 0.5  # ClassDojo often holds a first name only: neither for nor against
    if not mis:
        return 0.0
    if dojo == mis:
        return 1.0
    if len(dojo) == 1:  # an initial: "Alfie S."
        return 0.9 if mis.startswith(dojo) else 0.0
    # Double-barrelled or shortened surnames: "Smith" for "Smith-Jones".
    if set(dojo.split()) <= set(mis.split()) or set(mis.split()) <= set(dojo.split()):
        return 0.9
    return difflib.SequenceMatcher(None, dojo, mis).ratio()


def score(dojo_first: str, dojo_last: str, mis_first: str, mis_last: str) -> float:
    """How alike two names are, 0..1; the surname weighs a little more than the first name."""
    first = _first_name_score(normalise(dojo_first).split(" ")[0], normalise(mis_first).split(" ")[0])
    last = _last_name_score(normalise(dojo_last), normalise(mis_last))
    return round(0.45 * first + 0.55 * last, 4)


def propose(dojo_first: str, dojo_last: str, pupils: list[tuple[int, str, str]]) -> Proposal:
    """Pick the MIS pupil (id, first, last) that a ClassDojo pupil most likely is."""
    ranked = sorted((Candidate(pid, score(dojo_first, dojo_last, first, last)) for pid, first, last in pupils),
                    key=lambda c: c.score, reverse=True)
    if not ranked or ranked[0].score < PLAUSIBLE:
        return Proposal(None, ranked[0].score if ranked else 0.0, True)
    best = ranked[0]
    runner_up = ranked[1].score if len(ranked) > 1 else 0.0
    is_doubtful = best.score < CONFIDENT or best.score - runner_up < CLEAR_LEAD
    return Proposal(best.person_id, best.score, is_doubtful)
