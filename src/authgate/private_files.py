"""Directories and files that authgate creates for its owner only (0700 and 0600).

The data directory holds the SQLite database (password hashes, sessions, sealed keys) and
the development secrets, so what authgate creates there is never readable by other local
users, whatever the umask. Existing files and directories are left as they are.
"""

from __future__ import annotations

import os
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) if needed; ``path`` itself gets mode 0700.

    Parents are created with the usual mode, as ``mkdir -p`` does: they may be shared.
    """
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; whether it was created.

    ``O_EXCL`` makes this safe when several processes start at once: one creates the file,
    the others find it.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True
