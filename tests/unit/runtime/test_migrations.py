"""Each service's migrations make exactly its store's schema (Alembic's
autogenerate compare finds no difference), on SQLite and PostgreSQL; upgrades
are idempotent, reversible, adopt a matching pre-migration database and refuse a
different one; ``python -m <service> migrate`` is the command a Job runs."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import JSON, BigInteger, Column, Double, Index, Integer, MetaData, String, Table, inspect, text

from creditscore.runtime import (
    Migrations,
    SchemaError,
    UtcDateTime,
    check_schema,
    create_schema,
    make_engine,
    prepare_schema,
    run_migrate,
    schema_differences,
    upgrade_schema,
)
from scoring_service.store import ScoreRole, ScoreStore, model_events

SERVICES = ("consent_service", "ingest_service", "feature_service", "scoring_service")


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


@pytest.mark.parametrize("package", SERVICES)
async def test_a_database_made_before_migrations_is_adopted_when_it_matches(engine, package):
    migrations = migrations_of(package)
    await create_schema(engine, migrations.metadata)
    assert await upgrade_schema(engine, migrations) == (None, migrations.head())
    assert await check_schema(engine, migrations) == migrations.head()


def first_score_history(metadata: MetaData) -> Table:
    """``score_history`` as the scoring service's first release made it: without
    the role, improvements and shadow_of columns and the version index."""
    return Table(
        "score_history",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("subject_id", String(64), nullable=False),
        Column("model_version", String(64), nullable=False),
        Column("state", String(32), nullable=False),
        Column("score", Integer, nullable=True),
        Column("band", String(16), nullable=False),
        Column("probability_of_bad", Double, nullable=True),
        Column("coverage", Double, nullable=False),
        Column("reasons", JSON, nullable=False),
        Column("features", JSON, nullable=False),
        Column("score_time", UtcDateTime, nullable=False),
        Index("ix_score_history_subject_time", "subject_id", "score_time"),
    )


async def test_a_scoring_database_its_previous_release_upgraded_in_place_is_adopted_with_its_scores(engine):
    """Before migrations the scoring service added its second release's columns
    and index to an older ``score_history`` on start: such a database is exactly
    the initial revision's, and keeps its scores."""
    old = MetaData()
    history = first_score_history(old)
    model_events.to_metadata(old)
    await create_schema(engine, old)
    when = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    async with engine.begin() as conn:
        await conn.execute(history.insert().values(
            id=7, subject_id="s-1", model_version="1.0.0", state="SCORED", score=600, band="GOOD",
            probability_of_bad=0.5, coverage=1.0, reasons=[], features={"identity_verified": 1.0}, score_time=when,
        ))
        # What the second release ran on start (its ScoreStore.create_schema).
        for ddl in ("role VARCHAR(16) NOT NULL DEFAULT 'CHAMPION'", "improvements JSON", "shadow_of BIGINT"):
            await conn.execute(text(f"ALTER TABLE score_history ADD COLUMN {ddl}"))
        await conn.execute(
            text("CREATE INDEX ix_score_history_version_time ON score_history (model_version, score_time)")
        )
    migrations = migrations_of("scoring_service")
    assert await upgrade_schema(engine, migrations) == (None, migrations.head())
    kept = await ScoreStore(engine).get(7)
    assert kept is not None
    assert (kept.role, kept.improvements, kept.shadow_of, kept.score, kept.score_time) == (
        ScoreRole.CHAMPION, (), None, 600, when
    )
    assert kept.features == {"identity_verified": 1.0}


async def test_a_scoring_database_of_its_first_release_is_refused(engine):
    """Never started by the second release (which upgraded it in place): it differs,
    and is left as it was."""
    old = MetaData()
    first_score_history(old)
    await create_schema(engine, old)
    with pytest.raises(SchemaError, match="score_history"):
        await upgrade_schema(engine, migrations_of("scoring_service"))
    assert await tables(engine) == {"score_history"}


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


@pytest.mark.parametrize("package", ["ingest_service", "scoring_service"])
def test_the_migrate_command_upgrades_then_reports_current(tmp_path, package):
    url = f"sqlite:///{tmp_path}/{package}.db"
    done = _migrate(package, url)
    assert done.returncode == 0, done.stderr
    assert f"migrated from empty to {migrations_of(package).head()}" in done.stdout
    check = _migrate(package, url, "--check")
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
