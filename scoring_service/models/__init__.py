"""The scorecard artifacts that ship with the service (``scorecard-<version>.json``),
the default ``MODEL_DIR``. A package so that the JSON files travel as package data."""
