"""The fast paths of preprocessing against the reference they replace (issue 26)."""

from pathlib import Path

import numpy as np
import pytest
from obspy import Trace, read_inventory
from obspy.signal.util import _npts2nfft, factorize_int

from noisecorr.signal import preprocess as pp
from noisecorr.signal.preprocess import remove_response, response_nfft

ROOT = Path(__file__).resolve().parents[2] / "station_data"


def test_response_nfft_keeps_fast_obspy_lengths_and_replaces_slow_ones():
    # 12,345 samples: ObsPy's 24,696 = 2^3 3^2 7^3 is fast, kept as is (bit-identical path)
    assert response_nfft(12_345) == _npts2nfft(12_345) == 24_696
    # 1,732,000 samples (a day at 20 Hz with 100 s either side): ObsPy's 3,464,000 has 433
    n_obspy = _npts2nfft(1_732_000)
    assert max(factorize_int(n_obspy)) == 433
    n = response_nfft(1_732_000)
    assert n >= n_obspy and max(factorize_int(n)) <= 5
    assert n == 3_499_200


@pytest.mark.parametrize("npts", [76_000, 29_997])
def test_fast_length_response_removal_matches_obspy(npts):
    """Where ObsPy's FFT length has a prime factor above 11 the longer fast length gives
    ObsPy's samples to rounding (the deconvolution only pads more zeros)."""
    n_obspy = _npts2nfft(npts)
    assert max(factorize_int(n_obspy)) > pp.FAST_FFT_PRIME  # the case under test
    inv = read_inventory(str(ROOT / "stations.xml"))
    cha = inv[0][0][0]
    seed = f"{inv[0].code}.{inv[0][0].code}.{cha.location_code}.{cha.code}"
    t0 = cha.start_date + 3600
    x = np.cumsum(np.random.default_rng(3).standard_normal(npts))
    x -= np.linspace(x[0], x[-1], npts)
    pre_filt = pp.default_pre_filt(0.05, 2.0, cha.sample_rate)
    tr = Trace(x.copy(), header=dict(zip(("network", "station", "location", "channel"), seed.split(".")),
                                     sampling_rate=cha.sample_rate, starttime=t0))
    tr.remove_response(inventory=inv, output="VEL", pre_filt=pre_filt, water_level=60.0,
                       zero_mean=False, taper=False)
    pp._RESPONSE_CACHE.clear()
    ours = remove_response(x, seed, t0, cha.sample_rate, inv, pre_filt=pre_filt, water_level=60.0)
    key = next(iter(pp._RESPONSE_CACHE))
    assert key[2] == response_nfft(npts) != n_obspy  # really the longer FFT
    peak = np.abs(tr.data).max()
    assert peak > 0
    np.testing.assert_allclose(ours, tr.data, rtol=0, atol=1e-6 * peak)


