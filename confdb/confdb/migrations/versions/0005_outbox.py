"""Transactional outbox: config events committed with the write that caused them.

Revision ID: 0005_outbox
Revises: 0004_directory_devices
"""

from alembic import op

revision = "0005_outbox"
down_revision = "0004_directory_devices"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE outbox (
        id           bigserial PRIMARY KEY,
        routing_key  text NOT NULL CHECK (routing_key ~ '^[a-z_]+\\.[a-z_]+$'),
        payload      jsonb NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz
    );
    CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
    """)


def downgrade() -> None:
    op.execute("DROP TABLE outbox")
