"""Shared fixtures: every test starts from default settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cas_xr import config


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(__import__("os").environ):
        if name.startswith("CAS_"):
            monkeypatch.delenv(name)
    config._reset_for_tests()
    yield
    config._reset_for_tests()
