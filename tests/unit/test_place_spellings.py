"""Places written the ways people write them: dotted abbreviations and initials ("St. Kitts",
"R.D. Congo", "U.A.E."), the abbreviation or the long form ("Ste-Lucie", "St Helena"), and
punctuation, symbols and spaces other than the usual ones touching a name ("Côte d´Ivoire",
"•Spain", an en space); compound demonyms ("Dutchwoman", "Scotsmen"). Each table row is one way of writing; the shipped config is read."""

from __future__ import annotations

import pytest

from tests.unit.test_corpus import classifier
from watchcentre.core.text import normalise, spellings

DOTTED = [
    ("Arrested in St. Petersburg yesterday.", "RU"),
    ("Il a été interpellé à St.-Pétersbourg.", "RU"),
    ("The account was opened in St. Kitts and Nevis.", "KN"),
    ("He fled to St. Lucia by boat.", "LC"),
    ("Funds moved through St. Vincent and the Grenadines.", "VC"),
    ("The shipment left St. Gallen on Monday.", "CH"),
    ("The climbers were robbed near Mt. Kenya.", "KE"),
    ("Authorities in the U.A.E. froze the accounts.", "AE"),
    ("The D.R.C. police seized the minerals.", "CD"),
    ("Des armes ont été saisies en R.D. Congo.", "CD"),
    ("Un réseau opérant en Rép. dém. du Congo a été démantelé.", "CD"),
    ("The K.S.A. authorities extradited him.", "SA"),
]
LONG_OR_SHORT = [
    ("The suspect was traced to St Kitts.", "KN"),
    ("Le suspect a été localisé à Ste-Lucie.", "LC"),
    ("The yacht was seized off St Helena.", "SH"),
    ("Le casino de St-Marin est visé par l'enquête.", "SM"),
]
COMPOUND_DEMONYMS = [
    ("A Dutchwoman was arrested at the airport.", "NL"),
    ("Two Scotsmen and a Welshwoman were charged.", "GB"),
    ("Two Brits were detained in the raid.", "GB"),
    ("The Irishwomen were released on bail.", "IE"),
]
PUNCTUATION = [
    ("Un trafic depuis la Côte d´Ivoire a été démantelé.", "CI"),  # acute accent as apostrophe
    ("Routes:\n•Spain\n•Italy", "ES"),
    ("Le réseau opérait depuis le ‹Maroc›.", "MA"),
    ("The vessel was bound for New\u2002Zealand.", "NZ"),  # an en space
    ("Le navire venait de Guinée\u2212Bissau.", "GW"),  # a minus sign as hyphen
]


@pytest.mark.parametrize(("text", "country"), DOTTED + LONG_OR_SHORT + COMPOUND_DEMONYMS + PUNCTUATION)
def test_the_place_is_found_however_it_is_written(text: str, country: str) -> None:
    assert country in classifier().classify("Police report", text).countries


@pytest.mark.parametrize(
    ("key", "acronym", "expected"),
    [
        ("saint kitts", False, {"st kitts", "st  kitts"}),
        ("st john s", False, {"saint john s", "st  john s"}),
        ("sainte lucie", False, {"ste lucie", "ste  lucie"}),
        ("mount kenya", False, {"mt kenya", "mt  kenya"}),
        ("r d congo", False, {"r  d congo", "r d  congo", "r  d  congo"}),
        ("uae", True, {"u a e"}),
        ("uae", False, set()),
        ("spain", False, set()),
        ("new zealand", False, set()),
        ("l ile maurice", False, set()),  # an elided article is never dotted
    ],
)
def test_spellings(key: str, acronym: bool, expected: set[str]) -> None:
    assert spellings(key, acronym) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("St. Kitts", "st  kitts"),
        ("Côte d´Ivoire", "cote d ivoire"),
        ("Côte d’Ivoire", "cote d ivoire"),
        ("•Spain×2", " spain 2"),
        ("New\u2002Zealand\u3000", "new zealand "),
        ("ª º µ ½", "ª º µ ½"),  # letters and numbers are not separators
    ],
)
def test_normalise_keeps_one_character_for_one(text: str, expected: str) -> None:
    assert normalise(text) == expected
    assert len(normalise(text)) == len(text)
