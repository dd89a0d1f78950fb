"""The usual feature codes on a new PBX: *98 the caller's own voicemail, *99 any mailbox (asks which one),
*43 an echo test. Only those that work without a writer behind agid (do-not-disturb and forwarding codes
need one); a code or a service already configured is left as it is.

Revision ID: 0006_feature_codes
Revises: 0005_outbox
"""

from alembic import op

revision = "0006_feature_codes"
down_revision = "0005_outbox"
branch_labels = None
depends_on = None

CODES = (("*98", "voicemail_own"), ("*99", "voicemail_any"), ("*43", "echo"))


def upgrade() -> None:
    for exten, service in CODES:
        op.execute(f"""
        INSERT INTO extensions (context_id, exten, type, service)
        SELECT c.id, '{exten}', 'service', '{service}' FROM contexts c
         WHERE c.name = 'services'
           AND NOT EXISTS (SELECT 1 FROM extensions e WHERE e.context_id = c.id
                            AND (e.exten = '{exten}' OR e.service = '{service}'))
        """)


def downgrade() -> None:
    # Nothing: the codes cannot be told from the same codes an administrator made, and keeping them is
    # harmless to the earlier revisions.
    pass
