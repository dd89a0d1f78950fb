"""Test support for pbxtools: a CTI test server and client, tool runners, a ``core show locks`` writer.

Used by the tools' tests and meant for other integration tests. Not used by the tools themselves.
Everything speaks over real TCP sockets, blocking, and every wait is bounded by :data:`WAIT`.
"""

#: Upper bound of every wait in tests: generous, so that a loaded 2-core machine passes.
WAIT = 30.0
