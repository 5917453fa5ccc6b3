"""Generated case references: `WC-<year>-` then 10 random characters and a check character.

A sequential number told anyone who saw one reference how many requests there were and let them guess
the others (and probe for them: a request naming a taken reference is refused). Ten characters of
Crockford's base32 (no I, L, O, U: nothing to misread) carry 50 random bits; the eleventh is a check
character over the ten, so a mistyped reference is evidently wrong. The stores keep references unique
by their primary key and draw again on the (very unlikely) collision. Pure: the randomness is `secrets`.
"""

from __future__ import annotations

import hashlib
import re
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RANDOM_CHARS = 10
GENERATED_PATTERN = rf"^WC-\d{{4}}-[{ALPHABET}]{{{RANDOM_CHARS + 1}}}$"
_GENERATED = re.compile(GENERATED_PATTERN)
assert 256 % len(ALPHABET) == 0  # new_reference draws a character from a byte without bias


def check_char(body: str) -> str:
    """The check character of a reference's random part (a hash, so any change alters it 31 times in 32)."""
    return ALPHABET[hashlib.sha256(body.encode("ascii")).digest()[0] % len(ALPHABET)]


def new_reference(year: int) -> str:
    """A fresh reference for a case opened in `year`, e.g. WC-2026-7KQ2M9XH4TF."""
    # one read of the system's randomness, not one per character; a byte modulo 32 is uniform
    body = "".join([ALPHABET[b % len(ALPHABET)] for b in secrets.token_bytes(RANDOM_CHARS)])
    return f"WC-{year:04d}-{body}{check_char(body)}"


def well_formed(reference: str) -> bool:
    """Whether `reference` has the generated form and its check character matches."""
    if not _GENERATED.match(reference):
        return False
    tail = reference.rsplit("-", 1)[1]
    return check_char(tail[:-1]) == tail[-1]
