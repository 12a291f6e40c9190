"""Response removal of several channels in one batched single-precision FFT (issue 26)
against the per-channel float64 definition (ObsPy's operations), on synthetic counts made
from a known velocity through a known, different response per channel."""

import numpy as np
import pytest
import scipy.fft
from obspy import UTCDateTime
from obspy.core.inventory import Channel, Inventory, Network, Station
from obspy.core.inventory.response import Response

from noisecorr.signal import preprocess as pp
from noisecorr.signal.preprocess import PreprocessError, bandpass, remove_response

T0 = UTCDateTime(2022, 6, 1)
FS = 20.0
PRE_FILT = (0.01, 0.02, 6.0, 8.0)
#: (channel, corner period s, gain counts/(m/s)): gains a factor >= 4 apart, so a row
#: deconvolved with another row's response is off by that factor.
SENSORS = [("HHZ", 120.0, 1500.0), ("HHN", 30.0, 6000.0), ("HHE", 1.0, 400.0)]


def _response(period, gain):
    w0 = 2 * np.pi / period
    poles = [w0 * (-0.707 + 0.707j), w0 * (-0.707 - 0.707j), -2 * np.pi * 15.0]
    return Response.from_paz(zeros=[0j, 0j], poles=poles, stage_gain=gain, stage_gain_frequency=1.0,
                             input_units="M/S", output_units="COUNTS", normalization_frequency=1.0,
                             normalization_factor=2 * np.pi * 15.0)


def _inventory(sensors=SENSORS):
    """One station XX.STA with a channel per ``(code, period s, gain)`` of ``sensors``."""
    channels = [Channel(cha, "00", latitude=1.0, longitude=2.0, elevation=0.0, depth=0.0,
                        sample_rate=FS, response=_response(period, gain), start_date=T0 - 86400)
                for cha, period, gain in sensors]
    st = Station("STA", latitude=1.0, longitude=2.0, elevation=0.0, channels=channels,
                 start_date=T0 - 86400)
    return Inventory(networks=[Network("XX", stations=[st])], source="test")


SIDS = [f"XX.STA.00.{cha}" for cha, _, _ in SENSORS]


@pytest.fixture(scope="module")
def synthetic():
    """Velocities (m/s) with different content per channel and their counts."""
    n = 24_001  # odd: ObsPy's FFT length 48,020 = 2^2 5 7^4 is a fast one
    rng = np.random.default_rng(11)
    v = np.stack([bandpass(rng.standard_normal(n), FS, 0.03, 5.0) * 1e-6 * (i + 1)
                  for i in range(len(SENSORS))])
    freqs = scipy.fft.rfftfreq(n, 1 / FS)
    counts = np.stack([scipy.fft.irfft(scipy.fft.rfft(v[i]) * _response(p, g).get_evalresp_response_for_frequencies(
        freqs, output="VEL"), n) for i, (_, p, g) in enumerate(SENSORS)])
    return _inventory(), v, counts


def test_batched_float32_rows_are_the_per_channel_float64_deconvolution(synthetic):
    inv, _, counts = synthetic
    pp._RESPONSE_CACHE.clear()
    batched = remove_response(counts, SIDS, T0, FS, inv, pre_filt=PRE_FILT, dtype=np.float32)
    assert batched.dtype == np.float32 and batched.shape == counts.shape
    # one complex64 operator per response, reused (not recomputed) by the next call
    cached = dict(pp._RESPONSE_CACHE)
    assert len(cached) == len(SENSORS) and all(k[-1] == "complex64" for k in cached)
    again = remove_response(counts, SIDS, T0, FS, inv, pre_filt=PRE_FILT, dtype=np.float32)
    assert all(pp._RESPONSE_CACHE[k] is v for k, v in cached.items())
    np.testing.assert_array_equal(again, batched)
    for i, sid in enumerate(SIDS):
        one = remove_response(counts[i], sid, T0, FS, inv, pre_filt=PRE_FILT)   # float64, ObsPy's steps
        assert one.dtype == np.float64
        np.testing.assert_allclose(batched[i], one, rtol=0, atol=1e-5 * np.abs(one).max())
        # a 1-D float32 call is the same batched code with one row
        np.testing.assert_allclose(remove_response(counts[i], sid, T0, FS, inv, pre_filt=PRE_FILT,
                                                   dtype=np.float32), batched[i],
                                   rtol=0, atol=1e-6 * np.abs(one).max())


