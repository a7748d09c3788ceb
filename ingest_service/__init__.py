"""ingest_service: validates producers' records, checks consent, stores them
idempotently and hands accepted ones to the feature service through an outbox."""
