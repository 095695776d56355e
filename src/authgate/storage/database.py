"""Engines, transactions and the translation of driver errors into authgate's."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from authgate.errors import ConfigurationError, DatabaseRefusedError, StorageUnavailableError
from authgate.private_files import create_private_file, make_private_dir
from authgate.storage import sqlite_driver
from authgate.storage.refresh_tokens import RefreshTokens
from authgate.storage.repositories import AuditLog, Sessions, SigningKeyRecords, Users

T = TypeVar("T")

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "mysql": "mysql+asyncmy",
    "mariadb": "mysql+asyncmy",
}


def async_url(url: str) -> sa.URL:
    """Map a plain URL (``postgresql://…``) to the async driver authgate uses for it."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigurationError("AUTHGATE_DATABASE_URL is not a database URL.") from None
    backend = parsed.drivername.split("+")[0]
    if backend not in _DRIVERS:
        raise ConfigurationError(
            f"AUTHGATE_DATABASE_URL: unsupported database '{backend}' "
            "(use sqlite, postgresql or mysql)."
        )
    parsed = parsed.set(drivername=_DRIVERS[backend])
    if backend in ("mysql", "mariadb") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def create_engine(
    url: str, *, pool_size: int = 10, timeout_seconds: int = 3, make_directory: bool = False
) -> AsyncEngine:
    """``make_directory``: create a SQLite file's missing folder (the data directory's)."""
    target = async_url(url)
    backend = target.get_backend_name()
    # No overflow: the pool closes an overflow connection it gets back while its queue looks
    # full, which under more concurrent requests than connections is nearly every time, so
    # each use opened a new one (docs/benchmarks.md).
    pooled: dict[str, Any] = {
        "pool_size": pool_size,
        "max_overflow": 0,
        "pool_timeout": timeout_seconds,
    }
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        database = target.database or ":memory:"
        uri = bool(target.query.get("uri"))
        # The filename as SQLAlchemy's dialect would open it (a URI keeps its query).
        filename = target.get_dialect()().create_connect_args(target)[0][0]
        kwargs["async_creator"] = partial(
            sqlite_driver.connect, filename, busy_seconds=timeout_seconds, uri=uri
        )
        if database != ":memory:":
            kwargs.update(pooled)
            if not uri:  # a URI filename is SQLite's to open
                _create_sqlite_file(Path(database), make_directory=make_directory)
    else:
        kwargs.update(pooled, pool_recycle=1800)
        key = "timeout" if backend == "postgresql" else "connect_timeout"
        kwargs["connect_args"] = {key: timeout_seconds}
    engine = create_async_engine(target, **kwargs)
    if backend == "sqlite":
        _tune_sqlite(engine)
    if backend == "postgresql":
        _close_invalidated_at_once(engine)
    return engine


def _create_sqlite_file(path: Path, *, make_directory: bool) -> None:
    """The database file for its owner only (0600, in a 0700 folder if we make it); SQLite
    gives its -wal and -shm files the database file's mode.

    Only the data directory is made when missing: a folder named by a URL that does not exist
    is more likely a mistyped path (``sqlite:///`` is relative to the working directory) than
    a wish for new folders wherever the server happens to start.
    """
    if not make_directory and not path.parent.is_dir():
        raise ConfigurationError(
            f"The folder {path.parent.resolve()} of the SQLite database does not exist: create "
            "it, or fix AUTHGATE_DATABASE_URL (sqlite:///relative/path is relative to the working "
            "directory, sqlite:////absolute/path is absolute)."
        )
    try:
        make_private_dir(path.parent)
        create_private_file(path)
    except OSError as error:
        raise ConfigurationError(
            f"Cannot create {path} for the SQLite database: {error.strerror} "
            "(see AUTHGATE_DATABASE_URL and AUTHGATE_DATA_DIR)."
        ) from None


def _close_invalidated_at_once(engine: AsyncEngine) -> None:
    """Drop an invalidated asyncpg connection without a goodbye.

    SQLAlchemy first tries a polite close, which waits up to 2 s for a server that, after a
    timed-out statement, is likely not answering; that wait would come on top of
    AUTHGATE_DB_TIMEOUT_SECONDS.
    """

    @event.listens_for(engine.sync_engine, "invalidate")
    def _on_invalidate(dbapi_connection: Any, _record: Any, _error: Any) -> None:
        dbapi_connection.driver_connection.terminate()


_SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON")


def _tune_sqlite(engine: AsyncEngine) -> None:
    """WAL, foreign keys, and ``BEGIN IMMEDIATE`` so writers queue instead of failing.

    The connections come from ``sqlite_driver``: in autocommit mode (SQLAlchemy's "begin"
    event, not the driver, starts transactions), without a busy handler (the driver waits
    for another process's lock without blocking the event loop).
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # A deferred transaction that reads and then writes fails at once with
        # SQLITE_BUSY when another process wrote in between; IMMEDIATE waits.
        # Read-only units of work take no write lock.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


READ_ONLY = "authgate_read_only"


@asynccontextmanager
async def unavailable_as_error(url: sa.URL | None = None) -> AsyncIterator[None]:
    """Translate "the database did not answer" from any driver into StorageUnavailableError,
    and a refusal no retry mends (``_refusal``) into DatabaseRefusedError; both name ``url``
    (without its password) and the driver's reason in their ``detail``."""
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError, OSError) as error:
        raise _translated(error, url) from error
    except sa.exc.DBAPIError as error:
        if error.connection_invalidated or _refusal(error):
            raise _translated(error, url) from error
        raise


