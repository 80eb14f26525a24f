"""The cas_xr version."""

__version__ = "0.1.0"
