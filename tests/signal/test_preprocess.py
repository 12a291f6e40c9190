"""Preprocessing: decimation (anti-alias, no phase shift), sub-sample alignment, response
removal on a synthetic PAZ inventory, gaps/overlaps, and clear errors for bad input."""

import numpy as np
import pytest
import scipy.fft
from obspy import Stream, Trace, UTCDateTime
from obspy.core.inventory import Channel, Inventory, Network, Station
from obspy.core.inventory.response import Response

from noisecorr.signal.preprocess import (PreprocessError, ProcessedTrace, antialias_fir, bandpass,
                                         fractional_shift, merge_with_gap_mask, preprocess_stream,
                                         remove_response, resample)

T0 = UTCDateTime(2021, 3, 1)


def trace(data, fs, start, seed_id="XX.STA.00.HHZ"):
    net, sta, loc, cha = seed_id.split(".")
    return Trace(np.asarray(data), header={"network": net, "station": sta, "location": loc,
                                            "channel": cha, "sampling_rate": fs, "starttime": start})


def amplitude_at(x, fs, f):
    """Amplitude of the sinusoid at frequency f (least squares fit)."""
    t = np.arange(x.size) / fs
    A = np.stack([np.cos(2 * np.pi * f * t), np.sin(2 * np.pi * f * t)], axis=1)
    coef, *_ = np.linalg.lstsq(A, x, rcond=None)
    return float(np.hypot(*coef))


# ------------------------------------------------------------------ resampling
@pytest.mark.parametrize("rate_in,rate_out,alias_tone", [(100.0, 20.0, 13.0), (100.0, 40.0, 27.0),
                                                         (50.0, 20.0, 11.5)])
def test_decimation_suppresses_tone_above_new_nyquist(rate_in, rate_out, alias_tone):
    t = np.arange(int(200 * rate_in)) / rate_in
    x = np.sin(2 * np.pi * 2.0 * t) + np.sin(2 * np.pi * alias_tone * t)
    y = resample(x, rate_in, rate_out)
    core = y[int(20 * rate_out):-int(20 * rate_out)]
    assert abs(y.size - t.size * rate_out / rate_in) <= 1
    assert amplitude_at(core, rate_out, 2.0) == pytest.approx(1.0, rel=1e-3)
    aliased = rate_out - alias_tone                        # where the tone would fold to
    assert amplitude_at(core, rate_out, aliased) < 1e-3


@pytest.mark.parametrize("rate_in,rate_out", [(100.0, 20.0), (100.0, 40.0), (40.0, 40.0)])
def test_decimation_keeps_a_pulse_at_its_time(rate_in, rate_out):
    """No phase shift: a band-limited pulse at t=50.3 s is sampled at the same time after resampling."""
    tp, width = 50.3, 0.5
    t_in = np.arange(int(100 * rate_in)) / rate_in
    x = np.exp(-0.5 * ((t_in - tp) / width) ** 2)
    y = resample(x, rate_in, rate_out)
    t_out = np.arange(y.size) / rate_out
    np.testing.assert_allclose(y, np.exp(-0.5 * ((t_out - tp) / width) ** 2), atol=2e-4)


def test_resample_with_start_offset_evaluates_at_output_times():
    rate_in, rate_out = 100.0, 30.0
    t_in = np.arange(6000) / rate_in
    f = 1.7
    y = resample(np.cos(2 * np.pi * f * t_in), rate_in, rate_out, start_offset=0.0123)
    t_out = 0.0123 + np.arange(y.size) / rate_out
    core = slice(300, -300)
    np.testing.assert_allclose(y[core], np.cos(2 * np.pi * f * t_out[core]), atol=1e-3)


def test_antialias_fir_stopband():
    h = antialias_fir(100.0, 20.0)
    assert h.size % 2 == 1 and np.allclose(h, h[::-1])
    H = np.abs(np.fft.rfft(h, 2 ** 16))
    f = np.fft.rfftfreq(2 ** 16, 1 / 100.0)
    assert np.max(H[f >= 10.0]) < 1e-3
    assert np.all(np.abs(H[f <= 8.0] - 1) < 1e-3)


