"""consent_service: the one place that answers "may X do Y with Z's data?"
(ConsentService, port 50051): subjects and their consents per data source and
purpose, partner authorizations and the access log, registered partners and
producers with their credentials (it issues every token), and the purges (with
their deletion receipts) and exports that reach every other service."""
