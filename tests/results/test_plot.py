"""Plots write PNG files with the expected content."""

import numpy as np
import pytest
from obspy import UTCDateTime

from noisecorr.results import ResultsWriter, lag_axis, open_results
from noisecorr.results.plot import availability, pair_ccf, record_section

PNG = b"\x89PNG\r\n\x1a\n"
FS = 10.0


@pytest.fixture
def results(tmp_path):
    """Three pairs whose CCFs peak at +distance / 3 km/s."""
    stations = [{"code": f"XS.S000{i}", "latitude": 47.0, "longitude": 10.0 + 0.3 * i,
                 "elevation": 0.0} for i in range(1, 5)]
    path = tmp_path / "r.h5"
    lags = lag_axis(40.0, FS)
    with ResultsWriter(path, {}, stations=stations, sampling_rate=FS) as w:
        for src, rcv in [("XS.S0001", "XS.S0002"), ("XS.S0001", "XS.S0003"),
                         ("XS.S0001", "XS.S0004")]:
            w.write_pair(src, rcv, "ZZ", 40.0, np.zeros(lags.size), {})
    with open_results(path) as res:
        dists = {p: res.meta(*p)["distance_km"] for p in res.pairs()}
    with ResultsWriter(path, {}, sampling_rate=FS) as w:
        for (src, rcv), d in dists.items():
            w.write_pair(src, rcv, "ZZ", 40.0, np.exp(-((lags - d / 3.0) / 1.0) ** 2), {})
    res = open_results(path)
    yield res
    res.close()


def test_record_section_from_results(results, tmp_path):
    out = tmp_path / "rs.png"
    fig = record_section(results, velocities=(2.5, 3.0), path=out)
    assert out.read_bytes()[:8] == PNG
    ax = fig.axes[0]
    # one line per pair, two guide lines per velocity
    assert len(ax.lines) == 3 + 2 * 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["2.5 km/s", "3 km/s"]
    # CCF lines are ordered by distance and each peaks where the 3 km/s move-out says
    ccf_lines = ax.lines[:3]
    base = [np.median(line.get_ydata()) for line in ccf_lines]
    assert base == sorted(base)
    for line, d in zip(ccf_lines, base):
        x, y = line.get_xdata(), line.get_ydata()
        assert x[np.argmax(y)] == pytest.approx(d / 3.0, abs=0.1)


def test_record_section_from_tuples_and_empty(tmp_path):
    lags = lag_axis(5.0, FS)
    traces = [(f"p{i}", 10.0 * i, lags, np.sin(lags + i)) for i in (3, 1, 2)]
    fig = record_section(traces, velocities=(), path=tmp_path / "t.png")
    assert len(fig.axes[0].lines) == 3 and fig.axes[0].get_legend() is None
    empty = record_section([], path=tmp_path / "e.png")
    assert (tmp_path / "e.png").exists() and len(empty.axes[0].lines) == 0


def test_pair_ccf(results, tmp_path):
    out = tmp_path / "pair.png"
    fig = pair_ccf(results, "XS.S0001", "XS.S0003", "ZZ", travel_time=8.0, path=out)
    assert out.read_bytes()[:8] == PNG
    ax = fig.axes[0]
    assert len(ax.lines) == 1 + 2  # the CCF and two travel-time markers
    assert "XS.S0001 -> XS.S0003" in ax.get_title()
    lags = lag_axis(2.0, FS)
    sub = pair_ccf(lags, ccf=np.vstack([lags, -lags, lags ** 2]))
    assert len(sub.axes[0].lines) == 3 + 1  # substacks and their mean


def test_availability(tmp_path):
    t = UTCDateTime(2024, 1, 1)
    intervals = [("XS.S0002", t, t + 3600), ("XS.S0001", t, t + 1800),
                 ("XS.S0001", t + 1830, t + 7200), ("XS.S0003", t + 600, t + 7200)]
    out = tmp_path / "av.png"
    fig = availability(intervals, path=out)
    assert out.read_bytes()[:8] == PNG
    ax = fig.axes[0]
    assert [x.get_text() for x in ax.get_yticklabels()] == ["XS.S0001", "XS.S0002",
                                                            "XS.S0003"]
    bars = [len(c.get_paths()) for c in ax.collections]
    assert bars == [2, 1, 1]  # one bar per interval, the gap on S0001 visible
    numeric = availability([("A", 0.0, 10.0)])
    assert numeric.axes[0].get_xlabel() == "time (s)"


def test_record_section_bins_many_pairs_by_distance(tmp_path):
    """Thousands of pairs are averaged in distance bins, not drawn as thousands of lines."""
    import numpy as np

    from noisecorr.results.plot import record_section

    lags = np.linspace(-50, 50, 1001)
    traces = [(f"p{i}", d, lags, np.exp(-((lags - d / 3.0) ** 2))) for i, d in enumerate(np.linspace(1, 120, 900))]
    fig = record_section(traces, velocities=(3.0,), max_traces=40, path=tmp_path / "rs.png")
    ax = fig.axes[0]
    ccf_lines = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    assert len(ccf_lines) == 40
    assert "900 pairs in 40 distance bins" in ax.get_title()
    # each bin's mean still peaks where its pairs arrive: lag = distance / 3 km/s
    for line in ccf_lines:
        x, y = line.get_data()
        centre = np.median(y)
        assert abs(x[np.argmax(y - centre)] * 3.0 - centre) < 120 / 40 * 3.0
    assert (tmp_path / "rs.png").stat().st_size > 5000


def test_record_section_draws_only_the_lags_it_shows(tmp_path):
    """With a lag limit each line holds the lags inside it plus one sample either side (so
    it still reaches the edges), at the values the whole line has there: normalised by the
    maximum over every lag, also one outside the limit."""
    lags = lag_axis(50.0, FS)
    ccf = np.exp(-((lags - 5.0) / 1.0) ** 2)
    ccf[lags == -40.0] = 3.0              # the largest value lies outside the limit
    fig = record_section([("a", 10.0, lags, ccf)], velocities=(), maxlag=12.0, scale=2.0)
    (line,) = fig.axes[0].lines
    x, y = line.get_data()
    assert x[0] == pytest.approx(-12.1) and x[-1] == pytest.approx(12.1)
    inside = (lags >= -12.1 - 1e-9) & (lags <= 12.1 + 1e-9)
    np.testing.assert_allclose(y, 10.0 + 2.0 * ccf[inside] / 3.0)
    assert fig.axes[0].get_xlim() == (-12.0, 12.0)
    # a limit beyond the stack draws all of it
    (whole,) = record_section([("a", 10.0, lags, ccf)], velocities=(), maxlag=80.0).axes[0].lines
    assert len(whole.get_xdata()) == lags.size
