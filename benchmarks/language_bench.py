"""How well the language check holds: disguises caught, clean school text passed, and its cost.

Runs the shipped St Wilfrid's rules (the `appropriate-language` rule and its
list) over three generated sets, all seeded so every run sees the same texts:

- evasions: every entry of the list, disguised in each way a teacher might try
  (zero-width and other invisible characters, fullwidth, mathematical and
  circled letters, Cyrillic and Greek lookalikes, spaced out with spaces, dots,
  dashes or underscores, letters repeated for emphasis, accents, digits and
  symbols for letters, and mixtures of these), inside ordinary sentences.
  Target: >= 95% caught, printed per kind, with every miss listed;
- clean text: at least 5,000 school messages built from templates (reminders,
  praise, trips, clubs, story captions) with pupils' names, UK places, authors,
  topics, dates, times and numbers; spaced capitals, initials and abbreviations;
  emphatic spellings ("sooo proud", "yessss"); sentences in Polish, Romanian,
  Urdu, Arabic, Greek, Ukrainian and Russian; and, as a second source of real
  English prose, sentences from the Python standard library's docstrings.
  Target: <= 0.1% flagged, with every one listed. The safeguarding rule's
  hits on the same clean set are printed too;
- the "Scunthorpe list": place names, authors and school words with a rude
  word inside them. Target: zero flagged.

It also times evaluating the clean school messages against the same run with
normalisation switched off (the engine as it was), so the figure travels.

Run:  .venv/bin/python benchmarks/language_bench.py
"""

from __future__ import annotations

import importlib
import random
import re
import time
import warnings
from collections import Counter
from datetime import UTC, datetime

from dojoguard.rules import textform
from dojoguard.rules.action import Action, Channel, Kind
from dojoguard.rules.policy import BUILTIN, builtin_folder, load_policy

RULE = "appropriate-language"
AT = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)

ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e", "\u202e", "\u2066",
              "\U000e0020", "\ufe0f", "\u3164"]
LOOKALIKES = {"a": "\u0430\u03b1", "c": "\u0441\u03f2", "e": "\u0435\u03b5", "h": "\u04bb", "i": "\u0456\u03b9",
              "j": "\u0458", "k": "\u03ba\u043a", "o": "\u043e\u03bf", "p": "\u0440\u03c1", "s": "\u0455",
              "t": "\u03c4\u0442", "x": "\u0445\u03c7", "y": "\u0443", "d": "\u0501", "w": "\u051d", "b": "\u044c"}
DIGITS = {"a": "4@", "e": "3", "i": "1!", "l": "1", "o": "0", "s": "5$", "t": "7"}
SEPARATORS = [" ", ".", "-", "_", " . ", "  ", "\u2013", "\u00b7", "\u00a0"]
FRAMES = ["That was {w} today.", "Oh {w}, I forgot the letters.", "What {w} weather for sports day!",
          "{w}", "I think it's {w} honestly", "Tell him it is {w}."]


def _list_entries() -> list[str]:
    path = builtin_folder() / "lists" / "inappropriate-language.txt"
    return [line.split("#")[0].strip() for line in path.read_text("utf-8").splitlines()
            if line.split("#")[0].strip()]


# -- evasions ------------------------------------------------------------------

def _zero_width(word, rng):
    i = rng.randrange(1, len(word))
    return word[:i] + rng.choice(ZERO_WIDTH) + word[i:]


def _fullwidth(word, rng):
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in word)


def _mathematical(word, rng):
    base = rng.choice([0x1D41A, 0x1D5EE, 0x1D622, 0x1D68A])  # bold, sans bold, sans italic, monospace
    return "".join(chr(base + ord(c) - ord("a")) if "a" <= c <= "z" else c for c in word)


def _circled(word, rng):
    return "".join(chr(0x24D0 + ord(c) - ord("a")) if "a" <= c <= "z" else c for c in word)


