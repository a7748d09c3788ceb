"""Each service's migrations make exactly its store's schema (Alembic's
autogenerate compare finds no difference), on SQLite and PostgreSQL; upgrades
are idempotent, reversible, adopt a matching pre-migration database and refuse a
different one; ``python -m <service> migrate`` is the command a Job runs."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest
from alembic import command
from sqlalchemy import Column, Integer, MetaData, Table, inspect

from creditscore.runtime import (
    Migrations,
    SchemaError,
    check_schema,
    create_schema,
    make_engine,
    prepare_schema,
    run_migrate,
    schema_differences,
    upgrade_schema,
)

SERVICES = ("consent_service", "ingest_service", "feature_service")


def migrations_of(package: str) -> Migrations:
    return importlib.import_module(f"{package}.migrations").MIGRATIONS


@pytest.fixture
async def engine(database_url):
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def tables(engine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def differences(engine, migrations: Migrations) -> list:
    async with engine.connect() as conn:
        return await conn.run_sync(schema_differences, migrations.metadata)


@pytest.mark.parametrize("package", SERVICES)
async def test_the_migrations_make_exactly_the_stores_schema(engine, package):
    migrations = migrations_of(package)
    head = migrations.head()
    assert await upgrade_schema(engine, migrations) == (None, head)
    assert await tables(engine) == set(migrations.metadata.tables) | {"alembic_version"}
    assert await differences(engine, migrations) == []
    assert await check_schema(engine, migrations) == head
    # Again: nothing to do.
    assert await upgrade_schema(engine, migrations) == (head, head)


@pytest.mark.parametrize("package", SERVICES)
async def test_the_migrations_go_back_down_to_nothing(engine, package):
    migrations = migrations_of(package)
    await upgrade_schema(engine, migrations)

    def downgrade(sync) -> None:
        config = migrations.config()
        config.attributes["connection"] = sync
        command.downgrade(config, "base")

    async with engine.begin() as conn:
        await conn.run_sync(downgrade)
    assert await tables(engine) == {"alembic_version"}
    assert await upgrade_schema(engine, migrations) == (None, migrations.head())


async def test_the_comparison_sees_a_schema_that_differs(engine):
    """The check above can fail: a column the metadata has and the database lacks
    is a difference."""
    migrations = migrations_of("ingest_service")
    await upgrade_schema(engine, migrations)
    wider = MetaData()
    for table in migrations.metadata.tables.values():
        table.to_metadata(wider)
    wider.tables["records"].append_column(Column("extra", Integer, nullable=True))
    found = await differences(engine, Migrations("ingest_service", migrations.script_location, wider))
    assert [d[0] for d in found] == ["add_column"] and found[0][3].name == "extra"


async def test_a_database_made_before_migrations_is_adopted_when_it_matches(engine):
    migrations = migrations_of("feature_service")
    await create_schema(engine, migrations.metadata)
    assert await upgrade_schema(engine, migrations) == (None, migrations.head())
    assert await check_schema(engine, migrations) == migrations.head()


async def test_a_database_made_before_migrations_that_differs_is_refused(engine):
    migrations = migrations_of("ingest_service")
    old = MetaData()
    Table("records", old, Column("producer_id", Integer, primary_key=True))
    await create_schema(engine, old)
    with pytest.raises(SchemaError, match="made without migrations"):
        await upgrade_schema(engine, migrations)
    assert await tables(engine) == {"records"}  # nothing half-done


async def test_without_auto_migrate_a_service_refuses_an_old_database(engine):
    migrations = migrations_of("consent_service")
    with pytest.raises(SchemaError, match="python -m consent_service migrate"):
        await prepare_schema(engine, migrations, auto_migrate=False)
    await prepare_schema(engine, migrations, auto_migrate=True)
    await prepare_schema(engine, migrations, auto_migrate=False)


def _migrate(package: str, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", package, "migrate", *args],
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True, text=True, timeout=60,
    )


def test_the_migrate_command_upgrades_then_reports_current(tmp_path):
    url = f"sqlite:///{tmp_path}/ingest.db"
    done = _migrate("ingest_service", url)
    assert done.returncode == 0, done.stderr
    assert "migrated from empty to ingest_0001" in done.stdout
    check = _migrate("ingest_service", url, "--check")
    assert check.returncode == 0 and "(current)" in check.stdout


def test_run_migrate_checks_refuses_and_parses(tmp_path, capsys):
    migrations = migrations_of("feature_service")
    url = f"sqlite:///{tmp_path}/feature.db"
    assert run_migrate("feature_service", url, migrations, ["--check"]) == 1
    assert "python -m feature_service migrate" in capsys.readouterr().err
    assert run_migrate("feature_service", url, migrations, []) == 0
    assert run_migrate("feature_service", url, migrations, []) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert run_migrate("feature_service", url, migrations, ["--bogus"]) == 2
