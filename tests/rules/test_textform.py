"""The form text is matched in: each disguise undone, clean text left alone, and the attempts to walk around it."""

from __future__ import annotations

import pytest

from dojoguard.rules import textform
from dojoguard.rules.facts import Facts

from .conftest import make_action


@pytest.mark.parametrize("written, form", [
    ("sh\u200bit", "shit"),                      # zero-width space
    ("s\u00adh\u00adi\u00adt", "shit"),          # soft hyphens
    ("sh\u200d\u200cit", "shit"),                # zero-width joiner and non-joiner
    ("s\u2060hit\ufeff", "shit"),                # word joiner, byte-order mark
    ("sh\u202eit\u202c", "shit"),                # bidirectional controls
    ("sh\U000e0069\U000e007fit", "shit"),        # tag characters
    ("shi\ufe0ft", "shit"),                      # variation selector
    ("sh\u3164it", "shit"),                      # Hangul filler (renders as nothing)
    ("\uff53\uff48\uff49\uff54", "shit"),        # fullwidth
    ("\U0001d42c\U0001d421\U0001d422\U0001d42d", "shit"),  # mathematical bold
    ("\u24e2\u24d7\u24d8\u24e3", "shit"),        # circled
    ("sh\u00eft", "shit"),                       # accented
    ("shi\u0308t", "shit"),                      # combining diaeresis
    ("\u0455\u04bb\u0456\u0442", "shit"),        # Cyrillic lookalikes
    ("\u0421\u0420\u0410\u0420", "CPAP"),        # upper-case Cyrillic
    ("\u03b1\u03c1\u03c3\u03b5", "apσe"),        # Greek alpha, rho, epsilon (sigma is not a Latin lookalike)
    ("s h i t", "shit"),
    ("s.h.i.t", "shit"),
    ("s-h-i-t", "shit"),
    ("s_h_i_t", "shit"),
    ("s . h . i . t", "shit"),
    ("s\u00a0h\u2003i\u2009t", "shit"),          # no-break, em and thin spaces
    ("s\u2013h\u2014i\u2212t", "shit"),          # en dash, em dash, minus
    ("s h 1 t", "sh1t"),                         # a digit for a letter inside a spaced word
    ("shiiiiiit", "shiiit"),                     # emphasis cut to three
    ("SHIIIIT", "SHIIIT"),
    ("\uff53 \u200b\u0445 \u0456 \u0442", "sxit"),  # fullwidth, zero-width, Cyrillic and spaced at once
    ("s h i  t", "shit"), ("s  h i t", "shit"), ("f u c  k", "fuck"),   # one uneven gap is not a word break
    ("sh\u0131t", "shit"), ("b\u0142oody", "bloody"), ("b\u00f8llocks", "bollocks"),
    ("s/h/i/t", "shit"), ("s*h*i*t", "shit"), ("s,h,i,t", "shit"), ("s|h|i|t", "shit"), ("s+h+i+t", "shit"),
    ("\u1d04\u0280\u1d00\u1d18", "crap"),      # Latin small capitals ("fancy text")
    ("\U0001f1f8\U0001f1ed\U0001f1ee\U0001f1f9", "shit"),  # regional indicators
    ("\u02e2\u02b0\u2071\u1d57", "shit"),      # superscript letters
    ("\U0001f142\U0001f137\U0001f138\U0001f143", "SHIT"),  # squared letters
])
def test_each_disguise_is_undone(written, form):
    assert textform.normalise(written) == form


@pytest.mark.parametrize("clean", [
    "Just a reminder that it's PE tomorrow, please bring kit.",
    "e.g. trainers", "U.K.", "J. K. Rowling", "a, b", "1 2 3 4", "Room 455", "Brr", "good", "assess",
    "07777 777777", "£5.00 for the trip", "Zzz", "Sat 5/12/26", "2 + 2 + 2", "1/2/3",
])
def test_plain_ascii_text_is_returned_as_it_is(clean):
    """The fast path: nothing to undo, and the very same string comes back."""
    form = textform.normalise(clean)
    assert form == clean


