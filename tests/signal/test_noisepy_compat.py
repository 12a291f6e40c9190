"""NoisePy-compatible steps against NoisePy 0.9.93's own output, and the preset's wiring.

``tests/data/noisepy_functions.npz`` holds NoisePy's ``taper``, ``moving_ave_2D`` and
``whiten`` on fixed inputs, written by ``scripts/noisepy_side.py --functions`` in NoisePy's
own environment (the project never imports NoisePy).
"""

from pathlib import Path

import numpy as np
import pytest

from noisecorr.signal.chain import cc_band_weights, station_spectra, whitened_band
from noisecorr.signal.noisepy_compat import (noisepy_moving_average, noisepy_whiten,
                                             noisepy_whitening_bins, noisepy_whitening_weights,
                                             window_taper)
from noisecorr.signal.params import CorrelationParams
from noisecorr.signal.preprocess import ProcessedTrace
from noisecorr.signal.spectra import rfft_windows
from noisecorr.signal.windows import cut_windows
from noisecorr.workflow.config import load_config

ROOT = Path(__file__).resolve().parents[2]
REF = np.load(ROOT / "tests" / "data" / "noisepy_functions.npz")


@pytest.mark.parametrize("n", [1, 4, 5, 10])
def test_moving_average_is_noisepys(n):
    got = noisepy_moving_average(REF["amp"], n)
    np.testing.assert_allclose(got, REF[f"mave_{n}"], rtol=1e-12, atol=1e-12)


def test_moving_average_even_width_by_hand():
    # width 2: mean of the sample and the one before it; the first repeats itself
    assert noisepy_moving_average(np.array([2.0, 4.0, 8.0]), 2).tolist() == [2.0, 3.0, 6.0]
    # width 3: centred, ends repeated
    assert noisepy_moving_average(np.array([3.0, 6.0, 9.0]), 3).tolist() == [4.0, 6.0, 8.0]


def test_window_taper_is_noisepys():
    x = REF["x"]
    np.testing.assert_allclose(x * window_taper(x.shape[1], 0.05, 20), REF["taper"], rtol=1e-6, atol=1e-7)
    # 600 samples: 5 % is 30 samples, capped at 20; the middle is untouched
    w = window_taper(600, 0.05, 20)
    assert np.all(w[20:580] == 1.0) and w[0] == 0.0 and 0 < w[19] < 1


def test_window_taper_default_is_a_tukey_window():
    import scipy.signal

    np.testing.assert_array_equal(window_taper(1000, 0.05),
                                  scipy.signal.windows.tukey(1000, 0.1).astype(np.float32))


