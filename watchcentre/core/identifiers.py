"""Identifiers in a message's text, found and normalised so that the same phone, account or vessel
written differently is one value: what cross-matching and watch lists compare. Pure: no I/O; the
checks that need a library of the field (phone numbering plans, IBAN formats, Bitcoin checksums)
come in through `Checks` (adapters/identifier_checks.py: phonenumbers, python-stdnum).

Kinds: phone (E.164), email (lower-case), iban (compact, upper-case, check digits valid), document
(a passport or identity-document number written after a document word, EN/FR), imo (7 digits, check
digit valid), plate (written after a plate word), btc (base58 or bech32, checksum valid), eth
(0x + 40 hex, lower-case).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class IdKind(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    IBAN = "iban"
    DOCUMENT = "document"
    IMO = "imo"
    PLATE = "plate"
    BTC = "btc"
    ETH = "eth"


@dataclass(frozen=True, slots=True, order=True)
class Identifier:
    kind: str
    value: str


class Checks(Protocol):
    def phones(self, candidate: str) -> str | None:
        """The E.164 form of a phone number candidate (national numbers read as French), or None."""
        ...

    def iban(self, compact: str) -> bool: ...

    def btc(self, address: str) -> bool: ...


MAX_PER_MESSAGE = 50  # a message listing thousands of numbers is not a reason to write thousands of rows

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}")
# `\b[A-Za-z]{2}\d{2}(?:[ ]?[A-Za-z0-9]{4}){2,7}(?:[ ]?[A-Za-z0-9]{1,4})?\b` searched from its check
# digits, the country letters looked behind: a pattern that starts with a digit is sought in C, one
# that starts with `\b` is tried at every position (twice the time). A match starts 2 characters early.
_IBAN = re.compile(r"\d(?<=\b[A-Za-z]{2}\d)\d(?:[ ]?[A-Za-z0-9]{4}){2,7}(?:[ ]?[A-Za-z0-9]{1,4})?\b")
_DOC_WORDS = (
    r"passport|passeport|id[ -]?card|identity[ -]card|identity[ -]document|id[ -]?number|"
    r"carte d'identit[ée]|carte nationale d'identit[ée]|cni|pi[èe]ce d'identit[ée]|titre de s[ée]jour|"
    r"residence permit|driving licen[cs]e|permis de conduire"
)
_NUMBER_WORDS = r"(?:\s*(?:no\.?|n[°o]\.?|num(?:[ée]ro)?\.?|number|nr\.?|#))?\s*[:.\-]?\s*"
_DOCUMENT = re.compile(rf"(?i:\b(?:{_DOC_WORDS})){_NUMBER_WORDS}(?-i:([A-Z0-9]{{6,12}}))\b")
_IMO = re.compile(r"(?i:\bIMO)\s*(?:n[°o]\.?\s*|no\.?\s*|number\s*)?[:#-]?\s*(\d{7})\b")
_PLATE_WORDS = (
    r"plate|licen[cs]e plate|number plate|registration|immatricul[ée]e?|immatriculation|plaque|"
    r"plaques d'immatriculation|reg\.?"
)
_PLATE = re.compile(
    rf"(?i:\b(?:{_PLATE_WORDS})){_NUMBER_WORDS}(?-i:([A-Z0-9]{{1,4}}(?:[ -]?[A-Z0-9]{{1,4}}){{1,3}}))\b"
)
_BTC = re.compile(r"\b(?:[13][a-km-zA-HJ-NP-Z1-9]{25,34}|bc1[ac-hj-np-z02-9]{11,71})\b")
_ETH = re.compile(r"\b0x[0-9a-fA-F]{40}\b")
# A phone number candidate: a run of digits with the usual separators, an international prefix maybe.
_PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\d(?:[ .\-/]?\(?\d\)?){7,16}(?!\w)")
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")
# Plain substrings (of the lower-cased text) without which a pattern cannot match: a substring test
# is a C scan, the pattern a walk of every position (figures in docs/performance.md).
_DOC_HINTS = (
    "passport",
    "passeport",
    "id card",
    "id-card",
    "idcard",
    "id number",
    "id-number",
    "idnumber",
    "identit",
    "cni",
    "séjour",
    "sejour",
    "licen",
    "permi",
)
_PLATE_HINTS = ("plate", "immatric", "plaque")
_REG_WORD = re.compile(r"reg(?<!\wreg)")  # 'reg' starting a word ('regional' too): the pattern's last word


def imo_valid(number: str) -> bool:
    """The IMO ship number's check digit: the first six digits weighted 7..2, the sum's last digit."""
    if len(number) != 7 or not number.isdigit() or number == "0000000":
        return False
    return sum(int(d) * w for d, w in zip(number[:6], range(7, 1, -1), strict=True)) % 10 == int(number[6])


class IdentifierExtractor:
    def __init__(self, checks: Checks) -> None:
        self._checks = checks

    def extract(self, *texts: str) -> tuple[Identifier, ...]:
        """Every identifier in `texts` (a subject, a body), normalised, each once, sorted; at most
        `MAX_PER_MESSAGE`."""
        found: set[Identifier] = set()
        for text in texts:
            found |= self._in(text)
        return tuple(sorted(found))[:MAX_PER_MESSAGE]

    def _in(self, text: str) -> set[Identifier]:
        found: set[Identifier] = set()
        spans: list[tuple[int, int]] = []  # what is taken, so no phone is read inside an IBAN or an IMO

        def take(kind: IdKind, value: str, m: re.Match[str], start: int | None = None) -> None:
            found.add(Identifier(kind.value, value))
            spans.append((m.start() if start is None else start, m.end()))

        low = text.lower()
        for m in _EMAIL.finditer(text) if "@" in text else ():
            take(IdKind.EMAIL, m.group(0).lower(), m)
        for m in _IBAN.finditer(text):
            start = m.start() - 2
            compact = _NOT_ALNUM.sub("", text[start : m.end()]).upper()
            if self._checks.iban(compact):
                take(IdKind.IBAN, compact, m, start)
        for m in _DOCUMENT.finditer(text) if any(h in low for h in _DOC_HINTS) else ():
            if any(c.isdigit() for c in m.group(1)):
                take(IdKind.DOCUMENT, m.group(1), m)
        for m in _IMO.finditer(text) if "imo" in low else ():
            if imo_valid(m.group(1)):
                take(IdKind.IMO, m.group(1), m)
        plates = any(h in low for h in _PLATE_HINTS) or _REG_WORD.search(low) is not None
        for m in _PLATE.finditer(text) if plates else ():
            plate = _NOT_ALNUM.sub("", m.group(1))
            if 4 <= len(plate) <= 10 and any(c.isdigit() for c in plate) and any(c.isalpha() for c in plate):
                take(IdKind.PLATE, plate, m)
        for m in _BTC.finditer(text):
            if self._checks.btc(m.group(0)):
                take(IdKind.BTC, m.group(0), m)
        for m in _ETH.finditer(text) if "0x" in low else ():
            take(IdKind.ETH, m.group(0).lower(), m)
        for m in _PHONE.finditer(text):
            if _inside(m.span(), spans):
                continue
            e164 = self._checks.phones(m.group(0))
            if e164 is not None:
                found.add(Identifier(IdKind.PHONE.value, e164))
        return found


def _inside(span: tuple[int, int], taken: Iterable[tuple[int, int]]) -> bool:
    return any(a < span[1] and span[0] < b for a, b in taken)


def normalise(kind: IdKind, value: str, checks: Checks) -> str | None:
    """A watched identifier as extraction would store it; None when it is not one of that kind."""
    text = value.strip()
    if kind is IdKind.PHONE:
        return checks.phones(text)
    if kind is IdKind.EMAIL:
        return text.lower() if _EMAIL.fullmatch(text) else None
    if kind is IdKind.IBAN:
        compact = _NOT_ALNUM.sub("", text).upper()
        return compact if checks.iban(compact) else None
    if kind is IdKind.IMO:
        digits = _NOT_ALNUM.sub("", text.upper().removeprefix("IMO"))
        return digits if imo_valid(digits) else None
    if kind is IdKind.BTC:
        return text if checks.btc(text) else None
    if kind is IdKind.ETH:
        return text.lower() if _ETH.fullmatch(text) else None
    compact = _NOT_ALNUM.sub("", text).upper()  # document, plate
    return compact if 4 <= len(compact) <= 12 else None
