"""The signing key: from configuration, or generated once for development."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from authgate.config import Settings
from authgate.errors import ConfigurationError

log = logging.getLogger("authgate.keys")

DEV_KEY_FILE = "signing.key"


def signing_key(settings: Settings) -> bytes:
    """The configured key, or (development only) the one kept in the data directory."""
    if settings.signing_key is not None:
        return settings.signing_key.encode()
    if (
        settings.env == "production"
    ):  # Settings.check refuses this already; keep the guard local too.
        raise ConfigurationError("AUTHGATE_SIGNING_KEY is required in production.")
    return _development_key(Path(settings.data_dir) / DEV_KEY_FILE)


def _development_key(path: Path) -> bytes:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigurationError(
            f"AUTHGATE_DATA_DIR: cannot create {path.parent}: {error.strerror}."
        ) from None
    try:
        # O_EXCL: several workers starting at once agree on one key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigurationError(
                f"{path} is readable by other users; run `chmod 600 {path}`."
            ) from None
        key = path.read_bytes().strip()
        if len(key) < 32:
            raise ConfigurationError(
                f"{path} holds a key shorter than 32 bytes; delete it to generate one."
            ) from None
        return key
    key = secrets.token_urlsafe(32).encode()  # 256 random bits
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    log.warning(
        "Generated a development signing key in %s (mode 0600). "
        "Set AUTHGATE_SIGNING_KEY in production.",
        path,
    )
    return key