def _lookalike(word, rng):
    places = [i for i, c in enumerate(word) if c in LOOKALIKES]
    if not places:
        return None
    chars = list(word)
    for i in rng.sample(places, max(1, len(places) // 2 + rng.randrange(2))):
        chars[i] = rng.choice(LOOKALIKES[chars[i]])
    return "".join(chars)


def _spaced(word, rng):
    sep = rng.choice(SEPARATORS)
    gap = "   " if sep.strip() == "" else " "
    return gap.join(sep.join(part) for part in word.split(" "))


def _repeated(word, rng):
    letters = [i for i, c in enumerate(word) if c.isalpha()]
    i = rng.choice(letters)
    return word[:i] + word[i] * rng.randrange(3, 8) + word[i + 1:]


def _accented(word, rng):
    marks = ["\u0301", "\u0308", "\u0303", "\u0327", "\u0300"]
    return "".join(c + (rng.choice(marks) if c.isalpha() and rng.random() < 0.5 else "") for c in word)


def _digits(word, rng):
    places = [i for i, c in enumerate(word) if c in DIGITS]
    if not places:
        return None
    chars = list(word)
    i = rng.choice(places)
    chars[i] = rng.choice(DIGITS[chars[i]])
    return "".join(chars)


def _upper(word, rng):
    return "".join(c.upper() if rng.random() < 0.6 else c for c in word)


SINGLE = {"zero-width and invisible characters": _zero_width, "fullwidth": _fullwidth,
          "mathematical letters": _mathematical, "circled letters": _circled,
          "Cyrillic/Greek lookalikes": _lookalike, "spaced out": _spaced, "repeated for emphasis": _repeated,
          "accents": _accented, "digits and symbols for letters": _digits}
MIXES = [("zero-width + fullwidth", (_fullwidth, _zero_width)),
         ("lookalikes + zero-width", (_lookalike, _zero_width)),
         ("repeated + spaced", (_repeated, _spaced)),
         ("digits + repeated + capitals", (_digits, _repeated, _upper)),
         ("accents + lookalikes + zero-width", (_accented, _lookalike, _zero_width)),
         ("capitals + spaced + lookalikes", (_upper, _spaced, _lookalike))]


def evasions(entries, rng, per_entry: int = 4) -> list[tuple[str, str, str]]:
    """(kind, entry, text) for every disguise kind, several variants of every entry."""
    out = []
    kinds = [(name, (fn,)) for name, fn in SINGLE.items()] + MIXES
    for name, steps in kinds:
        for entry in entries:
            for _ in range(per_entry):
                word = entry
                for step in steps:
                    done = step(word, rng)
                    word = done if done is not None else word
                if word == entry:
                    continue  # this disguise has nothing to change in this entry
                out.append((name, entry, rng.choice(FRAMES).format(w=word)))
    return out


# -- clean text ----------------------------------------------------------------

PUPILS = ["Ava", "Noah", "Amelia", "Oliver", "Isla", "Jack", "Aisha", "Mohammed", "Zofia", "Kacper", "Priya",
          "Arjun", "Chloe", "Harry", "Grace", "Leo", "Maya", "Yusuf", "Ruby", "Theo", "Fatima", "Ibrahim",
          "Olivia", "George", "Freya", "Oscar", "Sienna", "Alfie", "Poppy", "Dylan", "Cassius", "Dick",
          "Willy", "Fanny", "Gaylord", "Dickson", "Cockburn", "Hancock", "Butt", "Bumstead", "Titmuss"]
PLACES = ["Scunthorpe", "Penistone", "Clitheroe", "Shitterton", "Cockermouth", "Middlesex", "Sussex", "Essex",
          "Lightwater", "Matlock", "Twatt", "Crapstone", "Pratt's Bottom", "Wetwang", "Bitchfield", "Brown Willy",
          "Great Cockup", "Scratchy Bottom", "Fanny Barks", "Cockfosters", "Dorking", "Hell's Mouth",
          "Shitlington", "Assington", "Bishop's Itchington", "Lower Slaughter", "Rottingdean", "Sandwich",
          "the Natural History Museum", "Chester Zoo", "the Eden Project", "Leeds", "Manchester", "Bolton"]
AUTHORS = ["Dickens", "Roald Dahl", "J. K. Rowling", "C. S. Lewis", "Jacqueline Wilson", "Michael Morpurgo",
           "Julia Donaldson", "Shakespeare", "A. A. Milne", "Enid Blyton", "Beatrix Potter", "Philip Pullman",
           "David Walliams", "Cressida Cowell", "Tolkien", "Brontë", "Dick King-Smith", "Ted Hughes"]
TOPICS = ["the Romans", "the Egyptians", "the Tudors", "Vikings", "volcanoes", "the water cycle", "fractions",
          "long division", "assessment week", "the Great Fire of London", "classification of animals",
          "photosynthesis", "persuasive writing", "passé composé", "the Titanic", "Shakespeare's Globe",
          "coding with Scratch", "cocktail sticks and marshmallow towers", "bassoon lessons", "the Cocklewood farm",
          "the class assembly", "S T E M week", "P.E. kit", "e.g. trainers", "the U.K. parliament", "sextants",
          "therapsids", "grasshoppers", "shuttlecocks", "the cockerel weathervane", "analysis of poems",
          "the hell hound in the myth", "Dickensian London", "Scrabble club", "the Arsenal match"]
TIMES = ["8.45", "9.10", "10.30", "1.15pm", "3.15pm", "half past three", "Friday", "Monday morning", "next week",
         "the 14th", "Thursday 3 December", "after half term"]
TEMPLATES = [
    "Just a reminder that {pupil} needs {topic} things in by {time}.",
    "Well done {pupil} for brilliant work on {topic} today!",
    "Our trip to {place} is on {time}; please return the letter.",
    "This week we are reading {author} and learning about {topic}.",
    "{pupil} was a superstar in {topic} - sooo proud of everyone!",
    "Please could {pupil} bring a named water bottle on {time}?",
    "What a fantastic afternoon exploring {topic} with {author}!",
    "Harvest donations for {place} food bank can come in from {time}.",
    "Reminder: school photos on {time}. {pupil} looked fab in the practice!",
    "Class assembly at {time}: the theme is {topic}. You are very welcome.",
    "Year 4 visited {place} to learn about {topic}. Yessss, what a day!",
    "Spellings test on {time}: words from {author}'s chapter on {topic}.",
    "{pupil} and {pupil2} led the {topic} club brilliantly. Brrr, cold outside though!",
    "Lost property: a blue jumper from {place} trip has no name in it.",
    "Our new reading corner has books by {author} - come and see it on {time}.",
    "Zzz... everyone slept well after the {place} residential! Back at {time}.",
    "House points today: {pupil} (polite), {pupil2} (working hard).",
    "Mrs A. B. Smith will run {topic} club from {time}, i.e. after school.",
]
OTHER_LANGUAGES = [
    "Dzień dobry, przypominamy o wycieczce w piątek.", "Proszę przynieść strój na WF jutro.",
    "Bună ziua, vă reamintim că mâine este excursia.", "Vă mulțumim pentru ajutor la serbare!",
    "براہ کرم کل پی ای کٹ لے کر آئیں۔", "آپ کا شکریہ، بچوں نے بہت اچھا کام کیا۔",
    "يرجى إحضار زجاجة ماء غدًا.", "شكرًا لكم على المساعدة في الحفل.",
    "Καλημέρα, αύριο έχουμε εκδρομή στο μουσείο.", "Ευχαριστούμε πολύ για τη βοήθεια!",
    "Добрий день, нагадуємо про екскурсію в п'ятницю.", "Дякуємо за допомогу на святі!",
    "Здравствуйте, завтра у нас физкультура.", "Спасибо за помощь, дети очень старались!",
    "Bonjour, n'oubliez pas le goûter de vendredi.", "Hola, mañana tenemos excursión al museo.",
]
SCUNTHORPE = [*PLACES[:27], "Dickens", "Hancock", "Cockburn", "assessment", "assignment", "classic", "passage",
              "bassoon", "cocktail", "shuttlecock", "cockerel", "analysis", "therapist", "Titchmarsh", "grasshopper",
              "Matlock", "Sussex", "Essex", "Middlesex", "Arsenal", "Hitchcock", "Dickinson", "Pennistone",
              "scrapbook", "Sextant", "massive", "harass", "embarrass", "compass", "Cassius", "Shittake mushrooms",
              "Scrabble", "documents", "circumstances", "Mr Bumstead", "Ms Titmuss", "Wetwang", "Brown Willy",
              "Wankie (the old name of Hwange)", "Cumbria", "cucumber", "penknife", "Penistone Road", "crapaud",
              "bitchfield", "Hell's Mouth", "hello", "shell", "Shelley", "damson jam", "Amsterdam", "dammit-free zone"]
STDLIB = ["string", "collections", "datetime", "decimal", "fractions", "argparse", "logging", "unittest", "sqlite3",
          "ssl", "socket", "threading", "asyncio", "csv", "calendar", "textwrap", "statistics", "random", "pathlib",
          "os", "shutil", "zipfile", "tarfile", "json", "urllib.parse", "inspect", "typing", "dataclasses", "enum",
          "functools", "itertools", "heapq", "bisect", "difflib", "gettext", "locale", "mailbox", "smtplib",
          "imaplib", "html.parser", "pickle", "copy", "pprint", "re", "struct", "codecs", "zoneinfo", "subprocess",
          "tempfile", "glob", "fnmatch", "configparser", "hashlib", "hmac", "secrets", "base64", "uuid", "ipaddress",
          "email.message", "http.client", "http.server", "xml.etree.ElementTree", "contextlib", "abc", "io"]


def school_messages(rng, count: int) -> list[str]:
    out = []
    while len(out) < count:
        pupil, pupil2 = rng.sample(PUPILS, 2)
        out.append(rng.choice(TEMPLATES).format(pupil=pupil, pupil2=pupil2, place=rng.choice(PLACES),
                                                author=rng.choice(AUTHORS), topic=rng.choice(TOPICS),
                                                time=rng.choice(TIMES)))
    return out


def docstring_sentences(limit: int = 3000) -> list[str]:
    """Sentences of real English prose from the standard library's documentation strings."""
    found: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in STDLIB:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            for obj in [module, *(getattr(module, n, None) for n in sorted(dir(module)))]:
                doc = getattr(obj, "__doc__", None)
                if isinstance(doc, str):
                    for sentence in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
                        if 30 <= len(sentence) <= 300 and sentence[0].isupper():
                            found.add(sentence)
    return sorted(found)[:limit]


# -- running -------------------------------------------------------------------

def action(text: str) -> Action:
    return Action(kind=Kind.MESSAGE_SEND, channel=Channel.MESSAGE, at=AT, teacher_id="5f00000000000000000000a1",
                  device_address="10.20.1.5", text=text)


def flagged(policy, text: str, rule: str = RULE) -> bool:
    return rule in policy.evaluate(action(text)).rule_ids


def main() -> None:
    rng = random.Random(18)
    policy = load_policy(BUILTIN)
    entries = _list_entries()

    tries = evasions(entries, rng)
    caught, per_kind, misses = 0, Counter(), []
    totals = Counter(kind for kind, _, _ in tries)
    for kind, entry, text in tries:
        if flagged(policy, text):
            caught += 1
            per_kind[kind] += 1
        else:
            misses.append((kind, entry, text))
    print(f"evasions: {caught:,} of {len(tries):,} caught ({100 * caught / len(tries):.2f}%; target >= 95%), "
          f"{len(entries)} list entries")
    for kind in totals:
        print(f"  {kind:<36} {per_kind[kind]:>4} / {totals[kind]:<4} {100 * per_kind[kind] / totals[kind]:6.1f}%")
    for kind, entry, text in misses[:40]:
        print(f"  missed ({kind}): {entry!r} as {text!r} -> form {textform.normalise(text)!r}")

    school = school_messages(rng, 6000) + OTHER_LANGUAGES * 3
    prose = docstring_sentences()
    for label, texts in (("clean school messages", school), ("standard-library prose", prose)):
        hits = [t for t in texts if flagged(policy, t)]
        print(f"{label}: {len(hits)} of {len(texts):,} flagged by {RULE} "
              f"({100 * len(hits) / len(texts):.3f}%; target <= 0.1%)")
        for text in hits[:20]:
            print(f"  flagged: {text!r} (found {dict(policy.found_in_text(text))})")
        guarded = [t for t in texts if flagged(policy, t, "safeguarding-matters")]
        print(f"  and by safeguarding-matters: {len(guarded)} ({100 * len(guarded) / len(texts):.3f}%)")
        for text in guarded[:10]:
            print(f"  safeguarding hit: {text!r}")

    scunthorpe = [f"We talked about {w} today." for w in SCUNTHORPE]
    hits = [t for t in scunthorpe if flagged(policy, t)]
    print(f"Scunthorpe list: {len(hits)} of {len(scunthorpe)} flagged (target 0)")
    for text in hits:
        print(f"  flagged: {text!r} (found {dict(policy.found_in_text(text))})")

    # Cost of normalising, against the same evaluation with it switched off, in the same run.
    actions = [action(t) for t in school]
    needing = sum(textform.normalise(t) is not t for t in school)

    def rate() -> float:
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for a in actions:
                policy.evaluate(a)
            best = min(best, time.perf_counter() - started)
        return len(actions) / best

    with_form = rate()
    real = textform.normalise
    textform.normalise = lambda text: text
    try:
        without = rate()
    finally:
        textform.normalise = real
    print(f"clean school messages: {with_form:,.0f} decisions/s with normalisation, {without:,.0f}/s without "
          f"(ratio {without / with_form:.2f}x); {needing:,} of {len(school):,} texts needed normalising")
    disguised = [action(t) for _, _, t in tries]
    started = time.perf_counter()
    for a in disguised:
        policy.evaluate(a)
    print(f"disguised messages (all normalised): {len(disguised) / (time.perf_counter() - started):,.0f} decisions/s")


if __name__ == "__main__":
    main()
