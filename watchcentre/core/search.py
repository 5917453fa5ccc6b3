"""Full-text search, the engine-free part: the user's query parsed into clauses each engine can say
safely, the filters and the cursor of a search, and a hit's highlighted fragments. Pure: no I/O.

Syntax (docs/search.md): words are ANDed; `"a phrase"` matches those words in that order; `term*`
matches words starting with `term`. Anything else (operators, brackets, colons, quotes left open)
is read as a word separator, so no user input can make the engine's own query syntax fail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import snowballstemmer
from pydantic import BaseModel, ConfigDict, Field

from watchcentre.core.errors import Invalid
from watchcentre.core.records import Status, StoredMessage

MAX_QUERY_CHARS = 200
MAX_CLAUSES = 12
_WORD = re.compile(r"[^\W_]+")
_PART = re.compile(r'"([^"]*)"?|([^\s"]+)')
# What the engines put around a hit (private-use characters, stripped from the stored text first).
HIT_START, HIT_END = "\ue000", "\ue001"
_MARKERS = re.compile(f"[{HIT_START}{HIT_END}]")


@dataclass(frozen=True, slots=True)
class Clause:
    """One condition of a query: a word, a prefix (`words` holds one), or a phrase of several words."""

    kind: Literal["word", "prefix", "phrase"]
    words: tuple[str, ...]


def parse_query(q: str) -> tuple[Clause, ...]:
    """The clauses of a user's query, every one made of letters and digits only; `Invalid("q")` when
    nothing searchable is left or the query is too long."""
    if len(q) > MAX_QUERY_CHARS:
        raise Invalid("q", f"at most {MAX_QUERY_CHARS} characters")
    clauses: list[Clause] = []
    for phrase, bare in _PART.findall(q):
        if phrase:
            words = tuple(w.lower() for w in _WORD.findall(phrase))
            if len(words) == 1:
                clauses.append(Clause("word", words))
            elif words:
                clauses.append(Clause("phrase", words))
            continue
        pieces = _WORD.findall(bare)
        for i, w in enumerate(pieces):
            last = i == len(pieces) - 1
            prefix = last and bare.endswith("*") and len(w) >= 2  # one-letter prefixes match too much
            clauses.append(Clause("prefix" if prefix else "word", (w.lower(),)))
    if not clauses:
        raise Invalid("q", "nothing to search for: give at least one word of letters or digits")
    if len(clauses) > MAX_CLAUSES:
        raise Invalid("q", f"at most {MAX_CLAUSES} words, phrases or prefixes")
    return tuple(dict.fromkeys(clauses))


_CURSOR = re.compile(r"^(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)_(\d{1,19})$")
CURSOR_PATTERN = _CURSOR.pattern


@dataclass(frozen=True, slots=True)
class SearchCursor:
    """A place in the best-first order (score descending, then id descending)."""

    score: float
    id: int

    def text(self) -> str:
        return f"{self.score!r}_{self.id}"

    @classmethod
    def parse(cls, text: str) -> SearchCursor:
        m = _CURSOR.match(text)
        if m is None:
            raise Invalid("after", "not a cursor given by a previous page")
        return cls(float(m.group(1)), int(m.group(2)))


class SearchQuery(BaseModel):
    """GET /api/search: the words, the filters of GET /api/messages, and the page."""

    model_config = ConfigDict(extra="forbid")

    q: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description='Words, "phrases", prefix*.')
    crime_type: str | None = None
    country: str | None = None
    recipient: str | None = None
    status: Status | None = None
    sender: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: str | None = Field(
        default=None, pattern=CURSOR_PATTERN, description="Page: the `next` of the previous page."
    )
    limit: int = Field(default=20, ge=1, le=100)


class Fragment(BaseModel):
    """A piece of text; `hit` when it matched the query. Screens set it as text, never as markup."""

    text: str
    hit: bool = False


@dataclass(frozen=True, slots=True)
class SearchHit:
    message: StoredMessage
    score: float
    subject: list[Fragment]
    body: list[Fragment]


def clean(text: str | None) -> str:
    """Stored text without the hit markers (so a message cannot forge a highlight)."""
    return _MARKERS.sub("", text or "")


def fragments(marked: str | None) -> list[Fragment]:
    """The engine's marked-up text cut into plain and hit pieces."""
    out: list[Fragment] = []
    hit = False
    for piece in re.split(f"([{HIT_START}{HIT_END}])", marked or ""):
        if piece == HIT_START:
            hit = True
        elif piece == HIT_END:
            hit = False
        elif piece:
            out.append(Fragment(text=piece, hit=hit))
    return out


_STEMMERS = (snowballstemmer.stemmer("french"), snowballstemmer.stemmer("english"))


def stems(word: str) -> list[str]:
    """The word's French and English Snowball stems of three letters or more, other than itself:
    what an engine without a French stemmer (FTS5) searches as prefixes."""
    out = []
    for stemmer in _STEMMERS:
        stem = stemmer.stemWord(word.lower())
        if len(stem) >= 3 and stem != word.lower() and stem not in out:
            out.append(stem)
    return out
