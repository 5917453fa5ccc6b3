"""The figures `watchcentre eval` reports, on items small enough to count by hand; and the labels an
operator's correction leaves (validated, the rules blamed)."""

from __future__ import annotations

import pytest

from watchcentre.core.classify import Classification, Evidence
from watchcentre.core.errors import Invalid
from watchcentre.core.evaluation import Truth, evaluate
from watchcentre.core.labels import Label, blame, checked, most_blamed
from watchcentre.core.replay import original_of, purged


def test_precision_recall_and_primary_accuracy_counted_by_hand() -> None:
    ev = evaluate(
        [
            Truth(
                ["drug_trafficking"], ["ES"], ["drug_trafficking", "organised_crime"], ["ES"]
            ),  # 1 FP crime
            Truth(
                ["cybercrime", "financial_crime"], ["DE"], ["financial_crime"], ["DE", "US"]
            ),  # primary wrong
            Truth(None, ["MA"], ["terrorism"], []),  # crime types not known: only countries count
        ]
    )
    d = ev.as_dict()
    assert (ev.items, ev.primary_items, ev.primary_right) == (3, 2, 1)
    assert d["crime_types"] == {"precision": 0.6667, "recall": 0.6667, "f1": 0.6667, "support": 3}
    assert d["countries"]["precision"] == 0.6667 and d["countries"]["recall"] == 0.6667
    assert d["per_crime_type"]["cybercrime"] == {"precision": 1.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert d["per_crime_type"]["organised_crime"]["precision"] == 0.0
    assert "terrorism" not in d["per_crime_type"]
    assert d["per_country"]["US"]["precision"] == 0.0 and d["per_country"]["MA"]["recall"] == 0.0


def test_corrections_are_checked_against_the_taxonomy_and_iso_codes() -> None:
    assert checked(["cybercrime"], ["de", "ES"], {"DE", "ES"}) == (["cybercrime"], ["DE", "ES"])
    assert checked(None, None, {"DE"}) == (None, None)
    with pytest.raises(Invalid) as crime:
        checked(["cybercrime", "hacking"], None, {"DE"})
    assert crime.value.field == "crime_types" and "hacking" in crime.value.problem
    with pytest.raises(Invalid) as country:
        checked(None, ["DE", "XK1"], {"DE"})
    assert country.value.field == "countries"


def test_blame_names_the_phrase_behind_a_wrong_label_and_the_misses() -> None:
    found = Classification(
        crime_types=["drug_trafficking"],
        countries=["US"],
        country_confidence={"US": 0.9},
        crime_scores={"drug_trafficking": 4.0},
        home_mentions=[],
        evidence=[
            Evidence("drug_trafficking", "strong", "Cocaïne", "subject", 0, 7, 2.0),
            Evidence("US", "alias", "US  dollars", "body", 3, 13, 0.9),
        ],
    )
    blamed = blame(found, ["financial_crime"], [])
    assert blamed == [
        "financial_crime: missed",
        'drug_trafficking: strong "cocaïne"',
        'US: alias "us dollars"',
    ]
    assert blame(found, None, None) == []  # nothing said, nothing learnt


def test_most_blamed_counts_across_labels() -> None:
    def label(*rules: str) -> Label:
        return Label.model_validate(
            {
                "sender": "s",
                "message_id": "m",
                "at": "2026-12-05T00:00:00Z",
                "actor": "a",
                "reason": "r",
                "crime_types": None,
                "countries": None,
                "blamed": list(rules),
            }
        )

    assert most_blamed([label("a", "b"), label("b"), label("c", "b")], 2) == [("b", 3), ("a", 1)]


def test_replay_reads_the_original_from_the_explanation_and_knows_a_purged_message() -> None:
    lines = ["previously: to unit.ofast: in reply to r-1 sent by ofast", "country ES (confidence 0.95)"]
    original = original_of(lines)
    assert original is not None and (original.sender, original.message_id) == ("ofast", "r-1")
    assert original_of(["to post.madrid: country ES (0.95) is covered by madrid"]) is None
    assert purged({"subject": "", "body": "  "}) and purged(None)
    assert not purged({"subject": "x", "body": ""})
