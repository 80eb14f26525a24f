"""Climate indices of one daily series (a geometry's area-weighted mean), as CAMELS has them.

The formulas follow the code that produced the CAMELS attributes (Addor et al. 2017,
HESS 21, 5293-5313; ``clim/clim_indices.R`` of the repository ``naddor/camels``,
functions ``compute_climate_indices_berghuijs`` and ``compute_extreme_precip_indices``):

- ``p_mean``, ``pet_mean``: means of the daily series (mm/day); ``aridity`` =
  ``pet_mean / p_mean``.
- ``p_seasonality`` (Woods 2009): sine curves with a period of 365.25 days, in the day of
  the year (0-based), fitted by least squares to temperature ``T = mean(T) + dT sin(2 pi
  (t - sT) / 365.25)`` and precipitation ``P = mean(P) (1 + dP sin(2 pi (t - sP) / 365.25))``;
  the index is ``dP sign(dT) cos(2 pi (sP - sT) / 365.25)``. CAMELS fits with ``nls``; both
  models are linear in ``(a, b)`` of ``a sin + b cos``, so the least-squares fit has the
  closed form used here (the same optimum, without starting values).
- ``frac_snow``: precipitation on days with mean temperature at or below 0 degC over all
  precipitation (CAMELS' ``frac_snow_daily``: ``sum(prec[temp <= 0]) / sum(prec)``; 0 when
  no precipitation fell on such days; NaN when no precipitation fell at all, where CAMELS
  gives 0).
- ``high_prec_freq``/``high_prec_dur``: days with at least 5 times the mean daily
  precipitation, in days per year (``count / days * 365.25``), and the mean length of runs
  of such days (0 and 0 when there is none).
- ``low_prec_freq``/``low_prec_dur``: the same for days with less than 1 mm (the duration
  is NaN when there is no dry day).

``pet_mean`` here is Hargreaves' PET (Hargreaves and Samani 1985, with the extraterrestrial
radiation of FAO-56, Allen et al. 1998, eqs. 21-25) from daily minimum and maximum
temperature: it differs from CAMELS' PET (Priestley-Taylor, calibrated, Newman et al.
2015), so ``pet_mean`` and ``aridity`` are not comparable with CAMELS' values.

Missing days (NaN) are treated as CAMELS' code treats them (``hp[is.na(hp)] <- F`` and
``length(hp)`` in ``compute_extreme_precip_indices``): they are left out of means and sums,
are neither high- nor low-precipitation days, so a run of such days ends at a missing day
(two high days either side of it are two events of one day, not one of three), and they
count among the days of the period that the frequencies divide by. Daymet's December 31
of leap years is such a missing day (see :mod:`cas_xr.attributes._daily`): over the
CAMELS period (7305 days, 5 of them missing) the frequencies are 5/7305 (0.07 %) below
what the same events over only the days present would give.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = [
    "INDICES",
    "INPUT_UNITS",
    "aridity",
    "extraterrestrial_radiation",
    "frac_snow",
    "hargreaves_pet",
    "high_prec_dur",
    "high_prec_freq",
    "index_value",
    "low_prec_dur",
    "low_prec_freq",
    "p_mean",
    "p_seasonality",
    "pet_mean",
    "runs",
]

FloatArray = npt.NDArray[np.float64]

#: days per year of the frequencies and period of the seasonal sine curves (CAMELS)
YEAR_DAYS = 365.25
#: high precipitation: at least this many times the mean daily precipitation (CAMELS)
HIGH_PREC_RATIO = 5.0
#: low precipitation: less than this many mm per day (CAMELS)
LOW_PREC_MM = 1.0
_SOLAR_CONSTANT = 0.0820  # MJ m-2 min-1 (FAO-56)
_MJ_TO_MM = 0.408  # mm of evaporation per MJ m-2 (FAO-56, 1 / latent heat of vaporisation)

#: Spellings of the units the inputs must be in, the usual one first
_CELSIUS = ("degC", "°C", "deg C", "degrees C", "degree_Celsius", "Celsius", "C")
INPUT_UNITS = {
    "prcp": ("mm/day", "mm/d", "mm d-1", "mm day-1", "mm/24h", "kg m-2 d-1"),
    "tmin": _CELSIUS,
    "tmax": _CELSIUS,
}

#: Each index's inputs (daily series) and units.
INDICES: dict[str, tuple[tuple[str, ...], str]] = {
    "p_mean": (("prcp",), "mm/day"),
    "pet_mean": (("tmin", "tmax"), "mm/day"),
    "aridity": (("prcp", "tmin", "tmax"), "1"),
    "p_seasonality": (("prcp", "tmin", "tmax"), "1"),
    "frac_snow": (("prcp", "tmin", "tmax"), "1"),
    "high_prec_freq": (("prcp",), "days/yr"),
    "high_prec_dur": (("prcp",), "days"),
    "low_prec_freq": (("prcp",), "days/yr"),
    "low_prec_dur": (("prcp",), "days"),
}


def _valid(x: FloatArray) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def p_mean(prcp: FloatArray) -> float:
    """Mean daily precipitation (NaN days left out).

    Parameters
    ----------
    prcp
        Daily precipitation (mm/day).
    """
    values = _valid(prcp)
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else math.nan


def extraterrestrial_radiation(day_of_year: npt.ArrayLike, latitude: float) -> FloatArray:
    """Daily extraterrestrial radiation (MJ m-2 day-1) at ``latitude`` (FAO-56 eqs. 21-25).

    Parameters
    ----------
    day_of_year
        Day of the year, 1 to 365 (or 366).
    latitude
        Degrees north; polar day and night are handled (sunset hour angle clipped).
    """
    j = np.asarray(day_of_year, dtype=np.float64)
    phi = math.radians(latitude)
    dr = 1.0 + 0.033 * np.cos(2.0 * math.pi * j / 365.0)
    delta = 0.409 * np.sin(2.0 * math.pi * j / 365.0 - 1.39)
    ws = np.arccos(np.clip(-math.tan(phi) * np.tan(delta), -1.0, 1.0))
    return np.asarray(
        24.0 * 60.0 / math.pi * _SOLAR_CONSTANT * dr
        * (ws * math.sin(phi) * np.sin(delta) + math.cos(phi) * np.cos(delta) * np.sin(ws)),
        dtype=np.float64,
    )  # fmt: skip


def hargreaves_pet(
    tmin: FloatArray, tmax: FloatArray, day_of_year: npt.ArrayLike, latitude: float
) -> FloatArray:
    """Daily potential evapotranspiration (mm/day) by Hargreaves and Samani (1985).

    ``0.0023 * 0.408 Ra * (T + 17.8) * sqrt(Tmax - Tmin)``, ``T = (Tmin + Tmax) / 2``, with
    ``Ra`` from :func:`extraterrestrial_radiation`; a negative diurnal range counts as 0.

    Parameters
    ----------
    tmin, tmax
        Daily minimum and maximum air temperature (degC).
    day_of_year
        Day of the year of each value (1-based).
    latitude
        Degrees north.
    """
    tmin, tmax = _valid(tmin), _valid(tmax)
    ra = _MJ_TO_MM * extraterrestrial_radiation(day_of_year, latitude)
    mean = (tmin + tmax) / 2.0
    return np.asarray(
        0.0023 * ra * (mean + 17.8) * np.sqrt(np.clip(tmax - tmin, 0.0, None)), dtype=np.float64
    )


def pet_mean(
    tmin: FloatArray, tmax: FloatArray, day_of_year: npt.ArrayLike, latitude: float
) -> float:
    """Mean daily Hargreaves PET (mm/day; see :func:`hargreaves_pet`)."""
    pet = hargreaves_pet(tmin, tmax, day_of_year, latitude)
    return float(np.nanmean(pet)) if np.any(~np.isnan(pet)) else math.nan


def aridity(prcp: FloatArray, pet: float) -> float:
    """``pet / p_mean(prcp)`` (NaN without precipitation)."""
    p = p_mean(prcp)
    return pet / p if p > 0 else math.nan


def _sine_fit(values: FloatArray, t: FloatArray) -> tuple[float, float]:
    """Least-squares ``(a, b)`` of ``values - mean(values) = a sin(w t) + b cos(w t)``."""
    ok = ~np.isnan(values)
    w = 2.0 * math.pi / YEAR_DAYS
    design = np.column_stack([np.sin(w * t[ok]), np.cos(w * t[ok])])
    (a, b), *_ = np.linalg.lstsq(design, values[ok] - values[ok].mean(), rcond=None)
    return float(a), float(b)


def p_seasonality(prcp: FloatArray, temperature: FloatArray, day_of_year0: npt.ArrayLike) -> float:
    """Woods' (2009) seasonality of precipitation, as CAMELS computes it.

    Parameters
    ----------
    prcp
        Daily precipitation.
    temperature
        Daily mean temperature (degC).
    day_of_year0
        Day of the year, 0-based (R's ``yday``), of each value.

    Returns
    -------
    float
        ``dP sign(dT) cos(2 pi (sP - sT) / 365.25)``: positive when precipitation peaks in
        the warm season, negative in the cold season, near 0 when it is uniform. Writing
        each fitted curve as ``a sin + b cos``, that is ``(aP aT + bP bT) / (mean(P) |T|)``
        with ``|T| = sqrt(aT^2 + bT^2)``.
    """
    p, temp = _valid(prcp), _valid(temperature)
    t = np.asarray(day_of_year0, dtype=np.float64)
    both = ~np.isnan(p) & ~np.isnan(temp)
    if both.sum() < 3:
        return math.nan
    p_bar = float(p[both].mean())
    a_p, b_p = _sine_fit(p[both], t[both])
    a_t, b_t = _sine_fit(temp[both], t[both])
    amplitude_t = math.hypot(a_t, b_t)
    if p_bar <= 0 or amplitude_t == 0:
        return math.nan
    return (a_p * a_t + b_p * b_t) / (p_bar * amplitude_t)


def frac_snow(prcp: FloatArray, temperature: FloatArray) -> float:
    """Fraction of precipitation on days with mean temperature at or below 0 degC."""
    p, temp = _valid(prcp), _valid(temperature)
    ok = ~np.isnan(p) & ~np.isnan(temp)
    total = float(p[ok].sum())
    if total <= 0:
        return math.nan
    return float(p[ok & (temp <= 0.0)].sum()) / total


def runs(events: npt.NDArray[np.bool_]) -> npt.NDArray[np.intp]:
    """Lengths of the runs of consecutive True values of ``events``."""
    padded = np.concatenate([[False], np.asarray(events, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return np.asarray(edges[1::2] - edges[::2], dtype=np.intp)


def _frequency(events: npt.NDArray[np.bool_], days: int) -> float:
    return float(events.sum()) / days * YEAR_DAYS if days else math.nan


def _high(prcp: FloatArray) -> npt.NDArray[np.bool_]:
    p = _valid(prcp)
    with np.errstate(invalid="ignore"):
        return np.asarray(p >= HIGH_PREC_RATIO * p_mean(p), dtype=bool)


def _low(prcp: FloatArray) -> npt.NDArray[np.bool_]:
    with np.errstate(invalid="ignore"):
        return np.asarray(_valid(prcp) < LOW_PREC_MM, dtype=bool)


def high_prec_freq(prcp: FloatArray) -> float:
    """Days per year with at least 5 times the mean daily precipitation.

    The share of days is taken over all days: a missing day (NaN) counts, as no such day.
    """
    return _frequency(_high(prcp), np.size(prcp)) if not math.isnan(p_mean(prcp)) else math.nan


def high_prec_dur(prcp: FloatArray) -> float:
    """Mean length (days) of runs of high-precipitation days (0 without any)."""
    if math.isnan(p_mean(prcp)):
        return math.nan
    lengths = runs(_high(prcp))
    return float(lengths.mean()) if lengths.size else 0.0


def low_prec_freq(prcp: FloatArray) -> float:
    """Days per year with less than 1 mm of precipitation.

    The share of days is taken over all days: a missing day (NaN) counts, as no such day.
    """
    return _frequency(_low(prcp), np.size(prcp)) if not math.isnan(p_mean(prcp)) else math.nan


def low_prec_dur(prcp: FloatArray) -> float:
    """Mean length (days) of runs of days with less than 1 mm (NaN without any)."""
    lengths = runs(_low(prcp))
    return float(lengths.mean()) if lengths.size else math.nan


def index_value(
    name: str, series: dict[str, FloatArray], times: npt.NDArray[np.datetime64], latitude: float
) -> float:
    """The climate index ``name`` of daily series (roles of :data:`INDICES`).

    Parameters
    ----------
    name
        A key of :data:`INDICES`.
    series
        ``prcp`` (mm/day), ``tmin`` and ``tmax`` (degC), as the index needs, one value per
        day of ``times``.
    times
        Every day of the period (:class:`~cas_xr.attributes._daily.DailyAxis`), missing
        days NaN in ``series``.
    latitude
        Degrees north (of the geometry's centroid), for the extraterrestrial radiation.
    """
    import pandas as pd

    stamps = pd.DatetimeIndex(times)
    doy = np.asarray(stamps.day_of_year, dtype=np.float64)
    prcp = series.get("prcp")
    if name in ("pet_mean", "aridity"):
        pet = pet_mean(series["tmin"], series["tmax"], doy, latitude)
        return pet if name == "pet_mean" else aridity(_require(prcp), pet)
    if name in ("p_seasonality", "frac_snow"):
        temperature = (_valid(series["tmin"]) + _valid(series["tmax"])) / 2.0
        if name == "frac_snow":
            return frac_snow(_require(prcp), temperature)
        return p_seasonality(_require(prcp), temperature, doy - 1.0)
    functions = {
        "p_mean": p_mean,
        "high_prec_freq": high_prec_freq,
        "high_prec_dur": high_prec_dur,
        "low_prec_freq": low_prec_freq,
        "low_prec_dur": low_prec_dur,
    }
    return functions[name](_require(prcp))


def _require(values: FloatArray | None) -> FloatArray:
    if values is None:
        raise KeyError("prcp")
    return values
