"""Text folding and tokenising shared by the rules compiler and the classifier.

Folding is lower-casing plus stripping diacritics from Latin letters, one character for one
character, so that offsets in the folded text are offsets in the original (for highlighting).
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Container, Iterator
from functools import lru_cache
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
    "\x00\t\n\r\x0b\x0c !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
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
# The same, but the separators after which `squeeze` may have work (a line break, a tab, a no-break
# space) become NUL, a mark found by one search for one character and then made a space: the text
# needs no closer look without it or a soft hyphen (NUL in the text is a separator too).
_MARKED = "\x00\t\n\r\x0b\x0c\x85\xa0"
_MARKING_BYTES = bytes(0 if chr(i) in _MARKED else b for i, b in enumerate(_NORMALISE_BYTES))
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


def _normalise(text: str) -> tuple[str, int]:
    """`normalise(text)`, and what `read` must do to know whether `squeeze` has work: 0, only look
    for two spaces in a row; 1, look closer (a line break, a tab, a no-break space, a soft hyphen,
    or characters beyond Latin-1 not looked at); 2, squeeze (a zero-width character, an en space)."""
    try:  # the common case, English and French: Latin-1, and a few characters beyond (— ’ ș)
        out = text.encode("latin-1", _FOLD_WIDE).translate(_MARKING_BYTES).decode("latin-1")
    except UnicodeEncodeError:
        pass
    else:
        if "\x00" in out:
            return out.replace("\x00", " "), 1
        return out, 1 if "\xad" in out else 0
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
        return "".join(parts), 2 if odd else 1
    out = text.lower().translate(NORMALISE_TABLE)
    if len(out) != len(text):
        out = "".join(c.lower()[:1] for c in text).translate(NORMALISE_TABLE)
    return out, 2 if not _WIDE_GAPS.isdisjoint(text) else 1


def _fold_wide(exc: UnicodeError) -> tuple[str, int]:
    """Encoding error handler for `_normalise`: a run of characters beyond Latin-1 (an em dash in a
    subject, a typographic apostrophe, a Romanian 'ș'), normalised in place, when that is ASCII of the
    same length; else the error goes on and the text takes the slower way. Its output is left as it
    is by the byte table applied after. Saves the split into runs (~2 µs a text)."""
    if isinstance(exc, UnicodeEncodeError):
        run = exc.object[exc.start : exc.end]
        out = run.lower().translate(NORMALISE_TABLE)
        if len(out) == len(run) and out.isascii() and _WIDE_GAPS.isdisjoint(run) and "\u03a3" not in run:
            return out, exc.end
    raise exc


_FOLD_WIDE = "watchcentre.normalise"
codecs.register_error(_FOLD_WIDE, _fold_wide)


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
_HYPHENS = "-\u2010\u2011"
_WIDE_SPACES = (
    "\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_SPACES = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0" + _WIDE_SPACES
# what a run that `squeeze` reads is made of: spaces, line breaks, invisible characters, hyphens
# (a word broken at a line's end) and quote marks (a reply's lines)
_RUN_CHARS = frozenset(_SPACES + _REMOVED + _HYPHENS + "\u00ad>")
# Where such a run may start in Latin-1 text, searched for one kind at a time (the regex engine skips
# to a literal first character in C; one regex for all would try itself at every space): every
# carriage return, soft hyphen and two spaces in a row; a line break, a tab or a no-break space only
# next to another character of a run (alone it is one space in `norm` already).
_RUN_CLASS = "".join("\\" + c if c in "\\]^-" else c for c in sorted(_RUN_CHARS))
_EVERY = ("\r", "\u00ad", "  ")
_NEXT_TO_RUN = {
    c: re.compile(f"{c}(?:(?<=[{_RUN_CLASS}]{c})|(?=[{_RUN_CLASS}]))").finditer
    for c in ("\n", "\t", "\xa0", "\x0b", "\x0c", "\x85")
}
_WIDE_SEED = re.compile(f"[{_REMOVED}{_WIDE_SPACES}]")
_WIDE_GAPS = frozenset(_REMOVED + _WIDE_SPACES)  # beyond Latin-1: what `_WIDE_SEED` finds


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


def squeeze(
    text: str, norm: str, words: Container[str], wide: bool = True, spaced: bool = True
) -> Squeezed | None:
    """`norm` (`normalise(text)`) as a phrase index should read it, or None when that is `norm`
    itself: "New  Zealand", "United\r\nKingdom", "Royaume-\nUni", "Nether-\nlands", "Mol\u00addova",
    "United\n> Kingdom" (a quoted reply), "Bogota\u0301" (decomposed). A run of spaces across at most
    one line break is one space (a blank line still parts two phrases); a word broken by a hyphen at
    a line's end is joined when the joined word is one of `words` ("nether" + "lands"), else it is a
    compound whose hyphen was a space anyway ("guinee bissau"); a hyphen elsewhere is left as it is.
    `wide`: whether the text may hold spaces or invisible characters beyond Latin-1; `spaced`: two
    spaces in a row."""
    seeds = [m.start() for m in _WIDE_SEED.finditer(text)] if wide else []
    for seed in _EVERY if spaced else _EVERY[:2]:
        i = text.find(seed)
        while i >= 0:
            seeds.append(i)
            i = text.find(seed, i + 1)
    for seed, finditer in _NEXT_TO_RUN.items():
        if seed in text:
            seeds += [m.start() for m in finditer(text)]
    seeds.sort()
    pieces: list[str] = []
    starts, shifts = [0], [0]
    done = shift = kept = 0
    end = len(text)
    for a in seeds:
        if a < done or a < kept:
            continue  # inside the last run (squeezed, or kept as it is: read once, never again)
        b = a + 1
        while a > done and text[a - 1] in _RUN_CHARS:
            a -= 1
        while b < end and text[b] in _RUN_CHARS:
            b += 1
        if b - a == 1 and norm[a] == " ":
            continue  # one space or line break: norm has it already
        run = text[a:b]
        put = (
            _put(run, a, b, norm, words) if "-" in run or "\u2010" in run or "\u2011" in run else _blank(run)
        )
        if put is None:
            kept = b
            continue
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


def _blank(run: str) -> str | None:
    """What the index reads for a `run` without a hyphen: nothing, a space, or None (as it is)."""
    return _short_blank(run) if len(run) <= _CACHED_RUN else _put(run, 0, 0, "", ())


_CACHED_RUN = 32  # a few short kinds make most runs; a long one is rare, and never held in memory


@lru_cache(maxsize=4096)
def _short_blank(run: str) -> str | None:
    return _put(run, 0, 0, "", ())


def _put(run: str, a: int, b: int, norm: str, words: Container[str]) -> str | None:
    """What the index reads for the `run` at [a, b) of the text: nothing, a space, or None (as it
    is, `norm[a:b]`)."""
    lines = (run + ".").splitlines()  # the run's line breaks ("\r\n" is one) and what is between
    if len(lines) > 2:
        return None  # a blank line
    if ">" in run and (len(lines) == 1 or ">" in lines[0]):
        return None  # "a > b", not a quoted reply's line
    if run[0] in _HYPHENS:
        if len(lines) == 1 or any(h in run[1:] for h in _HYPHENS) or not 0 < a < b < len(norm):
            return None  # a dash, not a word broken at a line's end
        left, right = a, b
        while left > 0 and norm[left - 1].isalnum():
            left -= 1
        while right < len(norm) and norm[right].isalnum():
            right += 1
        if left == a or right == b:
            return None
        return "" if norm[left:a] + norm[b:right] in words else " "
    if any(h in run for h in _HYPHENS):
        return None  # " - ", a dash between spaces
    if (run[0] == "\u00ad" and len(lines) == 2) or not run.strip(_REMOVED + "\u00ad"):
        return ""  # a soft hyphen and the line break it allowed; invisible characters
    return " "


def read(
    text: str, words: Container[str], spaced: Callable[[str], object] | None = None
) -> tuple[str, Squeezed | None]:
    """`normalise(text)`, and `squeeze` of it (None: the normalised text as it is). `spaced(text)`:
    whether `text` holds two spaces in a row, when the caller has a faster search than `in` for
    texts longer than a subject (it is most of what a text with nothing to squeeze costs: ~1.5 µs
    per KB with `in`)."""
    norm, look = _normalise(text)
    two = bool(spaced(text)) if spaced is not None and len(text) > 200 else "  " in text
    if not look and not two:
        return norm, None
    return norm, squeeze(text, norm, words, look == 2, two)