def test_each_row_recovers_its_own_velocity(synthetic):
    """Ground truth: every row's velocity back in m/s; another row's response would miss
    the amplitude by a factor of at least 4 (and the shape below 1 Hz)."""
    inv, v, counts = synthetic
    out = remove_response(counts, SIDS, T0, FS, inv, pre_filt=PRE_FILT, dtype=np.float32)
    core = slice(2000, -2000)
    for i in range(len(SIDS)):
        ref = bandpass(v[i], FS, 0.05, 4.0)[core]
        got = bandpass(out[i], FS, 0.05, 4.0)[core]
        gain = np.dot(got, ref) / np.dot(ref, ref)
        assert gain == pytest.approx(1.0, abs=0.01), SIDS[i]
        assert np.corrcoef(got, ref)[0, 1] > 0.999, SIDS[i]


def test_row_order_does_not_matter(synthetic):
    """Rows permuted in, the same rows permuted out: no row takes another's operator."""
    inv, _, counts = synthetic
    out = remove_response(counts, SIDS, T0, FS, inv, pre_filt=PRE_FILT, dtype=np.float32)
    perm = [2, 0, 1]
    swapped = remove_response(counts[perm], [SIDS[i] for i in perm], T0, FS, inv, pre_filt=PRE_FILT,
                              dtype=np.float32)
    for j, i in enumerate(perm):
        np.testing.assert_allclose(swapped[j], out[i], rtol=0, atol=1e-6 * np.abs(out[i]).max())
    # the same counts under another channel's seed id really give another answer
    wrong = remove_response(counts[:1], SIDS[1:2], T0, FS, inv, pre_filt=PRE_FILT, dtype=np.float32)
    assert np.abs(wrong[0] - out[0]).max() > 0.5 * np.abs(out[0]).max()


def test_batched_errors_name_the_channel(synthetic):
    inv, _, counts = synthetic
    with pytest.raises(PreprocessError) as err:
        remove_response(counts, [SIDS[0], "XX.STA.00.HH1", SIDS[2]], T0, FS, inv, pre_filt=PRE_FILT,
                        dtype=np.float32)
    assert err.value.seed_id == "XX.STA.00.HH1" and "missing response" in err.value.reason
    with pytest.raises(ValueError, match="one seed id per row"):
        remove_response(counts, SIDS[:2], T0, FS, inv, dtype=np.float32)
    with pytest.raises(ValueError, match="float64 or float32"):
        remove_response(counts[0], SIDS[0], T0, FS, inv, dtype=np.int32)


def test_a_longer_fft_only_pads_zeros(synthetic):
    inv, _, counts = synthetic
    n = counts.shape[1]
    default = remove_response(counts, SIDS, T0, FS, inv, pre_filt=PRE_FILT, dtype=np.float32)
    longer = remove_response(counts, SIDS, T0, FS, inv, pre_filt=PRE_FILT, dtype=np.float32,
                             nfft=scipy.fft.next_fast_len(3 * n, real=True))
    # the samples differ only by the inverse response's time aliasing beyond 2 npts (it rings
    # longest for the 120 s sensor, whose data here are not tapered at the ends)
    for i in range(len(SIDS)):
        np.testing.assert_allclose(longer[i], default[i], rtol=0, atol=5e-5 * np.abs(default[i]).max())
    with pytest.raises(ValueError, match="at least twice"):
        remove_response(counts, SIDS, T0, FS, inv, dtype=np.float32, nfft=2 * n - 1)


def test_chunks_with_less_data_reuse_the_full_chunks_response():
    """A chunk whose data start late gets the FFT length of a full chunk: one cached
    response (one evalresp) for both, and still the velocity."""
    from obspy import Stream, Trace

    inv = _inventory()
    sid = SIDS[0]
    t1, t2 = T0, T0 + 1800
    rng = np.random.default_rng(2)
    n = int(2000 * FS)
    counts = np.cumsum(rng.standard_normal(n))
    header = dict(zip(("network", "station", "location", "channel"), sid.split(".")), sampling_rate=FS)
    full = Stream([Trace(counts.copy(), header={**header, "starttime": t1 - 100})])
    late = Stream([Trace(counts[int(600 * FS):].copy(), header={**header, "starttime": t1 + 500})])
    pp._RESPONSE_CACHE.clear()
    kw = dict(sampling_rate=FS, freqmin=0.05, freqmax=2.0, inventory=inv, pre_filt=PRE_FILT)
    a = pp.preprocess_stream(full, t1, t2, **kw)
    b = pp.preprocess_stream(late, t1, t2, **kw)
    keys = list(pp._RESPONSE_CACHE)
    assert sum(k[-1] == "complex64" for k in keys) == 1 and sum(k[0] == "bandpass" for k in keys) == 1
    assert b.gap_mask[:int(500 * FS)].all() and not b.gap_mask[-int(600 * FS):].any()
    # away from the late start's taper and filter transients the two chunks agree
    core = slice(int(900 * FS), int(1700 * FS))
    assert np.corrcoef(a.data[core], b.data[core])[0, 1] > 0.999


