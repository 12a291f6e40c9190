"""Data kept around short gaps, sub-sample tears and near-equal header rates, and a fetch
pad long enough for the taper at low freqmin (issue 18, part 6)."""

import logging

import numpy as np
import pytest
import scipy.signal
from obspy import Stream, Trace, UTCDateTime

from noisecorr.signal.params import CorrelationParams
from noisecorr.signal.preprocess import (PreprocessError, fetch_pad, merge_with_gap_mask,
                                         preprocess_stream)
from noisecorr.signal.windows import cut_windows

T0 = UTCDateTime(2021, 3, 1)


def trace(data, fs, start, seed_id="XX.STA.00.HHZ"):
    net, sta, loc, cha = seed_id.split(".")
    return Trace(np.asarray(data, dtype=float), header={
        "network": net, "station": sta, "location": loc, "channel": cha,
        "sampling_rate": fs, "starttime": start})


def split(x, fs, start, at, missing, delay=0.0):
    """Two traces of ``x``: samples ``[0, at)`` and ``[at + missing, ...)``, the second
    starting ``delay`` seconds later than its true time (a timing tear)."""
    return Stream([trace(x[:at], fs, start),
                   trace(x[at + missing:], fs, start + (at + missing) / fs + delay)])


def windows(tr):
    """200 s windows every 100 s of a ProcessedTrace, gap windows rejected."""
    return cut_windows(tr.data, tr.sampling_rate, 200.0, 100.0, gap_mask=tr.gap_mask)


def test_one_missing_sample_is_interpolated_not_masked():
    a = trace([0.0, 1.0, 2.0, 3.0], 1.0, T0)
    b = trace([5.0, 6.0], 1.0, T0 + 5)                  # sample at t = 4 s missing
    merged, mask = merge_with_gap_mask(Stream([a, b]), max_gap_fill=1)
    np.testing.assert_array_equal(merged.data, [0, 1, 2, 3, 4, 5, 6])
    assert not mask.any()
    # one sample more than allowed: a gap, masked and zero
    merged, mask = merge_with_gap_mask(Stream([a, trace([6.0], 1.0, T0 + 6)]), max_gap_fill=1)
    np.testing.assert_array_equal(mask, [0, 0, 0, 0, 1, 1, 0])
    np.testing.assert_array_equal(merged.data[4:6], 0)


def test_short_overlap_joins_in_favour_of_later_segment():
    a = trace(np.ones(10), 1.0, T0)
    b = trace(np.full(5, 2.0), 1.0, T0 + 8)            # overlaps the last 2 samples of a
    merged, mask = merge_with_gap_mask(Stream([a, b]), taper_fraction=0.2, max_gap_fill=2)
    # joined first, so one segment: tapered only at its two ends, not around the overlap
    assert mask.sum() == 2 * int(0.2 * 13)
    assert not mask[3:10].any()


@pytest.mark.parametrize("missing,delay", [(1, 0.0), (0, 0.3 / 100), (3, -0.2 / 100)])
def test_short_gap_or_tear_keeps_every_window(missing, delay):
    """A missing sample or a sub-sample tear in 20 minutes at 100 Hz used to mask 2 x 1/freqmin
    (40 s) and lose the windows over it; now all windows survive and the data match the
    gap-free record within the interpolation error."""
    fs, fs_out = 100.0, 20.0
    # ground noise is red: most of its energy is far below the 50 Hz Nyquist of the record
    sos = scipy.signal.butter(4, 5.0, fs=fs, output="sos")
    x = scipy.signal.sosfilt(sos, np.random.default_rng(7).standard_normal(int(1400 * fs)))
    kw = dict(sampling_rate=fs_out, freqmin=0.05, freqmax=2.0, response_output="NONE")
    full = preprocess_stream(Stream([trace(x, fs, T0 - 100)]), T0, T0 + 1200, **kw)
    torn = preprocess_stream(split(x, fs, T0 - 100, int(700 * fs), missing, delay), T0, T0 + 1200, **kw)
    assert not torn.gap_mask.any()
    n_full = windows(full).n_windows
    assert windows(torn).n_windows == n_full == 11
    # 0.05-2 Hz band: a few interpolated samples at 100 Hz change it very little
    err = np.abs(torn.data - full.data).max() / np.abs(full.data).max()
    assert err < 0.02
    # and the old behaviour (no joining) masks about 40 s and drops windows
    old = preprocess_stream(split(x, fs, T0 - 100, int(700 * fs), missing, delay), T0, T0 + 1200,
                            max_gap_fill=-1, **kw)
    assert old.gap_mask.sum() / fs_out > 30
    assert windows(old).n_windows < 11


def test_long_gap_is_still_masked():
    fs = 100.0
    x = np.random.default_rng(8).standard_normal(int(1400 * fs))
    out = preprocess_stream(split(x, fs, T0 - 100, int(700 * fs), 50), T0, T0 + 1200,
                            sampling_rate=20.0, freqmin=0.05, freqmax=2.0, response_output="NONE")
    t = out.times() - T0.timestamp
    assert out.gap_mask[(t > 599) & (t < 601)].all()


