"""pbx-admin: the single writer of the PBX configuration database."""
