"""Phonebook (with numbers indexed for reverse lookup) and devices linked to lines.

Revision ID: 0004_directory_devices
Revises: 0003_routing
"""

from alembic import op

revision = "0004_directory_devices"
down_revision = "0003_routing"
branch_labels = None
depends_on = None

NO_CONTROL = "!~ '[[:cntrl:]]'"


def upgrade() -> None:
    op.execute(f"""
    CREATE TABLE phonebook_entries (
        id           serial PRIMARY KEY,
        display_name text NOT NULL CHECK (display_name {NO_CONTROL} AND length(display_name) BETWEEN 1 AND 128),
        firstname    text NOT NULL DEFAULT '' CHECK (firstname {NO_CONTROL} AND length(firstname) <= 128),
        lastname     text NOT NULL DEFAULT '' CHECK (lastname {NO_CONTROL} AND length(lastname) <= 128),
        company      text NOT NULL DEFAULT '' CHECK (company {NO_CONTROL} AND length(company) <= 128),
        email        text CHECK (email {NO_CONTROL} AND length(email) <= 254)
    );
    CREATE TABLE phonebook_numbers (
        id         serial PRIMARY KEY,
        entry_id   integer NOT NULL REFERENCES phonebook_entries(id) ON DELETE CASCADE,
        kind       text NOT NULL DEFAULT 'office' CHECK (kind IN ('office', 'mobile', 'home', 'fax', 'other')),
        number     text NOT NULL CHECK (number ~ '^\\+?[0-9 ().\\-/]{{2,40}}$'),
        -- E.164 digits without '+', or the digits as dialled when no country could be applied
        normalized text NOT NULL CHECK (normalized ~ '^[0-9*#]{{2,40}}$')
    );
    CREATE INDEX phonebook_numbers_normalized_idx ON phonebook_numbers (normalized);
    CREATE INDEX phonebook_numbers_entry_idx ON phonebook_numbers (entry_id);
    CREATE TABLE devices (
        id          serial PRIMARY KEY,
        mac         macaddr NOT NULL UNIQUE,
        vendor      text NOT NULL DEFAULT '' CHECK (vendor {NO_CONTROL} AND length(vendor) <= 64),
        model       text NOT NULL CHECK (model {NO_CONTROL} AND length(model) BETWEEN 1 AND 64),
        description text NOT NULL DEFAULT '' CHECK (description {NO_CONTROL} AND length(description) <= 128)
    );
    ALTER TABLE lines
        ADD COLUMN device_id integer REFERENCES devices(id) ON DELETE SET NULL,
        ADD COLUMN device_position integer CHECK (device_position BETWEEN 1 AND 64),
        ADD CONSTRAINT lines_device_position_uniq UNIQUE (device_id, device_position),
        ADD CONSTRAINT lines_device_check CHECK ((device_id IS NULL) OR (device_position IS NOT NULL));
    """)


def downgrade() -> None:
    op.execute("""
    ALTER TABLE lines DROP CONSTRAINT lines_device_check, DROP CONSTRAINT lines_device_position_uniq,
        DROP COLUMN device_position, DROP COLUMN device_id;
    DROP TABLE devices, phonebook_numbers, phonebook_entries;
    """)
