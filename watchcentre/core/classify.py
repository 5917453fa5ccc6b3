"""Classification: which crime types and which foreign countries a message concerns, and why.

Everything the classifier knows comes in as data (config/taxonomy.yaml through `CrimeRules`, and a
country lexicon built by the gazetteer adapter); this module compiles it once into a first-token
index and scans each text in one pass. Every label carries the evidence that produced it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field

from watchcentre.core.taxonomy import CRIME_CODES
from watchcentre.core.text import expand, normalise, phrase_key

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


class CrimeRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    weights: Weights = Field(default_factory=Weights)
    negation: Negation = Field(default_factory=Negation)
    codes: dict[str, CodeRules]

    def problems(self) -> list[str]:
        out = [f"codes: unknown taxonomy code '{c}'" for c in self.codes if c not in CRIME_CODES]
        out += [f"codes: no rules for taxonomy code '{c}'" for c in sorted(CRIME_CODES - set(self.codes))]
        for code, rules in self.codes.items():
            for i, pat in enumerate(rules.patterns):
                try:
                    re.compile(pat)
                except re.error as exc:
                    out.append(f"codes.{code}.patterns[{i}]: invalid regex ({exc})")
            if not any(rules.strong.values()) and not any(rules.phrases.values()) and not rules.patterns:
                out.append(f"codes.{code}: no phrases or patterns")
        return out


@dataclass(frozen=True, slots=True)
class CountryTerm:
    """A way a country shows up in text: its name, a demonym, a capital or city, an alias."""

    phrase: str
    country: str
    kind: CountryKind
    weight: float | None = None  # None: the weight of its kind


# --------------------------------------------------------------------------- results


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


@dataclass(frozen=True, slots=True)
class Classification:
    crime_types: list[str]  # primary first
    countries: list[str]  # foreign countries above the confidence threshold, strongest first
    country_confidence: dict[str, float]  # every country seen, routed or not
    crime_scores: dict[str, float]
    home_mentions: list[str]  # home codes seen (France): noted, never routed
    evidence: list[Evidence] = field(default_factory=list)

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


# --------------------------------------------------------------------------- phrase index


class PhraseIndex(Protocol):
    """Finds rule phrases in normalised text (see text.normalise): whole-word hits, overlaps allowed."""

    def find(self, text: str) -> Iterable[tuple[int, int, int]]:
        """Yield (start, end, key number) for each phrase found."""
        ...


IndexFactory = Callable[[Sequence[str]], PhraseIndex]


class RegexPhraseIndex:
    """The standard-library index: every phrase in one regular expression shaped as a trie, so the
    engine follows only the branches that match. An adapter may supply a faster one (Aho-Corasick)."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._ids = {k: i for i, k in enumerate(keys)}
        trie: dict[str, Any] = {}
        for key in keys:
            node = trie
            for ch in key:
                node = node.setdefault(ch, {})
            node[""] = {}
        self._re = re.compile(r"(?<![^\W_])(?:" + _trie_pattern(trie) + r")(?![^\W_])")

    def find(self, text: str) -> Iterator[tuple[int, int, int]]:
        ids = self._ids
        for m in self._re.finditer(text):
            key = " ".join(m.group().split())
            if key in ids:
                yield m.start(), m.end(), ids[key]


def _trie_pattern(node: dict[str, Any]) -> str:
    alts = [
        (" +" if ch == " " else re.escape(ch)) + _trie_pattern(sub) for ch, sub in sorted(node.items()) if ch
    ]
    if not alts:
        return ""
    body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
    return f"(?:{body})?" if "" in node else body


# --------------------------------------------------------------------------- the classifier

_CRIME, _COUNTRY, _NEGATION = 0, 1, 2
_Payload = tuple[str, str, float, int]  # (target, rule, weight, what: _CRIME, _COUNTRY or _NEGATION)


