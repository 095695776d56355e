"""Normalisation and acceptance rules for usernames, emails and passwords.

One function per field, used identically at sign-up, sign-in and by the CLI, so
"Alice", " alice " and the NFD spelling of a name are one account everywhere. A new
username must also be visible: :func:`new_username` is the one rule for names that are
created, while lookups (sign-in, the CLI's ``users`` commands) keep finding accounts made
before that rule existed.
"""

from __future__ import annotations

import gzip
import re
import unicodedata
from collections.abc import Iterable
from functools import cache
from importlib import resources

from authgate.errors import InvalidInputError, PasswordPolicyError, UnknownRoleError
from authgate.models import Role

USERNAME_MAX = 64
EMAIL_MAX = 254
_USERNAME = re.compile(r"^[^\s\x00-\x1f\x7f]{3,64}$")
_EMAIL = re.compile(r"^[^\s@\x00-\x1f\x7f]{1,64}@[^\s@\x00-\x1f\x7f]+\.[^\s@\x00-\x1f\x7f]+$")


def _nfkc(value: str) -> str:
    return unicodedata.normalize("NFKC", value)


def normalize_username(raw: str) -> str:
    """NFKC, trimmed; 3-64 characters without whitespace or control characters."""
    username = _nfkc(raw).strip()
    if not _USERNAME.fullmatch(username):
        raise InvalidInputError(
            "Failed! Username must be 3 to 64 characters without spaces or control characters."
        )
    return username


#: Categories no username may contain: format characters (zero-width space and joiner,
#: soft hyphen, direction marks and overrides, the byte-order mark, tag characters),
#: surrogates, private use, unassigned code points (as of Python's Unicode database),
#: and line and paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cf", "Cs", "Co", "Cn", "Zl", "Zp"})

#: Characters outside those categories that draw nothing. The first group is every
#: Default_Ignorable_Code_Point of Unicode's DerivedCoreProperties.txt that is not Cf or Cn
#: (those are refused by category); the second draws a blank glyph without being
#: default-ignorable. NFKC maps U+3164 and U+FFA0 to U+1160, which is listed too.
_BLANK = frozenset(
    [
        "\u034f",  # COMBINING GRAPHEME JOINER
        "\u115f",  # HANGUL CHOSEONG FILLER
        "\u1160",  # HANGUL JUNGSEONG FILLER
        "\u17b4",  # KHMER VOWEL INHERENT AQ
        "\u17b5",  # KHMER VOWEL INHERENT AA
        *map(chr, range(0x180B, 0x180E)),  # MONGOLIAN FREE VARIATION SELECTORS ONE..THREE
        "\u180f",  # MONGOLIAN FREE VARIATION SELECTOR FOUR
        "\u3164",  # HANGUL FILLER
        *map(chr, range(0xFE00, 0xFE10)),  # VARIATION SELECTORS 1..16
        "\uffa0",  # HALFWIDTH HANGUL FILLER
        *map(chr, range(0xE0100, 0xE01F0)),  # VARIATION SELECTORS 17..256
        # Not default-ignorable, but blank:
        "\u2800",  # BRAILLE PATTERN BLANK
        "\U00016fe4",  # KHITAN SMALL SCRIPT FILLER
        "\U0001d159",  # MUSICAL SYMBOL NULL NOTEHEAD
    ]
)


def is_invisible(char: str) -> bool:
    """Whether one character may not appear in a new username (see the two sets above)."""
    return char in _BLANK or unicodedata.category(char) in _REFUSED_CATEGORIES


def new_username(raw: str) -> str:
    """A username for a new account: :func:`normalize_username`, and nothing invisible or
    direction-changing, so ``ad\\u200bmin`` cannot sit beside ``admin``."""
    username = normalize_username(raw)
    if any(map(is_invisible, username)):
        raise InvalidInputError(
            "Failed! Username must not contain invisible or direction-changing characters."
        )
    return username


def username_key(username: str) -> str:
    """The case-insensitive identity of an already-normalised username."""
    return username.casefold()


def normalize_email(raw: str) -> str:
    email = _nfkc(raw).strip()
    if len(email) > EMAIL_MAX or not _EMAIL.fullmatch(email):
        raise InvalidInputError("Failed! Email is not a valid address.")
    return email


def email_key(email: str) -> str:
    return email.casefold()


def normalize_password(raw: str) -> str:
    """NFKC only: no trimming, no case change, never truncation."""
    return _nfkc(raw)


def check_password(password: str, *, min_length: int, max_length: int) -> None:
    """Length in code points after NFKC, not on the common list; no composition rules."""
    if len(password) < min_length:
        raise PasswordPolicyError(f"Failed! Password must be at least {min_length} characters.")
    if len(password) > max_length:
        raise PasswordPolicyError(f"Failed! Password must be at most {max_length} characters.")
    if password.casefold() in common_passwords():
        raise PasswordPolicyError("Failed! This password is too common; choose another.")


@cache
def common_passwords() -> frozenset[str]:
    """The bundled list (see ``authgate/data/README.md``), read once."""
    packed = resources.files("authgate").joinpath("data/common-passwords.txt.gz").read_bytes()
    return frozenset(gzip.decompress(packed).decode().split())


def parse_roles(names: Iterable[str] | None) -> frozenset[Role]:
    """Role names as the tutorial spells them; none (or an empty list) means ``user``."""
    found: set[Role] = set()
    for name in names or ():
        try:
            found.add(Role(name))
        except ValueError:
            raise UnknownRoleError(name) from None
    return frozenset(found) or frozenset({Role.USER})
