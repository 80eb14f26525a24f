"""``python -m cas_xr``: the ``cas-xr`` command line."""

import sys

from cas_xr.cli import main

if __name__ == "__main__":  # not when a worker process (spawn) imports the main module
    sys.exit(main())
