"""Routing: schedules, SIP trunks, incalls (DIDs) and outcalls.

A destination is (dest_type, dest_id or dest_number). Referential integrity of dest_id is enforced by
the trigger refuse_referenced_destination: deleting a user, group, queue or voicemail box that an incall
still points to fails with a message naming the incall.

Revision ID: 0003_routing
Revises: 0002_call_distribution
"""

from alembic import op

revision = "0003_routing"
down_revision = "0002_call_distribution"
branch_labels = None
depends_on = None

NO_CONTROL = "!~ '[[:cntrl:]]'"
IDENT = "~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$'"
DIALABLE = "~ '^\\+?[0-9*#]{1,40}$'"


def _destination(prefix: str, required: bool) -> str:
    null_ok = "" if required else f"{prefix}_type IS NULL OR "
    return f"""
        {prefix}_type   text CHECK ({prefix}_type IN ('user', 'group', 'queue', 'voicemail', 'number', 'hangup')),
        {prefix}_id     integer,
        {prefix}_number text CHECK ({prefix}_number {DIALABLE}),
        CHECK ({null_ok}(
            ({prefix}_type IN ('user', 'group', 'queue', 'voicemail')
                AND {prefix}_id IS NOT NULL AND {prefix}_number IS NULL)
            OR ({prefix}_type = 'number' AND {prefix}_id IS NULL AND {prefix}_number IS NOT NULL)
            OR ({prefix}_type = 'hangup' AND {prefix}_id IS NULL AND {prefix}_number IS NULL))),
    """


