"""Database engines: SQLite through aiosqlite by default, PostgreSQL through asyncpg.

``DATABASE_URL`` may be written the short way (``sqlite:///var/x.db``,
``postgresql://user@host/db``); the async driver is filled in.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, DateTime, Engine, MetaData, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

__all__ = [
    "SQLITE_SYNCHRONOUS",
    "Transactions",
    "UtcDateTime",
    "begin_write",
    "create_schema",
    "dialect_insert",
    "make_engine",
    "normalize_database_url",
]


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite
    keeps no zone; PostgreSQL uses timestamptz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UtcDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def dialect_insert(dialect_name: str, table: Table) -> Any:
    """``INSERT`` for ``table`` that offers ``on_conflict_do_nothing`` /
    ``on_conflict_do_update`` on both SQLite and PostgreSQL
    (``dialect_name`` is ``engine.dialect.name``)."""
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    if dialect_name == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"unsupported database dialect {dialect_name!r}")


def normalize_database_url(url: str) -> str:
    """Fills in the async driver: sqlite -> aiosqlite, postgresql -> asyncpg."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.drivername != "sqlite+aiosqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres") and parsed.drivername != "postgresql+asyncpg":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


#: SQLite's ``synchronous`` settings ``make_engine`` accepts. In WAL mode, NORMAL
#: commits without syncing the log: a commit survives the process crashing, not
#: the machine losing power (the last commits may roll back). FULL syncs the log
#: at every commit (~1.2 ms on the reference machine): a commit answered is on disk.
SQLITE_SYNCHRONOUS = ("NORMAL", "FULL")
_SYNCHRONOUS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def make_engine(url: str, *, sqlite_synchronous: str = "NORMAL", **kwargs: Any) -> AsyncEngine:
    """An async engine for ``url``. SQLite files get their folder created, WAL
    journaling, a busy timeout and ``sqlite_synchronous`` (``SQLITE_SYNCHRONOUS``;
    ``Transactions`` of the engine use the same); ``:memory:`` shares one
    connection. PostgreSQL's own setting (``synchronous_commit``, on by default)
    is the server's."""
    if sqlite_synchronous not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"sqlite_synchronous must be one of {SQLITE_SYNCHRONOUS}, got {sqlite_synchronous!r}")
    url = normalize_database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        memory = _in_memory(parsed)
        if memory:
            kwargs.setdefault("poolclass", StaticPool)
            kwargs.setdefault("connect_args", {"check_same_thread": False})
        elif os.path.dirname(database):
            os.makedirs(os.path.dirname(database), exist_ok=True)
        engine = create_async_engine(url, **kwargs)
        _with_pragmas(engine.sync_engine, memory=memory, synchronous=sqlite_synchronous)
        _SYNCHRONOUS[engine.sync_engine] = sqlite_synchronous
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


