"""`python -m mailflow.cli`: the `mailflow` command."""

import sys

from mailflow.cli import main

sys.exit(main())
