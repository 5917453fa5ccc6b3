"""Classification measured on realistic English and French texts written independently of the rules
(tests/data/classification_corpus.jsonl: press releases, requests, replies, alerts, hard cases).

The thresholds are the floor we hold ourselves to; the measured figures are printed with -s and
quoted in docs/classification.md. They read the shipped config/, as the service does."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from watchcentre.adapters.config_files import load_config
from watchcentre.bootstrap import build_classifier
from watchcentre.core.classify import Classifier

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> list[dict[str, Any]]:
    text = (ROOT / f"tests/data/{name}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# the first set was looked at while the rules were tuned; the held-out set was written later, by
# someone who saw neither the rules nor the first set, and was not used for tuning
CORPORA = {
    "corpus": _load("classification_corpus")
    + _load("classification_corpus_ty")
    + _load("classification_corpus_tz"),
    "holdout": _load("classification_holdout") + _load("classification_holdout_hy"),
}
CORPUS = CORPORA["corpus"]
# floors: (primary accuracy, crime precision, crime recall, country precision, country recall)
FLOORS = {"corpus": (0.85, 0.75, 0.90, 0.80, 0.90), "holdout": (0.90, 0.80, 0.90, 0.85, 0.90)}
CASES = [(name, lang) for name in CORPORA for lang in ("en", "fr")]


@cache
def classifier() -> Classifier:
    return build_classifier(load_config(ROOT / "config"))


def prf(pairs: Iterable[tuple[set[str], set[str]]]) -> tuple[float, float, float]:
    tp = fp = fn = 0
    for expected, got in pairs:
        tp += len(expected & got)
        fp += len(got - expected)
        fn += len(expected - got)
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def results(name: str = "corpus", lang: str | None = None) -> list[tuple[dict[str, Any], Any]]:
    c = classifier()
    return [(d, c.classify(d["subject"], d["body"])) for d in CORPORA[name] if lang in (None, d["lang"])]


def figures(name: str, batch: str | None = None) -> dict[str, float]:
    """The quality table's row for one set (or the texts of one of its batches, by id prefix): primary
    type accuracy, crime types and countries micro precision/recall/F1, and the share of texts naming
    no foreign country that find none (→ triage)."""
    rs = [(d, r) for d, r in results(name) if batch is None or _batch(d["id"]) == batch]
    primary = sum(1 for d, r in rs if r.crime_types[:1] == d["crime_types"][:1]) / len(rs)
    cp, cr, _ = prf((set(d["crime_types"]), set(r.crime_types)) for d, r in rs)
    p, r, f = prf((set(d["countries"]), set(res.countries)) for d, res in rs)
    home = [res for d, res in rs if not d["countries"]]
    triage = sum(1 for res in home if not res.countries) / len(home) if home else 1.0
    return {
        "texts": len(rs),
        "primary": primary,
        "crime_p": cp,
        "crime_r": cr,
        "country_p": p,
        "country_r": r,
        "country_f1": f,
        "no_foreign": len(home),
        "triage": triage,
    }


# the batches: in the held-out set 'hx-' was written later than the rest, after the rules were
# changed, 'hy-' later still, by someone who saw neither the rules nor any labelled text (its own
# file); in the tuning set 'ty-' and 'tz-' were written blind the same way (their own files)
def _batch(item_id: str) -> str:
    return item_id[:2] if item_id.startswith(("hx-", "hy-", "ty-", "tz-")) else "first"


def test_the_corpora_are_large_and_bilingual() -> None:
    assert len(CORPORA["corpus"]) >= 80 and len(CORPORA["holdout"]) >= 50
    for docs in CORPORA.values():
        assert {d["lang"] for d in docs} == {"en", "fr"}


@pytest.mark.parametrize(("name", "lang"), CASES)
def test_primary_crime_type(name: str, lang: str) -> None:
    rs = results(name, lang)
    hits = sum(1 for d, r in rs if r.crime_types[:1] == d["crime_types"][:1])
    accuracy = hits / len(rs)
    print(f"\n{name} {lang}: primary crime type right in {hits}/{len(rs)} ({accuracy:.0%})")
    assert accuracy >= FLOORS[name][0]


@pytest.mark.parametrize(("name", "lang"), CASES)
def test_crime_types_precision_and_recall(name: str, lang: str) -> None:
    p, r, f = prf((set(d["crime_types"]), set(res.crime_types)) for d, res in results(name, lang))
    print(f"\n{name} {lang}: crime types precision {p:.2f} recall {r:.2f} F1 {f:.2f}")
    assert p >= FLOORS[name][1] and r >= FLOORS[name][2]


@pytest.mark.parametrize(("name", "lang"), CASES)
def test_foreign_countries_precision_and_recall(name: str, lang: str) -> None:
    p, r, f = prf((set(d["countries"]), set(res.countries)) for d, res in results(name, lang))
    print(f"\n{name} {lang}: countries precision {p:.2f} recall {r:.2f} F1 {f:.2f}")
    assert p >= FLOORS[name][3] and r >= FLOORS[name][4]


def test_france_is_never_a_foreign_country() -> None:
    home = set(load_config(ROOT / "config").network.home)
    for name in CORPORA:
        for _, res in results(name):
            assert not home & set(res.countries)


def test_negated_terrorism_is_not_labelled() -> None:
    c = classifier()
    for subject, body in [
        ("Règlement de comptes", "Deux morts par balles. Aucun lien avec le terrorisme n'a été établi."),
        ("Shooting in a bar", "Police said there was no link to terrorism; the motive appears personal."),
    ]:
        res = c.classify(subject, body)
        assert "terrorism" not in res.crime_types
        assert any(e.negated_by for e in res.evidence if e.target == "terrorism")


def test_every_label_is_explained_with_where_it_matched() -> None:
    res = classifier().classify("Saisie de cocaïne", "Le suspect, un ressortissant colombien, vit à Bogotá.")
    assert res.crime_types[0] == "drug_trafficking" and res.countries == ["CO"]
    spans = [(e.field, e.text) for e in res.evidence]
    assert ("subject", "cocaïne") in spans
    assert ("body", "Bogotá") in spans
    text = "Le suspect, un ressortissant colombien, vit à Bogotá."
    for e in res.evidence:
        if e.field == "body":
            assert text[e.start : e.end] == e.text


if __name__ == "__main__":
    # PYTHONPATH=. .venv/bin/python -m tests.unit.test_corpus: the table quoted in docs/classification.md
    print(
        "| set | texts | primary type | crime types P / R | countries P / R / F1 | no foreign country → triage |"
    )
    print("| --- | ---: | ---: | --- | --- | ---: |")
    rows: list[tuple[str, str, str | None]] = [(name, name, None) for name in CORPORA]
    rows += [
        ("corpus", "corpus, first 307", "first"),
        ("corpus", "corpus, ty batch (blind)", "ty"),
        ("corpus", "corpus, tz batch (blind)", "tz"),
        ("holdout", "holdout, first 156", "first"),
        ("holdout", "holdout, hx batch", "hx"),
        ("holdout", "holdout, hy batch (blind)", "hy"),
    ]
    for name, label, batch in rows:
        f = figures(name, batch)
        print(
            f"| {label} | {f['texts']} | {f['primary']:.3f} | {f['crime_p']:.2f} / {f['crime_r']:.2f} |"
            f" {f['country_p']:.3f} / {f['country_r']:.3f} / {f['country_f1']:.3f} |"
            f" {f['triage']:.2f} ({f['no_foreign']} texts) |"
        )


@pytest.mark.parametrize(
    ("body", "countries"),
    [
        ("The buyers paid the suppliers in US dollars in cash in Paris.", []),
        ("Les trafiquants réglaient en francs suisses et en dollars américains.", []),
        ("The prosecutor said the city should not become 'like in Mexico'.", []),
        ("Le poste d'Islamabad, compétent pour l'Afghanistan, est sollicité.", ["AF"]),
        (
            "The post in Bogota asks the Colombian police for his record.",
            ["CO"],
        ),  # the cue: the next place only
        ("Cocaine shipped from Ecuador was paid in US dollars.", ["EC"]),
        # said not to be concerned, right after the place or after an aside between commas
        ("The company also has a subsidiary in Canada, which was not targeted.", []),
        ("Croatia, named by a witness, is not involved; the rifles came from Serbia.", ["RS"]),
        ("La Suisse n'est pas concernée ; les fonds sont partis vers Riga.", ["LV"]),
        # a list joined to a place named in passing is named in passing
        ("Not to be confused with the Republic of Guinea (Conakry), which is not concerned.", []),
        ("L'ambassade compétente à Castries (Sainte-Lucie) est sollicitée.", []),
        ("Des fusils achetés comme en Calabre ou en Sicile dans les années 1990.", []),
        ("Fraudsters posing as Canadian and American soldiers.", []),
        # what stays: a cue about someone else, a sentence after the place, a list of other kinds
        ("The suspect fled to Morocco, his brother is not involved.", ["MA"]),
        ("Il a fui au Maroc. Son frère n'est pas concerné.", ["MA"]),
        ("Born in Algiers, Moroccan national.", ["MA"]),
        # things named after a country's people (products, makes, breeds, cuisine, dress), right next
        # to the demonym; a place said again for itself still counts, a comma or a full stop breaks it
        ("Police seized Italian suits and a German car bought with the proceeds.", []),
        ("Saisie de montres suisses ; interpellé devant un restaurant chinois.", []),
        ("He wore Italian suits; the Italian police were asked for his record.", ["IT"]),
        ("Au restaurant. Chinois et Vietnamiens ont été interpellés.", ["CN", "VN"]),
        ("A Chinese interpreter was requested; he had taught Spanish lessons.", []),
        ("Il était professeur d'anglais et a requis un interprète albanais.", []),
        # a city's name right after a civility or a rank is a person's name
        ("Mrs Sydney Clarke was questioned by Inspector Rossi.", []),
        ("Le commandant Milan a entendu Mme Florence Dupuis.", []),
        # conventions, treaties and regulations named after a city
        ("France has ratified the Budapest Convention; transfer under the Dublin Regulation.", []),
        ("En violation de la convention de Bâle et du règlement Dublin.", []),
        # the continents' people, basins and seas that span several countries
        ("Cocaine bought from South American suppliers, shipped across the Sea of Japan.", []),
        ("Bois tropical du bassin du Congo, fournisseurs latino-américains.", []),
        # the overseas territories and their islands are home, even when a foreign name is in theirs;
        # a foreign capital that is also a French commune is not enough alone
        ("Arrested in Saint-Martin; the boat was seen near Amsterdam Island.", []),
        ("Légine pêchée près de l'île Amsterdam ; interpellé à Port-Louis (Guadeloupe).", []),
        ("Un Mauricien arrêté à Port-Louis.", ["MU"]),
        # where a thing was made is its make: the country said for itself still counts
        ("Police seized Belgian-made pistols and an Austrian Glock.", []),
        ("Des pistolets de fabrication italienne ; une console de jeu japonaise.", []),
        ("Italian-made rifles were bought in Italy by the suspects.", ["IT"]),
        ("He lived under a Venezuelan identity.", []),
        # comparisons, a place said not to be concerned by the case, French common nouns
        ("The attack is comparable to the one in Baltimore.", []),
        ("Il a comparé l'attaque à celle subie par la ville de Baltimore.", []),
        ("Un armateur danois étranger à l'affaire ; un conteneur de sucre passé par le détroit.", []),
        # states and provinces name their federation
        ("Arrested in Texas; the guns came from Ontario and Queensland.", ["AU", "CA", "US"]),
        ("Interpellé au Nouveau-Mexique puis extradé depuis la Colombie-Britannique.", ["CA", "US"]),
    ],
)
def test_places_named_in_passing_are_not_routed_on(body: str, countries: list[str]) -> None:
    assert classifier().classify("Request", body).countries == countries


@pytest.mark.parametrize(
    ("subject", "body", "primary"),
    [
        # a warrant in the body of a crime report: the report is about the crime; a notice about a
        # wanted person says so in its subject
        (
            "Kidnapping of a businessman: three suspects arrested in Belgium",
            "Three men were arrested in Liège on European arrest warrants in the kidnapping case.",
            "violent_crime",
        ),
        (
            "Enlèvement d'un chef d'entreprise : trois suspects interpellés en Belgique",
            "Ils ont été interpellés à Liège en exécution de mandats d'arrêt européens.",
            "violent_crime",
        ),
        (
            "Wanted: fugitive sought for murder",
            "He is the subject of a European arrest warrant for the murder of his partner.",
            "wanted_person",
        ),
        (
            "Personne recherchée : un fugitif en cavale pour meurtre",
            "Il fait l'objet d'un mandat d'arrêt européen pour le meurtre de sa compagne.",
            "wanted_person",
        ),
        # a fraud done by taking over phones or computers, said so in the subject, is cybercrime
        (
            "SIM swapping against bank customers",
            "Fraudsters had the SIM cards of 85 customers swapped, then emptied their accounts.",
            "cybercrime",
        ),
        (
            "Arnaques au faux support technique",
            "Un faux message d'alerte bloquait le navigateur, puis l'ordinateur était contrôlé à distance.",
            "cybercrime",
        ),
        # victims made to commit crimes; a killing ordered by a network is a killing first
        (
            "Interpol frees trafficking victims from scam compounds",
            "They were forced to defraud people online through romance scams.",
            "human_trafficking",
        ),
        (
            "Mineurs contraints de voler dans le métro : un réseau de traite démantelé",
            "Les enfants commettaient des vols à la tire.",
            "human_trafficking",
        ),
        (
            "Contract killing in Marbella: three arrested",
            "The two gunmen were paid 30,000 euros.",
            "violent_crime",
        ),
        (
            "Assassinat commandité à Marseille",
            "Les deux tireurs ont été payés 30 000 euros.",
            "violent_crime",
        ),
        # a killing in a drug war is a killing first, however much the drug trade is described
        (
            "Two men shot dead in Marseille drug war",
            "The victims were killed at a cannabis dealing spot. Investigators believe the murders are"
            " linked to a turf war between two drug trafficking networks selling cannabis and cocaine."
            " Several kilos of drugs were seized.",
            "violent_crime",
        ),
        (
            "Règlement de comptes sur fond de trafic de stupéfiants",
            "Un homme a été tué par balles près d'un point de deal. Les enquêteurs évoquent une guerre"
            " de territoire entre trafiquants de cannabis et de cocaïne. De la résine a été saisie.",
            "violent_crime",
        ),
        # the charge the suspects face says what the message is about; what someone was known for
        # before is background
        (
            "Trois hommes mis en examen pour assassinat",
            "La victime était connue pour trafic de stupéfiants et gérait un point de deal où"
            " cannabis, cocaïne et héroïne ont été saisis.",
            "violent_crime",
        ),
        # laundering the proceeds of drugs, said so in the subject, is laundering
        (
            "Money laundering of drug proceeds through car dealers",
            "The network laundered the profits of cocaine and hashish trafficking in Marseille"
            " through second-hand car sales and cash deposits.",
            "financial_crime",
        ),
        (
            "Man charged in Lyon",
            "A 30-year-old man was charged with fraud for selling fake investment products. He had"
            " previously been convicted of drug trafficking and cannabis dealing.",
            "financial_crime",
        ),
    ],
)
def test_the_primary_type_is_what_the_message_is_about(subject: str, body: str, primary: str) -> None:
    assert classifier().classify(subject, body).crime_types[0] == primary


def test_a_phrase_said_again_adds_nothing() -> None:
    once = classifier().classify("Information", "Jordan called. He works in Lyon.")
    twice = classifier().classify("Information", "Jordan called. Jordan works in Lyon. Jordan left.")
    assert once.country_confidence == twice.country_confidence and "JO" not in twice.countries
