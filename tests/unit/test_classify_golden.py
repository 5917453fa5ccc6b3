"""The classifier's whole answer (labels, scores, confidences, evidence, explanation) on the labelled
corpora and on the benchmark's 2,000 texts, against a recorded copy: a faster scanner or a cache must
not change a single answer. A deliberate rule change rewrites the record, and its diff is reviewed:

    PYTHONPATH=. .venv/bin/python -m tests.unit.test_classify_golden --write
"""

from __future__ import annotations

import hashlib
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from watchcentre.adapters.config_files import load_config
from watchcentre.adapters.gazetteer import PhoneFinder, build_country_terms
from watchcentre.bootstrap import build_classifier
from watchcentre.core.classify import Classification, Classifier, TrieIndex

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests/data/classification_golden.json"
CORPORA = ("classification_corpus", "classification_holdout")


@cache
def classifier() -> Classifier:
    return build_classifier(load_config(ROOT / "config"))


def answer(res: Classification) -> dict[str, Any]:
    return {
        "crime_types": res.crime_types,
        "countries": res.countries,
        "country_confidence": res.country_confidence,
        "crime_scores": res.crime_scores,
        "home_mentions": res.home_mentions,
        "evidence": [list(e) for e in res.evidence],
        "explanation": res.explanation(),
    }


def cases() -> list[tuple[str, str, str, tuple[str, ...], tuple[str, ...]]]:
    """(id, subject, body, country hints, crime hints): every corpus text, every fifth again with hints."""
    out = []
    for name in CORPORA:
        for line in (ROOT / f"tests/data/{name}.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                d = json.loads(line)
                out.append((d["id"], d["subject"], d["body"], (), ()))
    out += [(f"{i}+hints", s, b, ("MA", "FR"), ("terrorism",)) for i, s, b, _, _ in out[::5]]
    return out


def benchmark_digest() -> str:
    from benchmarks import corpus

    h = hashlib.sha256()
    c = classifier()
    for subject, body in corpus.texts(2000):
        h.update(json.dumps(answer(c.classify(subject, body)), sort_keys=True).encode())
    return h.hexdigest()


def record() -> dict[str, Any]:
    c = classifier()
    return {
        "answers": {i: answer(c.classify(s, b, ch, kh)) for i, s, b, ch, kh in cases()},
        "benchmark_texts_sha256": benchmark_digest(),
    }


def test_the_classifier_answers_exactly_as_recorded() -> None:
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    now = json.loads(json.dumps(record()))
    for key, expected in golden["answers"].items():
        assert now["answers"].get(key) == expected, key
    assert set(now["answers"]) == set(golden["answers"])
    assert now["benchmark_texts_sha256"] == golden["benchmark_texts_sha256"]


def test_the_standard_library_index_finds_what_the_compiled_one_finds() -> None:
    """The core's `TrieIndex` (no adapter) and the Aho-Corasick adapter give the same answers."""
    config = load_config(ROOT / "config")
    plain = Classifier(
        config.rules,
        build_country_terms(config.gazetteer),
        home=config.network.home,
        extra_finders=[PhoneFinder()],
        index_factory=TrieIndex,
        places=config.gazetteer.in_passing,
    )
    for _, subject, body, country_hints, crime_hints in cases()[:60]:
        expected = answer(classifier().classify(subject, body, country_hints, crime_hints))
        assert answer(plain.classify(subject, body, country_hints, crime_hints)) == expected


if __name__ == "__main__" and "--write" in sys.argv:
    rec = record()
    lines = [f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in rec["answers"].items()]
    GOLDEN.write_text(
        '{"benchmark_texts_sha256": "'
        + rec["benchmark_texts_sha256"]
        + '",\n"answers": {\n'
        + ",\n".join(lines)
        + "\n}}\n",
        encoding="utf-8",
    )
    print(f"wrote {GOLDEN}")
