"""Schema migrations (Alembic) of the consent service's database: ``env.py`` runs the
scripts in ``versions/``, whose newest revision makes exactly the tables of
``consent_service.tables.metadata`` (a test compares them on SQLite and PostgreSQL).

Applied on start (``AUTO_MIGRATE``, default true) or by ``python -m consent_service
migrate``. A change to the tables comes with a new revision here.
"""

from __future__ import annotations

from pathlib import Path

from creditscore.runtime import Migrations

from ..tables import metadata

__all__ = ["MIGRATIONS"]

MIGRATIONS = Migrations("consent_service", Path(__file__).resolve().parent, metadata)
