"""The screens' words: every key the pages use is in the French and the English catalogs, and both
catalogs hold the same keys, so no word on a screen is out of a translator's reach."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from watchcentre.adapters.http_i18n import BUNDLES, country_names, crime_names
from watchcentre.core.lifecycle import CASE_EVENT_TYPES, DEADLINE_WARNING, OVERDUE
from watchcentre.core.records import EventType

WEB = Path(__file__).resolve().parents[2] / "watchcentre" / "web"
LANGS = ("en", "fr")

_KEY = r"([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+)"
USES = (
    re.compile(r"(?<![\w.$])t\(\s*[\"']" + _KEY + r"[\"']"),  # t("party.inbox.title", …)
    re.compile(r"data-i18n=[\"']" + _KEY + r"[\"']"),
    # a key handed to a helper that calls t() ("party.due.ack"): any string that names a catalog key
    re.compile(r"[\"'`]((?:common|party|console|event)\.[a-z0-9_]+(?:\.[a-z0-9_]+)*)[\"'`]"),
)
_ATTRS = re.compile(r"data-i18n-attr=[\"']([^\"']*)[\"']")


def catalog(lang: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for bundle in BUNDLES:
        data = json.loads((WEB / "locales" / lang / f"{bundle}.json").read_text(encoding="utf-8"))
        assert isinstance(data, dict), f"{lang}/{bundle}.json is not an object"
        for key, words in data.items():
            assert key not in merged, f"{key} is in two {lang} catalogs"
            assert isinstance(words, str) and words.strip(), f"{lang}: {key} has no words"
            merged[key] = words
    return merged


def used_keys() -> dict[str, set[str]]:
    """key → the web files that use it."""
    found: dict[str, set[str]] = {}
    files = [p for p in WEB.rglob("*") if p.suffix in (".js", ".html") and "locales" not in p.parts]
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8")
        keys = {m.group(1) for rx in USES for m in rx.finditer(text)}
        for attrs in _ATTRS.finditer(text):
            pairs = [pair.split(":", 1)[1].strip() for pair in attrs.group(1).split(";") if ":" in pair]
            keys |= {k for k in pairs if re.fullmatch(_KEY, k)}
        for key in keys:
            found.setdefault(key, set()).add(path.name)
    return found


def test_both_languages_have_the_same_keys() -> None:
    en, fr = catalog("en"), catalog("fr")
    assert sorted(en.keys() - fr.keys()) == [], "in English only"
    assert sorted(fr.keys() - en.keys()) == [], "in French only"


@pytest.mark.parametrize("lang", LANGS)
def test_every_key_the_pages_use_is_in_the_catalog(lang: str) -> None:
    words = catalog(lang)
    used = used_keys()
    assert "common.signout" in used  # the scan finds what it should
    missing = {key: sorted(files) for key, files in used.items() if key not in words}
    assert missing == {}


@pytest.mark.parametrize("lang", LANGS)
def test_placeholders_match_across_languages(lang: str) -> None:
    en, other = catalog("en"), catalog(lang)
    names = re.compile(r"\{(\w+)\}")
    for key, words in en.items():
        assert set(names.findall(other[key])) == set(names.findall(words)), key


def test_every_audit_event_type_has_a_name_in_both_languages() -> None:
    types = {e.value for e in EventType} | set(CASE_EVENT_TYPES) | {DEADLINE_WARNING, OVERDUE}
    for lang in LANGS:
        words = catalog(lang)
        assert sorted(t for t in types if f"event.{t}" not in words) == [], lang


def test_countries_in_french_come_from_pycountry() -> None:
    fr, en = country_names("fr"), country_names("en")
    assert fr["DE"] == "Allemagne" and en["DE"] == "Germany"
    assert fr["GB"] == "Royaume-Uni"
    assert en["BO"] == "Bolivia"  # the common name, not "Bolivia, Plurinational State of"
    assert fr.keys() == en.keys() and len(fr) > 240


def test_crime_type_words_fall_back_to_english_then_the_code() -> None:
    labels = {
        "terrorism": {"en": "Terrorism", "fr": "Terrorisme"},
        "cybercrime": {"en": "Cybercrime"},
        "x": {},
    }
    assert crime_names(labels, "fr") == {"terrorism": "Terrorisme", "cybercrime": "Cybercrime", "x": "x"}
