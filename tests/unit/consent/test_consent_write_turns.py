"""Every write transaction of the consent store takes the process's SQLite write
turn (``begin_write``). Purge steps went around it and met the group commit in
SQLite's busy handler: under load (``python -m bench.hostile``) the purge worker
failed every round and a sign-up answered INTERNAL, "database is locked". Here
SQLite's busy handler gets no time at all (``busy_timeout=0``): a write made
while another holds the database must wait its turn, not fail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from consent_service.store import ConsentStore
from creditscore.runtime import begin_write, make_engine, utcnow


@pytest.fixture
async def impatient(tmp_path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite:///{tmp_path}/consent.db")

    @event.listens_for(engine.sync_engine, "connect")
    def _no_busy_wait(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()

    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.mark.parametrize("step", ["release", "fail", "complete"])
async def test_a_purge_step_write_waits_its_turn_instead_of_failing(impatient: AsyncEngine, step: str) -> None:
    store = await ConsentStore.open(impatient)
    now = utcnow()
    writes = {
        "release": lambda: store.release_step("del_x", 0, now),
        "fail": lambda: store.fail_step("del_x", 0, 1, now, "boom"),
        "complete": lambda: store.complete_step("del_x", 0, [], now),
    }
    async with begin_write(impatient) as conn:
        await conn.execute(text("CREATE TABLE held (x INTEGER)"))
        await conn.execute(text("INSERT INTO held VALUES (1)"))  # the database's write lock is held
        waiting = asyncio.create_task(writes[step]())
        await asyncio.sleep(0.2)
        assert not waiting.done()  # waiting its turn, not refused by SQLite
    await asyncio.wait_for(waiting, 10)  # and done once the turn is free
