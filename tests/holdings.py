"""What a store holds about a subject, read straight from its tables: every table
of a service's metadata, every row, every value (text, bytes, JSON) searched for
the subject's id. Used to prove that a purge left nothing behind."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import MetaData, select
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["rows_naming"]


def _names(value: Any, needle: str) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return needle in value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return needle.encode() in bytes(value)
    if isinstance(value, (dict, list, tuple)):
        return needle in json.dumps(value)
    return needle in str(value)


async def rows_naming(
    engine: AsyncEngine, metadata: MetaData, subject_id: str, *, skip: Collection[str] = ()
) -> dict[str, int]:
    """Per table of ``metadata`` (but ``skip``), how many rows hold ``subject_id``
    anywhere in any column; every table is listed, with 0 where none does."""
    found: dict[str, int] = {}
    async with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name in skip:
                continue
            rows = (await conn.execute(select(table))).all()
            found[table.name] = sum(1 for row in rows if any(_names(v, subject_id) for v in row))
    return found
