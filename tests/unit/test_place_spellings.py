"""Places written the ways people write them: dotted abbreviations and initials ("St. Kitts",
"R.D. Congo", "U.A.E."), the abbreviation or the long form ("Ste-Lucie", "St Helena"), and
punctuation, symbols and spaces other than the usual ones touching a name ("Côte d´Ivoire",
"•Spain", an en space); compound demonyms ("Dutchwoman", "Scotsmen"); runs of spaces and line breaks
inside a name, a word broken by a hyphen at a line's end, invisible characters (soft hyphen, zero-width,
byte-order mark, combining accents); letters that do not decompose (ł, ı, ø); the forms of
names in press releases and requests (U.S., E.A.U., Türkiye, Macédoine du Nord, au Caire). Each
table row is one way of writing; the shipped config is read."""

from __future__ import annotations

import time

import pytest

from tests.unit.test_corpus import classifier
from watchcentre.core.text import normalise, read, spellings, squeeze

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

# a run of spaces, a tab, a line break (CRLF too), a quoted reply's "> " inside a name
WHITESPACE = [
    ("The vessel was bound for New  Zealand.", "NZ"),
    ("Le navire partait pour la Nouvelle  Zélande.", "NZ"),
    ("The vessel was bound for New\tZealand.", "NZ"),
    ("Le navire venait de Nouvelle\u00a0 Zélande.", "NZ"),
    ("The suspect lives in the United\r\nKingdom.", "GB"),
    ("Le suspect vit au Royaume\r\nUni.", "GB"),
    ("The suspect lives in the United \n  Kingdom.", "GB"),
    ("Le suspect vit aux Pays\n Bas.", "NL"),
    ("> The suspect lives in the United\n> Kingdom.", "GB"),
    ("> Le suspect vit en Arabie\r\n> > saoudite.", "SA"),
    ("Routes:  St.  Kitts", "KN"),  # two spaces after a full stop
]
# a word broken by a hyphen at a line's end: one word when the vocabulary knows the joined word,
# else a compound whose hyphen stays one
LINE_END_HYPHEN = [
    ("The suspect lives in the Nether-\nlands.", "NL"),
    ("The cargo was unloaded in Singa-\r\npore.", "SG"),
    ("Le suspect a fui en Guinée-\nBissau.", "GW"),
    ("Le suspect vit au Royaume-\r\nUni.", "GB"),
    ("Le navire venait de Papouasie-Nouvelle-\nGuinée.", "PG"),
    ("Le suspect a été localisé en Slo-\nvénie.", "SI"),
]
# characters that are not there for the reader, inside or around a word
INVISIBLE = [
    ("The suspect lives in Mol\u00addova.", "MD"),  # soft hyphen
    ("Le suspect vit en Mol\u00ad\ndavie.", "MD"),  # soft hyphen at a line's end
    ("The suspect lives in Mol\u200bdova.", "MD"),  # zero-width space
    ("Le suspect vit en Mol\u200cdavie.", "MD"),  # zero-width non-joiner
    ("The suspect lives in Mol\u200ddova.", "MD"),  # zero-width joiner
    ("Le suspect vit en Mol\u2060davie.", "MD"),  # word joiner
    ("\ufeffMoldova asked for his extradition.", "MD"),  # byte-order mark
    ("The suspect lives in New \u200bZealand.", "NZ"),
    ("Le suspect vit en Co\u0302te d'Ivoire.", "CI"),  # decomposed (NFD) accents
    ("He was arrested in Bogota\u0301.", "CO"),
]
# letters that Unicode does not decompose, written with them or without
LETTERS = [
    ("He was arrested in Lodz.", "PL"),
    ("Il a été arrêté à Łódź.", "PL"),
    ("He was arrested in Bialystok.", "PL"),
    ("He was arrested in Diyarbakir.", "TR"),
    ("IL A ÉTÉ ARRÊTÉ À DİYARBAKIR.", "TR"),
    ("He was arrested in Sanliurfa.", "TR"),
    ("Il a été arrêté à København.", "DK"),
    ("He was arrested in Kobenhavn.", "DK"),
]
# Romanian: s and t with a comma below (ș ț) or with the cedilla they were long typed with (ş ţ)
ROMANIAN = [
    ("He was arrested in Constanța.", "RO"),
    ("Il a été arrêté à Constanţa.", "RO"),
    ("He was arrested in Timișoara.", "RO"),
    ("Il a été arrêté à Timişoara.", "RO"),
    ("He was arrested in Chișinău.", "MD"),
    ("Il a été arrêté à Chişinău.", "MD"),
    ("He was arrested in Chisinau.", "MD"),
    ("Il a été arrêté à București.", "RO"),
    ("He was arrested in Bucureşti.", "RO"),
]
# the forms of names in press releases and requests: headlines in capitals, abbreviations, the
# names countries took lately and the older ones, names in their own language
FORMS = [
    ("PROTESTERS ARRESTED IN THE UNITED KINGDOM", "GB"),
    ("SAISIE RECORD AUX ÉTATS-UNIS", "US"),
    ("LES FONDS SONT PARTIS AUX ETATS-UNIS", "US"),
    ("The suspect flew to the U.S. last week.", "US"),
    ("The suspect flew to the US last week.", "US"),
    ("He was arrested in the U.K. in May.", "GB"),
    ("Le suspect a fui en R.D.C. en mars.", "CD"),
    ("Le suspect a fui aux E.A.U. en mars.", "AE"),
    ("Le suspect a fui aux EAU en mars.", "AE"),
    ("Les fonds sont partis aux Emirats.", "AE"),
    ("Il a été arrêté à Abou Dhabi.", "AE"),
    ("The suspect fled to Viet Nam.", "VN"),
    ("Le suspect a fui au Viêt Nam.", "VN"),
    ("The container came from Türkiye.", "TR"),
    ("Le conteneur venait de Turkiye.", "TR"),
    ("The car was registered in Czechia.", "CZ"),
    ("La voiture était immatriculée en Tchéquie.", "CZ"),
    ("The victims were trafficked from Eswatini.", "SZ"),
    ("Les victimes venaient du Swaziland.", "SZ"),
    ("The weapons came from North Macedonia.", "MK"),
    ("Les armes venaient de Macédoine du Nord.", "MK"),
    ("The boat sailed from Cabo Verde.", "CV"),
    ("Le bateau venait du Cap-Vert.", "CV"),
    ("The methamphetamine came from Myanmar.", "MM"),
    ("La méthamphétamine venait de Birmanie.", "MM"),
    ("He was arrested in Rangoon.", "MM"),
    ("He was arrested in Kyiv.", "UA"),
    ("Il a été arrêté à Kiev.", "UA"),
    ("The funds went to Byelorussia.", "BY"),
    ("Les fonds sont partis au Sud-Soudan.", "SS"),
    ("Les fonds sont partis au Salvador.", "SV"),
    ("Les fonds sont partis aux îles Caïman.", "KY"),
    ("The weapons came from BiH.", "BA"),
    ("He was arrested in Wien.", "AT"),
    ("Il a été arrêté à Milano.", "IT"),
    ("He was arrested in München.", "DE"),
    ("He was arrested in Warszawa.", "PL"),
    ("He was arrested in Praha.", "CZ"),
    ("He was arrested in Lisboa.", "PT"),
    ("He was arrested in Beograd.", "RS"),
]
# French le, les contracted with à and de ("Le Caire": "au Caire", "du Caire")
CONTRACTED = [
    ("Il a été arrêté au Caire.", "EG"),
    ("Il vient du Caire.", "EG"),
    ("Le navire a été saisi au Pirée.", "GR"),
    ("Il a été arrêté au Cap.", "ZA"),
]


