import sys

from agid.main import main

sys.exit(main())
