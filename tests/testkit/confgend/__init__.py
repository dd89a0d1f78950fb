"""confgend test support: an Asterisk config-file parser oracle, a reference dataset, a fake engine."""
