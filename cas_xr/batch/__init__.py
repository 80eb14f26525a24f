"""Batch extraction for any number of geometries: a vector data cube or a table.

:func:`extract_cube` and :func:`extract_table` validate everything first, cut the
geometries into spatially compact batches, serve what the result cache holds and compute
the rest on the active scheduler, with a progress bar; failures become MISSING results
with a :class:`BatchFailureWarning`.
"""

from cas_xr.batch._api import BATCH_SIZE, extract_cube, extract_table
from cas_xr.errors import BatchFailureWarning

__all__ = ["BATCH_SIZE", "BatchFailureWarning", "extract_cube", "extract_table"]
