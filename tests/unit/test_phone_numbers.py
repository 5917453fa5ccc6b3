"""International phone numbers → country, and identifiers' phones → E.164: the fast paths agree with a
full phonenumbers parse."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from watchcentre.adapters.gazetteer import _PHONE_HINT, PhoneFinder, _parsed_region, _phone_hints, region_of
from watchcentre.adapters.identifier_checks import LibraryChecks, _parsed_e164
from watchcentre.core.identifiers import _PHONE


@pytest.mark.parametrize(
    ("text", "countries"),
    [
        ("joignable au +212 6 12 34 56 78 depuis Tanger", ["MA"]),  # shared code (+212: MA, EH)
        ("Tel. +49 151 23456789 or 0044 20 7946 0958", ["DE", "GB"]),
        ("numéro thaïlandais +66 81 234 5678", ["TH"]),
        ("+44 (0)20 7946 0958, the national prefix written after the code", ["GB"]),
        ("call +1 305 555 0142 in Miami", ["US"]),
        ("+33 6 12 34 56 78 is home", ["FR"]),  # found here; the classifier drops home itself
        ("+66 12, too short to be a number", []),
        ("reference 2024/00123 is not a phone number", []),
    ],
)
def test_phone_numbers_name_their_country(text: str, countries: list[str]) -> None:
    assert [region for region, *_ in PhoneFinder()(text)] == countries


def test_the_fast_paths_never_disagree_with_a_full_parse() -> None:
    """Random digits after every calling code, and real numbers of every region of the shared codes
    (+1, +44, +7, +212 …) with their last digits changed: `region_of` answers as a full parse does."""
    rng = random.Random(2026)
    codes = [str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE]
    samples = [
        rng.choice(codes) + "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 14)))
        for _ in range(6000)
    ]
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        if len(regions) < 2:
            continue
        for region in regions:
            for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
                example = phonenumbers.example_number_for_type(region, kind)
                if example is None:
                    continue
                national = phonenumbers.national_significant_number(example)
                for _ in range(20):
                    cut = rng.randint(max(1, len(national) - 6), len(national))
                    tail = "".join(
                        rng.choice("0123456789")
                        for _ in range(len(national) - cut + rng.choice((-1, 0, 0, 1)))
                    )
                    samples.append(f"{code}{national[:cut]}{tail}")
    regions_found = set()
    for digits in samples:
        expected = _parsed_region(digits)
        assert region_of(digits) == expected, digits
        regions_found.add(expected)
    assert len(regions_found) > 150  # the samples really reach most regions


def test_the_two_searches_find_what_the_one_pattern_finds() -> None:
    rng = random.Random(7)
    for _ in range(50_000):
        text = "".join(rng.choice("0000123456789  +-./()a_é\n") for _ in range(rng.randint(1, 60)))
        assert [m.span() for m in _phone_hints(text)] == [m.span() for m in _PHONE_HINT.finditer(text)], text


def test_identifier_phones_read_as_a_full_parse_reads_them() -> None:
    """Extraction's E.164 reading without the generic parse agrees with `phonenumbers.parse(…, "FR")`
    + `is_valid_number` on candidates as the extractor finds them: international with '+' or '00',
    national (read as French), the national prefix written after the code, '33…' without a '+',
    '000…', non-geographic codes, codes no region has; random digits and real numbers of every region
    with their last digits changed, in random separators."""
    rng = random.Random(5)
    codes = [str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE] + ["28", "42", "0"]

    def written(digits: str) -> str:
        seps = ["", " ", ".", "-", "/", " (", ") "]
        out = "".join(c + (rng.choice(seps) if rng.random() < 0.3 else "") for c in digits)
        return out.rstrip(" (/.-")

    samples = []
    for _ in range(8000):
        tail = "".join(rng.choice("0123456789") for _ in range(rng.randint(6, 15)))
        samples.append(
            rng.choice(
                [
                    "+" + written(rng.choice(codes) + tail),
                    "00" + written(rng.choice(codes) + tail),
                    "+" + written(rng.choice(codes) + "0" + tail),
                    written("0" + rng.choice("123456789") + tail[:8]),
                    written("33" + tail),
                    written("000" + tail),
                    written(tail),
                ]
            )
        )
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            national = phonenumbers.national_significant_number(example)
            for _ in range(3):
                cut = rng.randint(max(1, len(national) - 4), len(national))
                tail = "".join(
                    rng.choice("0123456789") for _ in range(len(national) - cut + rng.choice((-1, 0, 0, 1)))
                )
                samples.append("+" + written(f"{example.country_code}{national[:cut]}{tail}"))
                samples.append(written(f"0{national[:cut]}{tail}"))
    checks, valid = LibraryChecks(), 0
    for candidate in samples:
        if _PHONE.fullmatch(candidate) is None:
            continue
        expected = _parsed_e164(candidate)
        assert checks.phones(candidate) == expected, candidate
        valid += expected is not None
    assert valid > 2000  # the samples really reach valid numbers
