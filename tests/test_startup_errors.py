"""What an operator reads when the database cannot be used: real ``authgate migrate`` and
``authgate serve`` processes against real database servers. One line on stderr, naming the URL
without its password and the driver's reason; exit 3 for what configuration must fix, 4 for
what may come back by itself."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.databases import SERVER_URLS
from tests.test_server import authgate_env, free_port, run_authgate

#: Put in each URL that has no password of its own, to show it is never printed.
URL_PASSWORD = "url-password-never-shown"
NO_SUCH_DATABASE = "authgate_no_such_database"
NO_SUCH_ROLE = "authgate_no_such_role"


def _server_url(backend: str) -> sa.URL:
    url = os.environ.get(SERVER_URLS[backend])
    if not url:
        pytest.skip(f"{SERVER_URLS[backend]} is not set")
    return sa.make_url(url)


def _with_password(url: sa.URL) -> sa.URL:
    """The URL with a password: trust authentication ignores it, the others need their own."""
    return url if url.password else url.set(password=URL_PASSWORD)


def unknown_postgres_database() -> tuple[sa.URL, int, str]:
    url = _with_password(_server_url("postgresql")).set(database=NO_SUCH_DATABASE)
    return url, 3, f'database "{NO_SUCH_DATABASE}" does not exist'


def unknown_postgres_role() -> tuple[sa.URL, int, str]:
    # 'role "..." does not exist' under trust authentication; with passwords the server
    # says authentication failed for that user. Both name the role.
    return _with_password(_server_url("postgresql")).set(username=NO_SUCH_ROLE), 3, NO_SUCH_ROLE


def unknown_mariadb_database() -> tuple[sa.URL, int, str]:
    # No added password here: MariaDB checks one before the database ("Access denied").
    url = _server_url("mysql").set(database=NO_SUCH_DATABASE)
    return url, 3, f"Unknown database '{NO_SUCH_DATABASE}'"


def postgres_not_listening() -> tuple[sa.URL, int, str]:
    url = sa.make_url(f"postgresql://postgres:{URL_PASSWORD}@127.0.0.1:{free_port()}/authgate")
    return url, 4, "connection refused"


def mariadb_not_listening() -> tuple[sa.URL, int, str]:
    url = sa.make_url(f"mysql://root:{URL_PASSWORD}@127.0.0.1:{free_port()}/authgate")
    return url, 4, "connection refused"


Case = Callable[[], tuple[sa.URL, int, str]]
CASES: list[Case] = [
    unknown_postgres_database,
    unknown_postgres_role,
    unknown_mariadb_database,
    postgres_not_listening,
    mariadb_not_listening,
]


# Every command opens the database the same way (storage translates the driver's errors,
# the CLI prints them), so `serve` is shown once for each exit code.
@pytest.mark.parametrize(
    ("command", "case"),
    [
        *(("migrate", case) for case in CASES),
        ("serve", unknown_postgres_database),
        ("serve", postgres_not_listening),
    ],
    ids=lambda value: value.__name__.replace("_", "-") if callable(value) else value,
)
def test_a_database_that_cannot_be_used_is_one_line_with_the_url_and_the_reason(
    tmp_path: Path, command: str, case: Case
) -> None:
    url, code, reason = case()
    settings = {
        "AUTHGATE_DATABASE_URL": url.render_as_string(hide_password=False),
        "AUTHGATE_PORT": str(free_port()),
    }
    finished = run_authgate(tmp_path, authgate_env(tmp_path, settings), command)
    assert finished.returncode == code, finished.output
    lines = finished.stderr.splitlines()
    assert len(lines) == 1, finished.stderr
    shown = url.set(password=None).render_as_string()
    assert lines[0].startswith(f"authgate: cannot use the database {shown.split('@')[0]}")
    assert shown.split("@")[1] in lines[0]  # host, port and database
    assert reason in lines[0]
    if url.password:
        assert str(url.password) not in finished.output
    assert not (tmp_path / "data").exists()  # nothing written: no key, no database file
