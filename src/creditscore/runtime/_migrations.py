"""Schema migrations (Alembic) for every service's store, in one place.

Each service keeps an Alembic environment beside its store
(``<service>/migrations/``: ``env.py``, ``versions/``) and describes it with a
``Migrations`` (where the scripts are, the metadata they must produce). Then:

- on start, ``prepare_schema`` upgrades the database to the newest revision
  (``AUTO_MIGRATE=true``, the default), or only checks that it is there and
  refuses to start otherwise (``AUTO_MIGRATE=false``, when a Kubernetes Job runs
  the migration before the pods start);
- ``python -m <service> migrate`` (``run_migrate``) upgrades and exits: what that
  Job runs. ``migrate --check`` changes nothing and exits 1 unless the database
  is at the newest revision.

An upgrade runs in one transaction (PostgreSQL's DDL is transactional) under an
advisory lock, so replicas starting together migrate once. A database whose
tables a service created before it had migrations is adopted: stamped at the
newest revision when its schema is exactly what that revision makes, or at the
service's baseline revision (``Migrations.baseline``: the first revision, whose
schema those releases made) when it is exactly that one, and then upgraded;
refused with the differences otherwise.

``env.py`` of each service is two lines: it calls ``run_migrations_env`` with the
store's metadata, which runs the scripts on the connection handed in (or, from
the ``alembic`` command line, on an engine of ``sqlalchemy.url``, or writes SQL
offline).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ._db import make_engine, normalize_database_url

__all__ = [
    "Migrations",
    "SchemaError",
    "check_schema",
    "prepare_schema",
    "run_migrate",
    "run_migrations_env",
    "schema_differences",
    "upgrade_schema",
]

log = logging.getLogger("creditscore.runtime.migrations")


class SchemaError(RuntimeError):
    """The database's schema is not the one this build needs, and was not (or
    could not be) migrated: the message says what to do."""


@dataclass(frozen=True)
class Migrations:
    """A service's migration environment: its name (for messages and the lock),
    the folder holding ``env.py`` and ``versions/``, and the metadata the newest
    revision produces (the store's). ``baseline``, when given, is the revision
    that databases made before migrations are at, and a function making the
    metadata of that revision's schema (for adopting them)."""

    service: str
    script_location: Path
    metadata: MetaData
    baseline: tuple[str, Callable[[], MetaData]] | None = None

    def config(self, url: str | None = None) -> Any:
        """An ``alembic.config.Config`` for this environment (no ini file)."""
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(self.script_location))
        if url is not None:
            config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        return config

    def head(self) -> str:
        """The newest revision of the scripts."""
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(self.config()).get_current_head()
        if head is None:
            raise SchemaError(f"{self.service}: no migration scripts in {self.script_location}")
        return head

    def lock_key(self) -> int:
        """A stable 63-bit key for PostgreSQL's advisory lock of this service."""
        digest = hashlib.sha256(f"creditscore.migrate.{self.service}".encode()).digest()
        return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


def schema_differences(connection: Connection, metadata: MetaData) -> list[Any]:
    """What Alembic's autogenerate sees between the database on ``connection``
    and ``metadata`` (tables, columns, types, nullability, indexes): empty when
    the schema is exactly the metadata's. Tables the metadata does not know
    (``alembic_version``, another service's) are not compared."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    known = set(metadata.tables)

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table":
            return name in known
        return True

    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": include_object}
    )
    return list(compare_metadata(context, metadata))


def _current(connection: Connection) -> str | None:
    from alembic.migration import MigrationContext

    current: str | None = MigrationContext.configure(connection).get_current_revision()
    return current


def _upgrade(connection: Connection, migrations: Migrations, revision: str) -> tuple[str | None, str]:
    """Runs on the sync side of an async connection: adopts a pre-migration
    database when it matches, then upgrades. Returns (revision before, after)."""
    from alembic import command

    config = migrations.config()
    config.attributes["connection"] = connection
    before = _current(connection)
    if before is None:
        present = set(inspect(connection).get_table_names()) & set(migrations.metadata.tables)
        if present:
            differences = schema_differences(connection, migrations.metadata)
            adopt_at = "head"
            if differences and migrations.baseline is not None:
                baseline, baseline_metadata = migrations.baseline
                if not schema_differences(connection, baseline_metadata()):
                    differences, adopt_at = [], baseline
            if differences:
                raise SchemaError(
                    f"{migrations.service}: the database holds tables ({', '.join(sorted(present))}) "
                    "made without migrations, and they differ from this build's schema: "
                    f"{differences}. Move the data to a new database, or drop these tables."
                )
            log.info("%s: adopting tables made without migrations at revision %s", migrations.service, adopt_at)
            command.stamp(config, adopt_at)
    command.upgrade(config, revision)
    after = _current(connection)
    assert after is not None
    return before, after


async def upgrade_schema(
    engine: AsyncEngine, migrations: Migrations, revision: str = "head"
) -> tuple[str | None, str]:
    """Upgrades the database of ``engine`` to ``revision`` (the newest by default)
    in one transaction, under an advisory lock on PostgreSQL. Returns the
    revision before (None for an empty database) and after. Raises
    ``SchemaError`` for tables made without migrations that differ."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": migrations.lock_key()})
        before, after = await conn.run_sync(_upgrade, migrations, revision)
    if before != after:
        log.info("%s: database migrated from %s to %s", migrations.service, before or "empty", after)
    return before, after


