"""Name matching used to propose links between ClassDojo pupils and MIS pupils."""

from __future__ import annotations

from dojoguard.consent_registry import names

CLASS = [(1, "Alfred", "Smith"), (2, "Olivia", "Jones-Patel"), (3, "Zoë", "Brontë"), (4, "Amelia", "Brown"),
         (5, "Amelia", "Brennan")]


def test_short_forms_initials_and_accents_are_proposed():
    """Nicknames, surname initials, double-barrelled surnames and accents still give a confident link."""
    assert names.propose("Alfie", "S.", CLASS) == names.Proposal(1, names.propose("Alfie", "S.", CLASS).score, False)
    assert names.propose("Olivia", "Jones", CLASS).person_id == 2
    assert not names.propose("Olivia", "Jones", CLASS).is_doubtful
    assert names.propose("zoe", "bronte", CLASS).person_id == 3
    assert not names.propose("zoe", "bronte", CLASS).is_doubtful


def test_two_close_candidates_are_doubtful():
    """When two MIS pupils fit equally well the link is doubtful and left to a person."""
    proposal = names.propose("Amelia", "B", CLASS)
    assert proposal.is_doubtful


def test_no_plausible_candidate_proposes_nobody():
    """A name like no one in the MIS proposes no link at all."""
    proposal = names.propose("Xavier", "Quint", CLASS)
    assert proposal.person_id is None and proposal.is_doubtful


def test_first_name_only_is_doubtful():
    """A first name with no surname is never enough for an automatic link."""
    assert names.propose("Alfred", "", CLASS).is_doubtful
