"""The classifier's vocabulary cache: the same answers from the cache as from a compile; a second
start does not compile; a damaged, foreign or unwritable cache only costs the compile."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import watchcentre.bootstrap as bootstrap
from tests.unit.test_classify_golden import answer, cases
from watchcentre.adapters.config_files import load_config

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = cases()[:40]


@pytest.fixture(scope="module")
def expected() -> list[dict[str, object]]:
    c = bootstrap.build_classifier(load_config(ROOT / "config"))
    return [answer(c.classify(s, b, ch, kh)) for _, s, b, ch, kh in SAMPLE]


def answers(cache_dir: Path | None) -> list[dict[str, object]]:
    c = bootstrap.build_classifier(load_config(ROOT / "config"), cache_dir)
    return [answer(c.classify(s, b, ch, kh)) for _, s, b, ch, kh in SAMPLE]


def compiles(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the compiles (the country vocabulary is built only when compiling)."""
    count = [0]
    real = bootstrap.build_country_terms

    def counted(*args: object) -> object:
        count[0] += 1
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(bootstrap, "build_country_terms", counted)
    return count


def test_the_second_start_reads_what_the_first_compiled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, expected: list[dict[str, object]]
) -> None:
    count = compiles(monkeypatch)
    assert answers(tmp_path) == expected and count == [1]
    assert len(list(tmp_path.glob("vocabulary-*.json"))) == 1
    assert answers(tmp_path) == expected and count == [1]


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"key": "x", "data": {}}', b"[1, 2]"])
def test_a_damaged_or_foreign_cache_is_compiled_again_and_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, expected: list[dict[str, object]], content: bytes
) -> None:
    answers(tmp_path)
    (cached,) = tmp_path.glob("vocabulary-*.json")
    cached.write_bytes(content)
    count = compiles(monkeypatch)
    assert answers(tmp_path) == expected and count == [1]
    assert answers(tmp_path) == expected and count == [1]  # rewritten whole


def test_a_cache_of_the_right_key_but_wrong_shape_is_compiled_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, expected: list[dict[str, object]]
) -> None:
    answers(tmp_path)
    (cached,) = tmp_path.glob("vocabulary-*.json")
    text = cached.read_text(encoding="utf-8")
    cached.write_text(text.replace('"phrases":[[', '"phrases":[[7,', 1), encoding="utf-8")
    count = compiles(monkeypatch)
    assert answers(tmp_path) == expected and count == [1]


def test_an_unwritable_cache_only_costs_the_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, expected: list[dict[str, object]]
) -> None:
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the directory should be", encoding="utf-8")
    count = compiles(monkeypatch)
    assert answers(blocked) == expected and answers(blocked) == expected
    assert count == [2]


def test_another_configuration_compiles_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(ROOT / "config")
    bootstrap.build_classifier(config, tmp_path)
    count = compiles(monkeypatch)
    changed = dataclasses.replace(config, digest="another digest")
    bootstrap.build_classifier(changed, tmp_path)
    assert count == [1]
    assert len(list(tmp_path.glob("vocabulary-*.json"))) == 1  # the one no longer in force is gone
