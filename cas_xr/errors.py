"""Errors and warnings raised by cas_xr.

One shallow tree: every error derives from :class:`CasError` and, where it fits, from the
matching built-in (``ValueError``, ``KeyError``, ``TimeoutError``), so callers can catch
either. Every message says what was wrong and how to fix it.

Warnings have their own classes deriving from :class:`CasWarning`; :func:`strict` turns
them into errors for a block of code.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "ArgumentTypeError",
    "BatchFailureWarning",
    "CasError",
    "CasWarning",
    "ConfigurationError",
    "EventLoopError",
    "InvalidArgumentError",
    "InvalidDatasetIdError",
    "InvalidGeometryError",
    "InvalidRequestError",
    "InvalidStatisticError",
    "LimitExceededError",
    "MissingCRSError",
    "MissingDependencyError",
    "MissingDimensionError",
    "OutputExistsError",
    "ProviderDefinitionError",
    "QualityWarning",
    "RequestTimeoutError",
    "SourceError",
    "SourceWarning",
    "UnknownDatasetError",
    "UnknownProviderError",
    "UnsupportedGridError",
    "strict",
    "validation_problems",
]


class CasError(Exception):
    """Base class of every error cas_xr raises on purpose."""


class InvalidArgumentError(CasError, ValueError):
    """An argument of a public function has a value cas_xr cannot use.

    The message says what to pass instead.
    """


class InvalidRequestError(InvalidArgumentError):
    """A request, bounding box or time range does not validate.

    The message lists every invalid field; pydantic's ``ValidationError`` is the
    ``__cause__``.
    """


class OutputExistsError(CasError, FileExistsError):
    """The output file exists (pass ``overwrite=True`` or another name)."""


class ArgumentTypeError(CasError, TypeError):
    """An argument of a public function has the wrong type (the message names the types)."""


class EventLoopError(CasError, RuntimeError):
    """A blocking ``*_sync`` function was called inside a running event loop."""


class InvalidGeometryError(CasError, ValueError):
    """A geometry is not a valid geometry of a supported type in the stated CRS."""


class InvalidStatisticError(InvalidArgumentError, TypeError):
    """``stats`` names an unknown statistic or is not a name or a sequence of names.

    Also a ``TypeError``, as a value of the wrong type (``stats=3``) is one.
    """


class MissingCRSError(CasError, ValueError):
    """A raster or a set of geometries has no CRS; cas_xr never assumes one."""


class MissingDimensionError(CasError, ValueError):
    """A raster cube has no recognisable spatial (x and y) dimensions.

    The message names the dimensions it has and how to name them (``x_dim=``/``y_dim=``).
    """


class UnsupportedGridError(CasError, ValueError):
    """A raster grid cannot be used as it is (rotated, no coordinates...); reproject it."""


class InvalidDatasetIdError(CasError, ValueError):
    """A dataset id is not of the form ``provider:name``."""


class LimitExceededError(CasError, ValueError):
    """A request is larger than a configured limit (datasets, vertices, pixels...)."""


class ConfigurationError(CasError, ValueError):
    """A setting or provider definition cannot be used."""


class ProviderDefinitionError(ConfigurationError):
    """A provider definition (YAML file or entry point) is invalid."""


class UnknownProviderError(CasError, KeyError):
    """No provider is registered under this slug."""

    def __str__(self) -> str:
        # KeyError quotes its argument; keep the message readable.
        return str(self.args[0]) if self.args else ""


class UnknownDatasetError(UnknownProviderError):
    """The provider exists but has no dataset (or variable) of this name."""


class SourceError(CasError):
    """Reading from a data source failed at run time.

    Parameters
    ----------
    message
        What went wrong, in words.
    provider
        The provider slug, if known.
    url
        The URL or path that was being read, if known.
    kind
        A short machine-readable category (``"http"``, ``"timeout"``, ``"no_data"``...).
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        url: str | None = None,
        kind: str = "source",
    ) -> None:
        self.message = message
        self.provider = provider
        self.url = url
        self.kind = kind
        where = " ".join(p for p in (f"provider {provider!r}" if provider else "", url or "") if p)
        super().__init__(f"{message} ({where})" if where else message)


class RequestTimeoutError(CasError, TimeoutError):
    """A whole request took longer than ``request_timeout_s``."""


class MissingDependencyError(CasError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class CasWarning(UserWarning):
    """Base class of cas_xr's warnings."""


class QualityWarning(CasWarning):
    """A result is not GOOD (missing, partial, suspect or degraded)."""


class SourceWarning(CasWarning):
    """A data source misbehaved but the request went on."""


class BatchFailureWarning(SourceWarning):
    """Some results of a batch failed at run time; they are MISSING.

    Attributes
    ----------
    failures
        One dict per (dataset, kind, message): ``dataset_id`` (None when the geometry
        itself is at fault), ``kind``, ``message``, ``count`` and ``index`` (the input
        index labels of the geometries concerned), as in ``attrs["cas_failures"]``.
    """

    def __init__(self, message: str, failures: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.failures = failures


def validation_problems(err: Any, top: str) -> str:
    """What a pydantic ``ValidationError`` found, as ``"field.path: message; ..."``.

    Parameters
    ----------
    err
        The ``pydantic.ValidationError``.
    top
        The name of a problem of the whole document (an empty field path).

    Returns
    -------
    str
        One ``path: message`` per error, joined by ``"; "``.
    """
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or top}: {e['msg']}" for e in err.errors()
    )


@contextmanager
def strict(category: type[Warning] = CasWarning) -> Iterator[None]:
    """Turn cas_xr warnings into errors inside a ``with`` block.

    Parameters
    ----------
    category
        The warning class to escalate (default: every :class:`CasWarning`).

    Examples
    --------
    >>> from cas_xr.errors import strict, QualityWarning
    >>> import warnings
    >>> with strict():
    ...     try:
    ...         warnings.warn("coverage 0.2", QualityWarning)
    ...     except QualityWarning as err:
    ...         print("raised:", err)
    raised: coverage 0.2
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", category)
        yield
