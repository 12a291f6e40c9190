"""End to end: a receiver delayed by k samples peaks at +k*dt through the whole chain,
for every cc_method, stack_method, FFT parity and padding, with and without sub-stacks."""

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime

from synth_signals import make_delayed_pair
from noisecorr.signal.chain import correlate_and_stack, correlate_pair, station_spectra
from noisecorr.signal.params import CC_METHODS, STACK_METHODS, CorrelationParams
from noisecorr.signal.preprocess import ProcessedTrace, preprocess_stream


def processed(x, seed_id, start=1.6e9, fs=10.0, mask=None):
    return ProcessedTrace(seed_id, start, fs, x, np.zeros(x.size, bool) if mask is None else mask)


@pytest.mark.parametrize("stack_method", STACK_METHODS)
@pytest.mark.parametrize("cc_method", CC_METHODS)
@pytest.mark.parametrize("k", [13, -8])
@pytest.mark.parametrize("cc_len,zero_pad", [(60.0, True), (60.0, False), (60.1, False), (60.1, True)])
def test_delay_recovered_through_chain(stack_method, cc_method, k, cc_len, zero_pad):
    fs = 10.0
    p = CorrelationParams(sampling_rate=fs, cc_len=cc_len, step=30.0, freqmin=0.3,
                          freqmax=4.0, maxlag=5.0, zero_pad=zero_pad, cc_method=cc_method,
                          stack_method=stack_method, time_norm="one_bit", freq_norm="rma",
                          smoothspect_N=5, substack=True, substack_len=2 * cc_len)
    s, r = make_delayed_pair(4000, k, noise=0.5, seed=abs(k))
    a = station_spectra(processed(s, "XX.A..HHZ"), p)
    b = station_spectra(processed(r, "XX.B..HHZ"), p)
    if not zero_pad:
        assert a.nfft >= p.cc_len_samples and a.nfft < 2 * p.cc_len_samples - 1
    res = correlate_and_stack(a, b, p)
    assert res.n_windows == 12 == a.n_windows
    assert res.stack.shape == (101,) and np.all(np.isfinite(res.stack))
    assert res.lags[np.argmax(res.stack)] == pytest.approx(k / fs)
    assert res.substacks.shape[0] == res.substack_counts.size
    assert res.substack_counts.sum() == 12
    for sub in res.substacks:
        assert res.lags[np.argmax(sub)] == pytest.approx(k / fs)


def test_fft_parities_are_both_exercised():
    assert CorrelationParams(sampling_rate=10.0, cc_len=60.1, step=30.0, freqmax=4.0, maxlag=5.0,
                             zero_pad=False).nfft % 2 == 1
    assert CorrelationParams(sampling_rate=10.0, cc_len=60.0, step=30.0, freqmax=4.0, maxlag=5.0,
                             zero_pad=False).nfft % 2 == 0


def test_fast_linear_path_equals_per_window_mean():
    fs = 10.0
    p = CorrelationParams(sampling_rate=fs, cc_len=60.0, step=30.0, freqmin=0.3, freqmax=4.0,
                          maxlag=5.0, cc_method="coherency")
    s, r = make_delayed_pair(4000, 5, seed=4)
    a = station_spectra(processed(s, "XX.A..HHZ"), p)
    b = station_spectra(processed(r, "XX.B..HHZ"), p)
    fast = correlate_and_stack(a, b, p)
    ccfs, _, _ = correlate_pair(a, b, p)
    np.testing.assert_allclose(fast.stack, ccfs.mean(axis=0), atol=1e-5 * np.abs(fast.stack).max())


def test_only_shared_windows_are_correlated():
    fs = 10.0
    p = CorrelationParams(sampling_rate=fs, cc_len=60.0, step=60.0, freqmin=0.3, freqmax=4.0,
                          maxlag=5.0, max_over_std=np.inf)
    s, r = make_delayed_pair(3000, 3, seed=5)
    mask = np.zeros(3000, bool)
    mask[1300] = True                                          # kills receiver window [1200, 1800)
    a = station_spectra(processed(s, "XX.A..HHZ"), p)
    b = station_spectra(processed(r, "XX.B..HHZ", mask=mask), p)
    assert a.n_windows == 5 and b.n_windows == 4 and b.rejected["gap"] == 1
    ccfs, t, _ = correlate_pair(a, b, p)
    assert ccfs.shape[0] == 4 and 1.6e9 + 120.0 not in t
    assert correlate_and_stack(a, b, p).n_windows == 4


def test_raw_streams_to_correlation_with_decimation_and_offsets():
    """100 Hz records, receiver delayed by 1.35 s and started off the 20 Hz grid: peak at +27 samples."""
    rng = np.random.default_rng(8)
    fs_raw, fs = 100.0, 20.0
    t0 = UTCDateTime(2022, 1, 1)
    n = int(1300 * fs_raw)
    delay = 135                                                # samples at 100 Hz = 1.35 s = 27 at 20 Hz
    base = rng.standard_normal(n + delay)
    src = base[delay:]
    rcv = base[:n] + 0.3 * rng.standard_normal(n)
    start = t0 - 50 + 0.013                                    # 1.3 raw samples off the grid
    traces = [Trace(src, header={"station": "A", "network": "XX", "channel": "HHZ",
                                 "sampling_rate": fs_raw, "starttime": start}),
              Trace(rcv, header={"station": "B", "network": "XX", "channel": "HHZ",
                                 "sampling_rate": fs_raw, "starttime": start})]
    p = CorrelationParams(sampling_rate=fs, cc_len=200.0, step=100.0, freqmin=0.2, freqmax=5.0,
                          maxlag=10.0, response_output="NONE")
    pa = preprocess_stream(Stream([traces[0]]), t0, t0 + 1200, sampling_rate=fs, freqmin=0.2,
                           freqmax=5.0, response_output="NONE")
    pb = preprocess_stream(Stream([traces[1]]), t0, t0 + 1200, sampling_rate=fs, freqmin=0.2,
                           freqmax=5.0, response_output="NONE")
    res = correlate_and_stack(station_spectra(pa, p), station_spectra(pb, p), p)
    assert res.lags[np.argmax(res.stack)] == pytest.approx(1.35)
    assert res.n_windows == 11


def test_chain_substacks_follow_the_configured_origin():
    """correlate_and_stack puts sub-stacks on the grid of ``substack_origin`` (midnight UTC
    by default), as StackPE does."""
    import numpy as np

    from noisecorr.signal.chain import correlate_and_stack, station_spectra
    from noisecorr.signal.params import CorrelationParams
    from noisecorr.signal.preprocess import ProcessedTrace

    x = np.random.default_rng(0).standard_normal(20000).astype(np.float32)
    starts = {}
    for origin in (None, "1970-01-01T00:05:00Z"):
        p = CorrelationParams(sampling_rate=10.0, cc_len=60.0, step=30.0, freqmin=0.2, freqmax=4.0,
                              maxlag=5.0, substack=True, substack_len=600.0, substack_origin=origin,
                              max_over_std=np.inf)
        a = ProcessedTrace("XX.A..HHZ", 1000.0, 10.0, x, np.zeros(x.size, bool))
        b = ProcessedTrace("XX.B..HHZ", 1000.0, 10.0, np.roll(x, 3), np.zeros(x.size, bool))
        starts[origin] = correlate_and_stack(station_spectra(a, p), station_spectra(b, p), p).substack_starts
    assert starts[None][:3].tolist() == [600.0, 1200.0, 1800.0]      # the window at 1000 s is in [600, 1200)
    assert starts["1970-01-01T00:05:00Z"][:3].tolist() == [900.0, 1500.0, 2100.0]