@pytest.mark.parametrize("shift", [0.3, -0.45, 2.25])
def test_fractional_shift_is_a_band_limited_delay(shift):
    n = 2000
    t = np.arange(n)
    f = 0.07                                                 # cycles per sample

    def signal(tt):
        return np.sin(2 * np.pi * f * tt) * (0.5 - 0.5 * np.cos(2 * np.pi * tt / (n - 1)))
    y = fractional_shift(signal(t), shift)
    expected = signal(t - shift)
    np.testing.assert_allclose(y[200:-200], expected[200:-200], atol=2e-3)


# ------------------------------------------------------------------ sub-sample start time
def test_fractional_start_time_is_corrected():
    """Samples recorded 0.3 samples off the chunk grid come out on the grid."""
    fs = 20.0
    offset = 0.3 / fs
    start = T0 - 100 + offset
    t = np.arange(int(400 * fs)) / fs                         # -100 .. 300 s around the chunk
    tones = [(0.5, 1.0, 0.2), (1.3, 0.7, 1.1)]

    def s(tt):
        return sum(a * np.sin(2 * np.pi * f * tt + p) for f, a, p in tones)
    tr = trace(s(t + (start - T0)), fs, start)
    out = preprocess_stream(Stream([tr]), T0, T0 + 200, sampling_rate=fs, freqmin=0.1,
                            freqmax=5.0, response_output="NONE")
    assert out.starttime == T0.timestamp and out.npts == 4000
    grid = np.arange(out.npts) / fs
    ref = bandpass(s(np.arange(int(600 * fs)) / fs - 200), fs, 0.1, 5.0)[4000:8000]
    np.testing.assert_allclose(out.data, ref, atol=2e-3)
    np.testing.assert_allclose(out.data, s(grid), atol=1e-2)
    # without the correction the error would be large: the same data labelled on-grid
    wrong = s(grid + offset)
    assert np.max(np.abs(wrong - s(grid))) > 0.05
    assert not out.gap_mask.any()


# ------------------------------------------------------------------ response removal
def paz_inventory(seed_id="XX.STA.00.HHZ", fs=50.0):
    """A broadband-like velocity sensor: 120 s corner (two poles), flat 1500 counts/(m/s)."""
    w0 = 2 * np.pi / 120.0
    poles = [w0 * (-0.707 + 0.707j), w0 * (-0.707 - 0.707j), -2 * np.pi * 20.0]
    resp = Response.from_paz(zeros=[0j, 0j], poles=poles, stage_gain=1500.0,
                             stage_gain_frequency=1.0, input_units="M/S", output_units="COUNTS",
                             normalization_frequency=1.0,
                             normalization_factor=2 * np.pi * 20.0)
    net, sta, loc, cha = seed_id.split(".")
    ch = Channel(cha, loc, latitude=10.0, longitude=20.0, elevation=0.0, depth=0.0,
                 sample_rate=fs, response=resp, start_date=T0 - 86400)
    st = Station(sta, latitude=10.0, longitude=20.0, elevation=0.0, channels=[ch],
                 start_date=T0 - 86400)
    return Inventory(networks=[Network(net, stations=[st])], source="test"), resp


def test_response_removal_recovers_velocity():
    fs = 50.0
    inv, resp = paz_inventory(fs=fs)
    rng = np.random.default_rng(0)
    n = int(1200 * fs)
    v = bandpass(rng.standard_normal(n), fs, 0.02, 8.0) * 1e-6            # m/s
    freqs = scipy.fft.rfftfreq(n, 1 / fs)
    H = resp.get_evalresp_response_for_frequencies(freqs, output="VEL")
    counts = scipy.fft.irfft(scipy.fft.rfft(v) * H, n)
    assert np.std(counts) / np.std(v) > 1000                              # it really is in counts
    start = T0 - 300
    out = preprocess_stream(Stream([trace(counts, fs, start)]), T0, T0 + 600, sampling_rate=10.0,
                            freqmin=0.05, freqmax=2.0, inventory=inv, response_output="VEL",
                            pre_filt=(0.005, 0.01, 4.0, 4.5), water_level=60.0)
    assert out.sampling_rate == 10.0 and out.npts == 6000
    ref = bandpass(resample(v, fs, 10.0), 10.0, 0.05, 2.0)[3000:9000]
    core = slice(500, -500)
    np.testing.assert_allclose(out.data[core], ref[core], atol=0.02 * np.max(np.abs(ref)))
    assert np.corrcoef(out.data[core], ref[core])[0, 1] > 0.999
    # amplitude in m/s: least-squares gain of output against the true velocity
    gain = np.dot(out.data[core], ref[core]) / np.dot(ref[core], ref[core])
    assert gain == pytest.approx(1.0, abs=0.005)
    assert out.data.dtype == np.float32


