"""Identifiers every service checks the same way."""

from __future__ import annotations

import re

from ._errors import Violations

__all__ = ["MAX_SUBJECT_ID_LENGTH", "SUBJECT_ID_RULE", "check_subject_id", "is_subject_id"]

MAX_SUBJECT_ID_LENGTH = 64
SUBJECT_ID_RULE = f"must be 1-{MAX_SUBJECT_ID_LENGTH} characters of [A-Za-z0-9_-]"
_SUBJECT_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_SUBJECT_ID_LENGTH}}}")


def is_subject_id(value: str) -> bool:
    """Subject ids are opaque: 1-64 of ``[A-Za-z0-9_-]``, nothing else (no trailing newline)."""
    return _SUBJECT_ID.fullmatch(value) is not None


def check_subject_id(
    v: Violations, value: str, field: str = "subject_id", *, required: bool = True
) -> None:
    """Adds a violation for a malformed subject id; empty is allowed only when not required."""
    if not value:
        if required:
            v.add(field, "must be set")
        return
    if not is_subject_id(value):
        v.add(field, SUBJECT_ID_RULE)
