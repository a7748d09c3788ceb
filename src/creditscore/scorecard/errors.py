"""The scorecard library's errors: plain exceptions (no gRPC), each naming the fields
at fault, so that a service, the command line or a notebook can report them as it
reports anything else. A service maps them to INVALID_ARGUMENT with the violations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["InputError", "Problem"]


@dataclass(frozen=True)
class Problem:
    """One field at fault and what is wrong with it."""

    field: str
    description: str


class InputError(ValueError):
    """Input the library cannot use: ``message``, every ``violations`` entry, and an
    UPPER_SNAKE ``reason``."""

    reason = "INVALID_INPUT"

    def __init__(self, message: str, violations: Sequence[Problem] = (), *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.violations = tuple(violations)
        if reason is not None:
            self.reason = reason

    def __str__(self) -> str:
        return self.message
