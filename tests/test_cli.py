"""The operator commands, in-process through ``authgate.cli.main``, on a SQLite file."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import io
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from authgate.admin import OPERATOR
from authgate.cli import _parser, main
from authgate.config import Settings
from authgate.http.app import build_app
from authgate.runtime import build_services
from authgate.storage import Database, schema
from tests.conftest import PASSWORD, TEST_KEY, FakeClock
from tests.helpers import legacy, sign_in
from tests.invisible import INVISIBLE_NAMES, LONE_SURROGATE, REFUSAL

UNREACHABLE_DATABASE = "postgresql://postgres@127.0.0.1:1/authgate"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


class Cli:
    """``authgate ARGS`` with ``stdin`` fed in, its exit code and output captured."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
        self._monkeypatch = monkeypatch
        self._capsys = capsys

    def __call__(self, *argv: str, stdin: str = "") -> Result:
        self._monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        self._capsys.readouterr()
        code = main(list(argv))
        captured = self._capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def create(self, username: str, *roles: str, password: str = PASSWORD) -> Result:
        options = [arg for role in roles for arg in ("--role", role)]
        return self(
            "users",
            "create",
            username,
            "--email",
            f"{username}@example.com",
            *options,
            stdin=password + "\n",
        )

    def users(self) -> dict[str, str]:
        """``users list`` as username -> roles."""
        return {row["username"]: row["roles"] for row in self.table("users", "list")}

    def table(self, *argv: str) -> list[dict[str, str]]:
        """A listing's tab-separated rows, by the names in its header row."""
        result = self(*argv)
        assert result.code == 0, result.err
        header, *rows = (line.split("\t") for line in result.out.splitlines())
        return [dict(zip(header, row, strict=True)) for row in rows]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``main`` points the root logger at this test's captured stderr; undo that afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and an environment with only the settings tests choose."""
    for name in list(os.environ):
        if name.startswith("AUTHGATE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTHGATE_ARGON2_MEMORY_KIB", "64")
    monkeypatch.setenv("AUTHGATE_ARGON2_TIME_COST", "1")
    return tmp_path