def test_header_rates_within_tolerance_are_one_rate():
    fs = 100.0
    x = np.random.default_rng(9).standard_normal(int(1400 * fs))
    st = split(x, fs, T0 - 100, int(700 * fs), 0)
    st[1].stats.sampling_rate = 100.00001
    kw = dict(sampling_rate=20.0, freqmin=0.05, freqmax=2.0, response_output="NONE")
    out = preprocess_stream(st, T0, T0 + 1200, **kw)
    ref = preprocess_stream(Stream([trace(x, fs, T0 - 100)]), T0, T0 + 1200, **kw)
    assert not out.gap_mask.any()
    np.testing.assert_allclose(out.data, ref.data, atol=1e-3 * np.abs(ref.data).max())
    # all segments at 100.00001 Hz: decimated by 5 as if 100 Hz
    st2 = Stream([trace(x, 100.00001, T0 - 100)])
    out2 = preprocess_stream(st2, T0, T0 + 1200, **kw)
    np.testing.assert_allclose(out2.data, ref.data, atol=1e-3 * np.abs(ref.data).max())
    # a real difference is refused, naming the rates and the tolerance
    st[1].stats.sampling_rate = 100.1
    with pytest.raises(PreprocessError, match="rate_tolerance"):
        preprocess_stream(st, T0, T0 + 1200, **kw)


def test_fetch_pad_covers_the_taper_at_low_freqmin():
    """freqmin 0.005 Hz: the 200 s taper ramp ran past a 100 s fetch pad into the chunk."""
    p = CorrelationParams(sampling_rate=1.0, cc_len=3600.0, step=3600.0, freqmin=0.005,
                          freqmax=0.2, maxlag=600.0)
    pad = fetch_pad(p)
    assert pad >= 1 / p.freqmin + 200          # ramp plus settling
    x = np.random.default_rng(10).standard_normal(int(7200 + 2 * pad))
    kw = dict(sampling_rate=1.0, freqmin=p.freqmin, freqmax=p.freqmax, response_output="NONE")
    short = preprocess_stream(Stream([trace(x[int(pad) - 100:-(int(pad) - 100)], 1.0, T0 - 100)]),
                              T0, T0 + 7200, **kw)
    assert short.gap_mask[0] and short.gap_mask[-1]           # the old pad loses both windows
    out = preprocess_stream(Stream([trace(x, 1.0, T0 - pad)]), T0, T0 + 7200, **kw)
    assert not out.gap_mask.any()


def test_workflow_fetches_with_the_taper_pad(tmp_path):
    from noisecorr.workflow.build import FETCH_PAD, build_workflow
    from noisecorr.workflow.config import WorkflowConfig

    proc = CorrelationParams(freqmin=0.004, freqmax=0.5, sampling_rate=5.0, cc_len=1800.0,
                             step=900.0, maxlag=300.0)
    cfg = WorkflowConfig(processing=proc, out=str(tmp_path / "out"))
    wf = build_workflow(cfg)
    fetch = [pe for pe in wf.graph.pes if type(pe).__name__ == "FetchPE"][0]
    assert fetch.pad == fetch_pad(proc) > FETCH_PAD


def test_maxlag_equal_to_cc_len_is_refused():
    with pytest.raises(ValueError, match="maxlag"):
        CorrelationParams(cc_len=600.0, step=600.0, maxlag=600.0)


def test_freqmax_above_antialias_passband_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="noisecorr.signal.params"):
        CorrelationParams(sampling_rate=20.0, freqmax=9.0)
    assert "anti-alias passband" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="noisecorr.signal.params"):
        CorrelationParams(sampling_rate=20.0, freqmax=7.0)
    assert "anti-alias" not in caplog.text


def test_default_pre_filt_follows_the_band():
    """pre_filt None used no pre-filter at all; it now tapers outside the band."""
    from pathlib import Path

    from obspy import read_inventory
    from obspy.clients.filesystem.sds import Client

    from noisecorr.signal.preprocess import default_pre_filt

    data = Path(__file__).resolve().parents[2] / "station_data"
    inv = read_inventory(str(data / "stations.xml"))
    t1 = UTCDateTime(2024, 1, 1, 22, 40)
    st = Client(str(data / "SDS")).get_waveforms("XS", "S0001", "", "BHZ", t1 - 100, t1 + 1900)
    kw = dict(sampling_rate=20.0, freqmin=0.05, freqmax=2.0, inventory=inv, response_output="VEL")
    auto = preprocess_stream(st, t1, t1 + 1800, **kw)
    explicit = preprocess_stream(st, t1, t1 + 1800, pre_filt=default_pre_filt(0.05, 2.0, 20.0), **kw)
    np.testing.assert_array_equal(auto.data, explicit.data)
    f = default_pre_filt(0.05, 2.0, 20.0)
    assert f[0] < f[1] <= 0.05 and 2.0 < f[2] < f[3] <= 10.0
    assert default_pre_filt(0.1, 9.0, 20.0)[2:] == (9.5, 10.0)       # freqmax near Nyquist
