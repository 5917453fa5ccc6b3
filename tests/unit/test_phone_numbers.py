"""International phone numbers → country: the fast path agrees with a full phonenumbers parse."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from watchcentre.adapters.gazetteer import PhoneFinder, _parsed_region, _quick_region


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


def test_the_fast_path_never_disagrees_with_a_full_parse() -> None:
    rng = random.Random(2026)
    codes = [str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE]
    taken = 0
    for _ in range(5000):
        digits = rng.choice(codes) + "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 14)))
        quick = _quick_region(digits)
        if quick is not None:
            taken += 1
            assert quick == _parsed_region(digits), digits
    assert taken > 500  # the fast path is really taken
