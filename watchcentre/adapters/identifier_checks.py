"""The checks identifier extraction (core/identifiers.py) needs from the libraries of the field:
phonenumbers (numbering plans: E.164, validity) and python-stdnum (IBAN formats and check digits,
Bitcoin address checksums)."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberDesc
from phonenumbers.phonenumberutil import (
    ValidationResult,
    _maybe_strip_national_prefix_carrier_code,
    _test_number_length,
)
from stdnum import bitcoin, iban

DEFAULT_REGION = "FR"  # a number written without its country code is read as the watch centre's own

_NOT_DIGIT = re.compile(r"\D+")
_CODES = {str(code): regions for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()}
_UNSTRIPPED = (
    ValidationResult.TOO_SHORT,
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
    ValidationResult.INVALID_LENGTH,
)
_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail")


class LibraryChecks:
    def phones(self, candidate: str) -> str | None:
        """`phonenumbers.parse(candidate, "FR")`, valid numbers only, in E.164. A candidate is what
        the extractor's pattern finds (digits and separators, maybe '+' or '00' first): read here
        with phonenumbers' own steps and metadata, without the generic parse (~60 µs, most of
        extraction's cost) except in the rare cases it handles differently (see `_e164`)."""
        digits = _NOT_DIGIT.sub("", candidate)
        if candidate[0] == "+":
            found = _e164(digits)
        elif digits[:2] == "00" and digits[2:3] != "0":  # FR's international prefix
            found = _e164(digits[2:])
        elif not digits.startswith(_HOME_CODE):
            found = _national(digits, _HOME_CODE, DEFAULT_REGION)
        else:
            found = _FULL_PARSE  # parse may read the home code in it: '33 6 12 …' is +33 6 12 …
        return _parsed_e164(candidate) if found is _FULL_PARSE else found

    def iban(self, compact: str) -> bool:
        return bool(iban.is_valid(compact))

    def btc(self, address: str) -> bool:
        return bool(bitcoin.is_valid(address))


_FULL_PARSE = "full parse"
_HOME_CODE = str(phonenumbers.country_code_for_region(DEFAULT_REGION))


def _parsed_e164(candidate: str) -> str | None:
    try:
        number = phonenumbers.parse(candidate, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _e164(digits: str) -> str | None:
    """An international number's digits (calling code first). A '+' before a code no region has,
    and the non-geographic codes (+800 …), go through the full parse (it retries without the '+')."""
    for k in (1, 2, 3):  # calling codes are prefix-free
        regions = _CODES.get(digits[:k])
        if regions is not None and digits[0] != "0":
            return _FULL_PARSE if "001" in regions else _national(digits[k:], digits[:k], regions[0])
    return _FULL_PARSE


def _national(national: str, code: str, main_region: str) -> str | None:
    """parse's last steps: the national prefix stripped when what remains has a possible length,
    then the region (`region_code_for_number`) and the validity (`is_valid_number`)."""
    if len(national) < 2:
        return None
    metadata = PhoneMetadata.metadata_for_region(main_region)
    if metadata is None:
        return None
    _, stripped, _ = _maybe_strip_national_prefix_carrier_code(national, metadata)
    if _test_number_length(stripped, metadata) not in _UNSTRIPPED:
        national = stripped
    if not 2 <= len(national) <= 17:
        return None
    for region in _CODES[code]:
        check = _checks(region)
        if check is None:
            continue
        leading, valid = check
        if leading is None:
            if valid(national):
                return f"+{code}{national}"
        elif leading.match(national):  # the region of the number: valid there, or not at all
            return f"+{code}{national}" if valid(national) else None
    return None


@cache
def _checks(region: str) -> tuple[re.Pattern[str] | None, Callable[[str], bool]] | None:
    """A region's leading digits (when the calling code is shared) and `_number_type_helper(…) !=
    UNKNOWN` with the patterns compiled once (phonenumbers compiles them through `re`'s cache
    on every call)."""
    metadata = PhoneMetadata.metadata_for_region(region, None)
    if metadata is None:
        return None
    general = _desc(metadata.general_desc)
    kinds = [_desc(getattr(metadata, name)) for name in (*_TYPES, "fixed_line")]
    if not metadata.same_mobile_and_fixed_line_pattern:
        kinds.append(_desc(metadata.mobile))
    types = [d for d in kinds if d is not None]

    def valid(number: str) -> bool:
        return _matches(general, number) and any(_matches(d, number) for d in types)

    leading = re.compile(metadata.leading_digits) if metadata.leading_digits is not None else None
    return leading, valid


def _desc(desc: PhoneNumberDesc | None) -> tuple[frozenset[int], re.Pattern[str]] | None:
    if desc is None or not desc.national_number_pattern:
        return None
    return frozenset(desc.possible_length or ()), re.compile(desc.national_number_pattern)


def _matches(desc: tuple[frozenset[int], re.Pattern[str]] | None, number: str) -> bool:
    if desc is None:
        return False
    lengths, pattern = desc
    return (not lengths or len(number) in lengths) and pattern.fullmatch(number) is not None
