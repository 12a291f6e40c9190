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