def test_cache_holds_responses_within_its_byte_budget(synthetic, monkeypatch):
    """Least recently used responses leave once the cache exceeds its bytes; the one just
    made always stays."""
    inv, _, counts = synthetic
    pp._RESPONSE_CACHE.clear()
    remove_response(counts[:1], SIDS[:1], T0, FS, inv, pre_filt=PRE_FILT, dtype=np.float32)
    one = pp._nbytes(next(iter(pp._RESPONSE_CACHE.values())))
    monkeypatch.setattr(pp, "RESPONSE_CACHE_BYTES", 2 * one)
    remove_response(counts, SIDS, T0, FS, inv, pre_filt=PRE_FILT, dtype=np.float32)
    assert len(pp._RESPONSE_CACHE) == 2          # the first channel's response was evicted
    monkeypatch.setattr(pp, "RESPONSE_CACHE_BYTES", 0)
    remove_response(counts[:1], SIDS[:1], T0, FS, inv, pre_filt=PRE_FILT, dtype=np.float32)
    assert len(pp._RESPONSE_CACHE) == 1


def test_bandpass_in_the_same_spectral_pass_is_the_forward_backward_filter(synthetic):
    """band=: the filter's squared magnitude folded into the response gives the samples of
    bandpass() after the deconvolution, except near the data's ends (zero padding instead
    of sosfiltfilt's odd extension), row by row."""
    inv, _, counts = synthetic
    n = counts.shape[1]
    ramp = 0.5 * (1 - np.cos(np.pi * np.arange(400) / 400))      # the chain's 20 s end tapers
    x = counts - counts.mean(axis=1, keepdims=True)
    x[:, :400] *= ramp
    x[:, -400:] *= ramp[::-1]
    band = (0.05, 2.0, 4)
    fused = remove_response(x, SIDS, T0, FS, inv, pre_filt=PRE_FILT, dtype=np.float32, band=band)
    core = slice(int(100 * FS), n - int(100 * FS))
    for i, sid in enumerate(SIDS):
        ref = bandpass(remove_response(x[i], sid, T0, FS, inv, pre_filt=PRE_FILT), FS, *band[:2], band[2])
        peak = np.abs(ref).max()
        np.testing.assert_allclose(fused[i][core], ref[core], rtol=0, atol=1e-5 * peak)
        # near the ends the difference decays with the filter's impulse response (the 120 s
        # sensor: 4e-3 of the peak 20 s from an end, where the masked taper ends, 2e-5 at 60 s)
        d = np.abs(fused[i] - ref) / peak
        assert d[int(20 * FS):n - int(20 * FS)].max() < 1e-2
        assert d[int(60 * FS):n - int(60 * FS)].max() < 1e-4
        # the float64 path applies bandpass() itself: the same samples
        np.testing.assert_allclose(remove_response(x[i], sid, T0, FS, inv, pre_filt=PRE_FILT, band=band),
                                   ref, rtol=0, atol=1e-12 * peak)


@pytest.mark.parametrize("fs, band", [(20.0, (0.05, 2.0)), (10.0, (0.02, 4.0)), (100.0, (0.1, 10.0))])
def test_bandpass_gain_is_the_sections_squared_magnitude(fs, band):
    import scipy.signal

    f = np.linspace(0.0, fs / 2, 200_001)
    got = pp._bandpass_gain(fs, f, *band, 4)
    _, h = scipy.signal.sosfreqz(pp._bandpass_sos(fs, *band, 4), worN=f, fs=fs)
    want = np.abs(h) ** 2
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-12)
    assert got[0] == 0 and got[-1] == 0 and abs(got[np.searchsorted(f, np.sqrt(band[0] * band[1]))] - 1) < 1e-3
