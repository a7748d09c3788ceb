"""Alembic environment of the scoring service's database: the shared runner
(``creditscore.runtime.run_migrations_env``) over the store's metadata."""

from creditscore.runtime import run_migrations_env
from scoring_service.store import metadata

run_migrations_env(metadata)
