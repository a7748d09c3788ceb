"""Score history: every score given, with the feature vector and model version it
came from, so that any score can be recomputed.

One table, ``score_history``, written with SQLAlchemy Core on SQLite or PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    select,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from creditscore.runtime import UtcDateTime, create_schema

from .scorecard import Band, Reason, ScoreResult, ScoreState

__all__ = ["ScoreRecord", "ScoreStore", "metadata", "score_history"]

metadata = MetaData()

score_history = Table(
    "score_history",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("subject_id", String(64), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("state", String(32), nullable=False),  # ScoreState value
    Column("score", Integer, nullable=True),  # null when INSUFFICIENT_DATA
    Column("band", String(16), nullable=False),  # Band value
    Column("probability_of_bad", Double, nullable=True),
    Column("coverage", Double, nullable=False),
    Column("reasons", JSON, nullable=False),  # [{code, text, points_lost, feature}]
    Column("features", JSON, nullable=False),  # {name: value or null}, as scored
    Column("score_time", UtcDateTime, nullable=False),
    Index("ix_score_history_subject_time", "subject_id", "score_time"),
)


@dataclass(frozen=True)
class ScoreRecord:
    """One score as given and stored. ``id`` is None until stored."""

    subject_id: str
    model_version: str
    state: ScoreState
    score: int | None
    band: Band
    probability_of_bad: float | None
    coverage: float
    reasons: tuple[Reason, ...]
    features: Mapping[str, float | None]
    score_time: datetime
    id: int | None = None

    @classmethod
    def from_result(
        cls, subject_id: str, result: ScoreResult, features: Mapping[str, float | None], score_time: datetime
    ) -> ScoreRecord:
        return cls(
            subject_id=subject_id,
            model_version=result.model_version,
            state=result.state,
            score=result.score,
            band=result.band,
            probability_of_bad=result.probability_of_bad,
            coverage=result.coverage,
            reasons=result.reasons,
            features=dict(features),
            score_time=score_time,
        )


def _row(record: ScoreRecord) -> dict[str, Any]:
    return {
        "subject_id": record.subject_id,
        "model_version": record.model_version,
        "state": record.state.value,
        "score": record.score,
        "band": record.band.value,
        "probability_of_bad": record.probability_of_bad,
        "coverage": record.coverage,
        "reasons": [r._asdict() for r in record.reasons],
        "features": dict(record.features),
        "score_time": record.score_time,
    }


def _record(row: Any) -> ScoreRecord:
    return ScoreRecord(
        id=row.id,
        subject_id=row.subject_id,
        model_version=row.model_version,
        state=ScoreState(row.state),
        score=row.score,
        band=Band(row.band),
        probability_of_bad=row.probability_of_bad,
        coverage=row.coverage,
        reasons=tuple(Reason(**r) for r in row.reasons),
        features=dict(row.features),
        score_time=row.score_time,
    )


class ScoreStore:
    """The score history of one scoring service."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create_schema(self) -> None:
        await create_schema(self._engine, metadata)

    async def record(self, record: ScoreRecord) -> int:
        """Stores one score; returns its id."""
        async with self._engine.begin() as conn:
            result = await conn.execute(score_history.insert().values(**_row(record)))
            return int(result.inserted_primary_key[0])

    async def history(self, subject_id: str, *, limit: int = 100) -> list[ScoreRecord]:
        """The subject's scores, newest first."""
        query = (
            select(score_history)
            .where(score_history.c.subject_id == subject_id)
            .order_by(score_history.c.score_time.desc(), score_history.c.id.desc())
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_record(row) for row in rows]