@pytest.mark.parametrize(
    ("text", "country"),
    DOTTED
    + LONG_OR_SHORT
    + COMPOUND_DEMONYMS
    + PUNCTUATION
    + WHITESPACE
    + LINE_END_HYPHEN
    + INVISIBLE
    + LETTERS
    + ROMANIAN
    + FORMS
    + CONTRACTED,
)
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
        ("Blanchiment — Dubaï", "blanchiment   dubai"),  # beyond Latin-1, folded in place
        ("L’Algérie, Constanța", "l algerie  constanta"),
        ("Łódź, Diyarbakır, Tromsø", "lodz  diyarbakir  tromso"),
        ("İZMİR", "izmir"),
        ("Mol\u00addova", "mol\u00addova"),  # a soft hyphen is read by `squeeze`
    ],
)
def test_normalise_keeps_one_character_for_one(text: str, expected: str) -> None:
    assert normalise(text) == expected
    assert len(normalise(text)) == len(text)


@pytest.mark.parametrize(
    ("text", "countries"),
    [
        # a longer name at the next word is not hidden by one that starts with an article
        ("Le Cap-Vert a signalé le navire.", ["CV"]),
        ("Le bateau a été saisi au Cap-Vert.", ["CV"]),
        # a short form of a name shared by a home territory and a foreign one is home's
        ("Arrested in St. Martin, then held in Saint-Martin.", []),
        ("Interpellé à St-Martin puis à Saint-Martin.", []),
        # "mettre le cap sur": heading for
        ("Les trafiquants ont mis le cap sur l'Espagne.", ["ES"]),
        # a blank line parts two phrases
        ("The suspect is from Sri\n\nLanka.", []),
        # "US" alone is the pronoun or an agency's adjective
        ("Help us find him. The US Secret Service took part.", []),
    ],
)
def test_what_a_way_of_writing_must_not_find(text: str, countries: list[str]) -> None:
    assert classifier().classify("Police report", text).countries == countries


