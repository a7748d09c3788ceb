"""GroupCommit on a SQLite file and on PostgreSQL: concurrent writes share one
transaction, each keeps its own effect and answer, and a group is whole or absent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from creditscore.runtime import GroupCommit, Transactions, create_schema, make_engine

metadata = MetaData()
rows = Table("rows", metadata, Column("id", Integer, primary_key=True), Column("who", String(20)))


class Interrupted(BaseException):
    """Not an Exception: what a crash or a shutdown looks like to the group."""


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url, sqlite_synchronous="FULL")
    await create_schema(engine, metadata)
    try:
        yield engine
    finally:
        Transactions.of(engine).close()
        await engine.dispose()


def insert(*ids: int, who: str = "w", fail: BaseException | None = None):  # type: ignore[no-untyped-def]
    """A write that inserts ``ids`` and then raises ``fail`` (if given)."""

    def fn(conn: Connection) -> list[int]:
        for i in ids:
            conn.execute(rows.insert().values(id=i, who=who))
        if fail is not None:
            raise fail
        return list(ids)

    return fn


async def stored(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return [r.id for r in await conn.execute(select(rows.c.id).order_by(rows.c.id))]


async def test_concurrent_writes_share_a_transaction_and_keep_their_own_answers(engine: AsyncEngine) -> None:
    group = GroupCommit(Transactions.of(engine))
    results = await asyncio.gather(*(group.write(insert(i * 10, i * 10 + 1)) for i in range(20)))
    assert results == [[i * 10, i * 10 + 1] for i in range(20)]
    # The first starts alone; the 19 that queued while it committed go together.
    assert (group.groups, group.writes) == (2, 20)
    assert await stored(engine) == sorted(i for r in results for i in r)


async def test_a_failing_write_fails_alone_and_leaves_nothing(engine: AsyncEngine) -> None:
    group = GroupCommit(Transactions.of(engine))
    calls = [
        group.write(insert(1)),
        group.write(insert(2)),
        group.write(insert(3, 4, fail=ValueError("bad request 3"))),
        group.write(insert(5)),
        group.write(insert(2)),  # a duplicate key: the database's own error, this write's alone
        group.write(insert(6)),
    ]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert outcomes[0] == [1] and outcomes[1] == [2] and outcomes[3] == [5] and outcomes[5] == [6]
    assert isinstance(outcomes[2], ValueError) and str(outcomes[2]) == "bad request 3"
    assert isinstance(outcomes[4], Exception) and not isinstance(outcomes[4], ValueError)
    assert group.groups == 2  # [1], then the five others together
    assert await stored(engine) == [1, 2, 5, 6]


async def test_an_interruption_mid_group_keeps_nothing_of_the_group(engine: AsyncEngine) -> None:
    group = GroupCommit(Transactions.of(engine))
    first = await group.write(insert(1))
    assert first == [1]

    def slow(conn: Connection) -> None:
        conn.execute(rows.insert().values(id=99, who="slow"))

    # A group in flight, then three queued writes; the second of them is
    # interrupted after the first committed its savepoint.
    in_flight = asyncio.ensure_future(group.write(slow))
    queued = [
        asyncio.ensure_future(group.write(insert(10, 11))),
        asyncio.ensure_future(group.write(insert(20, fail=Interrupted()))),
        asyncio.ensure_future(group.write(insert(30))),
    ]
    assert await in_flight is None
    done = await asyncio.gather(*queued, return_exceptions=True)
    assert all(isinstance(d, Interrupted) for d in done), done
    assert await stored(engine) == [1, 99]
    # The committer goes on with the next writes.
    assert await group.write(insert(40)) == [40]
    assert await stored(engine) == [1, 40, 99]


async def test_a_caller_gone_before_its_group_starts_is_left_out(engine: AsyncEngine) -> None:
    group = GroupCommit(Transactions.of(engine))
    ran: list[int] = []

    def tracked(i: int):  # type: ignore[no-untyped-def]
        def fn(conn: Connection) -> int:
            ran.append(i)
            conn.execute(rows.insert().values(id=i, who="t"))
            return i
        return fn

    first = asyncio.ensure_future(group.write(tracked(1)))
    gone = asyncio.ensure_future(group.write(tracked(2)))
    kept = asyncio.ensure_future(group.write(tracked(3)))
    await asyncio.sleep(0)  # every write queued; the first group started
    gone.cancel()
    assert await first == 1 and await kept == 3
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert ran == [1, 3]
    assert await stored(engine) == [1, 3]


async def test_the_sqlite_synchronous_setting_is_applied(engine: AsyncEngine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("a SQLite setting")
    tx = Transactions.of(engine)
    # 2 = FULL, on both the async engine and the one Transactions writes with.
    assert await tx.write(lambda conn: conn.exec_driver_sql("PRAGMA synchronous").scalar()) == 2
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == 2
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(rows))).scalar() == 0
    with pytest.raises(ValueError):
        make_engine("sqlite:///x.db", sqlite_synchronous="OFF")


async def test_groups_in_flight_at_once(engine: AsyncEngine) -> None:
    group = GroupCommit(Transactions.of(engine), max_in_flight=2)
    results = await asyncio.gather(*(group.write(insert(i)) for i in range(30)))
    assert results == [[i] for i in range(30)]
    # Two start alone at once; the 28 that queued meanwhile go together.
    assert (group.groups, group.writes) == (3, 30)
    assert await stored(engine) == list(range(30))


def test_a_lock_conflict_is_told_from_other_errors() -> None:
    from creditscore.runtime._group_commit import _lock_conflict

    class Driver(Exception):
        def __init__(self, sqlstate: str) -> None:
            self.sqlstate = sqlstate

    class Wrapped(Exception):
        def __init__(self, orig: Exception) -> None:
            self.orig = orig

    assert _lock_conflict(Wrapped(Driver("40P01"))) and _lock_conflict(Wrapped(Driver("40001")))
    assert not _lock_conflict(Wrapped(Driver("23505"))) and not _lock_conflict(ValueError("x"))
