"""Read models of the daemons: plain SQL queries run with each daemon's read-only role."""
