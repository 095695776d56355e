"""Normalisation and acceptance rules for usernames, emails and passwords.

One function per field, used identically at sign-up, sign-in and by the CLI, so
"Alice", " alice " and the NFD spelling of a name are one account everywhere.
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
