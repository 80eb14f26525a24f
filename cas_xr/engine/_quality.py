"""Quality flags (see the statistics page of the docs)."""

from __future__ import annotations

from cas_xr.config import Settings
from cas_xr.models import AggregationMethod, QualityFlag

__all__ = ["assess_quality"]

# statistics whose value lies within the data's range, so a valid-range check makes sense
_RANGE_CHECKED = {
    AggregationMethod.MEAN,
    AggregationMethod.MEDIAN,
    AggregationMethod.MIN,
    AggregationMethod.MAX,
}


def assess_quality(
    value: float | dict[str, float] | None,
    coverage_fraction: float,
    *,
    aggregation: AggregationMethod,
    valid_range: tuple[float, float] | None,
    settings: Settings,
    degraded: bool = False,
) -> tuple[QualityFlag, str | None]:
    """Flag a result and say why when it is not GOOD.

    Parameters
    ----------
    value
        The statistic (None when no valid cell).
    coverage_fraction
        Valid covered area / geometry area.
    aggregation
        The statistic computed; valid ranges are checked for mean, median, min and max.
    valid_range
        The variable's plausible range, if known.
    settings
        Supplies ``quality_missing_below`` and ``quality_partial_below``.
    degraded
        Whether some source chunks failed and were treated as nodata.

    Returns
    -------
    tuple
        ``(flag, reason)``; ``reason`` is None for GOOD.

    Notes
    -----
    MISSING wins; DEGRADED comes next, over PARTIAL and SUSPECT (whose reasons it
    repeats): the lost chunks may be why, and unlike them it says that reading again may
    give another result.
    """
    flag, reason = _flag(value, coverage_fraction, aggregation, valid_range, settings)
    if not degraded:
        return flag, reason
    lost = "some source chunks could not be read and were treated as nodata"
    if flag is QualityFlag.MISSING:
        return flag, f"{reason}; {lost}"
    return QualityFlag.DEGRADED, lost if reason is None else f"{lost}; {reason}"


def _flag(
    value: float | dict[str, float] | None,
    coverage_fraction: float,
    aggregation: AggregationMethod,
    valid_range: tuple[float, float] | None,
    settings: Settings,
) -> tuple[QualityFlag, str | None]:
    """The flag and reason of a result whose every chunk was read."""
    if value is None and coverage_fraction > 0:
        return QualityFlag.MISSING, (
            f"the statistic has no value though {coverage_fraction:.3f} of the geometry has "
            "valid cells (a weighted statistic: no weight under it; or the statistic is "
            "undefined for these cells)"
        )
    if value is None:
        return QualityFlag.MISSING, "no valid cell under the geometry (nodata or outside the data)"
    if coverage_fraction < settings.quality_missing_below:
        return QualityFlag.MISSING, (
            f"coverage {coverage_fraction:.3f} is below quality_missing_below "
            f"({settings.quality_missing_below})"
        )
    if coverage_fraction < settings.quality_partial_below:
        return QualityFlag.PARTIAL, (
            f"coverage {coverage_fraction:.3f} is below quality_partial_below "
            f"({settings.quality_partial_below})"
        )
    if (
        valid_range is not None
        and aggregation in _RANGE_CHECKED
        and isinstance(value, float)
        and not valid_range[0] <= value <= valid_range[1]
    ):
        return QualityFlag.SUSPECT, (
            f"value {value:g} is outside the valid range {valid_range[0]:g}..{valid_range[1]:g}"
        )
    return QualityFlag.GOOD, None
