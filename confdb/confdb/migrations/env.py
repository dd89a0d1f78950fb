"""Alembic environment: migrations run as the owner role, over the DSN handed in by confdb.migrate."""

from __future__ import annotations

import psycopg2
from alembic import context
from sqlalchemy import create_engine, pool

dsn = context.config.attributes["dsn"]
engine = create_engine(
    "postgresql+psycopg2://", creator=lambda: psycopg2.connect(dsn), poolclass=pool.NullPool
)

with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
