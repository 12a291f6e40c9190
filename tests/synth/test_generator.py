"""Tests of the synthetic noise generator: determinism, continuity, memory,
and the known answer (CCF peaks at the true travel time, sign included)."""

import tracemalloc

import numpy as np
import pytest

from noisecorr.synth import SyntheticNetwork, band_taper, great_circle_km
from noisecorr.synth.geometry import destination

CENTER = (47.0, 10.0)
SMALL = dict(n_sources=30, chunk_length=600.0, chunks_per_batch=3)


def ccf(a, b, maxlag):
    """C(tau) = sum_t a(t) b(t + tau), tau = -maxlag..maxlag samples (linear)."""
    n = len(a) + len(b)
    c = np.fft.irfft(np.conj(np.fft.rfft(a, n)) * np.fft.rfft(b, n), n)
    return np.concatenate([c[-maxlag:], c[:maxlag + 1]])


def test_same_seed_identical_different_seed_differs():
    a = SyntheticNetwork(n_stations=3, seed=5, **SMALL).generate(0, 900)
    b = SyntheticNetwork(n_stations=3, seed=5, **SMALL).generate(0, 900)
    c = SyntheticNetwork(n_stations=3, seed=6, **SMALL).generate(0, 900)
    assert a.tobytes() == b.tobytes()
    assert not np.allclose(a, c)


def test_layout_prefix_stable_and_within_radius():
    small = SyntheticNetwork(n_stations=3, seed=2, **SMALL)
    big = SyntheticNetwork(n_stations=8, seed=2, **SMALL)
    assert big.stations[:3] == small.stations
    assert [s.code for s in big.stations] == sorted(s.code for s in big.stations)
    d = great_circle_km(CENTER[0], CENTER[1], big._lat, big._lon)
    assert d.max() <= big.radius_km
    # same station, same data, whatever the network size
    np.testing.assert_array_equal(small.generate(0, 600)[1], big.generate(0, 600)[1])


def test_chunks_join_exactly_and_chunking_does_not_matter():
    net = SyntheticNetwork(n_stations=2, seed=1, **SMALL)
    whole = net.generate(0, 2 * 600)
    tol = 1e-5 * whole.std()
    parts = np.concatenate([net.generate(0, 600), net.generate(600, 1200)], axis=-1)
    # batching changes only BLAS summation order (float32 rounding)
    np.testing.assert_allclose(parts, whole, rtol=0, atol=tol)
    # one chunk per batch: regenerating a chunk alone is bit-identical
    single = SyntheticNetwork(n_stations=2, seed=1, n_sources=30, chunk_length=600.0,
                              chunks_per_batch=1)
    both = single.generate(0, 1200)
    np.testing.assert_array_equal(single.generate(600, 1200), both[..., 12000:])
    np.testing.assert_allclose(both, whole, rtol=0, atol=tol)
    # an unaligned request is a slice of the same global signal
    np.testing.assert_allclose(net.generate(450, 800), whole[..., 9000:16000], rtol=0, atol=tol)
    # a different chunk length gives the same signal to the filter-tail tolerance
    other = SyntheticNetwork(n_stations=2, seed=1, n_sources=30, chunk_length=240.0,
                             chunks_per_batch=2).generate(0, 1200)
    err = np.abs(other - whole).max() / whole.std()
    assert err < 1e-4


def _peak_memory(net, seconds):
    tracemalloc.start()
    try:
        for _ in net.iter_batches(0, seconds):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_duration():
    net = SyntheticNetwork(n_stations=3, seed=1, n_sources=20, chunk_length=300.0,
                           chunks_per_batch=2)
    one = _peak_memory(net, 3600)
    four = _peak_memory(net, 4 * 3600)
    assert four < 1.15 * one


def test_band_and_amplitude():
    net = SyntheticNetwork(n_stations=2, seed=3, n_sources=50, snr=np.inf,
                           amplitude=2e-6, spreading=False)
    v = net.generate(0, 1800, output="VEL")[:, 0]
    assert np.allclose(v.std(axis=-1), 2e-6, rtol=0.15)
    spec = np.abs(np.fft.rfft(v[0] * np.hanning(v.shape[-1]))) ** 2
    f = np.fft.rfftfreq(v.shape[-1], 1 / net.sampling_rate)
    w = band_taper(f, net.band)
    assert spec[w == 0].sum() < 1e-6 * spec.sum()


