"""Alembic environment of the consent service's database: the shared runner
(``creditscore.runtime.run_migrations_env``) over the tables' metadata (``consent_service.tables``)."""

from consent_service.tables import metadata
from creditscore.runtime import run_migrations_env

run_migrations_env(metadata)
