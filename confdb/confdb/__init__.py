"""confdb: the PBX configuration database (schema, validation, queries, outbox, pbx-admin)."""
