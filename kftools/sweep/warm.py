"""Imported once by the local pool's fork server, so each worker starts with what a run imports."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot  # noqa: E402,F401
import plotly.graph_objects  # noqa: E402,F401
import plotly.subplots  # noqa: E402,F401

import kftools.backtest.chart  # noqa: E402,F401
import kftools.backtest.report  # noqa: E402,F401
import kftools.replay  # noqa: E402,F401
import kftools.sweep.runner  # noqa: E402,F401
