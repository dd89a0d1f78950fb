"""AMI test peers: an asyncio/Twisted AMI server, a threaded one, a scripted peer, recorded-trace replay."""