def test_missing_response_names_the_channel():
    inv, _ = paz_inventory(seed_id="XX.OTHER.00.HHZ")
    tr = trace(np.random.default_rng(1).standard_normal(20000), 50.0, T0)
    with pytest.raises(PreprocessError, match=r"XX\.STA\.00\.HHZ: missing response"):
        preprocess_stream(Stream([tr]), T0, T0 + 200, sampling_rate=10.0, freqmin=0.1,
                          freqmax=2.0, inventory=inv)
    with pytest.raises(PreprocessError, match="no inventory"):
        preprocess_stream(Stream([tr]), T0, T0 + 200, sampling_rate=10.0, freqmin=0.1,
                          freqmax=2.0, inventory=None)


# ------------------------------------------------------------------ gaps and overlaps
def test_merge_fills_gaps_with_zero_and_masks_them():
    a = trace(np.arange(1, 11, dtype=float), 1.0, T0)
    b = trace(np.arange(21, 26, dtype=float), 1.0, T0 + 15)
    merged, mask = merge_with_gap_mask(Stream([b, a]))
    assert merged.stats.starttime == T0 and merged.stats.npts == 20
    np.testing.assert_array_equal(merged.data[:10], np.arange(1, 11))
    np.testing.assert_array_equal(merged.data[10:15], 0)
    np.testing.assert_array_equal(merged.data[15:], np.arange(21, 26))
    np.testing.assert_array_equal(mask, np.r_[np.zeros(10), np.ones(5), np.zeros(5)].astype(bool))


def test_merge_resolves_overlaps_in_favour_of_later_segment():
    a = trace(np.ones(10), 1.0, T0)
    b = trace(np.full(10, 2.0), 1.0, T0 + 6)
    orig = a.data.copy()
    merged, mask = merge_with_gap_mask(Stream([a, b]))
    np.testing.assert_array_equal(merged.data, np.r_[np.ones(6), np.full(10, 2.0)])
    assert not mask.any()
    np.testing.assert_array_equal(a.data, orig)                            # input untouched


def test_gap_is_masked_after_preprocessing_and_input_untouched():
    fs = 20.0
    rng = np.random.default_rng(3)
    first = trace(rng.standard_normal(int(400 * fs)), fs, T0 - 100)       # -100 .. 300 s
    second = trace(rng.standard_normal(int(400 * fs)), fs, T0 + 400)      # 400 .. 800 s
    st = Stream([first, second])
    before = [tr.data.copy() for tr in st]
    out = preprocess_stream(st, T0, T0 + 600, sampling_rate=fs, freqmin=0.1, freqmax=5.0,
                            response_output="NONE")
    t = out.times() - T0.timestamp
    assert out.gap_mask[(t > 300) & (t < 400)].all()
    assert np.all(out.data[out.gap_mask] == 0)
    assert not out.gap_mask[(t > 20) & (t < 280)].any()
    assert not out.gap_mask[(t > 420) & (t < 580)].any()
    for tr, b in zip(st, before):
        np.testing.assert_array_equal(tr.data, b)
    assert isinstance(out, ProcessedTrace) and 0.7 < out.coverage < 0.85


