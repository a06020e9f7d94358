"""Imported once by the local pool's fork server, so each worker starts with what a run imports and draws.

A worker is forked from the server: what the server did, no worker does again. So the server also pays here
the costs a run would otherwise pay once per worker on its first run (measured: +0.3 s of CPU in each
worker): the modules ``pyarrow.parquet.read_table`` imports on first use (pyarrow.dataset, and pandas
through it), plotly's HTML writer and the validators of the traces a report draws, and matplotlib's fonts
and PNG writer (a figure drawn once, off screen).
"""

from kftools.sweep.trace import mark

mark("warm.start")

import io  # noqa: E402

import matplotlib  # noqa: E402
import numpy as np  # noqa: E402

matplotlib.use("Agg")

import matplotlib.dates  # noqa: E402,F401
import matplotlib.pyplot as plt  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import plotly.io  # noqa: E402,F401
import plotly.offline  # noqa: E402,F401
import plotly.subplots  # noqa: E402
import pyarrow.dataset  # noqa: E402,F401
import pyarrow.parquet  # noqa: E402,F401

import kftools.backtest.chart  # noqa: E402,F401
import kftools.backtest.report  # noqa: E402,F401
import kftools.replay  # noqa: E402,F401
import kftools.sweep.runner  # noqa: E402,F401


def _draw_once() -> None:
    """One small chart and one small report page, thrown away (the first-use costs, not the drawing)."""
    fig = plt.figure(figsize=(3, 2))
    ax = fig.add_subplot(2, 1, 1)
    ax.step([0, 1], [0.0, 1.0], where="post", label="a")
    ax.fill_between([0, 1], [0, -1], 0, step="post", alpha=0.3)
    ax.scatter([0.5], [0.5], marker="^")
    ax.set_title("warm", fontsize=9, loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    ax2 = fig.add_subplot(2, 1, 2)
    ax2.plot(matplotlib.dates.date2num([matplotlib.dates.num2date(0), matplotlib.dates.num2date(1)]), [0, 1])
    ax2.xaxis.set_major_formatter(matplotlib.dates.ConciseDateFormatter(matplotlib.dates.AutoDateLocator()))
    fig.savefig(io.BytesIO(), format="png", dpi=50)
    plt.close(fig)
    t = np.array([0, 1], dtype="datetime64[ns]")
    sub = plotly.subplots.make_subplots(rows=2, cols=1, shared_xaxes=True, subplot_titles=("a", "b"))
    sub.add_trace(go.Scatter(x=t, y=[0, 1], mode="lines", line={"shape": "hv"}), row=1, col=1)
    sub.add_trace(go.Scatter(x=t[:1], y=[0], mode="markers", marker={"symbol": "triangle-up"}), row=2, col=1)
    sub.update_layout(updatemenus=[{"buttons": [{"label": "a", "method": "restyle", "args": [{"visible": [True]}]}],
                                   "pad": {"t": 2}}],
                      legend={"x": 1.01, "font": {"size": 11}}, hovermode="x unified", template="plotly_white")
    sub.to_html(full_html=False, include_plotlyjs=False)
    side = go.Figure([go.Bar(x=[1], y=["a"], orientation="h"), go.Heatmap(z=[[0, 1]], x=["a", "b"], y=["c"])])
    side.update_layout(template="plotly_white")
    side.to_html(full_html=False, include_plotlyjs=False)


_draw_once()

mark("warm.end")
