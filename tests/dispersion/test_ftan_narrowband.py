"""The FTAN narrow-band transform (product written into the zero-padded buffer of the
inverse FFT, scaling folded into the filters) against the direct formula on a small case."""

import numpy as np
import scipy.fft

from noisecorr.signal.ftan import _plan, alpha_for, gaussian_bank, narrowband


def test_narrowband_matches_direct_formula():
    rng = np.random.default_rng(5)
    dt, nt = 0.1, 1500
    x = rng.standard_normal((7, nt)).astype(np.float32)
    periods = np.geomspace(1.0, 20.0, 9)
    alpha = alpha_for(np.linspace(30.0, 300.0, 7))
    z, dtc = narrowband(x, dt, periods, alpha)
    nfft, K, M, dtc_ref = _plan(nt, dt, periods, float(alpha.min()))
    spec = 2.0 * np.fft.rfft(x.astype(np.float64), nfft, axis=-1)[:, :K]
    bank = gaussian_bank(np.arange(K) / (nfft * dt), periods, alpha).astype(np.float64)
    ref = scipy.fft.ifft(spec[:, None, :] * bank, M, axis=-1) * (M / nfft)
    assert z.shape == (7, periods.size, M) and dtc == dtc_ref
    scale = np.abs(ref).max(axis=-1, keepdims=True)
    assert np.max(np.abs(z - ref) / scale) < 1e-5
    # and it is really the band: the envelope of a long period is not that of a short one
    assert not np.allclose(np.abs(z[:, 0]), np.abs(z[:, -1]), rtol=0.1)
