"""Secrets from configuration, or generated once into the data directory for development.

Two secrets are kept this way: the HS256 signing key (``AUTHGATE_SIGNING_KEY``,
``signing.key``) and the key-encryption key that seals private signing keys in the
database (``AUTHGATE_KEY_ENCRYPTION_KEY``, ``kek.key``). Production refuses to invent
either.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import stat
from pathlib import Path

from authgate.config import Settings, looks_random
from authgate.errors import ConfigurationError
from authgate.private_files import make_private_dir

log = logging.getLogger("authgate.keys")

SIGNING_KEY_FILE = "signing.key"
KEK_FILE = "kek.key"


def signing_key(settings: Settings) -> bytes:
    """The configured HS256 key, or (development only) the one kept in the data directory."""
    if settings.signing_key is not None:
        return settings.signing_key.encode()
    _refuse_in_production(settings, "AUTHGATE_SIGNING_KEY")
    return _development_secret(Path(settings.data_dir) / SIGNING_KEY_FILE, "AUTHGATE_SIGNING_KEY")


def existing_signing_key(settings: Settings) -> bytes | None:
    """The HS256 key if one is configured or kept in the data directory; never creates one."""
    if settings.signing_key is not None:
        return settings.signing_key.encode()
    path = Path(settings.data_dir) / SIGNING_KEY_FILE
    return _read_secret(path) if path.is_file() else None


def key_encryption_key(settings: Settings) -> bytes:
    """32 bytes that seal private signing keys at rest (base64url in the environment)."""
    if settings.key_encryption_key is not None:
        return decode_kek(settings.key_encryption_key)
    _refuse_in_production(settings, "AUTHGATE_KEY_ENCRYPTION_KEY")
    path = Path(settings.data_dir) / KEK_FILE
    return decode_kek(_development_secret(path, "AUTHGATE_KEY_ENCRYPTION_KEY").decode())


def decode_kek(text: str, variable: str = "AUTHGATE_KEY_ENCRYPTION_KEY") -> bytes:
    """32 bytes from base64url text (the form of both symmetric keys authgate reads)."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigurationError(
            f"{variable} must be 32 random bytes in base64url "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)."
        )
    return raw


def _refuse_in_production(settings: Settings, variable: str) -> None:
    if settings.env == "production":
        raise ConfigurationError(f"{variable} is required when AUTHGATE_ENV=production.")


def _development_secret(path: Path, variable: str) -> bytes:
    try:
        make_private_dir(path.parent)
    except OSError as error:
        raise ConfigurationError(
            f"AUTHGATE_DATA_DIR: cannot create {path.parent}: {error.strerror}."
        ) from None
    try:
        # O_EXCL: several workers starting at once agree on one secret.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    secret = secrets.token_urlsafe(32).encode()  # 256 random bits
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret)
    log.warning(
        "Generated a development secret in %s (mode 0600). Set %s in production.", path, variable
    )
    return secret


def _read_secret(path: Path) -> bytes:
    """A kept secret, refused if others may read it or it does not look random."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(f"{path} is readable by other users; run `chmod 600 {path}`.")
    secret = path.read_bytes().strip()
    if len(secret) < 32:
        raise ConfigurationError(f"{path} holds fewer than 32 bytes; delete it.")
    if not looks_random(secret.decode("utf-8", "replace")):
        raise ConfigurationError(f"{path} repeats too few characters to be random; delete it.")
    return secret