@pytest.fixture
def cli(workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(monkeypatch, capsys)


@pytest.fixture
def migrated(cli: Cli) -> Cli:
    assert cli("migrate").code == 0
    return cli


# -- migrate ------------------------------------------------------------------


def test_migrate_creates_the_default_database_and_prints_the_revision(
    cli: Cli, workdir: Path
) -> None:
    result = cli("migrate")
    assert result.code == 0, result.err
    assert (
        result.out
        == f"authgate: database schema upgraded from empty to revision {schema.head()}.\n"
    )
    assert (workdir / "data" / "authgate.db").is_file()


def test_migrate_twice_is_a_no_op_that_keeps_the_data(migrated: Cli) -> None:
    assert migrated.create("alice").code == 0
    again = migrated("migrate")
    assert again.code == 0, again.err
    assert (
        again.out == f"authgate: database schema is at revision {schema.head()}; nothing to do.\n"
    )
    assert migrated.users() == {"alice": "user"}


# -- the command itself: help, version, quiet ------------------------------------

#: Where the virtual environment puts the command (README: `. .venv/bin/activate`).
AUTHGATE = Path(sys.executable).with_name("authgate")
#: What serving needs and asking for help must not pay for.
SERVER_STACK = ("starlette", "sqlalchemy", "granian", "uvicorn", "alembic", "joserfc")


def run_authgate(workdir: Path, *argv: str, python_options: Sequence[str] = ()) -> Result:
    """The installed ``authgate`` command in its own process, with only our settings."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AUTHGATE_")}
    env["AUTHGATE_DATA_DIR"] = str(workdir / "data")
    done = subprocess.run(
        [sys.executable, *python_options, str(AUTHGATE), *argv],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def _walk(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        yield parser.prog, action
        if isinstance(action, argparse._SubParsersAction):
            yield from ((parser.prog, choice) for choice in action._choices_actions)
            for command in action.choices.values():
                yield from _walk(command)


def test_every_command_option_and_argument_has_help() -> None:
    missing = [
        f"{prog}: {'/'.join(action.option_strings) or action.dest}"
        for prog, action in _walk(_parser())
        if not action.help or action.help == argparse.SUPPRESS
    ]
    assert missing == []


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["users", "create", "--help"]])
def test_help_and_version_do_not_import_the_server(tmp_path: Path, argv: list[str]) -> None:
    result = run_authgate(tmp_path, *argv, python_options=["-X", "importtime"])
    assert result.code == 0, result.err
    # -X importtime writes one line per imported module: "import time: self | total | name".
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in result.err.splitlines()}
    assert "authgate" in imported
    assert imported.isdisjoint(SERVER_STACK), sorted(imported.intersection(SERVER_STACK))
    assert not (tmp_path / "data").exists()


def test_version_prints_the_installed_package_version(tmp_path: Path) -> None:
    result = run_authgate(tmp_path, "--version")
    assert result.code == 0, result.err
    assert result.out == f"authgate {importlib.metadata.version('authgate')}\n"


def test_the_readme_puts_authgate_on_path_before_using_it(tmp_path: Path) -> None:
    """The README's commands say ``authgate``; its Operator CLI section first activates the
    virtual environment, which makes that name work in a plain ``sh``."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("## Operator CLI") :]
    setup = section[section.index("```sh") : section.index("```", section.index("```sh") + 5)]
    assert ". .venv/bin/activate" in setup
    assert setup.index(". .venv/bin/activate") < setup.index("authgate --help")
    activate = Path(sys.executable).parents[1] / "bin" / "activate"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        ["/bin/sh", "-c", f'. "{activate}" && authgate --version'],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (
        0,
        f"authgate {importlib.metadata.version('authgate')}\n",
    )


def test_migrate_prints_its_one_line_and_nothing_of_alembic(tmp_path: Path) -> None:
    first = run_authgate(tmp_path, "migrate")
    assert first.code == 0, first.err
    assert (first.out, first.err) == (
        f"authgate: database schema upgraded from empty to revision {schema.head()}.\n",
        "",
    )
    again = run_authgate(tmp_path, "migrate")
    assert (again.code, again.err) == (0, "")
    assert again.out.count("\n") == 1


# -- users --------------------------------------------------------------------


def test_users_create_with_a_role_then_list_shows_it(migrated: Cli) -> None:
    created = migrated.create("root", "admin")
    assert created.code == 0, created.err
    assert "root" in created.out
    assert PASSWORD not in created.out + created.err
    assert migrated.users() == {"root": "admin"}


def test_users_create_without_a_role_gives_user(migrated: Cli) -> None:
    assert migrated.create("alice").code == 0
    assert migrated.users() == {"alice": "user"}


def test_users_set_roles_replaces_the_roles(migrated: Cli) -> None:
    assert migrated.create("alice").code == 0
    result = migrated("users", "set-roles", "alice", "moderator", "user")
    assert result.code == 0, result.err
    assert result.out.strip() == "alice: moderator,user"
    assert migrated.users() == {"alice": "moderator,user"}


def test_users_set_roles_on_an_unknown_user_fails_clearly(migrated: Cli) -> None:
    result = migrated("users", "set-roles", "ghost", "admin")
    assert result.code == 1
    assert "no user named ghost" in result.err
    assert result.out == ""
    assert migrated.users() == {}


def test_a_too_short_password_is_refused_and_creates_nothing(migrated: Cli) -> None:
    result = migrated.create("alice", password="short")
    assert result.code == 1
    assert "Password must be at least 8 characters" in result.err
    assert "short" not in result.out
    assert migrated.users() == {}


@pytest.mark.parametrize("stdin", ["", "\n", "\r\n"], ids=["nothing", "empty-line", "crlf"])
def test_no_password_is_refused_as_none_given(migrated: Cli, stdin: str) -> None:
    result = migrated("users", "create", "alice", "--email", "alice@example.com", stdin=stdin)
    assert result.code == 1
    assert result.err.splitlines()[-1] == (
        "authgate: No password given: type it at the prompt, or send it as the first line of stdin."
    )
    assert migrated.users() == {}


def test_a_duplicate_username_is_refused(migrated: Cli) -> None:
    assert migrated.create("alice").code == 0
    result = migrated(
        "users", "create", "ALICE", "--email", "other@example.com", stdin=PASSWORD + "\n"
    )
    assert result.code == 1
    assert "Username is already in use" in result.err
    assert migrated.users() == {"alice": "user"}


@pytest.mark.parametrize(
    "username", [*INVISIBLE_NAMES, pytest.param(LONE_SURROGATE, id="Cs-lone-surrogate")]
)
def test_users_create_refuses_invisible_characters(migrated: Cli, username: str) -> None:
    assert migrated.create("admin").code == 0
    result = migrated(
        "users", "create", username, "--email", "lookalike@example.com", stdin=PASSWORD + "\n"
    )
    assert result.code == 1
    assert f"authgate: {REFUSAL}\n" in result.err
    assert migrated.users() == {"admin": "user"}


def test_users_list_starts_with_a_header_row(migrated: Cli) -> None:
    assert migrated.create("alice", "moderator", "user").code == 0
    listed = migrated("users", "list")
    assert listed.code == 0, listed.err
    assert listed.out.splitlines() == [
        "id\tusername\temail\troles\tstate",
        "1\talice\talice@example.com\tmoderator,user\tenabled",
    ]
    assert listed.err == ""  # nor any line of Alembic's


def test_users_commands_refuse_a_database_that_was_never_migrated(cli: Cli) -> None:
    result = cli("users", "list")
    assert result.code == 3
    assert "authgate migrate" in result.err


# -- configuration and storage failures ---------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AUTHGATE_ACCESS_TOKEN_TTL_SECONDS", "abc"),
        ("AUTHGATE_ACCESS_TOKEN_TTL_SECONDS", "0"),
        ("AUTHGATE_REFRESH_ROTATION", "maybe"),
        ("AUTHGATE_ACCES_TOKEN_TTL_SECONDS", "60"),  # a typo is an unknown setting
    ],
    ids=["not-a-number", "zero", "not-a-bool", "misspelled"],
)
@pytest.mark.parametrize("command", [["migrate"], ["users", "list"]], ids=" ".join)
def test_a_bad_setting_exits_3_naming_the_variable(
    cli: Cli,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    command: list[str],
) -> None:
    monkeypatch.setenv(variable, value)
    result = cli(*command)
    assert result.code == 3
    assert variable in result.err
    assert not (workdir / "data").exists()  # nothing was touched


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("AUTHGATE_ENV", "prod", "expected one of `development`, `production`; got 'prod'."),
        ("AUTHGATE_REFRESH_ROTATION", "maybe", "expected `true` or `false`; got 'maybe'."),
        ("AUTHGATE_ACCES_TOKEN_TTL_SECONDS", "60", None),
    ],
    ids=["choice", "switch", "misspelled"],
)
def test_a_bad_setting_is_one_line_saying_what_is_accepted(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str | None
) -> None:
    monkeypatch.setenv(variable, value)
    result = cli("migrate")
    assert result.code == 3
    if message is None:
        message = "(did you mean AUTHGATE_ACCESS_TOKEN_TTL_SECONDS?)."
        assert result.err == f"authgate: Unknown setting {variable} {message}\n"
    else:
        assert result.err == f"authgate: {variable}: {message}\n"