@pytest.mark.parametrize("n", [1, 10])
def test_whitening_is_noisepys(n):
    x = REF["x"]
    nfft = x.shape[1]
    ours = noisepy_whiten(rfft_windows(x, nfft, dtype=np.complex128), 20.0, nfft, 0.3, 4.0,
                          "rma", n, water_level=1e-12)
    ref = REF[f"white_{n}"][:, : nfft // 2]
    np.testing.assert_allclose(ours[:, : nfft // 2], ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
    assert np.all(ours[:, nfft // 2:] == 0)


def test_whitening_bins_and_weights_by_hand():
    # nfft 600 at 20 Hz: bins of 1/30 Hz; 0.3 Hz is bin 9, 4 Hz bin 120
    assert noisepy_whitening_bins(600, 20.0, 0.3, 4.0) == (0, 9, 120, 220)
    w = noisepy_whitening_weights(600, 20.0, 0.3, 4.0)
    assert np.all(w[9:120] == 1.0) and np.all(w[220:] == 0.0)
    assert w[0] == pytest.approx(0.0, abs=1e-7) and w[120] == 1.0
    assert np.all(np.diff(w[120:220]) <= 0) and w[219] == pytest.approx(0.0, abs=1e-7)
    # a flat spectrum whitens to the weights themselves
    flat = np.ones((1, 301), dtype=np.complex128)
    np.testing.assert_allclose(noisepy_whiten(flat, 20.0, 600, 0.3, 4.0, "rma", 10)[0], w, atol=1e-6)


def test_phase_only_and_no_whitening():
    x = rfft_windows(REF["x"], 600, dtype=np.complex128)
    ph = noisepy_whiten(x, 20.0, 600, 0.3, 4.0, "phase_only", 10)
    w = noisepy_whitening_weights(600, 20.0, 0.3, 4.0)
    np.testing.assert_allclose(np.abs(ph), np.broadcast_to(w, ph.shape), atol=1e-6)
    np.testing.assert_array_equal(noisepy_whiten(x, 20.0, 600, 0.3, 4.0, "none"), x)


def test_outlier_reference_chunk_by_hand():
    # 40 windows of 10 samples; window 2 holds a spike of 50 on a +-1 background
    x = np.tile([1.0, -1.0], 200)
    x[25] = 50.0
    chunk_std = np.std(x)                        # about 2.7
    assert 50.0 > 10 * chunk_std                 # so NoisePy's criterion rejects window 2
    w = cut_windows(x, 1.0, 10, 10, max_over_std=10.0, outlier_reference="chunk")
    assert 20.0 not in w.starttimes and w.n_windows == 39 and w.rejected["outlier"] == 1
    # against its own std the spike is 3 sigma (one sample in ten): kept by the window criterion
    w = cut_windows(x, 1.0, 10, 10, max_over_std=10.0, outlier_reference="window")
    assert w.n_windows == 40 and w.rejected["outlier"] == 0
    with pytest.raises(ValueError, match="outlier_reference"):
        cut_windows(x, 1.0, 10, 10, max_over_std=10.0, outlier_reference="day")


def test_preset_loads_and_sets_every_choice():
    p = load_config(ROOT / "configs" / "noisepy.yaml", environ={}).processing
    assert (p.zero_pad, p.window_taper_max, p.outlier_reference, p.whitening_style) == (
        False, 20, "chunk", "noisepy")
    assert p.nfft == p.cc_len_samples                 # 36000 is 5-smooth: no padding at all


def test_params_validate_the_new_fields():
    for bad in (dict(window_taper=0.6), dict(window_taper_max=-1), dict(window_taper_max=2.5),
                dict(outlier_reference="day"), dict(whitening_style="msnoise")):
        with pytest.raises(ValueError, match=next(iter(bad))):
            CorrelationParams(**bad)


def test_noisepy_whitening_band_travels_in_full():
    """The fast linear stack and the tiles compute only ``whitened_band``: NoisePy's
    ramps outside the band must be inside it, or the stacks would lose them."""
    p = CorrelationParams(sampling_rate=20.0, cc_len=60.0, step=30.0, freqmin=0.5, freqmax=4.0,
                          maxlag=10.0, zero_pad=False, whitening_style="noisepy")
    band = whitened_band(p, p.nfft)
    assert (band.start, band.stop) == (0, 340)          # bins of 1/60 Hz: 30 - 100 -> 0, 240 + 100
    rng = np.random.default_rng(3)
    x = rng.standard_normal(20 * 600).astype(np.float32)
    a = ProcessedTrace("XX.A..HHZ", 0.0, 20.0, x, np.zeros(x.size, bool))
    b = ProcessedTrace("XX.B..HHZ", 0.0, 20.0, np.roll(x, 13), np.zeros(x.size, bool))
    sa, sb = station_spectra(a, p), station_spectra(b, p)
    nz = np.nonzero(np.abs(sa.spectra).max(axis=0))[0]
    assert nz.min() >= band.start and nz.max() < band.stop and nz.max() > 240
    from noisecorr.signal.chain import correlate_and_stack

    fast = correlate_and_stack(sa, sb, p)
    slow = correlate_and_stack(sa, sb, p.replace(substack=True))
    np.testing.assert_allclose(fast.stack, slow.stack, rtol=0, atol=1e-5 * np.abs(slow.stack).max())
    assert float(fast.lags[np.argmax(fast.stack)]) == pytest.approx(13 / 20.0)
    w = cc_band_weights(p.replace(cc_method="coherency"), p.nfft)
    np.testing.assert_array_equal(w, noisepy_whitening_weights(p.nfft, 20.0, 0.5, 4.0).astype(np.float32))
