"""ctid: the CTI server of the PBX (Twisted). AMI client in `ctid.ami`; test peers in `ctid.testing`."""