async def check_schema(engine: AsyncEngine, migrations: Migrations) -> str:
    """The database's revision, when it is the newest; ``SchemaError`` otherwise
    (saying how to migrate)."""
    async with engine.connect() as conn:
        current = await conn.run_sync(_current)
    head = migrations.head()
    if current != head:
        raise SchemaError(
            f"{migrations.service}: the database is at revision {current or 'none (empty)'}, "
            f"this build needs {head}: run `python -m {migrations.service} migrate` "
            "(or start with AUTO_MIGRATE=true)"
        )
    return current


async def prepare_schema(engine: AsyncEngine, migrations: Migrations, *, auto_migrate: bool) -> None:
    """What a service does with its database on start: upgrade it
    (``auto_migrate``) or check that it is at the newest revision."""
    if auto_migrate:
        await upgrade_schema(engine, migrations)
    else:
        await check_schema(engine, migrations)


def run_migrations_env(metadata: MetaData) -> None:
    """The body of a service's ``env.py``: runs the migration scripts on the
    connection the caller handed in (``config.attributes["connection"]``, as
    ``upgrade_schema`` does), or, from the ``alembic`` command line, on a new
    async engine of ``sqlalchemy.url``, or offline (``--sql``) as SQL text."""
    from alembic import context

    config = context.config

    def run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            compare_type=True,
            # SQLite alters tables by copying them; later revisions need the batch mode.
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()

    if context.is_offline_mode():
        context.configure(
            url=config.get_main_option("sqlalchemy.url"),
            target_metadata=metadata,
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return

    async def standalone() -> None:
        url = config.get_main_option("sqlalchemy.url")
        if not url:
            raise SchemaError("set sqlalchemy.url (the service's DATABASE_URL) to migrate")
        engine = make_engine(normalize_database_url(url))
        try:
            async with engine.begin() as conn:
                await conn.run_sync(run)
        finally:
            await engine.dispose()

    asyncio.run(standalone())


def run_migrate(
    service: str, database_url: str, migrations: Migrations, argv: Sequence[str] = ()
) -> int:
    """``python -m <service> migrate [--check]``: upgrade the database of
    ``database_url`` to the newest revision (or, with ``--check``, only say
    whether it is there) and return the exit status: 0 done / current, 1 not
    current or refused, 2 bad arguments."""
    import argparse

    parser = argparse.ArgumentParser(
        prog=f"python -m {service} migrate",
        description=f"Bring the {service} database (DATABASE_URL) to this build's schema.",
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 unless the database is current"
    )
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")

    async def run() -> str:
        engine = make_engine(database_url)
        try:
            if args.check:
                return f"{service}: database at revision {await check_schema(engine, migrations)} (current)"
            before, after = await upgrade_schema(engine, migrations)
            if before == after:
                return f"{service}: database at revision {after} (current, nothing to do)"
            return f"{service}: database migrated from {before or 'empty'} to {after}"
        finally:
            await engine.dispose()

    try:
        message = asyncio.run(run())
    except SchemaError as error:
        print(str(error), file=sys.stderr)
        return 1
    print(message, flush=True)
    return 0
