"""Reliability suite: the torture tests (``@pytest.mark.slow``) run only with ``-m slow`` (``make torture``)."""

from __future__ import annotations

import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_collection_modifyitems(config, items):
    # `make test` runs `pytest tests` without a marker expression: keep the torture runs out of it
    if "slow" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="torture run only: `make torture`")
    for item in items:
        if item.get_closest_marker("slow") and str(item.path).startswith(HERE):
            item.add_marker(skip)
