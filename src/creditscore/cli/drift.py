"""``creditscore drift``: PSI of the score and of each feature against the training
population, from a running scoring service (the command shares its plumbing with
``creditscore models``: see ``models``)."""

from __future__ import annotations

from .models import drift_main as main

__all__ = ["main"]
