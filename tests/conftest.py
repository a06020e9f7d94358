"""Shared fixtures: a private copy of each sample journal, the sample schema."""

from __future__ import annotations

import os

import pytest
from kftest import CLEAN_SAMPLES, SAMPLES, SCHEMA, copy_journal


@pytest.fixture(params=SAMPLES, ids=lambda p: os.path.basename(p))
def sample(request, tmp_path) -> str:
    """A private copy of each sample journal in turn."""
    return copy_journal(request.param, str(tmp_path))


@pytest.fixture(params=CLEAN_SAMPLES, ids=lambda p: os.path.basename(p))
def clean_sample(request, tmp_path) -> str:
    return copy_journal(request.param, str(tmp_path))


@pytest.fixture
def schema_registry():
    from kftools.journal.schemas import load_registry

    return load_registry([SCHEMA])