_WRITE_LOCKS: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def begin_write(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """``engine.begin()`` for a transaction that writes. On SQLite, one such
    transaction at a time in this process (an asyncio lock per engine): SQLite
    admits one writer, and a second connection's write would wait in SQLite's busy
    handler, which sleeps in steps of up to 100 ms; here it waits its turn on the
    event loop instead. Other databases: just ``engine.begin()``."""
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            yield conn
        return
    async with _write_lock(engine), engine.begin() as conn:
        yield conn


def _write_lock(engine: AsyncEngine) -> asyncio.Lock:
    lock = _WRITE_LOCKS.get(engine.sync_engine)
    if lock is None:
        lock = _WRITE_LOCKS[engine.sync_engine] = asyncio.Lock()
    return lock


def _in_memory(url: URL) -> bool:
    """Whether a SQLite URL names an in-memory database (no file)."""
    database = url.database or ""
    return database in ("", ":memory:") or database.startswith("file::memory:")


def _with_pragmas(sync_engine: Engine, *, memory: bool, synchronous: str = "NORMAL") -> None:
    @event.listens_for(sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


T = TypeVar("T")
_TRANSACTIONS: weakref.WeakKeyDictionary[Any, Transactions] = weakref.WeakKeyDictionary()


class Transactions:
    """Runs a whole transaction written against SQLAlchemy's synchronous
    ``Connection`` (``fn(conn)``, no awaits inside) in one step, for the hot paths
    whose few statements would otherwise each pay an async driver's round trip:

    - SQLite file: in one worker thread on a synchronous (pysqlite) engine of the
      same file, so the transaction costs one hand-off to the thread instead of
      one per statement (through aiosqlite, each statement is a hand-off and a
      wake-up of the event loop: ~0.5 ms of CPU against ~20 us for the statement);
      a write takes ``begin_write``'s lock first, so it never waits in SQLite's
      busy handler behind this process's other writes;
    - anything else (PostgreSQL, SQLite in memory): ``conn.run_sync(fn)`` in an
      ordinary async transaction (``begin_write`` for writes).

    Either way ``fn`` runs in one transaction, committed when it returns and
    rolled back when it raises; ``fn`` may use savepoints
    (``conn.begin_nested()``) wherever ``savepoints`` is True (everywhere but
    SQLite in memory: the SQLite file's synchronous engine begins its
    transactions explicitly, as SAVEPOINT needs with pysqlite). ``close()`` (a
    server's stop hook) releases the thread and the synchronous engine. ``Transactions.of(engine)`` is the one
    instance of an engine (one thread per database)."""

    @classmethod
    def of(cls, engine: AsyncEngine) -> Transactions:
        found = _TRANSACTIONS.get(engine.sync_engine)
        if found is None or found._closed:
            found = _TRANSACTIONS[engine.sync_engine] = cls(engine)
        return found

    def __init__(self, engine: AsyncEngine) -> None:
        self._closed = False
        self._engine = engine
        self._sync: Engine | None = None
        self._executor: ThreadPoolExecutor | None = None
        url = engine.url
        self.savepoints = url.get_backend_name() != "sqlite" or not _in_memory(url)
        if url.get_backend_name() == "sqlite" and not _in_memory(url):
            self._sync = create_engine(url.set(drivername="sqlite+pysqlite"))
            _with_pragmas(self._sync, memory=False, synchronous=_SYNCHRONOUS.get(engine.sync_engine, "NORMAL"))
            _explicit_begin(self._sync)
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-tx")

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """``fn`` in a transaction that only reads (rolled back at the end)."""
        if self._sync is None:
            async with self._engine.connect() as conn:
                return await conn.run_sync(fn)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._read, fn)

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """``fn`` in a write transaction, committed when it returns."""
        if self._sync is None:
            async with begin_write(self._engine) as conn:
                return await conn.run_sync(fn)
        async with _write_lock(self._engine):
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._write, fn)

    def _read(self, fn: Callable[[Connection], T]) -> T:
        assert self._sync is not None
        with self._sync.connect() as conn:
            return fn(conn)

    def _write(self, fn: Callable[[Connection], T]) -> T:
        assert self._sync is not None
        with self._sync.begin() as conn:
            return fn(conn)

    @property
    def engines(self) -> list[Engine]:
        """Every engine whose connections run statements for this database (to
        watch them: ``event.listen(e, "before_cursor_execute", ...)`` on each)."""
        return [self._engine.sync_engine] + ([self._sync] if self._sync is not None else [])

    def close(self) -> None:
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._sync is not None:
            self._sync.dispose()
            self._sync = None


def _explicit_begin(sync_engine: Engine) -> None:
    """pysqlite begins a transaction only before a data change, so a SAVEPOINT
    first would start (and its RELEASE end) the transaction itself. The driver's
    own handling off, every transaction begins with BEGIN (SQLAlchemy's recipe
    for savepoints on pysqlite)."""

    @event.listens_for(sync_engine, "connect")
    def _autocommit_driver(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")


async def create_schema(engine: AsyncEngine, metadata: MetaData) -> None:
    """Creates missing tables straight from ``metadata``: for tests and tools.
    Services get their schema from their migrations (``prepare_schema``), which
    a test keeps identical to the metadata."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