def upgrade() -> None:
    op.execute(f"""
    CREATE TABLE schedules (
        id       serial PRIMARY KEY,
        name     text NOT NULL UNIQUE CHECK (name {IDENT}),
        timezone text NOT NULL DEFAULT 'UTC' CHECK (timezone ~ '^[A-Za-z0-9_+/-]{{1,64}}$'),
        {_destination("closed_dest", True).rstrip().rstrip(",")}
    );
    CREATE TABLE schedule_periods (
        id          serial PRIMARY KEY,
        schedule_id integer NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
        -- ISO weekdays, 1 = Monday .. 7 = Sunday
        weekdays    smallint[] NOT NULL CHECK (cardinality(weekdays) >= 1 AND weekdays <@ ARRAY[1,2,3,4,5,6,7]::smallint[]),
        start_time  time NOT NULL,
        end_time    time NOT NULL,
        CHECK (start_time < end_time)
    );
    CREATE TABLE trunks (
        id             serial PRIMARY KEY,
        name           text NOT NULL UNIQUE CHECK (name {IDENT}),
        host           text NOT NULL CHECK (host ~ '^[A-Za-z0-9.:\\[\\]-]{{1,255}}$'),
        transport      text NOT NULL DEFAULT 'udp' CHECK (transport IN ('udp', 'tcp', 'tls')),
        context_id     integer NOT NULL REFERENCES contexts(id),
        codecs         text[] NOT NULL DEFAULT ARRAY['alaw', 'ulaw']
                       CHECK (cardinality(codecs) >= 1 AND array_to_string(codecs, ',') ~ '^[a-z0-9]+(,[a-z0-9]+)*$'),
        -- registration: outbound auth towards the provider (its password cannot be hashed: we send it)
        register       boolean NOT NULL DEFAULT false,
        auth_username  text CHECK (auth_username ~ '^[A-Za-z0-9_.+-]{{1,64}}$'),
        auth_password  text CHECK (auth_password {NO_CONTROL} AND auth_password !~ '[;#\\\\ ]'
                                   AND length(auth_password) BETWEEN 1 AND 128),
        from_user      text CHECK (from_user ~ '^[A-Za-z0-9_.+-]{{1,64}}$'),
        -- identify: the provider's addresses when it does not register us
        identify_match cidr[] NOT NULL DEFAULT '{{}}',
        enabled        boolean NOT NULL DEFAULT true,
        CHECK (NOT register OR (auth_username IS NOT NULL AND auth_password IS NOT NULL)),
        CHECK (register OR cardinality(identify_match) >= 1)
    );
    CREATE TABLE incalls (
        id          serial PRIMARY KEY,
        did         text NOT NULL CHECK (did ~ '^(_[0-9XZNxzn*#+\\[\\]!.-]+|[0-9*#+]{{1,40}})$'),
        context_id  integer NOT NULL REFERENCES contexts(id),
        {_destination("dest", True)}
        schedule_id integer REFERENCES schedules(id) ON DELETE SET NULL,
        callerid_name_prefix text NOT NULL DEFAULT '' CHECK (callerid_name_prefix {NO_CONTROL}
                                 AND callerid_name_prefix !~ '["<>\\\\]' AND length(callerid_name_prefix) <= 20),
        UNIQUE (context_id, did)
    );
    CREATE TABLE outcalls (
        id         serial PRIMARY KEY,
        name       text NOT NULL UNIQUE CHECK (name {IDENT}),
        context_id integer NOT NULL REFERENCES contexts(id),
        internal_callerid boolean NOT NULL DEFAULT false,
        ring_seconds integer NOT NULL DEFAULT 60 CHECK (ring_seconds BETWEEN 5 AND 600)
    );
    CREATE TABLE outcall_patterns (
        id         serial PRIMARY KEY,
        outcall_id integer NOT NULL REFERENCES outcalls(id) ON DELETE CASCADE,
        pattern    text NOT NULL CHECK (pattern ~ '^(_[0-9XZNxzn*#+\\[\\]!.-]+|[0-9*#+]{{1,40}})$'),
        strip      integer NOT NULL DEFAULT 0 CHECK (strip BETWEEN 0 AND 20),
        prefix     text NOT NULL DEFAULT '' CHECK (prefix ~ '^\\+?[0-9*#]{{0,20}}$'),
        callerid   text CHECK (callerid {DIALABLE}),
        UNIQUE (outcall_id, pattern)
    );
    CREATE TABLE outcall_trunks (
        outcall_id integer NOT NULL REFERENCES outcalls(id) ON DELETE CASCADE,
        trunk_id   integer NOT NULL REFERENCES trunks(id) ON DELETE RESTRICT,
        position   integer NOT NULL,
        PRIMARY KEY (outcall_id, trunk_id),
        UNIQUE (outcall_id, position)
    );

    CREATE FUNCTION refuse_referenced_destination() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        kind text := TG_ARGV[0];
        what text;
    BEGIN
        SELECT 'incall ' || did INTO what FROM incalls WHERE dest_type = kind AND dest_id = OLD.id LIMIT 1;
        IF what IS NULL THEN
            SELECT 'schedule ' || name INTO what FROM schedules
             WHERE closed_dest_type = kind AND closed_dest_id = OLD.id LIMIT 1;
        END IF;
        IF what IS NOT NULL THEN
            RAISE EXCEPTION '% % is the destination of %', kind, OLD.id, what
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        RETURN OLD;
    END $$;
    CREATE TRIGGER users_destination BEFORE DELETE ON users
        FOR EACH ROW EXECUTE FUNCTION refuse_referenced_destination('user');
    CREATE TRIGGER groups_destination BEFORE DELETE ON groups
        FOR EACH ROW EXECUTE FUNCTION refuse_referenced_destination('group');
    CREATE TRIGGER queues_destination BEFORE DELETE ON queues
        FOR EACH ROW EXECUTE FUNCTION refuse_referenced_destination('queue');
    CREATE TRIGGER voicemails_destination BEFORE DELETE ON voicemails
        FOR EACH ROW EXECUTE FUNCTION refuse_referenced_destination('voicemail');
    CREATE INDEX incalls_dest_idx ON incalls (dest_type, dest_id);
    """)


def downgrade() -> None:
    op.execute("""
    DROP TRIGGER users_destination ON users;
    DROP TRIGGER groups_destination ON groups;
    DROP TRIGGER queues_destination ON queues;
    DROP TRIGGER voicemails_destination ON voicemails;
    DROP FUNCTION refuse_referenced_destination();
    DROP TABLE outcall_trunks, outcall_patterns, outcalls, incalls, trunks, schedule_periods, schedules;
    """)
