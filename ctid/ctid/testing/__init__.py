"""Test support shipped with ctid (also for other components): an AMI test server, recorded-trace replay."""
