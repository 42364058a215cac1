"""densepure-viz: `python app.py` serves the explorer; `python app.py --help` lists its options (the model,
as local folders or hub ids, and where to serve). Nothing is loaded or launched on import."""

import sys

from densepure_viz.serving.ui.app import main

if __name__ == "__main__":
    sys.exit(main())
