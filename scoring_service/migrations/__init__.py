"""Schema migrations (Alembic) of the scoring service's database: ``env.py`` runs the
scripts in ``versions/``, whose newest revision makes exactly the tables of
``scoring_service.store.metadata`` (a test compares them on SQLite and PostgreSQL).

Applied on start (``AUTO_MIGRATE``, default true) or by ``python -m scoring_service
migrate``. A change to the store's tables comes with a new revision here.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import MetaData

from creditscore.runtime import Migrations

from ..store import metadata

__all__ = ["MIGRATIONS"]

#: Tables added by revisions after scoring_0001, the schema the releases before
#: migrations made (and a test keeps them adoptable).
_ADDED_AFTER_BASELINE = frozenset({"purge_requests", "current_scores"})


def _baseline() -> MetaData:
    """The schema of scoring_0001: the store's tables but those added since."""
    baseline = MetaData()
    for table in metadata.sorted_tables:
        if table.name not in _ADDED_AFTER_BASELINE:
            table.to_metadata(baseline)
    return baseline


MIGRATIONS = Migrations(
    "scoring_service", Path(__file__).resolve().parent, metadata, baseline=("scoring_0001", _baseline)
)
