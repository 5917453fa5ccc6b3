"""config/taxonomy.yaml is checked at start: a phrase that can never match is refused, with where it is."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from watchcentre.adapters.config_files import ConfigError, load_config

CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.mark.parametrize("phrase", ["cocaine, heroin", "trafic; stupéfiants", "saisie (cocaïne)", "go. fast"])
def test_a_phrase_holding_punctuation_between_words_is_refused_with_its_code(
    tmp_path: Path, phrase: str
) -> None:
    # the scan reads these as breaks in the text, so such a phrase would silently never match
    for f in CONFIG.glob("*.yaml"):
        shutil.copy(f, tmp_path / f.name)
    taxonomy = yaml.safe_load((CONFIG / "taxonomy.yaml").read_text(encoding="utf-8"))
    phrases = taxonomy["codes"]["drug_trafficking"]["phrases"]
    phrases[next(iter(phrases))].append(phrase)
    (tmp_path / "taxonomy.yaml").write_text(yaml.safe_dump(taxonomy, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert any(
        f"codes.drug_trafficking: '{phrase}' holds punctuation between words" in p
        for p in caught.value.problems
    ), caught.value.problems


def test_the_shipped_taxonomy_has_no_such_phrase() -> None:
    load_config(CONFIG)  # raises ConfigError with every problem
