"""Classification: which crime types and which foreign countries a message concerns, and why.

Everything the classifier knows comes in as data (config/taxonomy.yaml through `CrimeRules`, and a
country lexicon built by the gazetteer adapter); this module compiles it once into a first-token
index and scans each text in one pass. Every label carries the evidence that produced it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field

from watchcentre.core.taxonomy import CRIME_CODES
from watchcentre.core.text import expand, read, scan_key, spellings

Field_ = Literal["subject", "body", "hint"]
CountryKind = Literal["hint", "name", "alias", "capital", "city", "demonym", "phone"]


# --------------------------------------------------------------------------- rules as data


class CodeRules(BaseModel):
    """Phrases and patterns for one taxonomy code. Phrases take {a,b} inflection braces."""

    model_config = ConfigDict(extra="forbid")

    label: dict[str, str] = Field(default_factory=dict)
    strong: dict[str, list[str]] = Field(default_factory=dict, description="lang -> decisive phrases")
    phrases: dict[str, list[str]] = Field(default_factory=dict, description="lang -> supporting phrases")
    patterns: list[str] = Field(
        default_factory=list, description="regexes over folded (lower, unaccented) text"
    )


class Negation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window: int = Field(default=4, ge=1, le=12, description="tokens between a cue and the phrase it negates")
    cues: dict[str, list[str]] = Field(default_factory=dict)


class Role(BaseModel):
    """Words that say what part the crime named right after them plays in the message: the charge
    ('arrested for', 'mis en examen pour': what it is about) or the background ('already known for',
    'déjà condamné pour': not what it is about). A crime phrase within `window` tokens after one
    weighs `factor` times."""

    model_config = ConfigDict(extra="forbid")

    factor: float = Field(gt=0.0, le=4.0)
    cues: dict[str, list[str]] = Field(default_factory=dict)


class Roles(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window: int = Field(default=3, ge=0, le=8, description="tokens between a cue and the crime phrase")
    roles: dict[str, Role] = Field(default_factory=dict, description="name -> its factor and cues")


class NamedAfter(BaseModel):
    """Words that, right next to a place's name, make it the name of a thing: products, breeds,
    cuisine, dress and brands named after a country's people ('Italian suits', 'montres suisses'),
    conventions and treaties named after a city ('Budapest Convention', 'convention de Palerme').
    The place, of one of `kinds`, is then not a place: it weighs nothing."""

    model_config = ConfigDict(extra="forbid")

    kinds: list[CountryKind] = Field(min_length=1)
    before: list[str] = Field(default_factory=list, description="words right before the place's name")
    after: list[str] = Field(default_factory=list, description="words right after the place's name")


class PlaceRules(BaseModel):
    """Places named in passing (config/gazetteer.yaml `in_passing`): phrases that contain a place's
    name and are not about it ('US dollars', 'New South Wales'), cues after which a place is only
    a comparison or the seat of a post ('like in', 'the post in'), and cues right after a place that
    say it is not concerned ('which was not targeted'): weighed by `factor`. A place joined to one
    in passing by a comma, a parenthesis or 'and' is in passing too ('Castries (Sainte-Lucie)')."""

    model_config = ConfigDict(extra="forbid")

    not_places: list[str] = Field(default_factory=list)
    window: int = Field(default=2, ge=0, le=8, description="tokens between a cue and the place")
    factor: float = Field(default=1.0, ge=0.0, le=1.0)
    cues: dict[str, list[str]] = Field(default_factory=dict)
    cues_after: dict[str, list[str]] = Field(
        default_factory=dict, description="lang -> phrases right after a place (or a list of places)"
    )
    named_after: list[NamedAfter] = Field(default_factory=list)


class Weights(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strong: float = 2.0
    phrase: float = 1.0
    pattern: float = 1.0
    subject_factor: float = 2.0
    crime_threshold: float = 2.0
    secondary_ratio: float = Field(
        default=0.34,
        ge=0.0,
        le=1.0,
        description="a secondary crime type needs this share of the primary's score",
    )
    country: dict[str, float] = Field(
        default_factory=lambda: {
            "hint": 1.0,
            "name": 0.95,
            "alias": 0.9,
            "capital": 0.85,
            "city": 0.75,
            "demonym": 0.7,
            "phone": 0.7,
        }
    )
    country_threshold: float = 0.6
    repeats: bool = Field(
        default=True,
        description="false: a phrase said again in the same field (a country again in the message) adds"
        " nothing: what a message is about is not what it repeats most",
    )
    precedence: list[tuple[str, str]] = Field(
        default_factory=list,
        description="[a, b]: when b scores highest and a is found too, with at least precedence_ratio"
        " of b's score, the message is about a (terrorism over the violence it uses, a wanted person"
        " over what they are wanted for, a fraud over the internet it used)",
    )
    precedence_ratio: float = Field(default=0.5, ge=0.0, le=1.0)
    precedence_needs_subject: list[str] = Field(
        default_factory=list,
        description="types that take precedence only when the subject names them as much as the top type:"
        " a kidnapping whose suspects were arrested on European warrants is about the kidnapping",
    )
    lead_factor: float = Field(
        default=1.0, ge=1.0, le=4.0, description="weight of the body's first sentence, the lead of a release"
    )


class CrimeRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    weights: Weights = Field(default_factory=Weights)
    negation: Negation = Field(default_factory=Negation)
    roles: Roles = Field(default_factory=Roles)
    codes: dict[str, CodeRules]

    def problems(self) -> list[str]:
        out = [f"codes: unknown taxonomy code '{c}'" for c in self.codes if c not in CRIME_CODES]
        out += [f"codes: no rules for taxonomy code '{c}'" for c in sorted(CRIME_CODES - set(self.codes))]
        for i, pair in enumerate(self.weights.precedence):
            out += [
                f"weights.precedence[{i}]: unknown taxonomy code '{c}'" for c in pair if c not in CRIME_CODES
            ]
        out += [
            f"weights.precedence_needs_subject: unknown taxonomy code '{c}'"
            for c in self.weights.precedence_needs_subject
            if c not in CRIME_CODES
        ]
        for code, rules in self.codes.items():
            for i, pat in enumerate(rules.patterns):
                try:
                    re.compile(pat)
                except re.error as exc:
                    out.append(f"codes.{code}.patterns[{i}]: invalid regex ({exc})")
            for table in (rules.strong, rules.phrases):
                out += [
                    f"codes.{code}: '{phrase}' holds punctuation between words: the text's breaks there,"
                    " it never matches"
                    for phrases in table.values()
                    for phrase in phrases
                    if _BREAKS.search(phrase)
                ]
            if not any(rules.strong.values()) and not any(rules.phrases.values()) and not rules.patterns:
                out.append(f"codes.{code}: no phrases or patterns")
        return out


# punctuation that the fold makes a space next to a space: a phrase holding it never matches, since
# the scan reads a comma or a full stop as a break ('Guinée, Bissau' is not 'Guinée-Bissau')
_BREAKS = re.compile(r"[;:!?()\[\]]|[,.]\s")


@dataclass(frozen=True, slots=True)
class CountryTerm:
    """A way a country shows up in text: its name, a demonym, a capital or city, an alias."""

    phrase: str
    country: str
    kind: CountryKind
    weight: float | None = None  # None: the weight of its kind


# --------------------------------------------------------------------------- results


def _past_accents(text: str, end: int) -> int:
    """`end` moved past the combining accents that follow it: a word of decomposed text ("Bogota"
    and U+0301) is quoted with its accent."""
    while end < len(text) and "\u0300" <= text[end] <= "\u036f":
        end += 1
    return end


class Evidence(NamedTuple):
    """One reason for a label: a phrase, pattern, phone number or hint, and where it was found."""

    target: str  # a taxonomy code or an ISO country code
    rule: str  # 'strong', 'phrase', 'pattern', or a CountryKind
    text: str  # the text as written in the message
    field: Field_
    start: int
    end: int
    weight: float
    negated_by: str | None = None

    def describe(self) -> str:
        where = "sender hint" if self.field == "hint" else f"{self.field} [{self.start}:{self.end}]"
        what = f'{self.rule} "{self.text}"' if self.field != "hint" else "hint"
        if self.negated_by:
            return f'{self.target}: {what} in {where} ignored, negated by "{self.negated_by}"'
        return f"{self.target}: {what} in {where}"


_Found = tuple[str, str, float, bool, float, bool]
"""What a phrase says, precomputed: (target, rule, weight, is a crime type, 1 - weight for the
country noisy-or, target is home). One phrase may say several things ('guinea': GN and GQ)."""

_START, _END = itemgetter(1), itemgetter(2)
_LEAD_END = re.compile(r"[.!?](?=\s)|\n")  # the end of a body's first sentence
_FIELDS: tuple[Field_, Field_, Field_] = ("subject", "body", "hint")
_SUBJECT, _BODY, _HINT = 0, 1, 2
# between a place and a cue after it ('Canada, which', 'Croatia, named by a witness, is', 'Russian-'); between places
# in a list ('French, Italian and Belgian', 'Castries (Sainte-Lucie)', 'ou en Sicile'): matched on the
# text as written, so that a full stop breaks it
_AFTER_GAP = re.compile(r"-?\s*+\)?\s*+(?:,[^,.;:!?()]{1,60},)?\s*+,?\s*+\Z").match
# between a thing's word and the place's name it is named after: 'convention d'Istanbul',
# 'Italian-style', never a comma or a full stop ('au restaurant. Chinois et…')
_NAMED_BEFORE_GAP = re.compile(r"[\s'’]*+\Z").match
_NAMED_AFTER_GAP = re.compile(r"\s*+[-‐‑]?\s*+\Z").match
_CHAIN_GAP = re.compile(
    r"\s*+\)?\s*+[,(/]?\s*+(?:(?:and|or|et|ou)\s++(?:(?:in|en|au|aux|à)\s++)?)?(?:(?:l|d)['’]|(?:la|le|les|the)\s++)?\Z",
    re.IGNORECASE,
).match


class Classification:
    """The labels, their scores, and the evidence behind them. The evidence is kept as the scan's
    compact records and turned into `Evidence` tuples only when someone reads it."""

    __slots__ = (
        "_evidence",
        "_found",
        "_texts",
        "countries",
        "country_confidence",
        "crime_scores",
        "crime_types",
        "home_mentions",
    )

    def __init__(
        self,
        crime_types: list[str],
        countries: list[str],
        country_confidence: dict[str, float],
        crime_scores: dict[str, float],
        home_mentions: list[str],
        evidence: list[Evidence] | None = None,
        *,
        found: list[tuple[int, int, int, tuple[_Found, ...], str | None]] | None = None,
        texts: tuple[str, str] = ("", ""),
    ) -> None:
        self.crime_types = crime_types  # primary first
        self.countries = countries  # foreign countries above the threshold, strongest first
        self.country_confidence = country_confidence  # every country seen, routed or not
        self.crime_scores = crime_scores
        self.home_mentions = home_mentions  # home codes seen (France): noted, never routed
        self._found = found or []
        self._texts = texts
        self._evidence = evidence

    @property
    def evidence(self) -> list[Evidence]:
        if self._evidence is None:
            out = []
            texts = self._texts
            for where, start, end, says, negated_by in self._found:
                name = _FIELDS[where]
                for target, rule, weight, crime, _, _ in says:
                    written = target if where == _HINT else texts[where][start:end]
                    neg = negated_by if crime else None
                    out.append(Evidence(target, rule, written, name, start, end, weight, neg))
            self._evidence = out
        return self._evidence

    def explanation(self) -> list[str]:
        lines = []
        for code in self.crime_types:
            lines.append(f"crime {code} (score {self.crime_scores[code]:.1f})")
        for c in self.countries:
            lines.append(f"country {c} (confidence {self.country_confidence[c]:.2f})")
        for c, conf in self.country_confidence.items():
            if c not in self.countries:
                lines.append(f"country {c} below threshold (confidence {conf:.2f}): not routed on it")
        for c in self.home_mentions:
            lines.append(f"country {c} is home: not routed abroad")
        lines.extend(e.describe() for e in self.evidence)
        return lines


class CountryFinder(Protocol):
    """Extra country evidence from text (e.g. international phone numbers)."""

    def __call__(self, text: str) -> Iterable[tuple[str, int, int, str]]:
        """Yield (country code, start, end, matched text)."""
        ...


# --------------------------------------------------------------------------- substring index


class SubstringIndex(Protocol):
    """Every occurrence of every key in a text, overlaps included, as (key number, start, end), a key's
    number being its place in `keys` (the index may order them as it likes). An adapter supplies a
    compiled one (Aho-Corasick); `TrieIndex` is the standard-library stand-in."""

    @property
    def keys(self) -> Sequence[str]: ...

    def find(self, text: str) -> list[tuple[int, int, int]]: ...


IndexFactory = Callable[[Sequence[str]], SubstringIndex]


class TrieIndex:
    """A character trie walked from every position: correct, and slow; for tests and for running
    the core without the adapter's compiled index."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = keys
        self._trie: dict[str, Any] = {}
        for number, key in enumerate(keys):
            node = self._trie
            for ch in key:
                node = node.setdefault(ch, {})
            node["\0"] = number

    def find(self, text: str) -> list[tuple[int, int, int]]:
        found = []
        for i in range(len(text)):
            node = self._trie
            for j in range(i, len(text)):
                nxt = node.get(text[j])
                if nxt is None:
                    break
                node = nxt
                if "\0" in node:
                    found.append((node["\0"], i, j + 1))
        return found


