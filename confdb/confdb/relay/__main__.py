import sys

from confdb.relay.main import main

sys.exit(main())
