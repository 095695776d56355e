"""SQLite for SQLAlchemy's asyncio engine without a thread hop: the stdlib ``sqlite3``
module called on the event loop, behind the interface SQLAlchemy's aiosqlite dialect expects.

aiosqlite runs every call in its own thread and wakes the loop with a future: three to four
hops per statement (cursor, execute, fetch, close), about twenty per refresh, each costing
more than the statement itself (docs/benchmarks.md, "Where the time goes"). The statements
authgate runs are index lookups and single-row writes to a file in the page cache; in WAL
mode with ``synchronous=NORMAL`` a commit does not wait for the disk. What can wait is
another process's write lock: the connection's own busy handler is therefore off, and a
statement that finds the database locked is retried here with asyncio sleeps, as SQLite's
busy handler would retry it, while the loop serves other requests. Still on the loop: the
automatic checkpoint (every 1,000 pages of log, inside the commit that crosses it, which
waits for the disk) and reading pages that are not in the OS's cache.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

#: SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms, then 25-100 ms, between tries.
_BACKOFF_SECONDS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025)


def _busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(error)


class Cursor:
    """An aiosqlite-shaped cursor whose calls run at once, on the caller's thread."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._cursor = connection.sqlite.cursor()

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Cursor:
        await self._connection.retrying(self._cursor.execute, sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Sequence[Sequence[Any]]) -> Cursor:
        await self._connection.retrying(self._cursor.executemany, sql, parameters)
        return self

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size or self._cursor.arraysize)

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class Connection:
    """An aiosqlite-shaped connection over one ``sqlite3`` connection, used on the loop."""

    def __init__(self, sqlite: sqlite3.Connection, *, busy_seconds: float) -> None:
        self.sqlite = sqlite
        self._busy_seconds = busy_seconds
        self._closed = False

    async def retrying(self, call: Any, *args: Any) -> Any:
        """``call(*args)``; while the database is locked by another connection, again after
        a short sleep, for up to ``busy_seconds`` (a statement refused as busy did nothing)."""
        deadline = time.monotonic() + self._busy_seconds
        tries = 0
        while True:
            try:
                return call(*args)
            except sqlite3.OperationalError as error:
                if not _busy(error) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(_BACKOFF_SECONDS[min(tries, len(_BACKOFF_SECONDS) - 1)])
            tries += 1

    @property
    def _connection(self) -> sqlite3.Connection | None:
        """What SQLAlchemy's adapter checks before a commit or rollback (aiosqlite's name):
        None once closed."""
        return None if self._closed else self.sqlite

    @property
    def isolation_level(self) -> str | None:
        return self.sqlite.isolation_level

    def cursor(self) -> Cursor:
        return Cursor(self)

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Cursor:
        return await Cursor(self).execute(sql, parameters)

    async def commit(self) -> None:
        await self.retrying(self.sqlite.commit)

    async def rollback(self) -> None:
        self.sqlite.rollback()

    async def close(self) -> None:
        self._closed = True
        self.sqlite.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self.sqlite.create_function(*args, **kwargs)

    def stop(self) -> None:
        self._closed = True
        self.sqlite.close()


def open_connection(database: str, *, busy_seconds: float, uri: bool = False) -> Connection:
    """A connection whose busy handler is off (``retrying`` waits instead), in autocommit
    mode: its user (SQLAlchemy's "begin" event, or ``Database.in_sqlite_batch``) starts
    each transaction itself."""
    sqlite = sqlite3.connect(
        database, timeout=0, isolation_level=None, check_same_thread=False, uri=uri
    )
    return Connection(sqlite, busy_seconds=busy_seconds)


async def connect(database: str, *, busy_seconds: float, uri: bool = False) -> Connection:
    """``open_connection``, as SQLAlchemy's ``async_creator``."""
    return open_connection(database, busy_seconds=busy_seconds, uri=uri)
