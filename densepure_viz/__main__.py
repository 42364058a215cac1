"""`python -m densepure_viz`: the command line (see densepure_viz.serving.cli)."""

import sys

from densepure_viz.serving.cli import main

sys.exit(main())
