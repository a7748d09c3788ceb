"""Alembic environment of the consent service's database: the shared runner
(``creditscore.runtime.run_migrations_env``) over the store's metadata."""

from creditscore.runtime import run_migrations_env
from consent_service.store import metadata

run_migrations_env(metadata)
