"""feature_service: per-subject aggregates kept up to date as records arrive, and
the feature vectors computed from them (``python -m feature_service``)."""
