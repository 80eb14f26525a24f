"""Shared fixtures: default settings per test; counted opens; a cluster; MapServer.

Tests marked ``network`` are skipped unless ``CAS_NETWORK_TESTS=1``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from cas_xr.config import _settings as config
from cas_xr.testing import MapServerNotFoundError, find_mapserv

#: what tests marked ``network`` need to run (the marker alone only selects them)
NETWORK_SWITCH = "CAS_NETWORK_TESTS"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``network`` unless ``CAS_NETWORK_TESTS=1``."""
    if os.environ.get(NETWORK_SWITCH) == "1":
        return
    skip = pytest.mark.skip(
        reason=f"reaches the real providers; set {NETWORK_SWITCH}=1 to run "
        f"({NETWORK_SWITCH}=1 pytest -m network runs only these)"
    )
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(__import__("os").environ):
        if name.startswith("CAS_"):
            monkeypatch.delenv(name)
    config._reset_for_tests()
    yield
    config._reset_for_tests()


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The arguments of every ``Connector.open`` call (a dataset opened for reading)."""
    from cas_xr.catalog import Connector

    calls: list[tuple[Any, ...]] = []
    original = Connector.open

    def counting(self: Connector, *args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Connector, "open", counting)
    return calls


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A ``distributed.LocalCluster`` of two single-threaded worker processes."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as local:
        yield local


@pytest.fixture(scope="session")
def mapserv() -> str:
    """Debian's MapServer CGI binary; a skip without it (a failure under CI=true)."""
    try:
        return find_mapserv()
    except MapServerNotFoundError as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the WCS test server cannot start: {err}")
        pytest.skip(str(err))
