"""The checks identifier extraction (core/identifiers.py) needs from the libraries of the field:
phonenumbers (numbering plans: E.164, validity) and python-stdnum (IBAN formats and check digits,
Bitcoin address checksums)."""

from __future__ import annotations

import phonenumbers
from stdnum import bitcoin, iban

DEFAULT_REGION = "FR"  # a number written without its country code is read as the watch centre's own


class LibraryChecks:
    def phones(self, candidate: str) -> str | None:
        try:
            number = phonenumbers.parse(candidate, DEFAULT_REGION)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(number):
            return None
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    def iban(self, compact: str) -> bool:
        return bool(iban.is_valid(compact))

    def btc(self, address: str) -> bool:
        return bool(bitcoin.is_valid(address))
