"""Operator commands: ``authgate serve | migrate | users ...``, all through the services
(``users`` through the admin service as the operator, its changes audited like the admin API's).

Each command imports the heavy modules (storage, runtime, keys) itself: uvicorn's worker
processes start by importing this module again (it is their parent's ``__main__``), and a
worker must answer its supervisor's first ping within seconds (``authgate.serving``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from authgate import serving
from authgate.config import Settings
from authgate.errors import AuthError, UserNotFoundError
from authgate.logs import configure_logging

T = TypeVar("T")

# prometheus_client reads this when it is first imported, so the parent sets it before any
# import of authgate.metrics (that module's MULTIPROC_ENV names the same variable).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Exit codes: 0 ok, 1 a refused request, 2 usage (argparse), 3 configuration, 4 storage.
EXIT_REFUSED, EXIT_CONFIG, EXIT_STORAGE = 1, 3, 4


ROLES = ("user", "moderator", "admin")

#: The client address of the operator's audit records.
CLIENT = "cli"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="authgate", description="Token-authentication server.")
    parser.add_argument(
        "--version",
        action="version",
        version=f"authgate {_version()}",
        help="print the version and exit",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="one of:"
    )

    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", help="listen address (AUTHGATE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (AUTHGATE_PORT, default 8080)")
    serve.add_argument("--workers", type=int, help="worker processes (AUTHGATE_WORKERS, default 1)")
    serve.add_argument(
        "--server",
        choices=["granian", "uvicorn"],
        default="granian",
        help="the HTTP server that runs the workers (default granian)",
    )

    commands.add_parser("migrate", help="create or upgrade the database schema")
    commands.add_parser("purge", help="delete expired and long-revoked sessions and their tokens")

    keys = commands.add_parser("keys", help="signing keys").add_subparsers(
        dest="action", required=True, metavar="ACTION", help="one of:"
    )
    keys.add_parser("list", help="every stored key (any algorithm) with its state; creates nothing")
    keys.add_parser(
        "rotate", help="publish the next key; it signs after AUTHGATE_KEY_PUBLISH_SECONDS"
    )

    users = commands.add_parser("users", help="manage users").add_subparsers(
        dest="action", required=True, metavar="ACTION", help="one of:"
    )
    create = users.add_parser(
        "create", help="create a user (password prompted, or read from stdin)"
    )
    create.add_argument("username", help="the new user's name")
    create.add_argument("--email", required=True, help="the new user's email address")
    create.add_argument(
        "--role",
        action="append",
        dest="roles",
        choices=ROLES,
        help="a role to give; repeat for several (default: user)",
    )
    users.add_parser("list", help="list users, their roles and whether they are enabled")
    set_roles = users.add_parser("set-roles", help="replace a user's roles")
    set_roles.add_argument("username", help="the user's name")
    set_roles.add_argument("roles", nargs="+", choices=ROLES, help="the roles the user keeps")
    for action, text in (
        ("disable", "disable a user and revoke every session"),
        ("enable", "re-enable a disabled user"),
    ):
        users.add_parser(action, help=text).add_argument("username", help="the user's name")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("authgate")
    except PackageNotFoundError:  # pragma: no cover - run from a tree that was never installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_level)
        if args.command == "serve":
            return _serve(settings, args)
        if args.command == "migrate":
            return _run(_migrate(settings))
        if args.command == "purge":
            return _run(_purge(settings))
        if args.command == "keys":
            return _run(_keys(settings, args.action))
        return _run(_users(settings, args))
    except AuthError as error:
        print(f"authgate: {_explained(error)}", file=sys.stderr)
        return _exit_code(error)


def _explained(error: AuthError) -> str:
    """The operator's sentence: a storage failure says where and why, not the HTTP text."""
    from authgate.errors import StorageUnavailableError

    if isinstance(error, StorageUnavailableError) and error.detail:
        return error.detail
    return error.message


def _exit_code(error: AuthError) -> int:
    from authgate.errors import ConfigurationError, DatabaseRefusedError, StorageUnavailableError

    if isinstance(error, ConfigurationError | DatabaseRefusedError):
        return EXIT_CONFIG
    if isinstance(error, StorageUnavailableError):
        return EXIT_STORAGE
    return EXIT_REFUSED


def _run(work: Awaitable[T]) -> T:
    async def runner() -> T:
        return await work

    return asyncio.run(runner())


