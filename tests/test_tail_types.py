"""The live view's --type names, resolved in each journal's own types (Kungfu generations number them
differently), or refused when journals shown together disagree: never the wrong frames."""

from __future__ import annotations

import os

import pytest
from kftest import ROOT, SAMPLES_DIR

from kftools.errors import UnknownType, UsageError
from kftools.journal.registry import DEFAULT_REGISTRY
from kftools.tui.app import tail_types

DATA = os.path.join(ROOT, "tests", "data", "kungfu")
KF_24 = os.path.join(DATA, "kf_home", "runtime", "strategy", "default", "demo", "journal", "live")
KF_65 = os.path.join(DATA, "generations", "kf_home", "runtime", "td", "sim", "acct2", "journal", "live")
OURS = os.path.join(SAMPLES_DIR, "multipage.dat")


def test_a_name_is_resolved_in_the_journal_s_own_generation():
    assert tail_types([KF_24], DEFAULT_REGISTRY, ["Trade"]) == [204]  # 2.4: Order 203, Trade 204
    assert tail_types([KF_65], DEFAULT_REGISTRY, ["Trade"]) == [203]  # later: Order 202, Trade 203
    assert tail_types([OURS], DEFAULT_REGISTRY, ["Ticker,Trade"]) == [1, 3]
    assert tail_types([OURS], DEFAULT_REGISTRY, None) is None


def test_journals_that_number_a_name_differently_are_refused_not_misread():
    with pytest.raises(UsageError, match="number it differently.*tail --plain"):
        tail_types([KF_24, KF_65], DEFAULT_REGISTRY, ["Trade"])
    with pytest.raises(UnknownType, match="NoSuchType"):  # a name no journal knows
        tail_types([KF_24], DEFAULT_REGISTRY, ["NoSuchType"])
