"""Text folding and tokenising shared by the rules compiler and the classifier.

Folding is lower-casing plus stripping diacritics from Latin letters, one character for one
character, so that offsets in the folded text are offsets in the original (for highlighting).
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Container, Iterator
from typing import NamedTuple


def _build_fold_table() -> dict[int, int]:
    table: dict[int, int] = {}
    for cp in range(0xC0, 0x250):
        ch = chr(cp)
        base = unicodedata.normalize("NFKD", ch)[0].lower()
        if base != ch and base.isascii() and base.isalpha():
            table[cp] = ord(base)
    # typographic apostrophes and dashes behave as their ASCII forms
    for cp in (0x2019, 0x2018, 0x02BC, 0x2032):
        table[cp] = ord("'")
    for cp in (0x2010, 0x2011, 0x2012, 0x2013, 0x2014):
        table[cp] = ord("-")
    return table


FOLD_TABLE = _build_fold_table()
TOKEN_RE = re.compile(r"[^\W_]+")

_SEPARATORS = (
    "\t\n\r\x0b\x0c !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    "\u00a0\u00ab\u00bb\u00b7\u00bf\u00a1\u2010\u2011\u2012\u2013\u2014\u2018\u2019\u201a"
    "\u201c\u201d\u201e\u2026\u2032\u02bc\u202f\u2009"
    # symbols that may touch a name ("d´Ivoire", "•Spain", "‹Maroc›", "°Chile"), the other spaces,
    # apostrophes and dashes; letters and digits (ª º µ ¹ ½) stay
    "\u00a2\u00a3\u00a4\u00a5\u00a6\u00a7\u00a8\u00a9\u00ac\u00ae\u00af\u00b0\u00b1\u00b4\u00b6"
    "\u00b8\u00d7\u00f7\u0085\u02b9\u02bb\u02bd\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u200a\u2015\u201b\u201f\u2022\u2027\u2028\u2029\u2033\u2035\u2039\u203a\u2043"
    "\u205f\u2212\u25aa\u25cf\u3000\ufe63\uff07\uff08\uff09\uff0c\uff0d"
)
# Letters with a stroke or without a dot, which Unicode does not decompose: "Łódź", "Diyarbakır",
# "Đakovo", "Tromsø" are written without them as often as with ("Lodz", "Diyarbakir"). Only the
# classifier reads them so (its keys through `scan_key`); the search's `fold` keeps them.
_LETTERS = {ord(a): ord(b) for a, b in zip("łđøıħŧƀðɨƚ", "ldoihtbdil", strict=True)}
NORMALISE_TABLE = {**FOLD_TABLE, **_LETTERS, **{ord(c): ord(" ") for c in _SEPARATORS}}


def _byte_table(table: dict[int, int]) -> bytes:
    """`table` after lower-casing, for Latin-1 text as bytes (every Latin-1 character lower-cases
    to one Latin-1 character): `bytes.translate` is one C loop, `str.translate` a dict look-up
    per character for anything not ASCII."""
    out = bytearray(256)
    for i in range(256):
        low = ord(chr(i).lower())
        out[i] = table.get(low, low)
    return bytes(out)


_NORMALISE_BYTES = _byte_table(NORMALISE_TABLE)
_WIDE = re.compile("([^\x00-\xff]+)")


def fold(text: str) -> str:
    """Lower-case and strip Latin diacritics; same length as the input for all but exotic scripts."""
    folded = text.lower().translate(FOLD_TABLE)
    if len(folded) != len(text):  # e.g. 'İ'.lower() is two code points: keep offsets honest
        folded = "".join(c.lower()[:1] for c in text).translate(FOLD_TABLE)
    return folded


def normalise(text: str) -> str:
    """Fold, and turn punctuation into spaces: 'l'Algérie,' → 'l algerie '. One character for one,
    so a span in the normalised text is the same span in the original."""
    return _normalise(text)[0]


def _normalise(text: str) -> tuple[str, bool]:
    """`normalise(text)`, and whether the text holds a character beyond Latin-1 that `squeeze`
    removes or joins (a zero-width space, an en space): found here, where those characters are
    already apart, rather than by a search of the whole text."""
    try:  # the common case, English and French: Latin-1 only
        return text.encode("latin-1").translate(_NORMALISE_BYTES).decode("latin-1"), False
    except UnicodeEncodeError:
        pass
    if "\u03a3" not in text and "\u0130" not in text:
        # Without the two characters whose lower case depends on their neighbours or is two
        # characters (Σ, İ), lower-casing is character by character: the Latin-1 runs go the fast
        # way, the others (a 'ș' in a Romanian name) through the table.
        parts = _WIDE.split(text)
        odd = False
        for i in range(0, len(parts), 2):
            parts[i] = parts[i].encode("latin-1").translate(_NORMALISE_BYTES).decode("latin-1")
        for i in range(1, len(parts), 2):
            odd = odd or not _WIDE_GAPS.isdisjoint(parts[i])
            parts[i] = parts[i].lower().translate(NORMALISE_TABLE)
        return "".join(parts), odd
    out = text.lower().translate(NORMALISE_TABLE)
    if len(out) != len(text):
        out = "".join(c.lower()[:1] for c in text).translate(NORMALISE_TABLE)
    return out, not _WIDE_GAPS.isdisjoint(text)


def scan_key(phrase: str) -> str:
    """A rule phrase as the classifier's index holds it: `phrase_key`, its letters as `normalise`
    reads them ("łodz" is "lodz")."""
    return phrase_key(phrase).translate(_LETTERS)


# What `squeeze` takes out of the text the classifier's index reads. Zero-width characters (space,
# non-joiner, joiner, word joiner, byte-order mark) and soft hyphens are not there for the reader;
# combining accents are what text in decomposed form (NFD: from macOS, from PDFs) has for "é".
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
_COMBINING = "".join(map(chr, range(0x300, 0x370)))
_REMOVED = _ZERO_WIDTH + _COMBINING
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # where str.splitlines breaks
_IN_LINE = rf"(?:[^\S{_LINE_BREAKS}]|[{_ZERO_WIDTH}])"  # a space that does not end a line
# a line break, the spaces around it, and the quote marks that start a line of a reply ("> ")
_ONE_BREAK = rf"{_IN_LINE}*+(?:\r\n|[{_LINE_BREAKS}])(?:{_IN_LINE}*+>)*+{_IN_LINE}*+"
_GAP = re.compile(
    # a soft hyphen, and the line break it allowed: the word goes on
    rf"\u00ad(?:{_ONE_BREAK})?"
    # a word broken at a line's end by a hyphen: one word or a compound, decided by the vocabulary
    rf"|(?<=[^\W_])[\-\u2010\u2011](?P<hyphen>{_ONE_BREAK})(?=[^\W_])"
    # a run of spaces across at most one line break (a blank line still parts two phrases)
    rf"|{_ONE_BREAK}|{_IN_LINE}{{2,}}+"
    rf"|[{_REMOVED}]+"
)
_WIDE_GAPS = frozenset(
    _REMOVED + "\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2010\u2011\u2028\u2029\u202f\u205f\u3000"
)


class Squeezed(NamedTuple):
    """The normalised text with every run of spaces made one space, words broken at a line's end
    joined, zero-width characters, soft hyphens and combining accents removed; and where its offsets
    come from: from `starts[k]` on, an offset is `shifts[k]` characters further in the original."""

    text: str
    starts: list[int]
    shifts: list[int]

    def origin(self, offset: int) -> int:
        """The offset in the original of the character at `offset` (not a space put for a run)."""
        return offset + self.shifts[bisect_right(self.starts, offset) - 1]


def squeeze(text: str, norm: str, words: Container[str], odd: bool = True) -> Squeezed | None:
    """`norm` (`normalise(text)`) as a phrase index should read it, or None when that is `norm`
    itself: "New  Zealand", "United\r\nKingdom", "Royaume-\nUni", "Nether-\nlands", "Mol\u00addova",
    "United\n> Kingdom" (a quoted reply), "Bogota\u0301" (decomposed).
    A word broken by a hyphen at a line's end is joined when the joined word is one of `words`
    ("nether" + "lands"), else it is a compound whose hyphen was a space anyway ("guinee bissau").
    `odd`: whether `text` may hold a character beyond Latin-1 that matters (from `_normalise`)."""
    if not (odd or _may_squeeze(text)):
        return None
    pieces: list[str] = []
    starts, shifts = [0], [0]
    done = shift = 0
    for m in _GAP.finditer(text):
        a, b = m.span()
        run = m.group()
        if run[0] == "\u00ad" or not run.strip(_REMOVED):
            put = ""
        elif m.group("hyphen") is not None:
            left = right = a
            while left > 0 and norm[left - 1].isalnum():
                left -= 1
            right = b
            while right < len(norm) and norm[right].isalnum():
                right += 1
            put = "" if norm[left:a] + norm[b:right] in words else " "
        else:
            put = " "
        if b - a == len(put) and norm[a] == " ":
            continue  # one space, or one line break: norm has it already
        pieces.append(norm[done:a])
        pieces.append(put)
        done = b
        shift += b - a - len(put)
        starts.append(a - shift + (b - a))
        shifts.append(shift)
    if done == 0:
        return None
    pieces.append(norm[done:])
    return Squeezed("".join(pieces), starts, shifts)


def _may_squeeze(text: str) -> bool:
    """Whether `_GAP` can find anything in `text` that changes it, by searches for single characters
    (a C loop each) before the slower ones for two: most texts have nothing."""
    if "\r" in text or "\t" in text or "\u00ad" in text or "  " in text:
        return True
    if "\n" in text and (
        "\n " in text or " \n" in text or "-\n" in text or "\n>" in text or "\xa0\n" in text
    ):
        return True
    return "\xa0" in text and (" \xa0" in text or "\xa0 " in text or "\xa0\xa0" in text or "\n\xa0" in text)


def phrase_key(phrase: str) -> str:
    """The normalised form of a rule phrase: its tokens joined by single spaces."""
    return " ".join(tokens(fold(phrase)))


def tokens(folded: str) -> list[str]:
    return TOKEN_RE.findall(folded)


_BRACES = re.compile(r"\{([^{}]*)\}")


def expand(phrase: str) -> Iterator[str]:
    """Brace expansion for inflections: 'marocain{,e,s,es}' gives marocain, marocaine, marocains, marocaines."""
    m = _BRACES.search(phrase)
    if not m:
        yield phrase
        return
    for alt in m.group(1).split(","):
        yield from expand(phrase[: m.start()] + alt + phrase[m.end() :])


# Abbreviations written either way in place names: "St Kitts" / "Saint Kitts", "Ste-Lucie".
_ABBREVIATIONS = {"saint": "st", "sainte": "ste", "mount": "mt", "fort": "ft"}
_DOTTED = frozenset(_ABBREVIATIONS.values()) | {"rep", "dem"}  # "Rép. dém. du Congo", "Dominican Rep."
_ABBREVIATIONS |= {short: long for long, short in _ABBREVIATIONS.items()}
# French articles contracted with à and de: a name that starts with one is also written so
_CONTRACTED = {"le": ("au", "du"), "les": ("aux", "des")}


def spellings(key: str, acronym: bool = False) -> set[str]:
    """Other ways the text may write the place `key` (a `phrase_key`), as normalised text shows
    them: the abbreviation or the long form ('saint kitts' / 'st kitts'); the French article
    contracted ('le caire': 'au caire', 'du caire'); a dotted abbreviation
    or initial, whose dot and following space both became spaces ('st  kitts' for "St. Kitts",
    'r d  congo' for "R.D. Congo"); a short `acronym` spelled with dots ('u a e' for "U.A.E.";
    'i r a n' is never met otherwise, so short aliases that are words can be passed too)."""
    words = key.split(" ")
    if acronym and len(words) == 1 and 2 <= len(key) <= 4 and key.isalpha():
        return {" ".join(key)}
    forms = {" ".join(_ABBREVIATIONS.get(w, w) for w in words)} if len(words) > 1 else set()
    if len(words) > 1 and words[0] in _CONTRACTED:  # "Le Caire": "au Caire", "du Caire"
        forms |= {f"{article} {key.partition(' ')[2]}" for article in _CONTRACTED[words[0]]}
    out = set()
    for form in forms | {key}:
        parts = form.split(" ")
        dotted = [i for i, w in enumerate(parts[:-1]) if w in _DOTTED or (len(w) == 1 and w != "l")]
        dotted = dotted[:3]  # at most 8 forms of a key
        for mask in range(1 << len(dotted)):
            seps = [" "] * (len(parts) - 1)
            for bit, i in enumerate(dotted):
                if mask >> bit & 1:
                    seps[i] = "  "
            out.add(parts[0] + "".join(s + w for s, w in zip(seps, parts[1:], strict=True)))
    out.discard(key)
    return out


def read(text: str, words: Container[str]) -> tuple[str, Squeezed | None]:
    """`normalise(text)`, and `squeeze` of it (None: the normalised text as it is)."""
    norm, odd = _normalise(text)
    return norm, squeeze(text, norm, words, odd)
