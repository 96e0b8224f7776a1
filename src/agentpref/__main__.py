import sys

from agentpref.cli.main import main

sys.exit(main())