def test_blocked_window_detrend_is_the_whole_array_detrend():
    """detrend_windows works a block of rows at a time: the same samples as detrend_linear on
    the whole array (rows reduced on their own), over several blocks and a partial last one."""
    from noisecorr.signal import windows as w

    rng = np.random.default_rng(5)
    n_rows = 3 * max(1, w.BLOCK_BYTES // (8 * 3000)) + 7
    x = (rng.standard_normal((n_rows, 3000)) + np.linspace(0, 50, 3000)).astype(np.float32)
    out = w.detrend_windows(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, w.detrend_linear(x).astype(np.float32))
    assert np.abs(out.mean(axis=1)).max() < 1e-4  # the trend really went


def test_blocked_window_rejection_matches_direct_statistics():
    """cut_windows' blocked std / peak give the rejections the whole-array formulas give."""
    from noisecorr.signal.windows import cut_windows

    rng = np.random.default_rng(6)
    fs, cc_len, step = 20.0, 100.0, 25.0
    x = rng.standard_normal(200_000).astype(np.float32)
    x[60_000:60_020] *= 200.0           # an outlier burst
    x[120_000:124_000] = 3.0             # a flat stretch
    res = cut_windows(x, fs, cc_len, step, max_over_std=10.0)
    win, stp = int(cc_len * fs), int(step * fs)
    starts = np.arange(0, x.size - win + 1, stp)
    view = np.stack([x[s:s + win] for s in starts])
    std = view.std(axis=1, dtype=np.float64)
    flat = ~(std > 0)
    peak = np.abs(view - view.mean(axis=1, dtype=np.float64, keepdims=True)).max(axis=1)
    outlier = ~flat & (peak > 10.0 * std)
    assert res.rejected["flat"] == int(flat.sum()) > 0
    assert res.rejected["outlier"] == int(outlier.sum()) > 0
    np.testing.assert_array_equal(res.starttimes, starts[~flat & ~outlier] / fs)


@pytest.mark.parametrize("freq_norm", ["rma", "phase_only"])
@pytest.mark.parametrize("band", [(0.05, 2.0), (0.0005, 9.99), (0.3, 0.31)])
def test_band_only_whitening_is_the_whole_spectrum_whitening(freq_norm, band):
    """whiten computes the amplitude only over the band (plus the smoothing half-width): the
    same numbers as smoothing the whole spectrum and dividing in the band, also where the band
    reaches the spectrum's ends (mode "nearest" there) and for a band of a few bins."""
    from noisecorr.signal import normalize as nz

    rng = np.random.default_rng(7)
    nfft, fs = 4000, 20.0
    shape = (5, nfft // 2 + 1)
    x = ((rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) *
         np.linspace(0.1, 5.0, shape[1])).astype(np.complex64)
    amp = nz.smooth_amplitude(x, 10) if freq_norm == "rma" else np.abs(x).astype(np.float32)
    expected = nz._divide_in_band(x, amp, fs, nfft, *band, 1e-3, 0.1, np.complex64)
    got = nz.whiten(x, fs, nfft, *band, freq_norm, 10, 1e-3)
    assert np.count_nonzero(expected) > 0
    np.testing.assert_array_equal(got, expected)
    # the reference is really band-limited whitening: unit-ish gain in the flat band
    f = np.fft.rfftfreq(nfft, 1 / fs)
    assert np.all(got[:, (f <= band[0]) | (f >= band[1])] == 0)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_in_place_band_division_is_the_definition(dtype):
    """The whitening's product and quotient formed in the output's band, in place, give the
    numbers of the definition ``x W / max(A, water level)`` with temporaries, bit for bit,
    including a silent window (zero amplitude: zeros, never NaN)."""
    from noisecorr.signal import normalize as nz

    rng = np.random.default_rng(5)
    nfft, fs, band, wl = 3000, 20.0, (0.4, 3.0), 1e-3
    x = (rng.standard_normal((4, nfft // 2 + 1)) + 1j * rng.standard_normal((4, nfft // 2 + 1))).astype(dtype)
    x[2] = 0
    amp = nz.smooth_amplitude(x, 10)
    weights = nz.whitening_taper(np.fft.rfftfreq(nfft, 1 / fs), *band, 0.1)
    inside = weights > 0
    den = nz.floor_denominator(amp[:, inside], wl)
    expected = np.zeros(x.shape, dtype)
    quotient = np.zeros((4, int(inside.sum())), dtype)
    np.divide(x[:, inside] * weights[inside], den, out=quotient, where=den > 0)
    expected[:, inside] = quotient
    got = nz.whiten(x, fs, nfft, *band, "rma", 10, wl)
    assert got.dtype == dtype and np.count_nonzero(got[2]) == 0 and np.isfinite(got).all()
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("reference", ["window", "chunk"])
def test_fused_window_detrend_is_cut_then_detrend_then_taper(reference):
    """cut_detrended_windows: the windows cut_windows accepts, detrended by detrend_windows and
    tapered, bit for bit, with gap, flat and outlier windows rejected in between (so rows land
    in the right places) and the same rejection counts and start times."""
    from noisecorr.signal.noisepy_compat import window_taper
    from noisecorr.signal.windows import cut_detrended_windows, cut_windows, detrend_windows

    rng = np.random.default_rng(8)
    fs, cc_len, step = 20.0, 100.0, 25.0
    n = 300_000
    x = (rng.standard_normal(n) + np.linspace(-40, 40, n)).astype(np.float32)
    x[60_000:60_020] *= 300.0           # an outlier burst
    x[120_000:124_000] = 3.0             # a flat stretch
    mask = np.zeros(n, bool)
    mask[200_000:200_500] = True         # a gap
    x[mask] = 0.0
    taper = window_taper(int(cc_len * fs), 0.05, None)
    kw = dict(starttime=1000.0, gap_mask=mask, max_over_std=10.0, outlier_reference=reference)
    raw = cut_windows(x, fs, cc_len, step, **kw)
    fused = cut_detrended_windows(x, fs, cc_len, step, taper, **kw)
    assert all(raw.rejected[r] > 0 for r in ("gap", "flat", "outlier"))
    assert fused.rejected == raw.rejected and fused.n_candidates == raw.n_candidates
    np.testing.assert_array_equal(fused.starttimes, raw.starttimes)
    assert fused.data.dtype == np.float32 and fused.data.flags.c_contiguous
    np.testing.assert_array_equal(fused.data, detrend_windows(raw.data) * taper)
    # and the raw windows are the trace's samples at the start times
    i = int(round((raw.starttimes[-1] - 1000.0) * fs))
    np.testing.assert_array_equal(raw.data[-1], x[i:i + int(cc_len * fs)])


@pytest.mark.parametrize("shape", [(100_001,), (3, 4_000)])
def test_detrend_linear_with_one_temporary_is_the_closed_form(shape):
    """detrend_linear reuses one temporary for its products: bit for bit the closed form
    written out with new arrays, for one row and for several (each row its own line)."""
    from noisecorr.signal.windows import detrend_linear

    rng = np.random.default_rng(9)
    n = shape[-1]
    x = rng.standard_normal(shape) * 3.0 + np.linspace(-7.0, 11.0, n) * rng.uniform(1.0, 3.0, shape[:-1] + (1,))
    out = x - x.mean(axis=-1, keepdims=True)
    k = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    expected = out - (np.multiply(out, k).sum(axis=-1, keepdims=True) / np.square(k).sum()) * k
    got = detrend_linear(x)
    np.testing.assert_array_equal(got, expected)
    assert np.abs(np.multiply(got, k).sum(axis=-1)).max() < 1e-6 * np.abs(x).max() * n  # no slope left


@pytest.mark.parametrize("n_rows", [1, 7, 45])
def test_blocked_zero_padded_spectra_are_the_whole_array_rfft(n_rows, monkeypatch):
    """rfft_windows pads a block of rows at a time: bit for bit scipy's transform of the whole
    zero-padded array, over several blocks and a partial last one (rows in their places)."""
    import scipy.fft

    from noisecorr.signal import spectra

    monkeypatch.setattr(spectra, "PAD_BLOCK_ROWS", 8)
    x = (np.random.default_rng(10).standard_normal((n_rows, 2400)) * np.arange(1, n_rows + 1)[:, None]).astype(np.float32)
    got = spectra.rfft_windows(x, 5000)
    assert got.dtype == np.complex64 and got.shape == (n_rows, 2501) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, scipy.fft.rfft(x, n=5000, axis=-1))
    np.testing.assert_array_equal(spectra.rfft_windows(x, 5000, dtype=np.complex128),
                                  scipy.fft.rfft(x.astype(np.float64), n=5000, axis=-1))


def test_detrend_in_place_only_on_the_callers_own_array():
    """overwrite_x detrends a float64 array in place (the same numbers as a copy's); other
    dtypes get a new array. The merge detrends its converted copies in place and never the
    stream's own float64 samples."""
    from obspy import Stream, Trace

    from noisecorr.signal.windows import detrend_linear

    rng = np.random.default_rng(12)
    x = rng.standard_normal(10_001) + np.linspace(0, 30, 10_001)
    expected = detrend_linear(x)
    y = x.copy()
    assert detrend_linear(y, overwrite_x=True) is y
    np.testing.assert_array_equal(y, expected)
    i = (x * 1000).astype(np.int32)
    out = detrend_linear(i, overwrite_x=True)
    assert out.dtype == np.float64 and out is not i
    np.testing.assert_array_equal(out, detrend_linear(i.astype(np.float64)))
    for data in (x.copy(), i.copy()):
        st = Stream([Trace(data, {"sampling_rate": 20.0, "station": "A", "network": "XX", "channel": "HHZ"})])
        before = st[0].data.copy()
        merged, _ = pp.merge_with_gap_mask(st, taper_fraction=0.05)
        np.testing.assert_array_equal(st[0].data, before)                    # input untouched
        assert not np.may_share_memory(merged.data, st[0].data)
        ref = detrend_linear(before.astype(np.float64))
        core = slice(1000, -1000)                                            # inside the tapers
        np.testing.assert_array_equal(merged.data[core], ref[core])
