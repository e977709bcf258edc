"""The form text is matched in: disguises undone, so a phrase list cannot be dodged cheaply.

Before any phrase list, word list or pattern is searched, a text is put in
this form:

1. every character in compatibility form, with accents and other combining
   marks dropped (Unicode NFKD): fullwidth "ｓｈｉｔ", mathematical "𝐬𝐡𝐢𝐭",
   circled "ⓢⓗⓘⓣ" and accented "shït" become plain letters, and fullwidth
   digits plain digits;
2. invisible characters removed: format characters (zero-width spaces and
   joiners, soft hyphens, bidirectional controls, tag characters), variation
   selectors and the other default-ignorable characters, such as the Hangul
   fillers, that render as nothing;
3. letters of other scripts that look like Latin ones folded to them
   (Cyrillic "ѕһіт", Greek "ΑΒΕ"), from Unicode's confusables data, and so
   are Latin small capitals ("ᴄʀᴀᴘ") and regional indicator letters;
4. runs of three or more single letters separated by spaces, dots, dashes,
   underscores, commas, slashes, asterisks, bars, plus signs or tildes joined ("s h i t", "s.h.i.t", "s - h - i - t"); a run needs two
   real letters, and digits or @ $ ! inside it count as letters, so
   "s h 1 t" is caught while "1 2 3" is left alone;
5. a letter repeated three or more times for emphasis cut to three
   ("shiiiiit" -> "shiiit"). Phrase lists then match one letter, or three, for
   each letter of an entry (and two, or three, for a doubled one), so "shiiit"
   is "shit" while "good" is never "god". Digits are never cut: "07777 777777"
   stays a phone number.

``normalise`` gives the form; ``mapped`` also gives, for each character of it,
the index of the character it came from, so a match can be reported as
written. Most messages are plain ASCII with nothing to undo; they are
recognised by one scan and returned as they are.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import lru_cache

import re2

# Cyrillic and Greek letters that look like Latin ones, from Unicode's confusables.txt
# (the "MA" mappings to a single Latin letter), in both cases. Letters that only resemble
# a Latin one loosely (Greek nu "ν" for "v", Cyrillic "п" for "n") are included when
# confusables.txt lists them, because that is what a disguise would use.
_CONFUSABLES = str.maketrans({
    # Cyrillic, lower case
    "а": "a", "в": "b", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j", "к": "k", "л": "l",
    "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "ԁ": "d",
    "ԛ": "q", "ԝ": "w", "ь": "b", "ɡ": "g", "п": "n", "г": "r", "ү": "y", "ӏ": "l", "ҫ": "c", "ԍ": "g",
    # Cyrillic, upper case
    "А": "A", "В": "B", "Е": "E", "Ё": "E", "Һ": "H", "І": "I", "Ї": "I", "Ј": "J", "К": "K", "М": "M",
    "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "Ԁ": "D", "Ԛ": "Q",
    "Ԝ": "W", "Ү": "Y", "Ӏ": "l", "Ь": "b", "Ԍ": "G",
    # Greek, lower case
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "γ": "y", "ϲ": "c", "ϳ": "j", "ω": "w", "ς": "s",
    # Greek, upper case
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "Ϲ": "C", "Ϳ": "J",
    # Latin small capitals, which "fancy text" generators use and NFKD leaves alone
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ꜰ": "f", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j",
    "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ǫ": "q", "ʀ": "r", "ꜱ": "s", "ᴛ": "t",
    "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z",
    # Latin letters with a stroke or other form that no decomposition undoes
    "ı": "i", "ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ß": "ss", "ɑ": "a", "ƚ": "l",
    # Regional indicator symbols (a pair shows as a flag, one alone as a boxed letter)
    **{chr(0x1F1E6 + i): chr(ord("a") + i) for i in range(26)},
})

# Default-ignorable code points that are not format characters (Cf) or marks (Mn):
# Hangul fillers, the Khmer inherent vowels, the Mongolian free variation selectors'
# neighbours and the combining grapheme joiner render as nothing.
_IGNORABLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180e\u180f\u3164\uffa0")

# Separators between the letters of a spaced-out word.
_SEP = r"[\s.\-_,/*|+~\u00b7\u2010-\u2015\u2022\u2043\u2212\u30fb]"
# A "letter" of a spaced-out word: a letter or digit, or a symbol used for a letter.
_TOKEN = r"(?:[^\W_]|[@$!])"
_SEP_CHAR = re.compile(_SEP)
# A token after an apostrophe is the end of a word ("it's a b c" does not start at "s").
_SPACED = re.compile(rf"(?<![^\W_])(?<![@$!'\u2019]){_TOKEN}(?:{_SEP}+{_TOKEN}(?![^\W_@$!])){{2,}}")
_REPEATED = re.compile(r"([^\W\d_])\1{3,}", re.IGNORECASE)
# ASCII text needs work only for spaced letters or a letter three times over. In RE2 syntax
# (no back-references), so the rule engine can add it to its screening pattern: a text
# the screen passes over needs no work (see ``facts``).
WORK = ("(?i:" + "|".join(c * 3 for c in "abcdefghijklmnopqrstuvwxyz") + ")"
        r"|(?:^|[^A-Za-z0-9@$!])[A-Za-z0-9@$!][\s.\-_,/*|+~]+[A-Za-z0-9@$!][\s.\-_,/*|+~]+[A-Za-z0-9@$!]"
        r"(?:$|[^A-Za-z0-9@$!])")
_ASCII_WORK = re2.compile(WORK)


def normalise(text: str) -> str:
    """``text`` in the form phrase lists and patterns are matched in (the text itself when nothing changes)."""
    if text.isascii() and _ASCII_WORK.search(text) is None:
        return text
    return mapped(text)[0]


def mapped(text: str) -> tuple[str, list[int]]:
    """The normalised text, and for each of its characters the index in ``text`` it came from."""
    chars: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if char.isascii():
            chars.append(char)
            origin.append(index)
            continue
        for piece in _plain(char):
            chars.append(piece)
            origin.append(index)
    out = "".join(chars)
    out, origin = _rewrite(out, origin, _SPACED, _joined)
    out, origin = _rewrite(out, origin, _REPEATED, _three)
    return out, origin


def original(text: str, start: int, end: int) -> str:
    """What was written in ``text`` for the span [start, end) of its normalised form."""
    form, origin = mapped(text)
    if start >= end or end > len(form):
        return ""
    return text[origin[start]:origin[end - 1] + 1]


@lru_cache(maxsize=4096)
def _plain(char: str) -> str:
    """One character in compatibility form, without marks or invisible characters, confusables folded."""
    folded = char.translate(_CONFUSABLES)
    if folded != char:
        return folded  # before NFKD, which turns some lookalikes into other letters (lunate sigma "ϲ" into "ς")
    kept = []
    for piece in unicodedata.normalize("NFKD", char):
        category = unicodedata.category(piece)
        if category in ("Cf", "Mn", "Me") or piece in _IGNORABLE:
            continue
        kept.append(piece)
    return "".join(kept).translate(_CONFUSABLES)


def _rewrite(text: str, origin: list[int], pattern: re.Pattern, keep) -> tuple[str, list[int]]:
    """``text`` with each match of ``pattern`` reduced to the positions ``keep(match)`` returns."""
    if pattern.search(text) is None:
        return text, origin
    chars: list[str] = []
    where: list[int] = []
    done = 0
    for match in pattern.finditer(text):
        chars.extend(text[done:match.start()])
        where.extend(origin[done:match.start()])
        for i in keep(match):
            chars.append(text[i])
            where.append(origin[i])
        done = match.end()
    chars.extend(text[done:])
    where.extend(origin[done:])
    return "".join(chars), where


def _joined(match: re.Match) -> list[int]:
    """The letters of a spaced-out word without its separators, if it has two real letters; else all of it.

    A gap unlike the run's usual one, with a space in it, is kept as one space, the break
    between two words: "s o d   o f f" and "s.o.d o.f.f" are "sod off", "s  h  i  t" is "shit".
    """
    text = match.string
    letters = [i for i in range(match.start(), match.end()) if not _SEP_CHAR.match(text[i])]
    if sum(text[i].isalpha() for i in letters) < 2:
        return list(range(match.start(), match.end()))
    gaps = [text[before + 1:after] for before, after in zip(letters, letters[1:], strict=False)]
    usual = Counter(gaps).most_common(1)[0][0]
    # A break needs a word of two letters or more on each side: "s h i  t" is not "shi t".
    breaks = [n for n, gap in enumerate(gaps) if gap != usual and any(c.isspace() for c in gap)]
    bounds = [-1, *breaks, len(gaps)]
    breaks = [b for i, b in enumerate(breaks, start=1) if b - bounds[i - 1] >= 2 and bounds[i + 1] - b >= 2]
    kept = [letters[0]]
    for n, (before, gap, after) in enumerate(zip(letters, gaps, letters[1:], strict=False)):
        if n in breaks:
            kept.append(before + 1 + next(i for i, c in enumerate(gap) if c.isspace()))
        kept.append(after)
    return kept


def _three(match: re.Match) -> list[int]:
    return [match.start(), match.start() + 1, match.start() + 2]
