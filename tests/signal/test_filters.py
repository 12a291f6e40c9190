"""The Butterworth design and Tukey window of noisecorr.signal.filters against SciPy's."""

import subprocess
import sys

import numpy as np
import pytest
import scipy.signal

from noisecorr.signal.filters import butter_bandpass_zpk, tukey


def _sorted(x):
    return np.sort_complex(np.round(np.asarray(x, dtype=complex), 12))


@pytest.mark.parametrize("corners, fmin, fmax, fs", [
    (4, 0.05, 2.0, 20.0), (2, 0.1, 1.0, 20.0), (4, 0.01, 9.0, 20.0), (6, 1.0, 40.0, 100.0),
    (1, 0.2, 0.3, 1.0), (3, 0.02, 0.5, 5.0),
])
def test_butterworth_bandpass_equals_scipy(corners, fmin, fmax, fs):
    z, p, k = butter_bandpass_zpk(corners, fmin, fmax, fs)
    zs, ps, ks = scipy.signal.butter(corners, [fmin, fmax], btype="bandpass", fs=fs, output="zpk")
    np.testing.assert_allclose(_sorted(z), _sorted(zs), atol=1e-10)
    np.testing.assert_allclose(_sorted(p), _sorted(ps), atol=1e-10)
    assert k == pytest.approx(ks, rel=1e-10)
    # and the response it defines: -3 dB at both edges, unity in the band's centre
    w, h = scipy.signal.freqz_zpk(z, p, k, worN=[fmin, np.sqrt(fmin * fmax), fmax], fs=fs)
    np.testing.assert_allclose(np.abs(h) ** 2, [0.5, 1.0, 0.5], atol=1e-6 if fmax / fmin > 3 else 0.05)


def test_butterworth_refuses_edges_beyond_nyquist():
    with pytest.raises(ValueError, match="Nyquist"):
        butter_bandpass_zpk(4, 0.1, 12.0, 20.0)
    with pytest.raises(ValueError, match="corners"):
        butter_bandpass_zpk(0, 0.1, 1.0, 20.0)


@pytest.mark.parametrize("m", [0, 1, 2, 7, 100, 1001, 36000])
@pytest.mark.parametrize("alpha", [0.0, 0.02, 0.1, 0.5, 0.99, 1.0])
def test_tukey_equals_scipy(m, alpha):
    np.testing.assert_allclose(tukey(m, alpha), scipy.signal.windows.tukey(m, alpha), rtol=0, atol=1e-15)



def test_the_run_path_does_not_import_scipy_signal():
    """What a linear run needs of filters (the bandpass gain, the window taper) is here, so
    importing the preprocessing and windowing modules leaves scipy.signal unloaded."""
    code = ("import sys, noisecorr.signal.preprocess as p, noisecorr.signal.windows, noisecorr.signal.stack;"
            "p.response_nfft(1732000);"
            "print('scipy.signal' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