def test_partial_chunk_is_padded_and_masked():
    fs = 10.0
    tr = trace(np.random.default_rng(4).standard_normal(int(300 * fs)), fs, T0 + 100)
    out = preprocess_stream(Stream([tr]), T0, T0 + 600, sampling_rate=fs, freqmin=0.1,
                            freqmax=2.0, response_output="NONE")
    assert out.npts == 6000
    assert out.gap_mask[:1000].all() and out.gap_mask[4000:].all()
    assert not out.gap_mask[1200:3800].any()


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("make,reason", [
    (lambda: Stream(), "empty stream"),
    (lambda: Stream([trace(np.r_[np.ones(100), np.nan, np.ones(100)], 20.0, T0)]), "NaN or inf"),
    (lambda: Stream([trace(np.r_[np.ones(100), np.inf], 20.0, T0)]), "NaN or inf"),
    (lambda: Stream([trace(np.zeros(4000), 20.0, T0)]), "all zero"),
    (lambda: Stream([trace(np.ones(4000), 5.0, T0)]), "below the target"),
    (lambda: Stream([trace(np.ones(4000), 20.0, T0), trace(np.ones(4000), 40.0, T0 + 300)]),
     "inconsistent sampling rates"),
    (lambda: Stream([trace(np.ones(4000), 20.0, T0 + 5000)]), "no data in chunk"),
])
def test_bad_input_raises_clear_error(make, reason):
    with pytest.raises(PreprocessError, match=reason) as err:
        preprocess_stream(make(), T0, T0 + 200, sampling_rate=10.0, freqmin=0.1, freqmax=2.0,
                          response_output="NONE", seed_id="XX.STA.00.HHZ")
    assert "XX.STA.00.HHZ" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_several_channels_need_a_seed_id():
    st = Stream([trace(np.ones(10), 1.0, T0), trace(np.ones(10), 1.0, T0, "XX.STA.00.HHN")])
    with pytest.raises(PreprocessError, match="several channels"):
        preprocess_stream(st, T0, T0 + 5, sampling_rate=1.0, freqmin=0.1, freqmax=0.4,
                          response_output="NONE")


@pytest.mark.parametrize("pre_filt, water_level", [(None, 60.0), ((0.02, 0.05, 6.0, 8.0), 60.0),
                                                   ((0.02, 0.05, 6.0, 8.0), None)])
def test_cached_response_removal_is_obspy_sample_for_sample(pre_filt, water_level):
    """The cached deconvolution repeats ObsPy's Trace.remove_response operation for
    operation: bit-identical output, on first use and from the cache."""
    from pathlib import Path

    from obspy import read_inventory

    from noisecorr.signal import preprocess as pp

    root = Path(__file__).resolve().parents[2] / "station_data"
    inv = read_inventory(str(root / "stations.xml"))
    net, sta = inv[0].code, inv[0][0].code
    cha = inv[0][0][0]
    seed = f"{net}.{sta}.{cha.location_code}.{cha.code}"
    t0 = cha.start_date + 3600
    rng = np.random.default_rng(4)
    x = np.cumsum(rng.standard_normal(12_345))  # odd length: nfft != npts
    tr = Trace(x.copy(), header=dict(zip(("network", "station", "location", "channel"), seed.split(".")),
                                     sampling_rate=cha.sample_rate, starttime=t0))
    tr.remove_response(inventory=inv, output="VEL", pre_filt=pre_filt, water_level=water_level,
                       zero_mean=False, taper=False)
    pp._RESPONSE_CACHE.clear()
    first = remove_response(x, seed, t0, cha.sample_rate, inv, pre_filt=pre_filt, water_level=water_level)
    assert len(pp._RESPONSE_CACHE) == 1
    again = remove_response(x, seed, t0, cha.sample_rate, inv, pre_filt=pre_filt, water_level=water_level)
    np.testing.assert_array_equal(first, tr.data)
    np.testing.assert_array_equal(again, tr.data)
    # another length is another FFT length: another cache entry, still ObsPy's answer
    tr2 = Trace(x[:10_000].copy(), header=tr.stats.copy())
    tr2.remove_response(inventory=inv, output="VEL", pre_filt=pre_filt, water_level=water_level,
                        zero_mean=False, taper=False)
    np.testing.assert_array_equal(
        remove_response(x[:10_000], seed, t0, cha.sample_rate, inv, pre_filt=pre_filt,
                        water_level=water_level), tr2.data)
    assert len(pp._RESPONSE_CACHE) == 2
