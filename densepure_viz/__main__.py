"""`python -m densepure_viz`: the command line (see densepure_viz.cli)."""

import sys

from densepure_viz.cli import main

sys.exit(main())
