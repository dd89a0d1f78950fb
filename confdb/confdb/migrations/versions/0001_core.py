"""Core telephony objects: contexts, users, lines, voicemail boxes, extensions.

Revision ID: 0001_core
Revises:
"""

from alembic import op

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

# Defence in depth behind confdb.validation: no control character ever reaches a config file.
NO_CONTROL = "!~ '[[:cntrl:]]'"
IDENT = "~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$'"


def upgrade() -> None:
    op.execute(f"""
    CREATE TABLE contexts (
        id          serial PRIMARY KEY,
        name        text NOT NULL UNIQUE CHECK (name {IDENT}),
        type        text NOT NULL CHECK (type IN ('internal', 'incall', 'outcall', 'services')),
        description text NOT NULL DEFAULT '' CHECK (description {NO_CONTROL} AND length(description) <= 128)
    );
    CREATE TABLE context_includes (
        context_id          integer NOT NULL REFERENCES contexts(id) ON DELETE CASCADE,
        included_context_id integer NOT NULL REFERENCES contexts(id) ON DELETE CASCADE,
        position            integer NOT NULL DEFAULT 0,
        PRIMARY KEY (context_id, included_context_id),
        CHECK (context_id <> included_context_id)
    );
    CREATE TABLE voicemails (
        id             serial PRIMARY KEY,
        context        text NOT NULL DEFAULT 'default' CHECK (context {IDENT}),
        mailbox        text NOT NULL CHECK (mailbox ~ '^[0-9]{{1,40}}$'),
        fullname       text NOT NULL CHECK (fullname {NO_CONTROL} AND fullname !~ '[,|\\\\]'
                                            AND length(fullname) BETWEEN 1 AND 80),
        email          text CHECK (email {NO_CONTROL} AND email !~ '[,|]'),
        pin            text NOT NULL CHECK (pin ~ '^[0-9]{{4,16}}$'),
        language       text CHECK (language ~ '^[a-z]{{2,3}}(_[A-Z]{{2}})?$'),
        attach_audio   boolean NOT NULL DEFAULT true,
        delete_after_email boolean NOT NULL DEFAULT false,
        max_messages   integer NOT NULL DEFAULT 100 CHECK (max_messages BETWEEN 1 AND 9999),
        enabled        boolean NOT NULL DEFAULT true,
        UNIQUE (context, mailbox)
    );
    CREATE TABLE users (
        id                 serial PRIMARY KEY,
        uuid               uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
        firstname          text NOT NULL CHECK (firstname {NO_CONTROL} AND length(firstname) BETWEEN 1 AND 128),
        lastname           text NOT NULL DEFAULT '' CHECK (lastname {NO_CONTROL} AND length(lastname) <= 128),
        callerid_name      text NOT NULL CHECK (callerid_name {NO_CONTROL} AND callerid_name !~ '["<>\\\\]'
                                                AND length(callerid_name) BETWEEN 1 AND 80),
        callerid_num       text CHECK (callerid_num ~ '^\\+?[0-9*#]{{1,40}}$'),
        language           text NOT NULL DEFAULT 'en_US' CHECK (language ~ '^[a-z]{{2,3}}(_[A-Z]{{2}})?$'),
        ring_seconds       integer NOT NULL DEFAULT 30 CHECK (ring_seconds BETWEEN 5 AND 600),
        simultaneous_calls integer NOT NULL DEFAULT 5 CHECK (simultaneous_calls BETWEEN 1 AND 20),
        dnd                boolean NOT NULL DEFAULT false,
        fwd_unconditional_enabled boolean NOT NULL DEFAULT false,
        fwd_unconditional  text CHECK (fwd_unconditional ~ '^\\+?[0-9*#]{{1,40}}$'),
        fwd_busy_enabled   boolean NOT NULL DEFAULT false,
        fwd_busy           text CHECK (fwd_busy ~ '^\\+?[0-9*#]{{1,40}}$'),
        fwd_noanswer_enabled boolean NOT NULL DEFAULT false,
        fwd_noanswer       text CHECK (fwd_noanswer ~ '^\\+?[0-9*#]{{1,40}}$'),
        cti_login          text UNIQUE CHECK (cti_login ~ '^[a-z0-9][a-z0-9._-]{{1,63}}$'),
        cti_password_hash  text CHECK (cti_password_hash LIKE '$scrypt$%'),
        voicemail_id       integer UNIQUE REFERENCES voicemails(id) ON DELETE SET NULL,
        enabled            boolean NOT NULL DEFAULT true,
        created_at         timestamptz NOT NULL DEFAULT now(),
        updated_at         timestamptz NOT NULL DEFAULT now(),
        CHECK (NOT fwd_unconditional_enabled OR fwd_unconditional IS NOT NULL),
        CHECK (NOT fwd_busy_enabled OR fwd_busy IS NOT NULL),
        CHECK (NOT fwd_noanswer_enabled OR fwd_noanswer IS NOT NULL),
        CHECK ((cti_login IS NULL) = (cti_password_hash IS NULL))
    );
    CREATE TABLE lines (
        id            serial PRIMARY KEY,
        name          text NOT NULL UNIQUE CHECK (name {IDENT}),
        auth_username text NOT NULL UNIQUE CHECK (auth_username {IDENT}),
        -- HA1 = md5(username:realm:secret); the clear secret is shown once, at creation.
        secret_ha1    text NOT NULL CHECK (secret_ha1 ~ '^[0-9a-f]{{32}}$'),
        realm         text NOT NULL CHECK (realm {IDENT}),
        context_id    integer NOT NULL REFERENCES contexts(id),
        codecs        text[] NOT NULL DEFAULT ARRAY['g722', 'alaw', 'ulaw']
                      CHECK (cardinality(codecs) >= 1 AND array_to_string(codecs, ',') ~ '^[a-z0-9]+(,[a-z0-9]+)*$'),
        max_contacts  integer NOT NULL DEFAULT 1 CHECK (max_contacts BETWEEN 1 AND 10),
        enabled       boolean NOT NULL DEFAULT true
    );
    CREATE TABLE user_lines (
        user_id   integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        line_id   integer NOT NULL REFERENCES lines(id) ON DELETE CASCADE,
        main_user boolean NOT NULL DEFAULT false,
        main_line boolean NOT NULL DEFAULT false,
        PRIMARY KEY (user_id, line_id)
    );
    CREATE INDEX user_lines_line_idx ON user_lines (line_id);
    CREATE UNIQUE INDEX user_lines_one_main_user ON user_lines (line_id) WHERE main_user;
    CREATE UNIQUE INDEX user_lines_one_main_line ON user_lines (user_id) WHERE main_line;
    CREATE TABLE extensions (
        id           serial PRIMARY KEY,
        context_id   integer NOT NULL REFERENCES contexts(id) ON DELETE CASCADE,
        exten        text NOT NULL CHECK (exten ~ '^(_[0-9XZNxzn*#+\\[\\]!.-]+|[0-9*#+]{{1,40}})$'
                                          AND length(exten) <= 80),
        type         text NOT NULL CHECK (type IN ('user', 'voicemail', 'service')),
        user_id      integer REFERENCES users(id) ON DELETE CASCADE,
        voicemail_id integer REFERENCES voicemails(id) ON DELETE CASCADE,
        service      text CHECK (service IN ('voicemail_own', 'voicemail_any', 'dnd_toggle',
                                             'fwd_unconditional', 'fwd_cancel', 'echo')),
        UNIQUE (context_id, exten),
        CHECK ((type = 'user') = (user_id IS NOT NULL)),
        CHECK ((type = 'voicemail') = (voicemail_id IS NOT NULL)),
        CHECK ((type = 'service') = (service IS NOT NULL))
    );
    CREATE INDEX extensions_user_idx ON extensions (user_id) WHERE user_id IS NOT NULL;

    -- The four contexts every PBX starts with; internal phones reach services and outcalls.
    INSERT INTO contexts (name, type, description) VALUES
        ('internal', 'internal', 'Phones of the company'),
        ('incall', 'incall', 'Calls from trunks'),
        ('outcall', 'outcall', 'Calls to trunks'),
        ('services', 'services', 'Feature codes');
    INSERT INTO context_includes (context_id, included_context_id, position)
        SELECT i.id, x.id, x.position FROM contexts i,
            (SELECT id, CASE name WHEN 'services' THEN 1 ELSE 2 END AS position FROM contexts
              WHERE name IN ('services', 'outcall')) x
         WHERE i.name = 'internal';
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE extensions, user_lines, lines, users, voicemails, context_includes, contexts;
    """)
