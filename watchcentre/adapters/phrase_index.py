"""A phrase index on pyahocorasick: one pass of a C automaton over the text, whatever the number of
rule phrases. Keys are padded with spaces, so only whole words match ('arme' never in 'gendarmerie')."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import ahocorasick


class AhoCorasickIndex:
    def __init__(self, keys: Sequence[str]) -> None:
        self._automaton = ahocorasick.Automaton()
        for i, key in enumerate(keys):
            self._automaton.add_word(f" {key} ", (i, len(key)))
        self._automaton.make_automaton()

    def find(self, text: str) -> Iterator[tuple[int, int, int]]:
        # In " " + text + " ", a hit ending at e (inclusive, on the trailing space) covers the
        # phrase text[e - length - 1 : e - 1].
        for e, (i, length) in self._automaton.iter(f" {text} "):
            yield e - length - 1, e - 1, i
