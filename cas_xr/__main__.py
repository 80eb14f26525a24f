"""``python -m cas_xr``: the ``cas-xr`` command line."""

import sys

from cas_xr.cli import main

sys.exit(main())
