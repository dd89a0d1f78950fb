"""Call distribution: agents, queues, ring groups and their members.

Revision ID: 0002_call_distribution
Revises: 0001_core
"""

from alembic import op

revision = "0002_call_distribution"
down_revision = "0001_core"
branch_labels = None
depends_on = None

NO_CONTROL = "!~ '[[:cntrl:]]'"
IDENT = "~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$'"


def upgrade() -> None:
    op.execute(f"""
    CREATE TABLE agents (
        id        serial PRIMARY KEY,
        number    text NOT NULL UNIQUE CHECK (number ~ '^[0-9]{{1,40}}$'),
        firstname text NOT NULL CHECK (firstname {NO_CONTROL} AND length(firstname) BETWEEN 1 AND 128),
        lastname  text NOT NULL DEFAULT '' CHECK (lastname {NO_CONTROL} AND length(lastname) <= 128),
        language  text NOT NULL DEFAULT 'en_US' CHECK (language ~ '^[a-z]{{2,3}}(_[A-Z]{{2}})?$'),
        wrapup_seconds integer NOT NULL DEFAULT 0 CHECK (wrapup_seconds BETWEEN 0 AND 3600),
        user_id   integer UNIQUE REFERENCES users(id) ON DELETE SET NULL
    );
    CREATE TABLE queues (
        id              serial PRIMARY KEY,
        name            text NOT NULL UNIQUE CHECK (name {IDENT}),
        display_name    text NOT NULL CHECK (display_name {NO_CONTROL} AND length(display_name) BETWEEN 1 AND 128),
        strategy        text NOT NULL DEFAULT 'ringall' CHECK (strategy IN
                            ('ringall', 'leastrecent', 'fewestcalls', 'random', 'rrmemory', 'rrordered',
                             'linear', 'wrandom')),
        member_timeout  integer NOT NULL DEFAULT 15 CHECK (member_timeout BETWEEN 1 AND 600),
        retry_seconds   integer NOT NULL DEFAULT 5 CHECK (retry_seconds BETWEEN 0 AND 600),
        wrapup_seconds  integer NOT NULL DEFAULT 0 CHECK (wrapup_seconds BETWEEN 0 AND 3600),
        max_waiting     integer NOT NULL DEFAULT 0 CHECK (max_waiting BETWEEN 0 AND 10000),
        max_wait_seconds integer NOT NULL DEFAULT 0 CHECK (max_wait_seconds BETWEEN 0 AND 86400),
        music_class     text NOT NULL DEFAULT 'default' CHECK (music_class {IDENT}),
        announce_position boolean NOT NULL DEFAULT false,
        weight          integer NOT NULL DEFAULT 0 CHECK (weight BETWEEN 0 AND 100)
    );
    CREATE TABLE queue_members (
        queue_id integer NOT NULL REFERENCES queues(id) ON DELETE CASCADE,
        user_id  integer REFERENCES users(id) ON DELETE CASCADE,
        agent_id integer REFERENCES agents(id) ON DELETE CASCADE,
        penalty  integer NOT NULL DEFAULT 0 CHECK (penalty BETWEEN 0 AND 99),
        position integer NOT NULL DEFAULT 0,
        CHECK ((user_id IS NULL) <> (agent_id IS NULL))
    );
    CREATE UNIQUE INDEX queue_members_user_uniq ON queue_members (queue_id, user_id) WHERE user_id IS NOT NULL;
    CREATE UNIQUE INDEX queue_members_agent_uniq ON queue_members (queue_id, agent_id) WHERE agent_id IS NOT NULL;
    CREATE TABLE groups (
        id           serial PRIMARY KEY,
        name         text NOT NULL UNIQUE CHECK (name {IDENT}),
        display_name text NOT NULL CHECK (display_name {NO_CONTROL} AND length(display_name) BETWEEN 1 AND 128),
        strategy     text NOT NULL DEFAULT 'ringall' CHECK (strategy IN
                         ('ringall', 'linear', 'rrmemory', 'leastrecent', 'random')),
        ring_seconds integer NOT NULL DEFAULT 30 CHECK (ring_seconds BETWEEN 5 AND 600),
        ring_in_use  boolean NOT NULL DEFAULT false
    );
    CREATE TABLE group_members (
        group_id integer NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
        user_id  integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        penalty  integer NOT NULL DEFAULT 0 CHECK (penalty BETWEEN 0 AND 99),
        position integer NOT NULL DEFAULT 0,
        PRIMARY KEY (group_id, user_id)
    );
    ALTER TABLE extensions
        ADD COLUMN group_id integer REFERENCES groups(id) ON DELETE CASCADE,
        ADD COLUMN queue_id integer REFERENCES queues(id) ON DELETE CASCADE,
        DROP CONSTRAINT extensions_type_check,
        ADD CONSTRAINT extensions_type_check CHECK (type IN ('user', 'voicemail', 'service', 'group', 'queue')),
        ADD CONSTRAINT extensions_group_check CHECK ((type = 'group') = (group_id IS NOT NULL)),
        ADD CONSTRAINT extensions_queue_check CHECK ((type = 'queue') = (queue_id IS NOT NULL));
    """)


def downgrade() -> None:
    op.execute("""
    DELETE FROM extensions WHERE type IN ('group', 'queue');
    ALTER TABLE extensions
        DROP CONSTRAINT extensions_group_check,
        DROP CONSTRAINT extensions_queue_check,
        DROP CONSTRAINT extensions_type_check,
        DROP COLUMN group_id,
        DROP COLUMN queue_id,
        ADD CONSTRAINT extensions_type_check CHECK (type IN ('user', 'voicemail', 'service'));
    DROP TABLE group_members, groups, queue_members, queues, agents;
    """)
