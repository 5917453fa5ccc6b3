"""Identifier extraction: what an analyst would call the same phone, account or vessel is one value."""

from __future__ import annotations

import random
import re

import pytest

from watchcentre.adapters.identifier_checks import LibraryChecks
from watchcentre.core import identifiers
from watchcentre.core.identifiers import Identifier, IdentifierExtractor, IdKind, imo_valid, normalise
from watchcentre.core.watches import Watch, hits, phrase_value

X = IdentifierExtractor(LibraryChecks())


def found(text: str, kind: str | None = None) -> list[str]:
    return [i.value for i in X.extract("", text) if kind is None or i.kind == kind]


@pytest.mark.parametrize(
    "written", ["+33 6 12 34 56 78", "06.12.34.56.78", "0033612345678", "06-12-34-56-78"]
)
def test_a_phone_written_many_ways_is_one_identifier(written: str) -> None:
    assert found(f"joignable au {written} le soir", "phone") == ["+33612345678"]


def test_three_ways_in_one_message_make_one_identifier() -> None:
    text = "Tél. +33 6 12 34 56 78, ou 06 12 34 56 78, ou 0033612345678."
    assert X.extract("", text) == (Identifier("phone", "+33612345678"),)


def test_foreign_numbers_need_their_country_code() -> None:
    assert found("Bogotá: +57 301 234 5678", "phone") == ["+573012345678"]


@pytest.mark.parametrize("text", ["le 2024-05-01", "dossier 12345678", "montant 1 000 000 euros", "tel 123"])
def test_dates_and_amounts_are_not_phones(text: str) -> None:
    assert found(text, "phone") == []


def test_ibans_are_compacted_and_checked() -> None:
    assert found("IBAN FR14 2004 1010 0505 0001 3M02 606 et fr1420041010050500013m02606") == [
        "FR1420041010050500013M02606"
    ]
    assert found("IBAN FR15 2004 1010 0505 0001 3M02 606", "iban") == []  # a wrong check digit


def test_emails_are_lower_cased() -> None:
    assert found("écrire à Jean.Dupont@Example.COM.") == ["jean.dupont@example.com"]


@pytest.mark.parametrize(
    "text",
    [
        "Passeport n° 12AB34567",
        "passport no. 12AB34567",
        "carte d'identité : 12AB34567",
        "Passport: 12AB34567",
    ],
)
def test_document_numbers_near_a_document_word(text: str) -> None:
    assert found(text, "document") == ["12AB34567"]


def test_a_number_without_a_document_word_is_not_a_document() -> None:
    assert found("dossier 12AB34567", "document") == []


def test_imo_numbers_with_a_valid_check_digit() -> None:
    assert found("le navire IMO 9074729 et IMO 9074728", "imo") == ["9074729"]
    assert imo_valid("9074729") and not imo_valid("9074728")


def test_plates_where_marked_as_such() -> None:
    assert found("véhicule immatriculé AB-123-CD stationné", "plate") == ["AB123CD"]
    assert found("plaque : AB 123 CD", "plate") == ["AB123CD"]
    assert found("le bureau AB-123-CD", "plate") == []


def test_crypto_wallets() -> None:
    text = (
        "BTC 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2, bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq,"
        " faux 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3, ETH 0x52908400098527886E0F7030069857D2E4169EE7"
    )
    assert found(text, "btc") == [
        "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
        "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
    ]
    assert found(text, "eth") == ["0x52908400098527886e0f7030069857d2e4169ee7"]


def test_no_phone_is_read_inside_an_iban() -> None:
    assert found("IBAN FR14 2004 1010 0505 0001 3M02 606", "phone") == []


def test_a_watched_identifier_is_normalised_as_extraction_would() -> None:
    checks = LibraryChecks()
    assert normalise(IdKind.PHONE, "06 12 34 56 78", checks) == "+33612345678"
    assert (
        normalise(IdKind.IBAN, "fr14 2004 1010 0505 0001 3m02 606", checks) == "FR1420041010050500013M02606"
    )
    assert normalise(IdKind.IMO, "IMO 9074729", checks) == "9074729"
    assert normalise(IdKind.IBAN, "FR00", checks) is None


def test_phrase_watches_match_whole_words_accents_and_case_aside() -> None:
    from datetime import UTC, datetime

    def watch(value: str) -> Watch:
        at = datetime(2030, 1, 1, tzinfo=UTC)
        fields = {"label": "l", "reason": "r", "created_by": "op", "created_at": at, "expires_at": at}
        return Watch(id=1, kind="phrase", id_kind=None, value=phrase_value(value), **fields)

    assert hits([watch("Port de Carthagène")], [], ["Arrivée au PORT DE CARTHAGENE demain"])
    assert not hits([watch("carthagene")], [], ["carthagenes"])


def test_the_fast_forms_find_what_the_plain_patterns_find() -> None:
    """The IBAN pattern searched from its digits finds the plain pattern's matches; a text in which
    the document or plate pattern matches always passes the substring gates that spare the others
    the pattern's walk. Random texts built from the patterns' own words, letters, digits and
    separators."""
    plain_iban = re.compile(r"\b[A-Za-z]{2}\d{2}(?:[ ]?[A-Za-z0-9]{4}){2,7}(?:[ ]?[A-Za-z0-9]{1,4})?\b")
    pieces = [
        "FR14", "fr76", "2004", "1010", "0505", "AB", "12", "X", " ", " ", "-", ".", ":", "n°", "no.", "é",
        "passport", "Passeport", "ID card", "id-number", "carte d'identité", "CNI", "titre de séjour",
        "residence permit", "driving licence", "permis de conduire", "REG", "reg.", "Registration",
        "plate", "plaque", "immatriculée", "regional", "said", "AB-123-CD", "12AB34567", "_", "3",
    ]  # fmt: skip
    rng = random.Random(11)
    matched = {"document": 0, "plate": 0, "iban": 0}
    for _ in range(30_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        low = text.lower()
        iban = [m.span() for m in plain_iban.finditer(text)]
        assert iban == [(m.start() - 2, m.end()) for m in identifiers._IBAN.finditer(text)], text
        if identifiers._DOCUMENT.search(text):
            matched["document"] += 1
            assert any(h in low for h in identifiers._DOC_HINTS), text
        if identifiers._PLATE.search(text):
            matched["plate"] += 1
            assert any(h in low for h in identifiers._PLATE_HINTS) or identifiers._REG_WORD.search(low), text
        matched["iban"] += bool(iban)
    assert min(matched.values()) > 500, matched