def test_a_log_level_in_lower_case_is_accepted(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHGATE_LOG_LEVEL", "warning")
    assert cli("migrate").code == 0


@pytest.mark.parametrize("command", [["migrate"], ["users", "list"]], ids=" ".join)
def test_an_unreachable_database_exits_4(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("AUTHGATE_DATABASE_URL", UNREACHABLE_DATABASE)
    result = cli(*command)
    assert result.code == 4
    assert result.err.endswith(
        f"authgate: cannot use the database {UNREACHABLE_DATABASE}: connection refused\n"
    )
    assert "Traceback" not in result.err


@pytest.mark.parametrize("command", [["migrate"], ["users", "list"]], ids=" ".join)
def test_a_database_that_never_answers_exits_4_saying_so(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    # The kernel accepts the connection on a listening socket; nothing ever answers on it.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/authgate"
        monkeypatch.setenv("AUTHGATE_DATABASE_URL", url)
        monkeypatch.setenv("AUTHGATE_DB_TIMEOUT_SECONDS", "1")
        result = cli(*command)
    assert result.code == 4
    last = result.err.splitlines()[-1]
    assert last.startswith(f"authgate: cannot use the database {url}: ")
    assert last.endswith((": timed out", ": no answer within 1 s"))


def test_a_database_directory_that_cannot_be_created_exits_3(
    cli: Cli, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "occupied").write_text("a file where a directory should be")
    monkeypatch.setenv("AUTHGATE_DATABASE_URL", f"sqlite:///{workdir / 'occupied' / 'x.db'}")
    result = cli("migrate")
    assert result.code == 3
    assert "AUTHGATE_DATABASE_URL" in result.err
    assert "occupied" in result.err


def test_users_disable_and_enable(migrated: Cli) -> None:
    assert migrated.create("alice").code == 0
    disabled = migrated("users", "disable", "alice")
    assert disabled.code == 0, disabled.err
    assert [row["state"] for row in migrated.table("users", "list")] == ["disabled"]
    assert migrated("users", "enable", "ALICE").code == 0
    assert [row["state"] for row in migrated.table("users", "list")] == ["enabled"]
    unknown = migrated("users", "disable", "ghost")
    assert unknown.code == 1
    assert "no user named ghost" in unknown.err


def test_the_last_enabled_admin_cannot_be_disabled_or_demoted(migrated: Cli) -> None:
    assert migrated.create("root", "admin").code == 0
    for command in (("users", "disable", "root"), ("users", "set-roles", "root", "user")):
        refused = migrated(*command)
        assert refused.code == 1
        assert "last enabled admin" in refused.err
        assert "Traceback" not in refused.err
    assert migrated.users() == {"root": "admin"}
    assert [row["state"] for row in migrated.table("users", "list")] == ["enabled"]
    assert migrated.create("boss", "admin").code == 0  # the way out: another admin first
    assert migrated("users", "set-roles", "root", "user").code == 0
    assert migrated("users", "disable", "root").code == 0
    assert migrated("users", "disable", "boss").code == 1


# -- the CLI and the HTTP API agree ---------------------------------------------


@pytest.fixture
def cli_admin(migrated: Cli) -> str:
    """An admin created by the CLI (run here: ``main`` needs a thread without an event loop)."""
    assert migrated.create("root", "admin").code == 0
    return "root"


@pytest.mark.anyio
async def test_an_admin_created_by_the_cli_signs_in_and_reaches_admin_content(
    workdir: Path, cli_admin: str
) -> None:
    settings = Settings.from_mapping(
        {
            "signing_key": TEST_KEY,
            "data_dir": str(workdir / "data"),
            "argon2_memory_kib": 64,
            "argon2_time_cost": 1,
        }
    )
    database = Database.connect(settings.resolved_database_url)
    try:
        app = build_app(await build_services(settings, database), settings)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://authgate.test"
        ) as client:
            signed_in = await sign_in(client, cli_admin)
            assert signed_in.status_code == 200, signed_in.text
            assert signed_in.json()["roles"] == ["ROLE_ADMIN"]
            token = signed_in.json()["accessToken"]
            admin = await client.get("/api/test/admin", headers=legacy(token))
            assert admin.status_code == 200
            assert admin.text == "Admin Content."
            mod = await client.get("/api/test/mod", headers=legacy(token))
            assert mod.status_code == 403  # as in the tutorial: admin does not imply moderator
    finally:
        await database.close()


DAY = 86400


def _service_settings(workdir: Path) -> Settings:
    """What the CLI in ``workdir`` uses, for a service in this process."""
    return Settings.from_mapping(
        {
            "signing_key": TEST_KEY,
            "data_dir": str(workdir / "data"),
            "argon2_memory_kib": 64,
            "argon2_time_cost": 1,
        }
    )


async def _sessions_at(workdir: Path, moments: list[tuple[float, bool]]) -> None:
    """Sign alice in once per ``(time, signed_out)``, on a clock set to that time."""
    clock = FakeClock()
    settings = _service_settings(workdir)
    database = Database.connect(settings.resolved_database_url)
    try:
        app = build_app(await build_services(settings, database, clock=clock), settings)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://authgate.test"
        ) as client:
            for moment, signed_out in moments:
                clock.now = moment
                signed = await sign_in(client)
                assert signed.status_code == 200, signed.text
                if signed_out:
                    token = signed.json()["refreshToken"]
                    out = await client.post("/api/auth/signout", json={"refreshToken": token})
                    assert out.status_code == 200, out.text
    finally:
        await database.close()


async def _count(workdir: Path, query: str, **params: object) -> int:
    database = Database.connect(_service_settings(workdir).resolved_database_url)
    try:
        async with database.engine.connect() as connection:
            count: int = (await connection.execute(sa.text(query), params)).scalar_one()
        return count
    finally:
        await database.close()


def test_purge_removes_expired_and_long_revoked_sessions_and_reports_them(
    migrated: Cli, workdir: Path
) -> None:
    """``authgate purge`` runs on the real clock; the sessions were made on a clock set back."""
    assert migrated.create("alice").code == 0
    now = time.time()
    asyncio.run(
        _sessions_at(
            workdir,
            [
                (now - 30 * DAY, False),  # expired 23 days ago: purged
                (now - 2 * DAY, True),  # revoked two days ago, not expired: purged
                (now - 3600, False),  # live: kept
                (now - 3600, True),  # revoked an hour ago: kept (processes may not know yet)
            ],
        )
    )
    assert asyncio.run(_count(workdir, "SELECT COUNT(*) FROM sessions")) == 4
    tokens_before = asyncio.run(_count(workdir, "SELECT COUNT(*) FROM refresh_tokens"))

    result = migrated("purge")
    assert result.code == 0, result.err
    assert "purged 2 sessions" in result.out
    assert asyncio.run(_count(workdir, "SELECT COUNT(*) FROM sessions")) == 2
    doomed = "SELECT COUNT(*) FROM sessions WHERE expires_at <= :now OR revoked_at <= :long_ago"
    assert asyncio.run(_count(workdir, doomed, now=now, long_ago=now - DAY)) == 0
    orphans = (
        "SELECT COUNT(*) FROM refresh_tokens WHERE session_id NOT IN (SELECT id FROM sessions)"
    )
    assert asyncio.run(_count(workdir, orphans)) == 0
    assert asyncio.run(_count(workdir, "SELECT COUNT(*) FROM refresh_tokens")) < tokens_before

    again = migrated("purge")
    assert again.code == 0, again.err
    assert "purged 0 sessions" in again.out


def test_users_changes_are_audited_as_the_operator_and_disable_ends_sessions(
    migrated: Cli, workdir: Path
) -> None:
    """What ``users create | set-roles | disable | enable`` did is in the audit log, as the
    admin API's actions are, with no actor id and the client ``cli``; a refused command
    leaves nothing there."""
    assert migrated.create("alice").code == 0
    now = time.time()
    asyncio.run(_sessions_at(workdir, [(now, False), (now, False)]))
    for command in (
        ("users", "set-roles", "alice", "moderator", "user"),
        ("users", "disable", "alice"),
        ("users", "enable", "alice"),
    ):
        assert migrated(*command).code == 0
    assert migrated("users", "disable", "ghost").code == 1
    live = "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL"
    assert asyncio.run(_count(workdir, live)) == 0  # disabling ended both sessions
    audited = [
        (row["actorId"], row["action"], row["targetUserId"], row["detail"], row["clientAddress"])
        for row in asyncio.run(_audit_log(workdir))
    ]
    assert audited == [
        (None, "users.create", 1, "user", "cli"),
        (None, "users.set_roles", 1, "moderator,user", "cli"),
        (None, "users.disable", 1, "", "cli"),
        (None, "users.enable", 1, "", "cli"),
    ]


async def _audit_log(workdir: Path) -> list[dict[str, object]]:
    """The audit log, oldest first, as the admin API shows it to an admin made for the purpose
    (whose own creation and read are left out)."""
    settings = _service_settings(workdir)
    database = Database.connect(settings.resolved_database_url)
    try:
        services = await build_services(settings, database)
        await services.admin.create_user(
            OPERATOR, "test", "auditor", "auditor@example.com", PASSWORD, ["admin"]
        )
        transport = httpx.ASGITransport(app=build_app(services, settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            token = (await sign_in(client, "auditor")).json()["accessToken"]
            read = await client.get("/api/admin/audit", headers=legacy(token))
        await services.aclose()
    finally:
        await database.close()
    entries: list[dict[str, object]] = read.json()["entries"]
    return [entry for entry in reversed(entries) if entry["clientAddress"] == "cli"]


def test_keys_list_and_rotate_with_eddsa(migrated: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHGATE_SIGNING_ALGORITHM", "EdDSA")
    empty = migrated("keys", "list")
    assert empty.code == 0, empty.err
    assert empty.out == "kid\tgeneration\talgorithm\tstate\tsigns from\tretires at\n"
    assert "no EdDSA key stored yet" in empty.err
    rotated = migrated("keys", "rotate")
    assert rotated.code == 0, rotated.err
    assert "published now" in rotated.out
    states = migrated.table("keys", "list")
    assert [(key["generation"], key["state"]) for key in states] == [
        ("1", "signing"),
        ("2", "published"),
    ]
    assert rotated.out.startswith(f"created EdDSA key {states[1]['kid']};")


def test_keys_list_shows_the_stored_keys_of_another_algorithm_and_creates_nothing(
    migrated: Cli, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHGATE_SIGNING_ALGORITHM", "EdDSA")
    assert migrated("keys", "rotate").code == 0
    stored = migrated.table("keys", "list")
    # The default algorithm (HS256), the same database, a data directory never used.
    monkeypatch.delenv("AUTHGATE_SIGNING_ALGORITHM")
    monkeypatch.setenv("AUTHGATE_DATABASE_URL", f"sqlite:///{workdir / 'data' / 'authgate.db'}")
    monkeypatch.setenv("AUTHGATE_DATA_DIR", str(workdir / "fresh"))
    assert [key["algorithm"] for key in stored] == ["EdDSA", "EdDSA"]
    assert migrated.table("keys", "list") == [{**key, "state": "unused"} for key in stored]
    assert not (workdir / "fresh").exists()  # no signing.key, no kek.key
    listed = migrated("keys", "list")
    assert "no HS256 key yet" in listed.err
    monkeypatch.setenv("AUTHGATE_SIGNING_ALGORITHM", "EdDSA")
    monkeypatch.setenv("AUTHGATE_DATA_DIR", str(workdir / "data"))
    assert migrated.table("keys", "list") == stored  # and no key was added


def test_keys_list_shows_the_hs256_key_once_it_exists(migrated: Cli, workdir: Path) -> None:
    assert migrated.create("alice").code == 0  # the service creates the development key
    listed = migrated.table("keys", "list")
    assert [(key["algorithm"], key["state"], key["signs from"]) for key in listed] == [
        ("HS256", "signing", "-")
    ]
    assert (workdir / "data" / "signing.key").is_file()


def test_keys_rotate_with_hs256_explains_itself(migrated: Cli) -> None:
    result = migrated("keys", "rotate")
    assert result.code == 3
    assert "AUTHGATE_SIGNING_KEY" in result.err
