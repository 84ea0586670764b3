"""`python -m RootletSegLogic ...` is the `rootletseg` command (the Slicer module starts it this way)."""

import sys

from RootletSegLogic.cli.main import main

sys.exit(main())
