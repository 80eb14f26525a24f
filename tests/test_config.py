"""Settings and configure(): the semantics CONTRACT.md promises."""

from __future__ import annotations

import pytest

import cas_xr as cas
from cas_xr.config._cache import TTLCache
from cas_xr.engine._run import MEMORY as RESULT_MEMORY
from cas_xr.errors import ConfigurationError


def test_defaults_match_the_contract():
    s = cas.get_settings()
    assert (s.provider_timeout_s, s.request_timeout_s) == (30, 120)
    assert (s.max_datasets_per_request, s.max_polygon_vertices) == (50, 10_000)
    assert (s.result_cache_ttl_s, s.result_cache_max_entries, s.metadata_cache_ttl_s) == (
        600,
        10_000,
        3600,
    )
    assert s.cors_origins == ["*"] and s.api_keys == []
    assert not s.auth_enabled and not s.rate_limit_enabled and s.rate_limit_per_minute == 60
    assert s.zonal_weights == "exact" and not s.area_weighted
    assert (s.quality_partial_below, s.quality_missing_below) == (0.8, 0.3)
    assert s.provider_files == [] and s.dask_scheduler is None and s.result_cache_dir is None
    assert (s.chunk_size, s.max_raster_pixels, s.progress) == (2048, 100_000_000, True)
    assert s.jobs_db is None  # the service's jobs.sqlite in the user's data folder
    assert (s.max_concurrent_requests_per_host, s.http_retries, s.gdal_http_max_retry) == (8, 5, 5)


def test_environment_is_read_and_overrides_win(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CAS_PROVIDER_TIMEOUT_S", "45")
    cas.configure()  # re-reads the environment
    assert cas.get_settings().provider_timeout_s == 45
    cas.configure(provider_timeout_s=60)
    assert cas.get_settings().provider_timeout_s == 60
    monkeypatch.setenv("CAS_PROVIDER_TIMEOUT_S", "50")
    cas.configure()
    assert cas.get_settings().provider_timeout_s == 60  # overrides still win


def test_overrides_accumulate():
    cas.configure(provider_timeout_s=60)
    cas.configure(result_cache_ttl_s=3600)
    s = cas.get_settings()
    assert (s.provider_timeout_s, s.result_cache_ttl_s) == (60, 3600)


def test_unknown_name_raises_type_error():
    with pytest.raises(TypeError, match="unknown setting.*provider_timeout"):
        cas.configure(provider_timeout=60)


def test_invalid_value_raises_and_keeps_previous_settings():
    cas.configure(provider_timeout_s=60)
    with pytest.raises(ConfigurationError, match="provider_timeout_s"):
        cas.configure(provider_timeout_s=-1)
    with pytest.raises(ConfigurationError, match="quality_missing_below"):
        cas.configure(quality_missing_below=0.9)  # above quality_partial_below
    assert cas.get_settings().provider_timeout_s == 60
    assert cas.get_settings().quality_missing_below == 0.3
    cas.configure(result_cache_ttl_s=1)  # later calls still work
    assert cas.get_settings().provider_timeout_s == 60


def test_invalid_environment_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CAS_MAX_POLYGON_VERTICES", "many")
    with pytest.raises(ConfigurationError, match="max_polygon_vertices"):
        cas.configure()
    monkeypatch.delenv("CAS_MAX_POLYGON_VERTICES")
    assert cas.configure().max_polygon_vertices == 10_000


def test_configure_rebuilds_the_result_cache():
    before = RESULT_MEMORY.current()
    assert before.ttl_s == 600
    cas.configure(provider_timeout_s=60, result_cache_ttl_s=3600)
    after = RESULT_MEMORY.current()
    assert after is not before and after.ttl_s == 3600
    assert RESULT_MEMORY.current() is after  # stable until the next change


def test_ttl_cache_expiry_and_capacity():
    now = [0.0]
    cache: TTLCache[int] = TTLCache(10, 2, clock=lambda: now[0])
    cache.set("a", 1)
    cache.set("b", 2)
    cache.set("c", 3)  # evicts the oldest
    assert cache.get("a") is None and cache.get("b") == 2 and len(cache) == 2
    now[0] = 11
    assert cache.get("b") is None
    disabled: TTLCache[int] = TTLCache(0, 10)
    disabled.set("a", 1)
    assert disabled.get("a") is None


def test_ttl_cache_get_many_is_get_for_each_key():
    now = [0.0]
    cache: TTLCache[int] = TTLCache(10, 3, clock=lambda: now[0])
    assert cache.get_many(["a"]) == {}
    cache.set("a", 1)
    cache.set("b", 2)
    now[0] = 5
    cache.set("c", 3)
    assert cache.get_many(["a", "x", "c"]) == {"a": 1, "c": 3}
    cache.set("d", 4)  # evicts the least recently used: b (a was just read)
    assert cache.get_many(["a", "b", "c", "d"]) == {"a": 1, "c": 3, "d": 4}
    now[0] = 12  # a expired (stored at 0), c and d live
    assert cache.get_many(["a", "c", "d"]) == {"c": 3, "d": 4}
    assert len(cache) == 2  # the expired entry is gone
