"""Parts of the ``cas-xr`` command line (:mod:`cas_xr.cli`) kept in their own modules.

``_common``: the usage error and the exit statuses; ``_status``: the exit status of a
table of results; ``_output``: output formats and paths; ``_raster``: ``cas-xr raster``.
"""