#: MySQL/MariaDB error numbers that configuration must fix: access denied to a database,
#: access denied for a user (wrong password, unknown user), unknown database, unknown host.
_MYSQL_REFUSALS = frozenset({1044, 1045, 1049, 1698, 2005})


def _translated(error: BaseException, url: sa.URL | None) -> StorageUnavailableError:
    reason = _reason(error)
    detail = reason if url is None else f"cannot use the database {shown_url(url)}: {reason}"
    return DatabaseRefusedError(detail) if _refusal(error) else StorageUnavailableError(detail)


def shown_url(url: sa.URL) -> str:
    """The URL as configured (the plain scheme), without its password or query options."""
    return url.set(drivername=url.get_backend_name(), query={}).render_as_string(hide_password=True)


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and its causes: SQLAlchemy's, the adapter's, the driver's, the socket's."""
    links: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and link not in links:
        links.append(link)
        link = link.__cause__ or link.__context__
    return links


def _driver_error(error: BaseException) -> BaseException:
    return error.orig if isinstance(error, sa.exc.DBAPIError) and error.orig else error


def _refusal(error: BaseException) -> bool:
    """Whether the database (or the resolver) refused what configuration names."""
    for link in _chain(error):
        if isinstance(link, socket.gaierror):
            return link.errno != socket.EAI_AGAIN  # "try again" is the resolver's hiccup
        if isinstance(link, OSError):
            return False
    driver = _driver_error(error)
    code = driver.args[0] if driver.args else None
    if isinstance(code, int):  # MySQL and MariaDB: (number, message)
        return code in _MYSQL_REFUSALS
    # PostgreSQL: class 28 (invalid authorization: unknown role, wrong password) and
    # 3D000 (invalid catalog name: no such database).
    sqlstate = str(getattr(driver, "sqlstate", None) or getattr(driver, "pgcode", None) or "")
    return sqlstate.startswith("28") or sqlstate == "3D000"


def _reason(error: BaseException) -> str:
    """The driver's own sentence, or a plain one for the socket's failures."""
    for link in _chain(error):
        if isinstance(link, socket.gaierror):
            return f"unknown host name ({link.strerror})"
        if isinstance(link, ConnectionRefusedError):
            return "connection refused"
        if isinstance(link, TimeoutError):
            return "timed out"
        if isinstance(link, OSError) and link.strerror:
            return link.strerror
    driver = _driver_error(error)
    if len(driver.args) == 2 and isinstance(driver.args[0], int):
        return str(driver.args[1])  # MySQL's (number, message)
    return str(driver).splitlines()[0] if str(driver) else type(driver).__name__


@dataclass(frozen=True)
class DriverStatement:
    """A statement compiled once for the driver: its SQL and the order of its parameters
    (with the value of each fixed in the statement, such as a constant of the rule)."""

    sql: str
    names: tuple[str, ...]
    fixed: Mapping[str, object]

    @classmethod
    def compiled(cls, compiled: sa.engine.Compiled) -> DriverStatement:
        names = tuple(getattr(compiled, "positiontup", None) or ())
        binds = getattr(compiled, "binds", {})
        fixed = {name: binds[name].value for name in names if not binds[name].required}
        return cls(str(compiled), names, fixed)

    def arguments(self, params: Mapping[str, object]) -> list[object]:
        fixed = self.fixed
        if not fixed:
            return [params[name] for name in self.names]
        return [fixed[name] if name in fixed else params[name] for name in self.names]


@dataclass(frozen=True)
class Transaction:
    """One unit of work: repositories over a single connection and transaction."""

    connection: AsyncConnection
    users: Users
    sessions: Sessions
    refresh_tokens: RefreshTokens
    signing_keys: SigningKeyRecords
    audit: AuditLog


class Database:
    """The service's handle on storage: opens transactions, hides engines and drivers.

    Every unit of work (a transaction, or one statement on the driver) finishes within
    ``timeout_seconds``, from waiting for a connection to the commit, or fails with
    StorageUnavailableError: a database that stops answering mid-query (a partition, a
    lock held elsewhere) costs a request that long, not as long as the partition lasts.
    """

    def __init__(self, engine: AsyncEngine, *, timeout_seconds: float = 3) -> None:
        self.engine = engine
        self.timeout_seconds = timeout_seconds
        # SQLite has one writer: queue this process's writers here, where waiting is cheap,
        # instead of in SQLite's busy loop (which sleeps between retries and times out).
        self._writers = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        # The fast paths' own SQLite connection (``in_sqlite_batch``), opened at first use;
        # only for a file (a second connection to ``:memory:`` would be another database).
        self._own_sqlite: sqlite_driver.Connection | None = None
        self._own_sqlite_file = _sqlite_file(engine)
        self._batch: (
            list[tuple[Callable[[sqlite3.Connection], Awaitable[Any]], asyncio.Future[Any]]] | None
        ) = None
        self._flushes: set[asyncio.Future[None]] = set()

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        pool_size: int = 10,
        timeout_seconds: int = 3,
        make_directory: bool = False,
    ) -> Database:
        engine = create_engine(
            url, pool_size=pool_size, timeout_seconds=timeout_seconds, make_directory=make_directory
        )
        return cls(engine, timeout_seconds=timeout_seconds)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def bounded(self) -> AsyncIterator[None]:
        """Fail with StorageUnavailableError once ``timeout_seconds`` have passed.

        The deadline cancels whatever awaits the database at that moment. SQLAlchemy
        invalidates a connection whose statement was cancelled (it is closed at once, never
        rolled back over a silent network nor handed to the next request), and the pool
        opens a new one when the database answers again.

        anyio's deadline, not ``asyncio.timeout``: it cancels again at every await until the
        block is left. ``asyncio.timeout`` cancels once, and Python 3.11's ``asyncio.wait_for``
        (which asyncmy wraps around connecting) can swallow that one cancellation when the
        connection completes at the same moment; the handshake that follows then waited on a
        silent network for good (seen once in CI, MariaDB behind a black-holed relay).
        """
        try:
            with anyio.fail_after(self.timeout_seconds):
                yield
        except TimeoutError as error:
            raise StorageUnavailableError(
                f"cannot use the database {shown_url(self.engine.url)}: "
                f"no answer within {self.timeout_seconds:g} s"
            ) from error

    @asynccontextmanager
    async def transaction(self, *, read_only: bool = False) -> AsyncIterator[Transaction]:
        """Commit on success, roll back on any exception; driver failures become 503s.

        ``read_only`` promises no writes, so SQLite need not take its write lock. The whole
        unit of work is bounded (``bounded``), waiting for this process's SQLite writers too.
        """
        queue = self._writers if self._writers is not None and not read_only else None
        async with (
            self.bounded(),
            queue or contextlib.nullcontext(),
            unavailable_as_error(self.engine.url),
            self.engine.connect() as connection,
        ):
            if read_only:
                await connection.execution_options(**{READ_ONLY: True})
            async with connection.begin():
                yield Transaction(
                    connection=connection,
                    users=Users(connection),
                    sessions=Sessions(connection),
                    refresh_tokens=RefreshTokens(connection),
                    signing_keys=SigningKeyRecords(connection),
                    audit=AuditLog(connection),
                )

    def on_driver(self, statement: sa.Select[Any]) -> DriverStatement | None:
        """``statement`` compiled for ``fetch_on_driver``; None unless the backend is
        PostgreSQL (asyncpg), the one driver it runs on."""
        if self.backend != "postgresql":
            return None
        return DriverStatement.compiled(statement.compile(dialect=self.engine.dialect))

    async def fetch_on_driver(
        self, statement: DriverStatement, params: Mapping[str, object]
    ) -> list[Any]:
        """The rows of one statement run by the driver on a pooled connection, outside any
        transaction, so it must be atomic by itself (one statement is): no BEGIN, no COMMIT,
        and none of SQLAlchemy's work per statement, which cost more than the database's
        (docs/benchmarks.md). A lost connection becomes StorageUnavailableError, as
        elsewhere; the unit of work is bounded like a transaction."""
        async with self.bounded(), unavailable_as_error(self.engine.url):
            pooled = await self.engine.raw_connection()
            driver: Any = pooled.driver_connection
            try:
                rows: list[Any] = await driver.fetch(statement.sql, *statement.arguments(params))
            except BaseException as error:
                lost = isinstance(error, Exception) and driver.is_closed()
                # A failed or interrupted statement leaves the connection in doubt: discard
                # it (which frees its place in the pool) rather than hand it on.
                pooled.invalidate()
                if lost:
                    raise StorageUnavailableError() from error
                raise
            # SQLAlchemy began no transaction on it, so returning it needs no round trip.
            pooled.close()
            return rows

    def on_sqlite(
        self, statement: sa.Select[Any] | sa.UpdateBase, column_keys: Sequence[str] | None = None
    ) -> DriverStatement | None:
        """``statement`` compiled once for ``in_sqlite_batch`` (positional parameters; an
        INSERT's values are ``column_keys``); None unless the database is a SQLite file."""
        if self._own_sqlite_file is None:
            return None
        return DriverStatement.compiled(
            statement.compile(dialect=self.engine.dialect, column_keys=column_keys)
        )

    async def in_sqlite_batch(self, work: Callable[[sqlite3.Connection], Awaitable[T]]) -> T:
        """``work``'s result, run on this process's own ``sqlite3`` connection with the
        statements ``on_sqlite`` compiled: no pool checkout and none of SQLAlchemy's work
        per statement (docs/benchmarks.md).

        Group commit: the works queued in the same turn of the event loop (and while their
        batch waits for the writers' lock) share one ``BEGIN IMMEDIATE`` ... ``COMMIT``,
        each inside a savepoint of its own, so one that fails is rolled back alone and
        fails alone. ``work`` must not wait for anything else (it holds the lock). The wait
        is bounded like ``transaction``; a work whose caller gave up before its batch began
        is skipped. A database locked past the deadline, or failing, is
        StorageUnavailableError for the whole batch.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._batch is None:
            self._batch = []
            flush = asyncio.ensure_future(self._flush_batch())
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)
        self._batch.append((work, future))
        async with self.bounded():
            result: T = await future
            return result

    def read_on_sqlite(
        self, statement: DriverStatement, params: Mapping[str, object]
    ) -> list[Any] | None:
        """The rows of a read on this process's own ``sqlite3`` connection, at once (a WAL
        reader takes no lock, so nothing to bound); None when it cannot answer now (a batch
        holds the connection in a transaction, or the file is busy): use ``in_sqlite_batch``."""
        try:
            own = self._own_sqlite or self._open_own_sqlite()
            if own.sqlite.in_transaction:
                return None
            return own.sqlite.execute(statement.sql, statement.arguments(params)).fetchall()
        except sqlite3.OperationalError:
            return None

    async def _flush_batch(self) -> None:
        assert self._writers is not None  # noqa: S101 - on_sqlite gave the caller statements
        async with self._writers:
            batch, self._batch = self._batch or [], None
            batch = [(work, future) for work, future in batch if not future.done()]
            if not batch:
                return
            try:
                own = self._own_sqlite or self._open_own_sqlite()
            except sqlite3.OperationalError as refused:
                for _work, future in batch:
                    if not future.done():
                        future.set_exception(self._unavailable(refused))
                return
            sqlite = own.sqlite
            done: list[tuple[asyncio.Future[Any], object, BaseException | None]] = []
            try:
                with anyio.fail_after(self.timeout_seconds):
                    await own.retrying(sqlite.execute, "BEGIN IMMEDIATE")
                for work, future in batch:
                    sqlite.execute("SAVEPOINT work")
                    try:
                        done.append((future, await work(sqlite), None))
                    except Exception as failed:  # this work's failure only
                        sqlite.execute("ROLLBACK TO work")
                        done.append((future, None, self._unavailable(failed)))
                    sqlite.execute("RELEASE work")
                with anyio.fail_after(self.timeout_seconds):
                    await own.retrying(sqlite.commit)
            except (sqlite3.OperationalError, TimeoutError) as refused:
                failure = self._unavailable(refused)
                done = [(future, None, failure) for _work, future in batch]
            finally:
                if sqlite.in_transaction:  # failed, or cancelled while busy
                    sqlite.rollback()
        for future, result, error in done:
            if future.done():
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    def _unavailable(self, error: BaseException) -> BaseException:
        """StorageUnavailableError for what ``unavailable_as_error`` would translate."""
        if isinstance(error, sqlite3.OperationalError):
            return _translated(error, self.engine.url)
        if isinstance(error, TimeoutError):
            return StorageUnavailableError(
                f"cannot use the database {shown_url(self.engine.url)}: "
                f"no answer within {self.timeout_seconds:g} s"
            )
        return error

    def _open_own_sqlite(self) -> sqlite_driver.Connection:
        assert self._own_sqlite_file is not None  # noqa: S101 - on_sqlite checked
        filename, uri = self._own_sqlite_file
        own = sqlite_driver.open_connection(filename, busy_seconds=self.timeout_seconds, uri=uri)
        own.sqlite.row_factory = sqlite3.Row
        try:
            for pragma in _SQLITE_PRAGMAS:
                own.sqlite.execute(pragma)
        except sqlite3.OperationalError:
            own.stop()  # the next use tries again
            raise
        self._own_sqlite = own
        return own

    async def ping(self) -> None:
        async with self.transaction(read_only=True) as tx:
            await tx.connection.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        if self._own_sqlite is not None:
            self._own_sqlite.stop()
            self._own_sqlite = None
        await self.engine.dispose()


def _sqlite_file(engine: AsyncEngine) -> tuple[str, bool] | None:
    """The filename SQLAlchemy's dialect opens for a SQLite file, and whether it is a URI;
    None for any other database, and for ``:memory:``."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or (url.database or ":memory:") == ":memory:":
        return None
    filename: str = engine.dialect.create_connect_args(url)[0][0]
    return filename, bool(url.query.get("uri"))
