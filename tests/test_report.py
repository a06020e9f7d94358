"""How a backtest reads: the rounded terminal summary, Sharpe on stated bars, chart.png, and report.html
opened in headless Chromium (DOM content, no console errors, no network, a screenshot against a reference)."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
from kftest import ROOT, run_cli

import kftools
from kftools.backtest.report import ANNUALISATION, bar_statistics, duration, money, pct, strategy_name
from kftools.bench.backtest import record

EXAMPLE = os.path.join(ROOT, "examples", "strategy_example.py")
MAKER = os.path.join(ROOT, "tests", "data", "sweep_maker.py") + ":Maker"
REFERENCE = os.path.join(ROOT, "tests", "golden", "report_backtest.png")
WINDOW = (1200, 1500)


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("rec") / "rec.dat")
    record(path, 20_000)  # seeded: the same recording on every machine
    return path


@pytest.fixture(scope="module")
def backtest(rec, tmp_path_factory):
    d = tmp_path_factory.mktemp("bt")
    r = run_cli("replay", rec, "--max", "-o", d / "o.dat", "--strategy", EXAMPLE, "--latency", "1ms",
                "--results", d / "res")
    assert r.returncode == 0, r.stderr
    return str(d / "res"), r.stdout


def test_terminal_summary_rounds_for_reading(backtest):
    _, out = backtest
    lines = out[out.index("backtest "):].splitlines()
    text = "\n".join(lines)
    assert "latency 1 ms in / 0 back" in text
    assert re.search(r"fill ratio \d+\.\d%", text)
    assert re.search(r"P&L            net -?[\d,]+\.\d\d = realised -?[\d,]+\.\d\d ", text)
    assert not re.search(r"\d\.\d{5,}", "\n".join(ln for ln in lines if not ln.startswith("strategy says"))), text
    assert "Sharpe-like" not in text and "annualised" in text or "Sharpe - (none:" in text


def test_rounding_helpers():
    assert money(-132.80809999998954) == "-132.81"
    assert money(-0.001) == "0.00"
    assert pct(0.9737820919894765) == "97.4%"
    assert duration(1_000_000) == "1 ms" and duration(200_000) == "200 µs" and duration(1_500_000) == "1.5 ms"
    assert strategy_name({"strategy": "/home/me/strats/maker.py:Maker"}) == "Maker (maker.py)"
    assert strategy_name({"strategy": "/home/me/strats/maker.py"}) == "maker.py"


def test_sharpe_is_on_stated_bars_and_annualised():
    t0 = 1_800_000_000_000_000_000
    rng = np.random.default_rng(1)
    # 2 minutes of samples every 100 ms: 1 s bars (119 whole ones: the last, unfinished, is not a bar)
    t = t0 + np.arange(1200, dtype=np.int64) * 100_000_000
    e = np.cumsum(rng.normal(0.01, 1.0, len(t)))
    st = bar_statistics(t, e)
    assert st["bar"] == "1 s" and st["bars"] == 119
    per_bar = np.diff(np.r_[e[0], e[10::10]])  # the equity at each bar's end
    want = per_bar.mean() / per_bar.std(ddof=1) * math.sqrt(252 * 6.5 * 3600)
    assert st["sharpe"] == pytest.approx(want)
    assert st["annualisation"] == ANNUALISATION
    # 3 hours: 5-minute bars; 200 ms: no Sharpe at all (not one from milliseconds of noise)
    assert bar_statistics(t0 + np.arange(0, 3 * 3600, 10, dtype=np.int64) * 10**9, np.arange(1080.0))["bar"] == "5 min"
    short = bar_statistics(t0 + np.arange(0, 200, dtype=np.int64) * 10**6, np.arange(200.0))
    assert short["sharpe"] is None and short["bars"] == 0


def test_result_folder_has_report_and_chart(backtest):
    folder, _ = backtest
    assert {"report.html", "chart.png", "summary.json"} <= set(os.listdir(folder))
    page = open(os.path.join(folder, "report.html")).read()
    assert not re.search(r"<script[^>]+src=", page), "plotly.js is inlined"
    assert "Backtest: strategy_example.py" in page and ROOT not in page.split("<script>")[0]


# -- in a browser ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chromium():
    """Debian's chromium; installed with apt-get when missing (root), else the tests are skipped."""
    exe = shutil.which("chromium")
    if exe is None and shutil.which("apt-get") and os.geteuid() == 0:
        for cmd in (["apt-get", "install", "-y", "-q", "chromium"], ["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "chromium"]):
            subprocess.run(cmd, capture_output=True, timeout=900, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
            exe = shutil.which("chromium")
            if exe:
                break
    if exe is None:
        pytest.skip("chromium is not installed and could not be installed with apt-get (needs root and Debian's archive)")
    return exe


def browse(chromium, page: str, *extra: str) -> subprocess.CompletedProcess:
    """Open ``page`` (a file, optionally with a #fragment) in headless Chromium with no network."""
    with tempfile.TemporaryDirectory(prefix="kftools-chromium-") as profile:
        return subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND",  # no network at all
             "--enable-logging=stderr", "--v=0", "--hide-scrollbars", f"--window-size={WINDOW[0]},{WINDOW[1]}",
             *extra, "file://" + os.path.abspath(page.split("#")[0]) + ("#" + page.split("#")[1] if "#" in page else "")],
            capture_output=True, text=True, timeout=120)


def console(r: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in r.stderr.splitlines() if ":CONSOLE" in ln]


@pytest.mark.timeout(1200)  # the first may install chromium with apt-get on a fresh machine
def test_backtest_report_in_chromium(chromium, backtest, tmp_path):
    folder, _ = backtest
    page = os.path.join(folder, "report.html")
    r = browse(chromium, page, "--dump-dom")
    assert r.returncode == 0, r.stderr[-2000:]
    assert console(r) == []
    dom = r.stdout
    for panel in ('id="stats"', 'id="panels"', 'id="per-symbol"'):
        assert panel in dom
    assert dom.count('class="main-svg"') >= 4  # plotly drew both figures (each has 2 svg layers)
    for row in ("Net P&amp;L", "Max drawdown", "Turnover", "Fill ratio", "Maker share of fills", "Sharpe ratio",
                "Bar length of the two above", "Fees"):
        assert f"<td>{row}" in dom, row
    for title in ("P&amp;L net of fees (quote units)", "Drawdown (quote units)", "Price and fills",
                  "Position (the chosen symbol)", "P&amp;L per symbol before fees"):
        assert title in dom, title
    shot = str(tmp_path / "shot.png")
    r = browse(chromium, page, f"--screenshot={shot}")
    assert r.returncode == 0 and os.path.exists(shot), r.stderr[-2000:]
    compare_to_reference(shot, REFERENCE)


def compare_to_reference(shot: str, reference: str, tolerance: float = 6.0) -> None:
    """Mean absolute difference of the two images, grey and 4x smaller, at most ``tolerance`` (of 255)."""
    from PIL import Image

    if os.environ.get("KFTOOLS_UPDATE_REFERENCE") == "1":
        shutil.copyfile(shot, reference)
    assert os.path.exists(reference), f"no reference {reference}: run with KFTOOLS_UPDATE_REFERENCE=1 and look at it"
    a, b = (Image.open(p).convert("L") for p in (shot, reference))
    assert a.size == b.size, (a.size, b.size)
    small = (a.size[0] // 4, a.size[1] // 4)
    da = np.asarray(a.resize(small, Image.BILINEAR), np.float64)
    db = np.asarray(b.resize(small, Image.BILINEAR), np.float64)
    diff = float(np.abs(da - db).mean())
    assert diff <= tolerance, f"screenshot differs from {reference} by {diff:.2f} (tolerance {tolerance})"


@pytest.mark.timeout(1200)  # the first may install chromium with apt-get on a fresh machine
def test_sweep_report_in_chromium(chromium, rec, tmp_path):
    res = kftools.sweep(rec, MAKER, str(tmp_path / "sweep"), grid={"spread": [0.01, 0.02], "size": [1, 2]},
                        workers=1, chart=False)
    assert not res.failed
    r = browse(chromium, res.report, "--dump-dom")
    assert r.returncode == 0, r.stderr[-2000:]
    assert console(r) == []
    dom = r.stdout
    body = dom[dom.index('<table id="runs"'):]
    body = body[:body.index("</table>")]
    assert body.count("<tr>") == 1 + 4  # the head and one row per run
    for run in res.runs.column("run").to_pylist():
        assert f'href="runs/{run}/report.html"' in body
    assert 'id="heatmap"' in dom and "spread" in dom and "size" in dom
    # sorted in the browser by its own script: net P&L, descending
    r = browse(chromium, res.report + "#sort=net_pnl-", "--dump-dom")
    assert console(r) == []
    order = re.findall(r'href="runs/(\w+)/report.html"', r.stdout)
    pnl = dict(zip(res.runs.column("run").to_pylist(), res.runs.column("net_pnl").to_pylist(), strict=True))
    assert order == sorted(pnl, key=lambda k: -pnl[k]) and len(order) == 4
    # a run's own report opens too (plotly.js from the sweep's copy, no network)
    run_page = os.path.join(res.out, "runs", res.runs.column("run")[0].as_py(), "report.html")
    r = browse(chromium, run_page, "--dump-dom")
    assert console(r) == [] and 'id="panels"' in r.stdout and 'class="main-svg"' in r.stdout