async def _migrate(settings: Settings) -> int:
    from authgate.runtime import open_database
    from authgate.storage import schema

    database = open_database(settings)
    try:
        before = await schema.upgrade(database)
    finally:
        await database.close()
    head = schema.head()
    if before == head:
        print(f"authgate: database schema is at revision {head}; nothing to do.")
    else:
        print(f"authgate: database schema upgraded from {before or 'empty'} to revision {head}.")
    return 0


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    overrides = {
        name: value
        for name, value in (("host", args.host), ("port", args.port), ("workers", args.workers))
        if value is not None
    }
    settings = settings.replace(**overrides)
    serving.check(settings)  # a busy address, unusable TLS files: configuration, 3
    for warning in serving.start_up_warnings(settings):
        logging.getLogger("authgate.cli").warning(warning)
    from authgate.keyfiles import key_encryption_key, signing_key
    from authgate.keys import ASYMMETRIC
    from authgate.runtime import check_database

    # Fail fast (configuration 3, database unreachable 4), before writing anything.
    _run(check_database(settings))
    # Create development secrets once, before workers race for them.
    if settings.signing_algorithm in ASYMMETRIC:
        key_encryption_key(settings)
    else:
        signing_key(settings)
    if settings.env == "production" and not settings.public_url:
        logging.getLogger("authgate.cli").warning(
            "AUTHGATE_PUBLIC_URL is not set: the discovery document names the key set after "
            "each request's Host header, so it is never cached. Set it in production."
        )
    serving.export(overrides)
    # Workers share metrics through files in one directory (prometheus_client multiprocess).
    own_metrics_dir = MULTIPROC_ENV not in os.environ
    if own_metrics_dir:
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="authgate-metrics-")
    try:
        serving.serve(settings, args.server)
    finally:
        if own_metrics_dir:
            shutil.rmtree(os.environ.pop(MULTIPROC_ENV), ignore_errors=True)
    return 0


async def _purge(settings: Settings) -> int:
    from authgate.runtime import running_service

    async with running_service(settings) as services:
        removed = await services.upkeep.purge()
    print(f"authgate: purged {removed} sessions.")
    return 0


async def _keys(settings: Settings, action: str) -> int:
    if action == "list":
        return await _list_keys(settings)
    from authgate.runtime import running_service

    async with running_service(settings) as services:
        state = await services.keys.rotate()
    print(
        f"created {state.algorithm} key {state.kid}; published now, "
        f"signs from {_when(state.activates_at)}"
    )
    return 0


async def _list_keys(settings: Settings) -> int:
    """The stored keys as they are, whatever the configured algorithm; creates nothing."""
    from authgate.runtime import key_states

    states = await key_states(settings)
    print("kid\tgeneration\talgorithm\tstate\tsigns from\tretires at")
    for key in states:
        print(
            f"{key.kid}\t{key.generation}\t{key.algorithm}\t{key.state}\t"
            f"{_when(key.activates_at)}\t{_when(key.retires_at)}"
        )
    algorithm = settings.signing_algorithm
    if not any(key.algorithm == algorithm for key in states):
        if algorithm == "HS256":
            print(
                "authgate: no HS256 key yet: set AUTHGATE_SIGNING_KEY (in development, "
                "`authgate serve` creates one in AUTHGATE_DATA_DIR).",
                file=sys.stderr,
            )
        else:
            print(
                f"authgate: no {algorithm} key stored yet: `authgate serve` creates the first.",
                file=sys.stderr,
            )
    return 0


def _when(epoch_seconds: int | None) -> str:
    if epoch_seconds is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_seconds))


async def _users(settings: Settings, args: argparse.Namespace) -> int:
    from authgate.admin import OPERATOR
    from authgate.runtime import running_service

    async with running_service(settings) as services:
        admin = services.admin
        if args.action == "create":
            password = _read_password()
            user_id = await admin.create_user(
                OPERATOR, CLIENT, args.username, args.email, password, args.roles or ["user"]
            )
            print(f"created user {args.username} (id {user_id})")
        elif args.action == "list":
            print("id\tusername\temail\troles\tstate")
            for user in await admin.every_user(OPERATOR):
                roles = ",".join(sorted(user.roles))
                state = "enabled" if user.enabled else "disabled"
                print(f"{user.id}\t{user.username}\t{user.email}\t{roles}\t{state}")
        else:
            try:
                if args.action == "set-roles":
                    user = await admin.set_roles(OPERATOR, CLIENT, args.username, args.roles)
                    print(f"{user.username}: {','.join(sorted(user.roles))}")
                else:
                    enabled = args.action == "enable"
                    user = await admin.set_enabled(OPERATOR, CLIENT, args.username, enabled)
                    print(f"{user.username}: {args.action}d")
            except UserNotFoundError:
                print(f"authgate: no user named {args.username}", file=sys.stderr)
                return EXIT_REFUSED
    return 0


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first and first != getpass.getpass("Repeat password: "):
            raise SystemExit("authgate: passwords do not match")
    else:
        first = sys.stdin.readline().rstrip("\r\n")
    if not first:
        from authgate.errors import InvalidInputError

        raise InvalidInputError(
            "No password given: type it at the prompt, or send it as the first line of stdin."
        )
    return first


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
