"""Text folding and tokenising shared by the rules compiler and the classifier.

Folding is lower-casing plus stripping diacritics from Latin letters, one character for one
character, so that offsets in the folded text are offsets in the original (for highlighting).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator


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
)
NORMALISE_TABLE = {**FOLD_TABLE, **{ord(c): ord(" ") for c in _SEPARATORS}}


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
    try:  # the common case, English and French: Latin-1 only
        return text.encode("latin-1").translate(_NORMALISE_BYTES).decode("latin-1")
    except UnicodeEncodeError:
        pass
    if "\u03a3" not in text and "\u0130" not in text:
        # Without the two characters whose lower case depends on their neighbours or is two
        # characters (Σ, İ), lower-casing is character by character: the Latin-1 runs go the fast
        # way, the others (a 'ș' in a Romanian name) through the table.
        parts = _WIDE.split(text)
        for i in range(0, len(parts), 2):
            parts[i] = parts[i].encode("latin-1").translate(_NORMALISE_BYTES).decode("latin-1")
        for i in range(1, len(parts), 2):
            parts[i] = parts[i].lower().translate(NORMALISE_TABLE)
        return "".join(parts)
    out = text.lower().translate(NORMALISE_TABLE)
    if len(out) != len(text):
        out = "".join(c.lower()[:1] for c in text).translate(NORMALISE_TABLE)
    return out


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