def _pair(sector, seed=3, snr=2.0, west=60.0, east=40.0, hours=2, n_sources=200):
    pts = [destination(*CENTER, 270.0, west), destination(*CENTER, 90.0, east)]
    net = SyntheticNetwork(layout=[(float(a), float(b)) for a, b in pts], seed=seed,
                           n_sources=n_sources, source_azimuths=sector, snr=snr)
    (src, rcv, dist, tt), = net.truth()
    assert (src, rcv) == ("XS.S0001", "XS.S0002")
    assert abs(dist - (west + east)) < 0.1
    v = net.generate(0, hours * 3600, output="VEL")[:, 0].astype(float)
    maxlag = int(60 * net.sampling_rate)
    return ccf(v[0], v[1], maxlag), maxlag, tt * net.sampling_rate


@pytest.mark.parametrize("sector, sign", [((265.0, 275.0), +1), ((85.0, 95.0), -1)])
def test_ccf_peak_at_true_travel_time_with_sign(sector, sign):
    """Sources to the west of S0001 -> energy travels S0001 -> S0002 -> peak at
    +d/v; sources to the east -> peak at -d/v."""
    c, maxlag, tt_samples = _pair(sector)
    lag = np.argmax(c) - maxlag
    assert abs(lag - sign * tt_samples) <= 1.0
    # the other side has no comparable arrival
    other = c[maxlag - sign * int(round(tt_samples))]
    assert abs(other) < 0.3 * c.max()


def test_ccf_ring_of_sources_gives_both_sides():
    """All around: both sides. Only sources near the inter-station line add
    up coherently, so the ring needs more data than a sector to converge
    (the realisation's CCF approaches the ensemble one as sqrt(time), faster
    for short distances): 30 km, 3 h. Off-line sources arrive earlier than
    d/v, so a finite ring biases the peaks slightly inwards; two samples is
    the tolerance."""
    c, maxlag, tt_samples = _pair((0.0, 360.0), west=15.0, east=15.0, hours=3,
                                  n_sources=300)
    pos = np.argmax(c[maxlag:])
    neg = np.argmax(c[:maxlag + 1][::-1])
    assert abs(pos - tt_samples) <= 2.0
    assert abs(neg - tt_samples) <= 2.0
    assert min(c[maxlag + pos], c[maxlag - neg]) > 0.5 * max(c[maxlag + pos], c[maxlag - neg])


def test_invalid_parameters_fail_early():
    with pytest.raises(ValueError, match="band"):
        SyntheticNetwork(n_stations=2, band=(0.1, 0.2, 9.0, 11.0))
    with pytest.raises(ValueError, match="components"):
        SyntheticNetwork(n_stations=2, components="ZRT")
    with pytest.raises(ValueError, match="within radius_km"):
        SyntheticNetwork(layout=[(0.0, 0.0)], center=(47.0, 10.0))


def test_horizontal_components_are_radial():
    """One source due west: its wave travels east, so N carries (almost)
    nothing coherent and E is the Z motion phase-shifted by 90 degrees."""
    net = SyntheticNetwork(layout=[CENTER], seed=4, n_sources=1, components="ZNE",
                           source_azimuths=(270.0, 270.0), source_distance_km=(600, 600),
                           snr=np.inf, spreading=False)
    z, n, e = net.generate(0, 1200, output="VEL")[0].astype(float)
    assert n.std() < 0.05 * e.std()
    assert np.isclose(e.std() / z.std(), net.ellipticity, rtol=0.05)
    # 90 degree shift: E is uncorrelated with Z at zero lag
    assert abs(np.corrcoef(z, e)[0, 1]) < 0.1


def test_threads_share_the_frequency_slabs_without_changing_a_sample():
    """Two threads propagate alternate frequency slabs into one array: the records equal
    those of one thread bit for bit (a slab written twice or skipped would not)."""
    kw = dict(n_stations=7, seed=5, components="ZNE", n_sources=40)
    one = SyntheticNetwork(workers=1, **kw).generate(0.0, 1800.0)
    two = SyntheticNetwork(workers=2, **kw).generate(0.0, 1800.0)
    assert np.abs(one).max() > 0
    np.testing.assert_array_equal(one, two)