class Classifier:
    """Compiled once at start; `classify` is pure and safe to call from many tasks."""

    def __init__(
        self,
        rules: CrimeRules,
        country_terms: Iterable[CountryTerm],
        home: Iterable[str],
        extra_finders: Sequence[CountryFinder] = (),
        index_factory: IndexFactory = RegexPhraseIndex,
    ) -> None:
        problems = rules.problems()
        if problems:
            raise ValueError("; ".join(problems))
        self.rules = rules
        self.home = frozenset(home)
        self._finders = tuple(extra_finders)
        w = rules.weights
        self._kind_weight = dict(w.country)
        by_key: dict[str, list[_Payload]] = defaultdict(list)
        for code, cr in rules.codes.items():
            for rule, table, weight in (("strong", cr.strong, w.strong), ("phrase", cr.phrases, w.phrase)):
                for phrases in table.values():
                    for p in phrases:
                        for variant in expand(p):
                            if key := phrase_key(variant):
                                by_key[key].append((code, rule, weight, _CRIME))
        for t in country_terms:
            if key := phrase_key(t.phrase):
                weight = t.weight if t.weight is not None else self._kind_weight.get(t.kind, 0.5)
                by_key[key].append((t.country, t.kind, weight, _COUNTRY))
        self._window = rules.negation.window
        for cues in rules.negation.cues.values():
            for cue in cues:
                for v in expand(cue):
                    if key := phrase_key(v):
                        by_key[key].append((key, "negation", 0.0, _NEGATION))
        self._keys = list(by_key)
        self._payloads = [_dedupe(by_key[k]) for k in self._keys]
        self._index = index_factory(self._keys)
        # Each pattern alone, with the words it cannot match without: a regex search costs
        # ~30 µs per KB (the engine tries every position), a substring test well under 1 µs.
        self._patterns = [
            (code, re.compile(pat), required_literals(pat))
            for code, cr in rules.codes.items()
            for pat in cr.patterns
        ]

    @property
    def phrase_count(self) -> int:
        return len(self._keys)

    # -- scanning ---------------------------------------------------------------------------

    def _negated(self, norm: str, cue: tuple[str, int] | None, start: int) -> str | None:
        """The cue, when it ends at most `window` tokens before `start`."""
        if cue is None or cue[1] > start or len(norm[cue[1] : start].split()) > self._window:
            return None
        return cue[0]

    def _scan(self, text: str, where: Field_, out: list[Evidence]) -> None:
        norm = normalise(text)
        hits = [(s, -e, k) for s, e, k in self._index.find(norm)]
        hits.sort()  # by start, the longest first
        covered = 0
        cue: tuple[str, int] | None = None  # the last negation cue seen, and where it ends
        payloads = self._payloads
        pattern_cues: list[tuple[str, int]] = []
        for start, neg_end, kid in hits:
            end = -neg_end
            found = payloads[kid]
            if found[0][3] == _NEGATION:
                cue = (found[0][0], end)
                pattern_cues.append(cue)
                if len(found) == 1:
                    continue
            if start < covered:
                continue  # inside a longer phrase already taken ("guinea" in "papua new guinea")
            covered = end
            matched = text[start:end]
            for target, rule, weight, what in found:
                if what == _COUNTRY:
                    out.append(Evidence(target, rule, matched, where, start, end, weight))
                elif what == _CRIME:
                    neg = self._negated(norm, cue, start)
                    out.append(Evidence(target, rule, matched, where, start, end, weight, neg))
        for code, pattern, required in self._patterns:
            if required is not None and not any(word in norm for word in required):
                continue
            for m in pattern.finditer(norm):
                out.append(
                    Evidence(
                        code,
                        "pattern",
                        text[m.start() : m.end()],
                        where,
                        m.start(),
                        m.end(),
                        self.rules.weights.pattern,
                        self._negated(norm, _last_before(pattern_cues, m.start()), m.start()),
                    )
                )
        for finder in self._finders:
            for country, start, end, matched in finder(text):
                out.append(Evidence(country, "phone", matched, where, start, end, self._kind_weight["phone"]))

    # -- decision ---------------------------------------------------------------------------

    def classify(
        self, subject: str, body: str, country_hints: Sequence[str] = (), crime_hints: Sequence[str] = ()
    ) -> Classification:
        w = self.rules.weights
        evidence: list[Evidence] = []
        for code in crime_hints:
            evidence.append(Evidence(code, "hint", code, "hint", 0, 0, w.crime_threshold))
        for c in country_hints:
            evidence.append(Evidence(c, "hint", c, "hint", 0, 0, self._kind_weight["hint"]))
        self._scan(subject, "subject", evidence)
        self._scan(body, "body", evidence)

        crime: dict[str, float] = {}
        miss: dict[str, float] = {}  # country: product of (1 - weight), noisy-or
        home: list[str] = []
        for e in evidence:
            if e.negated_by:
                continue
            if e.target in CRIME_CODES:
                factor = w.subject_factor if e.field == "subject" else 1.0
                crime[e.target] = crime.get(e.target, 0.0) + e.weight * factor
            elif e.target in self.home:
                if e.target not in home:
                    home.append(e.target)
            else:
                miss[e.target] = miss.get(e.target, 1.0) * (1.0 - min(e.weight, 1.0))
        hint_set = set(crime_hints)
        crime_types = sorted(
            (c for c, s in crime.items() if s >= w.crime_threshold or c in hint_set),
            key=lambda c: (c not in hint_set, -crime[c], c),
        )
        if crime_types:
            floor = w.secondary_ratio * crime[crime_types[0]]
            crime_types = crime_types[:1] + [c for c in crime_types[1:] if crime[c] >= floor or c in hint_set]
        confidence = {c: round(1.0 - m, 4) for c, m in miss.items()}
        ordered = sorted(confidence, key=lambda c: (-confidence[c], c))
        countries = [c for c in ordered if confidence[c] >= w.country_threshold]
        return Classification(
            crime_types=crime_types,
            countries=countries,
            country_confidence={c: confidence[c] for c in ordered},
            crime_scores={c: round(s, 2) for c, s in crime.items()},
            home_mentions=home,
            evidence=evidence,
        )


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


def _last_before(cues: list[tuple[str, int]], start: int) -> tuple[str, int] | None:
    """The last negation cue that ends before `start` (cues are in text order)."""
    found = None
    for cue in cues:
        if cue[1] > start:
            break
        found = cue
    return found
