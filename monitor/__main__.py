"""`python -m monitor` runs the same command line as the `monitor` script."""

import sys

from monitor.cli import main

sys.exit(main())
