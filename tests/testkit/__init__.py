"""Test support for every component: fakes, oracles, test servers and recorded-trace replay.

Lives under ``tests/`` (importable as ``testkit`` with ``tests`` on the path, as pytest and ``bench/run``
set it) so that no Debian package installs any of it. The daemons never import it.
"""
