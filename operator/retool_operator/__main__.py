"""`python -m retool_operator` runs the command line."""

import sys

from retool_operator.cli import main

sys.exit(main())
