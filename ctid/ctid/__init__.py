"""ctid: the CTI server of the PBX (Twisted). AMI client in `ctid.ami`.

Its test peers live in tests/testkit/ami (test support, not installed)."""