# --------------------------------------------------------------------------- the classifier

_CRIME, _COUNTRY, _NEGATION, _NOT_PLACE, _PLACE_CUE, _AFTER_CUE, _NAMED, _ROLE = 0, 1, 2, 3, 4, 5, 6, 7
_NO_KINDS: frozenset[str] = frozenset()
_Payload = tuple[str, str, float, int]  # (target, rule, weight, what: _CRIME, _COUNTRY or _NEGATION)
_Key = tuple[tuple[_Found, ...], str | tuple[int, ...] | None]
"""What an index key means: (what the phrase says, None); or ((), the cue) when the key is only a
negation cue; or, for a word a pattern needs, ((), the numbers of the patterns that need it)."""


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The rule phrases, country names and negation cues compiled into index keys (' word ', padded
    with spaces) and what each one means: only strings, numbers and tuples, so that the bootstrap can
    keep it on disk between starts (compiling it takes most of a start without the cache)."""

    phrases: tuple[tuple[str, _Key], ...]
    place_window: int = 0
    place_factor: float = 1.0

    @classmethod
    def compile(
        cls,
        rules: CrimeRules,
        country_terms: Iterable[CountryTerm],
        home: Iterable[str],
        places: PlaceRules | None = None,
    ) -> Vocabulary:
        w = rules.weights
        kind_weight = dict(w.country)
        home_set = frozenset(home)
        by_key: dict[str, list[_Payload]] = defaultdict(list)
        for code, cr in rules.codes.items():
            for rule, table, weight in (("strong", cr.strong, w.strong), ("phrase", cr.phrases, w.phrase)):
                for phrases in table.values():
                    for p in phrases:
                        for variant in expand(p):
                            if key := scan_key(variant):
                                by_key[key].append((code, rule, weight, _CRIME))
        # other spellings of places ("St. Kitts", "U.A.E."); a key written in the rules wins over them
        spelt: dict[str, list[_Payload]] = defaultdict(list)
        for t in country_terms:
            if key := scan_key(t.phrase):
                weight = t.weight if t.weight is not None else kind_weight.get(t.kind, 0.5)
                payload = (t.country, t.kind, weight, _COUNTRY)
                by_key[key].append(payload)
                for other in spellings(key, acronym=t.kind == "alias"):
                    spelt[other].append(payload)
        for cues in rules.negation.cues.values():
            for cue in cues:
                for v in expand(cue):
                    if key := scan_key(v):
                        by_key[key].append((key, "negation", 0.0, _NEGATION))
        for role in rules.roles.roles.values():
            for cues in role.cues.values():
                for cue in cues:
                    for v in expand(cue):
                        if key := scan_key(v):
                            by_key[key].append((key, "role", role.factor, _ROLE))
        places = places or PlaceRules()
        for phrase in places.not_places:
            for v in expand(phrase):
                if key := scan_key(v):
                    by_key[key].append(("", "not a place", 0.0, _NOT_PLACE))
                    for other in spellings(key):
                        spelt[other].append(("", "not a place", 0.0, _NOT_PLACE))
        for cues in places.cues.values():
            for cue in cues:
                for v in expand(cue):
                    if key := scan_key(v):
                        by_key[key].append((key, "place cue", 0.0, _PLACE_CUE))
        for cues in places.cues_after.values():
            for cue in cues:
                for v in expand(cue):
                    if key := scan_key(v):
                        by_key[key].append((key, "place cue after", 0.0, _AFTER_CUE))
        # a word that makes the place next to it a thing's name: its target says on which side, of
        # which kinds of name ('before:demonym')
        for group in places.named_after:
            for side, words in (("before", group.before), ("after", group.after)):
                for word in words:
                    for v in expand(word):
                        if key := scan_key(v):
                            for kind in group.kinds:
                                by_key[key].append((f"{side}:{kind}", "named after", 0.0, _NAMED))
        for key, payloads in spelt.items():
            if key not in by_key:
                by_key[key] = payloads
        _article_overlaps(by_key)
        items: list[tuple[str, _Key]] = []
        for key, payloads in by_key.items():
            found = _dedupe(payloads)
            # a name that is a home territory's and a foreign country's is home's ('Saint-Martin': the
            # French collectivity, not Sint Maarten): the foreign one is named in its own words
            if any(p[3] == _COUNTRY and p[0] in home_set for p in found):
                found = [p for p in found if p[3] != _COUNTRY or p[0] in home_set]
            # a phrase that is also a rule's phrase is that phrase, never a cue
            first = found[0][3]
            special: str | None = None
            if first == _NEGATION:
                special = key
            elif first == _PLACE_CUE:
                special = "\0" + key  # a place cue: what follows is named in passing
            elif first == _AFTER_CUE:
                special = "\1" + key  # what comes just before is named in passing
            elif first == _ROLE:
                special = f"\3{found[0][2]!r}"  # the crime named right after weighs this factor
            elif first in (_NAMED, _CRIME) and any(p[3] == _NAMED for p in found):
                # '\2' and the kinds of name it makes a thing's, before and after it; a crime phrase
                # too ('couteau suisse') stays that phrase
                sides = {
                    side: sorted(t.partition(":")[2] for t, *_ in found if t.startswith(side))
                    for side in ("before", "after")
                }
                special = "\2" + ",".join(sides["before"]) + "|" + ",".join(sides["after"])
            says = tuple(_says(p, home_set) for p in found if p[3] in (_CRIME, _COUNTRY))
            items.append((f" {key} ", (says, special)))
        return cls(tuple(items), places.window, places.factor)

    def to_data(self) -> dict[str, Any]:
        """JSON-ready lists."""
        phrases = [[key, [list(map(list, says)), cue]] for key, (says, cue) in self.phrases]
        return {"phrases": phrases, "place_window": self.place_window, "place_factor": self.place_factor}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Vocabulary:
        """The inverse of `to_data`; raises on anything else (a damaged cache)."""
        items = []
        for key, (says, cue) in data["phrases"]:
            if not isinstance(key, str) or not (cue is None or isinstance(cue, str)):
                raise ValueError("not a vocabulary")
            items.append(
                (
                    key,
                    (
                        tuple(
                            (str(t), str(r), float(w), bool(c), float(k), bool(h))
                            for t, r, w, c, k, h in says
                        ),
                        cue,
                    ),
                )
            )
        return cls(tuple(items), int(data["place_window"]), float(data["place_factor"]))


# articles that begin some place names ("le cap", "the hague") and that the scan's longest-first rule
# would let hide a longer name starting at the next word
_ARTICLES = frozenset({"le", "la", "les", "l", "au", "aux", "du", "des", "the"})


def _article_overlaps(by_key: dict[str, list[_Payload]]) -> None:
    """A place key that starts with an article ('le cap', 'au cap') would hide a longer place that
    starts at its second word ('le Cap-Vert'): the scan takes the hit that starts first. The article
    followed by the longer place becomes a key of that place ('le cap vert': CV), unless it is one."""
    places = {k: [p for p in v if p[3] in (_COUNTRY, _NOT_PLACE)] for k, v in by_key.items()}
    by_first: dict[str, list[str]] = defaultdict(list)
    for key, payloads in places.items():
        if payloads:
            by_first[key.partition(" ")[0]].append(key)
    for key, payloads in places.items():
        article, _, rest = key.partition(" ")
        if article not in _ARTICLES or not rest or not payloads:
            continue
        for other in by_first.get(rest.partition(" ")[0], ()):
            if other.startswith(rest + " ") and (longer := f"{article} {other}") not in by_key:
                by_key[longer] = places[other]


def _says(p: _Payload, home: frozenset[str]) -> _Found:
    target, rule, weight, what = p
    return (target, rule, weight, what == _CRIME, 1.0 - min(weight, 1.0), target in home)


class Classifier:
    """Compiled once at start; `classify` is pure and safe to call from many tasks.

    The scan is one pass of the substring index over the folded text, whose payloads already say
    what each phrase means and weighs; the Python per hit is the longest-match rule, the negation
    window and two dictionary updates. `vocabulary`, when given, is `Vocabulary.compile` of the same
    rules, terms and home, kept from an earlier start (then `country_terms` is not read)."""

    def __init__(
        self,
        rules: CrimeRules,
        country_terms: Iterable[CountryTerm],
        home: Iterable[str],
        extra_finders: Sequence[CountryFinder] = (),
        index_factory: IndexFactory = TrieIndex,
        vocabulary: Vocabulary | None = None,
        places: PlaceRules | None = None,
    ) -> None:
        problems = rules.problems()
        if problems:
            raise ValueError("; ".join(problems))
        self.rules = rules
        self.home = frozenset(home)
        self._finders = tuple(extra_finders)
        w = rules.weights
        self._kind_weight = dict(w.country)
        self._window = rules.negation.window
        if vocabulary is None:
            vocabulary = Vocabulary.compile(rules, country_terms, self.home, places)
        self._lead_factor = w.lead_factor
        # "at most n tokens between two offsets", looking at n tokens at most (possessive, no
        # backtracking into a token); `len(norm[a:b].split()) <= n` copied and split the whole span
        self._within_negation = _within(self._window)
        self._within_place = _within(vocabulary.place_window)
        self._within_role = _within(rules.roles.window)
        self._place_window = vocabulary.place_window
        self._place_factor = vocabulary.place_factor
        items: list[tuple[str, Any]] = list(vocabulary.phrases)
        self._phrase_count = len(items)
        # Each pattern alone, tried only when one of the words it cannot match without is in the
        # text: a regex search costs ~30 µs per KB (the engine tries every position). The words are
        # keys of the same index, so that one pass finds them with the phrases.
        self._patterns = [
            (code, re.compile(pat), required_literals(pat))
            for code, cr in rules.codes.items()
            for pat in cr.patterns
        ]
        needs: dict[str, list[int]] = defaultdict(list)
        for i, (_, _, req) in enumerate(self._patterns):
            for word in req or ():
                needs[word].append(i)
        phrase_keys = {key for key, _ in items}
        self._literals: SubstringIndex | None = None
        self._literal_ids: list[tuple[int, ...]] = []
        if any(w in phrase_keys or w != w.strip() for w in needs):  # the unpadded text would differ
            self._literals = index_factory(list(needs))
            self._literal_ids = [tuple(needs[w]) for w in self._literals.keys]
        else:
            items += [(w, ((), tuple(i))) for w, i in needs.items()]
        # keys padded with spaces on a text padded with spaces: whole words only ('arme' never in 'gendarmerie')
        self._index = index_factory([key for key, _ in items])
        # a word broken at a line's end is joined when the joined word is one of the index's
        self._words = frozenset(w for key in self._index.keys for w in key.split())
        # two spaces in a row, the one thing most texts must be searched for before they are known
        # to need no squeeze: the compiled index finds it faster than `in` (memmem)
        self._spaced = index_factory(["  "]).find
        meanings = dict(items)
        self._meaning = [_fast(meanings[key]) for key in self._index.keys]
        # a thing's word: the kinds of place name it makes a thing's name, right before it and right after
        self._named: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        for _, special in meanings.values():
            if isinstance(special, str) and special.startswith("\2"):
                before, _, after = special[1:].partition("|")
                self._named[special] = (
                    frozenset(before.split(",")) - {""},
                    frozenset(after.split(",")) - {""},
                )
        self._role_factor = {
            special: float(special[1:])
            for _, special in meanings.values()
            if isinstance(special, str) and special.startswith("\3")
        }
        self._always = frozenset(i for i, (_, _, req) in enumerate(self._patterns) if req is None)
        self._pattern_says = [
            (_says((code, "pattern", w.pattern, _CRIME), self.home),) for code, _, _ in self._patterns
        ]
        self._phone_weight = self._kind_weight["phone"]

    @property
    def phrase_count(self) -> int:
        return self._phrase_count

    # -- scanning ---------------------------------------------------------------------------

    def _negated(self, norm: str, cue: str | None, cue_end: int, start: int) -> str | None:
        """The cue, when it ends at most `window` tokens before `start`."""
        if cue is None or cue_end > start or self._within_negation(norm, cue_end, start) is None:
            return None
        return cue

    def _passing(self, says: tuple[_Found, ...], target: str, miss: dict[str, float]) -> tuple[_Found, ...]:
        """A place named in passing: its weight times the factor, in the score and in the evidence."""
        weight = next(s[2] for s in says if s[0] == target) * self._place_factor
        miss[target] = miss.get(target, 1.0) * (1.0 - min(weight, 1.0))
        return tuple(s if s[0] != target else (*s[:2], weight, *s[3:]) for s in says)

    def _in_role(self, norm: str, cue_end: int, start: int) -> bool:
        return cue_end <= start and self._within_role(norm, cue_end, start) is not None

    def _in_passing(self, norm: str, cue_end: int, start: int) -> bool:
        return cue_end <= start and self._within_place(norm, cue_end, start) is not None

    def _joined(
        self,
        text: str,
        norm: str,
        start: int,
        demonym: bool,
        cue_end: int,
        chain_end: int,
        chain_demonym: bool,
    ) -> bool:
        """The place at `start` is named in passing: after a place cue ending at `cue_end` (when there is
        one), else joined to the last place in passing, ending at `chain_end`, and of its kind."""
        if cue_end >= 0:
            return self._in_passing(norm, cue_end, start)
        return demonym == chain_demonym and _CHAIN_GAP(text, chain_end, start) is not None

    def _thing_after(
        self,
        text: str,
        start: int,
        kinds: frozenset[str],
        key: int,
        places: list[int],
        found: list[tuple[int, int, int, tuple[_Found, ...], str | None]],
        miss: dict[str, float],
        seen: dict[int, int],
    ) -> None:
        """A thing's word right after the last place ('Italian suits', 'Budapest Convention'): that
        place was not one; what it added to the scores is taken back, and it counts as not said.
        The last record in `places` is that place's, ~record when it was said before (it added nothing)."""
        record = places[-1]
        said_first = record >= 0
        idx = record if said_first else ~record
        where, s, e, says, neg = found[idx]
        if _NAMED_AFTER_GAP(text, e, start) is None or not _a_thing(says, kinds):
            return
        if said_first:
            for f in says:
                keep = 1.0 - min(f[2], 1.0)
                if not f[5] and keep > 0.0 and f[0] in miss:
                    m = miss[f[0]] / keep
                    if m < 1.0 - 1e-9:
                        miss[f[0]] = m
                    else:
                        del miss[f[0]]
            places[-1] = ~idx
            seen.pop(key, None)
        found[idx] = (where, s, e, _nothing(says), neg)

    def _named_before(
        self,
        text: str,
        cue_start: int,
        places: list[int],
        found: list[tuple[int, int, int, tuple[_Found, ...], str | None]],
        miss: dict[str, float],
    ) -> None:
        """A cue right after a place ('Canada, which was not targeted'): that place, and the places
        joined to it before, were named in passing; what they added to the scores is weighed down."""
        gap_end = cue_start
        gap = _AFTER_GAP
        demonym = None
        for j in range(len(places) - 1, -1, -1):
            idx = places[j]
            counted = idx >= 0
            idx = idx if counted else ~idx
            where, start, end, says, neg = found[idx]
            is_demonym = says[0][1] == "demonym"
            if gap(text, end, gap_end) is None or demonym not in (None, is_demonym):
                return
            if counted:
                new = []
                for f in says:
                    if not f[3] and not f[5] and f[4] > 0.0:
                        weight = f[2] * self._place_factor
                        miss[f[0]] = miss[f[0]] / f[4] * (1.0 - min(weight, 1.0))
                        new.append((*f[:2], weight, *f[3:]))
                    else:
                        new.append(f)
                found[idx] = (where, start, end, tuple(new), neg)
                places[j] = ~idx
            gap_end, gap, demonym = start, _CHAIN_GAP, is_demonym

    def _scan(
        self,
        text: str,
        where: int,
        found: list[tuple[int, int, int, tuple[_Found, ...], str | None]],
        crime: dict[str, float],
        miss: dict[str, float],
        home: list[str],
        seen: dict[int, int],
    ) -> None:
        """Record what `text` says in `found`, and add it to the scores as it goes (in the order of
        the evidence, so the sums are the same to the last bit)."""
        norm, squeezed = read(text, self._words, self._spaced)
        factor = self.rules.weights.subject_factor if where == _SUBJECT else 1.0
        # with repeats off, a phrase said again adds nothing: a place anywhere in the message, a
        # crime phrase within the field (the subject and the body each count)
        counting_once = not self.rules.weights.repeats
        bit = 1 << where
        again_place: int | bool = 0
        again_crime = 0
        lead = self._lead_factor
        # (key number, start, end) by start, the longest first (two stable sorts in C); on the padded
        # text a key ' word ' found at [s, e) is the word at [s, e - 2) of the text
        if squeezed is None:
            hits = self._index.find(f" {norm} ")
        else:  # the index read the text squeezed ("New  Zealand"): its offsets back to the text's
            origin = squeezed.origin
            hits = [
                (i, origin(s), _past_accents(text, origin(e - 3) + 1) + 2)
                for i, s, e in self._index.find(f" {squeezed.text} ")
            ]
        hits.sort(key=_END, reverse=True)
        hits.sort(key=_START)
        meaning = self._meaning
        covered = 0
        cue: str | None = None  # the last negation cue seen, and where it ends
        cue_end = 0
        cues: list[tuple[str, int]] = []
        place_cue_end = -1  # where the last place cue ends
        # where the last place named in passing ends, and whether it was a demonym: the next place,
        # of the same kind and joined to it ('belges et italiens'), is in passing too
        chain_end = -1
        chain_demonym = False
        places: list[int] = []  # the places' records in found: i when it counted, ~i when not
        # a thing's word seen just before ('montres', 'convention de'): where it ends, for which kinds;
        # and the last place, for a thing's word right after it: its key
        named_end = -1
        named_kinds = _NO_KINDS
        last_key = -1  # the last place's key (its record is the last of places)
        before = 0
        wanted = self._always
        lead_end = 0
        # the last role cue ('arrested for', 'déjà connu pour'): where it ends, and its factor
        role_end = -1
        role_factor = 1.0
        if where == _BODY and self._lead_factor != 1.0:
            m = _LEAD_END.search(text)
            lead_end = m.start() if m else len(text)
        for i, start, end in hits:
            says, special, kind, target, value = meaning[i]
            if special is not None:
                if special.__class__ is str:
                    if special[0] == "\0":
                        place_cue_end = end - 2
                    elif special[0] == "\1":
                        if places:
                            self._named_before(text, start, places, found, miss)
                    elif special[0] == "\3":
                        if start >= role_end:  # not inside a longer cue ('déjà condamné pour')
                            role_factor, role_end = self._role_factor[special], end - 2
                    elif special[0] == "\2":
                        before_kinds, after_kinds = self._named[special]
                        if after_kinds and last_key >= 0 and places:
                            self._thing_after(text, start, after_kinds, last_key, places, found, miss, seen)
                            last_key = -1
                        if before_kinds:
                            named_end, named_kinds = end - 2, before_kinds
                        if says:  # a crime phrase too
                            special = None
                    else:
                        cue, cue_end = special, end - 2
                        cues.append((cue, cue_end))
                else:
                    wanted = wanted.union(special)
                if special is not None:
                    continue
            if start < covered:
                continue  # inside a longer phrase already taken ("guinea" in "papua new guinea")
            covered = end = end - 2
            neg = None
            if counting_once:
                before = seen.get(i, 0)  # the fields (bits) that said it already
                if before:
                    again_place = True
                    again_crime = before & bit
                    seen[i] = before | bit
                else:
                    again_place = again_crime = 0
                    seen[i] = bit
            if named_end >= 0 and kind != _ONE_CRIME and says and not says[0][3]:
                thing = _NAMED_BEFORE_GAP(text, named_end, start) is not None and _a_thing(says, named_kinds)
                named_end = -1
                if thing:
                    # 'montres suisses': not a place, and not said yet (a place said later counts)
                    if counting_once:
                        if before:
                            seen[i] = before
                        else:
                            del seen[i]
                    found.append((where, start, end, _nothing(says), None))
                    continue
            if kind == _ONE_PLACE:  # most keys say one thing: no inner loop
                if place_cue_end >= 0 or chain_end >= 0:
                    demonym = says[0][1] == "demonym"
                    passing = self._joined(
                        text, norm, start, demonym, place_cue_end, chain_end, chain_demonym
                    )
                    place_cue_end = chain_end = -1  # a cue, or a chain, speaks of the next place only
                    if passing:
                        chain_end, chain_demonym = end, demonym
                        if not again_place:
                            says = self._passing(says, target, miss)
                            again_place = True
                places.append(~len(found) if again_place else len(found))
                last_key = i
                if not again_place:
                    miss[target] = miss.get(target, 1.0) * value
            elif kind == _ONE_CRIME:
                if cue is not None:
                    neg = self._negated(norm, cue, cue_end, start)
                if neg is None and not again_crime:
                    boost = lead if start < lead_end else 1.0
                    if role_end >= 0:
                        if self._in_role(norm, role_end, start):
                            boost *= role_factor
                        else:
                            role_end = -1
                    crime[target] = crime.get(target, 0.0) + value * factor * boost
            else:
                passing = False
                if (place_cue_end >= 0 or chain_end >= 0) and any(not f[3] and not f[5] for f in says):
                    demonym = says[0][1] == "demonym"
                    passing = self._joined(
                        text, norm, start, demonym, place_cue_end, chain_end, chain_demonym
                    )
                    place_cue_end = chain_end = -1
                    if passing:
                        chain_end, chain_demonym = end, demonym
                counted = False
                for target, _, weight, is_crime, keep, is_home in says:
                    if is_crime:
                        if cue is not None:
                            neg = self._negated(norm, cue, cue_end, start)
                        if neg is None and not again_crime:
                            boost = lead if start < lead_end else 1.0
                            if role_end >= 0:
                                if self._in_role(norm, role_end, start):
                                    boost *= role_factor
                                else:
                                    role_end = -1
                            crime[target] = crime.get(target, 0.0) + weight * factor * boost
                    elif is_home:
                        if target not in home:
                            home.append(target)
                    elif again_place:
                        continue
                    elif passing:
                        says = self._passing(says, target, miss)
                    else:
                        miss[target] = miss.get(target, 1.0) * keep
                        counted = True
                if counted:
                    places.append(len(found))
                    last_key = i
            found.append((where, start, end, says, neg))
        if self._literals is not None:
            ids = self._literal_ids
            wanted = wanted.union(p for k, _, _ in self._literals.find(norm) for p in ids[k])
        if wanted:
            self._scan_patterns(text, norm, where, factor, wanted, cues, found, crime)
        for finder in self._finders:
            for country, start, end, _ in finder(text):
                says = ((country, "phone", self._phone_weight, False, 0.0, country in self.home),)
                self._add_country(says[0], self._phone_weight, miss, home)
                found.append((where, start, end, says, None))

    @staticmethod
    def _add_country(say: _Found, weight: float, miss: dict[str, float], home: list[str]) -> None:
        target = say[0]
        if say[5]:
            if target not in home:
                home.append(target)
        else:
            miss[target] = miss.get(target, 1.0) * (1.0 - min(weight, 1.0))

    def _scan_patterns(
        self,
        text: str,
        norm: str,
        where: int,
        factor: float,
        wanted: frozenset[int],
        cues: list[tuple[str, int]],
        found: list[tuple[int, int, int, tuple[_Found, ...], str | None]],
        crime: dict[str, float],
    ) -> None:
        for i, (code, pattern, _) in enumerate(self._patterns):
            if i not in wanted:
                continue
            says = self._pattern_says[i]
            weight = says[0][2]
            for m in pattern.finditer(norm):
                start = m.start()
                last = _last_before(cues, start)
                neg = self._negated(norm, last[0], last[1], start) if last else None
                if neg is None:
                    crime[code] = crime.get(code, 0.0) + weight * factor
                found.append((where, start, m.end(), says, neg))

    # -- decision ---------------------------------------------------------------------------

    def classify(
        self, subject: str, body: str, country_hints: Sequence[str] = (), crime_hints: Sequence[str] = ()
    ) -> Classification:
        w = self.rules.weights
        found: list[tuple[int, int, int, tuple[_Found, ...], str | None]] = []
        crime: dict[str, float] = {}
        miss: dict[str, float] = {}  # country: product of (1 - weight), noisy-or
        home: list[str] = []
        for code in crime_hints:
            says = (code, "hint", w.crime_threshold, code in CRIME_CODES, 0.0, code in self.home)
            self._add_hint(says, crime, miss, home)
            found.append((_HINT, 0, 0, (says,), None))
        for c in country_hints:
            weight = self._kind_weight["hint"]
            says = (c, "hint", weight, c in CRIME_CODES, 1.0 - min(weight, 1.0), c in self.home)
            self._add_hint(says, crime, miss, home)
            found.append((_HINT, 0, 0, (says,), None))
        seen: dict[int, int] = {}  # key number -> the fields that said it (bits)
        hinted = dict(crime) if crime else None
        self._scan(subject, _SUBJECT, found, crime, miss, home, seen)
        # what the subject said, for the types that take precedence only when it says them
        in_subject = {c: s - hinted.get(c, 0.0) for c, s in crime.items()} if hinted else dict(crime)
        self._scan(body, _BODY, found, crime, miss, home, seen)

        hint_set = set(crime_hints)
        crime_types = sorted(
            (c for c, s in crime.items() if s >= w.crime_threshold or c in hint_set),
            key=lambda c: (c not in hint_set, -crime[c], c),
        )
        if crime_types:
            floor = w.secondary_ratio * crime[crime_types[0]]
            crime_types = crime_types[:1] + [c for c in crime_types[1:] if crime[c] >= floor or c in hint_set]
            top = crime_types[0]
            if top not in hint_set:
                for first, then in w.precedence:
                    if (
                        then == top
                        and first in crime_types
                        and crime[first] >= w.precedence_ratio * crime[top]
                        and not (
                            first in w.precedence_needs_subject
                            and not 0.0 < in_subject.get(first, 0.0) >= in_subject.get(top, 0.0)
                        )
                    ):
                        crime_types.remove(first)
                        crime_types.insert(0, first)
                        break
        confidence = {c: round(1.0 - m, 4) for c, m in miss.items()}
        ordered = sorted(confidence, key=lambda c: (-confidence[c], c))
        countries = [c for c in ordered if confidence[c] >= w.country_threshold]
        return Classification(
            crime_types=crime_types,
            countries=countries,
            country_confidence={c: confidence[c] for c in ordered},
            crime_scores={c: round(s, 2) for c, s in crime.items()},
            home_mentions=home,
            found=found,
            texts=(subject, body),
        )

    @staticmethod
    def _add_hint(say: _Found, crime: dict[str, float], miss: dict[str, float], home: list[str]) -> None:
        target, _, weight, is_crime, keep, is_home = say
        if is_crime:
            crime[target] = crime.get(target, 0.0) + weight
        elif is_home:
            if target not in home:
                home.append(target)
        else:
            miss[target] = miss.get(target, 1.0) * keep


