"""What authgate creates in its data directory is its owner's alone, whatever the umask."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from authgate.private_files import create_private_file, make_private_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_migrate_into_a_fresh_data_dir_creates_it_and_the_database_for_the_owner_only(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    env["AUTHGATE_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-m", "authgate.cli", "migrate"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        umask=0o022,  # the common default, under which files come out world-readable
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = tmp_path / "data"
    database = data / "authgate.db"
    assert oct(mode(data)) == oct(0o700)
    assert oct(mode(database)) == oct(0o600)
    # SQLite creates the -wal and -shm files while a connection writes, with the mode of
    # the database file; shown here with a writer of our own, under the same umask.
    previous = os.umask(0o022)
    try:
        connection = sqlite3.connect(database)
        try:
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            connection.execute("CREATE TABLE probe (x INTEGER)")
            connection.commit()
            for suffix in ("-wal", "-shm"):
                assert oct(mode(database.with_name(database.name + suffix))) == oct(0o600)
        finally:
            connection.close()
    finally:
        os.umask(previous)


def test_existing_files_and_directories_are_left_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    os.chmod(shared, 0o750)  # noqa: S103 - an existing, shared directory is the point
    make_private_dir(shared)
    assert mode(shared) == 0o750
    made = shared / "private" / "deeper"
    make_private_dir(made)
    assert mode(made) == 0o700
    existing = shared / "kept.db"
    existing.write_bytes(b"")
    os.chmod(existing, 0o640)
    assert create_private_file(existing) is False
    assert mode(existing) == 0o640
    assert create_private_file(shared / "new.db") is True
    assert mode(shared / "new.db") == 0o600