def test_digits_are_never_joined_or_cut():
    assert textform.normalise("0 7 7 7 7") == "0 7 7 7 7"
    assert textform.normalise("07777777777") == "07777777777"


def test_a_spaced_run_needs_two_real_letters():
    assert textform.normalise("1 a 2") == "1 a 2"
    assert textform.normalise("S T E M week") == "STEM week"


def test_the_original_is_reported_as_written():
    text = "That was \uff53\uff48\uff49\uff54 today, and s h i t too"
    form, origin = textform.mapped(text)
    start = form.index("shit")
    assert textform.original(text, start, start + 4) == "\uff53\uff48\uff49\uff54"
    second = form.index("shit", start + 1)
    assert textform.original(text, second, second + 4) == "s h i t"
    assert len(origin) == len(form) and origin == sorted(origin)


def test_a_lone_surrogate_does_not_break_it():
    text = "sh\ud800it \u200b"
    assert textform.normalise(text).startswith("sh")
    facts = Facts(make_action(text="oh sh\u200bit \ud800"), _policy()._indexes)
    assert facts.screened()


def _policy():
    from dojoguard.rules.policy import BUILTIN, load_policy

    return load_policy(BUILTIN)


@pytest.mark.parametrize("text", [
    "That was sh\u200bit", "That was \uff53\uff48\uff49\uff54", "That was s h i t", "What a load of cr\u0430p",
    "f.u.c.k off", "b-o-l-l-o-c-k-s", "bolllocks", "asss", "@s$", "a$$", "w4nk3r", "shiiiiiit", "\u24b7\u24b6\u24c8\u24c9\u24b6\u24c7\u24b9",
])
def test_the_shipped_language_rule_is_not_dodged(policy, text):
    decision = policy.evaluate(make_action(text=text))
    assert "appropriate-language" in decision.rule_ids, text


@pytest.mark.parametrize("text", [
    "Our trip to Scunthorpe", "Dickens", "The assessment", "Hancock", "Penistone", "Clitheroe", "Essex",
    "Middlesex", "Arsenal won", "a good day", "the class", "passing skills", "Cockermouth", "Shitterton",
    "S T E M week", "P.E. kit", "Brrr, it's cold", "sooo proud", "yessss!", "Zzz", "\u0417\u0434\u0440\u0430\u0432\u0441\u0442\u0432\u0443\u0439\u0442\u0435",
    "Dzie\u0144 dobry", "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1",
])
def test_clean_school_words_still_pass(policy, text):
    decision = policy.evaluate(make_action(text=text))
    assert "appropriate-language" not in decision.rule_ids, text


def test_good_is_never_god_and_a_doubled_letter_is_not_emphasis(tmp_path):
    from dojoguard.rules.phrases import list_pattern
    from dojoguard.rules.pattern import compile_guarded

    search = compile_guarded(list_pattern(("god", "ass"), disguised=True), limit=None).search
    for text, found in (("god", True), ("good", False), ("goood", True), ("ass", True), ("as", False),
                        ("asss", True), ("455", False)):
        assert (search(textform.normalise(text)) is not None) is found, text


def test_found_in_text_reports_what_was_written(policy):
    found = dict(policy.found_in_text("That was \uff53\uff48\uff49\uff54, call 07700 900123"))
    assert found[("language", "inappropriate-language")] == "\uff53\uff48\uff49\uff54"
    assert any(written == "07700 900123" for written in found.values())


def test_a_parents_message_is_checked_in_the_same_form(policy):
    [check] = [c for c in policy.language_checks() if c.rule_id == "appropriate-language"]
    assert check.test("That was \uff53\uff48\uff49\uff54") and check.test("s h i t") and not check.test("Scunthorpe")