def test_the_evidence_quotes_the_text_as_written() -> None:
    body = (
        "Cocaine from the Nether-\r\nlands and New \t Zealand, via Mol\u00addova.\r\n\r\nHeld  in  Oslo,"
        " paid in Bogota\u0301."
    )
    res = classifier().classify("Police report", body)
    quoted = {e.target: e.text for e in res.evidence if e.field == "body"}
    assert quoted["NL"] == "the Nether-\r\nlands"
    assert quoted["NZ"] == "New \t Zealand"
    assert quoted["MD"] == "Mol\u00addova"
    assert quoted["NO"] == "Oslo"
    assert quoted["CO"] == "Bogota\u0301"  # with its accent, in decomposed form
    for e in res.evidence:
        if e.field == "body":
            assert body[e.start : e.end] == e.text


@pytest.mark.parametrize(
    ("text", "squeezed"),
    [
        ("New  Zealand", "new zealand"),
        ("United\r\nKingdom", "united kingdom"),
        ("Royaume-\nUni", "royaume uni"),
        ("Nether-\nlands", "netherlands"),
        ("Mol\u00addova", "moldova"),
        ("Mol\u00ad\r\ndova", "moldova"),
        ("\ufeffSpain\u200b", "spain"),
        ("a \u200b b", "a b"),
        ("United\n> > Kingdom", "united kingdom"),
        ("Bogota\u0301", "bogota"),
        ("one\n\ntwo", None),  # a blank line stays: phrases do not run across it
        ("one\ntwo, three", None),  # nothing to do
    ],
)
def test_squeeze(text: str, squeezed: str | None) -> None:
    norm, got = read(text, {"netherlands"})
    if squeezed is None:
        assert got is None
        return
    assert got is not None and got.text == squeezed
    # every character kept is the one at its origin in the text, folded
    for i, ch in enumerate(got.text):
        if ch != " ":
            assert norm[got.origin(i)] == ch
    assert squeeze(text, norm, set()) is not None


def test_squeeze_joins_only_known_words() -> None:
    text = "Nether-\nlands"
    norm = normalise(text)
    joined = squeeze(text, norm, {"netherlands"})
    apart = squeeze(text, norm, set())
    assert joined is not None and joined.text == "netherlands"
    assert apart is not None and apart.text == "nether lands"


@pytest.mark.parametrize(
    "run",
    ["\r\n", "  -", " \n> ", "\u200b\u00ad "],
    ids=["blank lines", "spaced dashes", "quoted lines", "invisible characters"],
)
def test_a_body_made_of_one_long_run_is_read_in_linear_time(run: str) -> None:
    # a run kept as it is was read again from each of its seeds: a minute for this 24 KB body, hours
    # for one of MAX_BODY_BYTES, which a sender could post to stall intake; read once, milliseconds
    body = "Colombie" + run * (24_000 // len(run)) + "Maroc"
    started = time.process_time()
    found = classifier().classify("Signalement", body)
    assert time.process_time() - started < 5
    assert set(found.countries) <= {"CO", "MA"}