def _a_thing(says: tuple[_Found, ...], kinds: frozenset[str]) -> bool:
    """The hit names places only, one of them of one of `kinds`."""
    return not any(f[3] for f in says) and any(f[1] in kinds for f in says)


def _nothing(says: tuple[_Found, ...]) -> tuple[_Found, ...]:
    """The places of a hit that names none: weight 0, kept as evidence."""
    return tuple((f[0], f[1], 0.0, False, 1.0, f[5]) for f in says)


def _dedupe(payloads: list[_Payload]) -> list[_Payload]:
    """One payload per target for a phrase: the heaviest."""
    best: dict[str, _Payload] = {}
    for p in payloads:
        if p[0] not in best or p[2] > best[p[0]][2]:
            best[p[0]] = p
    return list(best.values())


def required_literals(pattern: str, min_length: int = 3) -> tuple[str, ...] | None:
    """Words of which a match of `pattern` always contains one, or None when there are none useful.

    The most selective of the pattern's mandatory top-level pieces: a run of literal characters,
    or an alternation whose every branch starts with literal characters (`(?:cocaine|heroin)`).
    Case-sensitive patterns only (the classifier's run on folded text)."""
    parsed = re._parser.parse(pattern)  # type: ignore[attr-defined]
    if parsed.state.flags & re.IGNORECASE:
        return None
    constants = re._constants  # type: ignore[attr-defined]
    items = list(parsed.data)
    while len(items) == 1 and items[0][0] is constants.SUBPATTERN:
        _, add_flags, del_flags, inner = items[0][1]
        if add_flags or del_flags:  # (?i:...) and the like
            return None
        items = list(inner.data)
    candidates: list[tuple[str, ...]] = []
    run: list[str] = []
    for op, av in [*items, (None, None)]:
        if op is constants.LITERAL:
            run.append(chr(av))
            continue
        if run:
            candidates.append(("".join(run),))
            run = []
        if op is constants.BRANCH:
            prefixes = []
            for branch in av[1]:
                prefix = []
                for bop, bav in branch.data if hasattr(branch, "data") else branch:
                    if bop is not constants.LITERAL:
                        break
                    prefix.append(chr(bav))
                prefixes.append("".join(prefix))
            if all(prefixes):
                candidates.append(tuple(sorted(set(prefixes))))
    if not candidates:
        return None
    best = max(candidates, key=lambda words: min(len(w) for w in words))
    return best if min(len(w) for w in best) >= min_length else None


_ONE_CRIME, _ONE_PLACE, _OTHER = 0, 1, 2


def _fast(meaning: _Key) -> tuple[tuple[_Found, ...], Any, int, str, float]:
    """A key's meaning, plus for a key that says one thing only (most): its kind, target and the
    number the scan adds (a crime's weight, a foreign place's 1 - weight)."""
    says, special = meaning
    if special is None and len(says) == 1:
        target, _, weight, is_crime, keep, is_home = says[0]
        if is_crime:
            return says, special, _ONE_CRIME, target, weight
        if not is_home:
            return says, special, _ONE_PLACE, target, keep
    return says, special, _OTHER, "", 0.0


def _within(tokens: int) -> Callable[[str, int, int], re.Match[str] | None]:
    """A matcher of `text[a:b]` holding at most `tokens` whitespace-separated tokens."""
    return re.compile(rf"\s*+(?:\S++\s*+){{0,{tokens}}}\Z").match


def _last_before(cues: list[tuple[str, int]], start: int) -> tuple[str, int] | None:
    """The last negation cue that ends before `start` (cues are in text order)."""
    found = None
    for cue in cues:
        if cue[1] > start:
            break
        found = cue
    return found
