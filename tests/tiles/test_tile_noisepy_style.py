"""The tiled path under the ``noisepy`` preset's choices gives the per-window path's stacks.

NoisePy's whitening leaves 100-bin ramps *outside* ``freqmin..freqmax`` and the preset
correlates without zero padding: the tiles must carry those bins (``whitened_band``) and
the circular FFT length, or their stacks would silently lose part of the spectrum.
"""

import pytest

from noisecorr.tiles import carried_band
from test_tile_equivalence import assert_same, per_window, tiled
from tile_data import make_spectra, params

NOISEPY = dict(zero_pad=False, window_taper_max=20, outlier_reference="chunk",
               whitening_style="noisepy", spectral_water_level=1e-7)


@pytest.mark.parametrize("cc_method", ["xcorr", "coherency", "deconv"])
def test_tiles_with_noisepy_choices(cc_method):
    p = params(cc_method=cc_method, **NOISEPY)
    items = make_spectra(p, n_stations=5, seconds=400.0)
    band = carried_band(p, items[0]["nfft"])
    # 60 s windows at 10 Hz, no padding: bins of 1/60 Hz; 3 Hz is bin 180, the ramp ends 100 bins later
    assert items[0]["nfft"] == 600 and band.stop == 280
    assert_same(per_window(p, items), tiled(p, items, 2))
