"""consent_service: owns subjects and their consents per data source and purpose,
and answers "may this data be used for this purpose?" (ConsentService, port 50051)."""
