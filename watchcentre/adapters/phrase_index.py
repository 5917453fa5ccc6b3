"""The classifier's substring index on ahocorasick-rs (the Rust `aho-corasick` crate): one pass of a
compiled automaton over the text, whatever the number of keys, and the hits come back as one list built
in Rust. Latin-1 text (English and French, nearly always) is searched as bytes, one byte per character,
by a DFA holding the Latin-1 keys (no other key can occur in such a text); anything else as str."""

from __future__ import annotations

from collections.abc import Sequence

import ahocorasick_rs


class AhoCorasickIndex:
    def __init__(self, keys: Sequence[str]) -> None:
        latin = [k for k in keys if _latin1(k)]
        # the Latin-1 keys first, so that a key's number is the same in both automata
        self.keys: list[str] = latin + [k for k in keys if not _latin1(k)]
        every = ahocorasick_rs.MatchKind.Standard  # every occurrence, overlaps included
        self._str = ahocorasick_rs.AhoCorasick(self.keys, matchkind=every)
        self._bytes = ahocorasick_rs.BytesAhoCorasick(
            [k.encode("latin-1") for k in latin],
            matchkind=every,
            implementation=ahocorasick_rs.Implementation.DFA,
        )

    def find(self, text: str) -> list[tuple[int, int, int]]:
        try:
            raw = text.encode("latin-1")
        except UnicodeEncodeError:
            return self._str.find_matches_as_indexes(text, overlapping=True)
        return self._bytes.find_matches_as_indexes(raw, overlapping=True)


def _latin1(key: str) -> bool:
    try:
        key.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True
