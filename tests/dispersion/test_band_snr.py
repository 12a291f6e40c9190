"""Per-side, per-band SNR against an analytic case: a Gaussian wave packet of known amplitude
on white noise of known RMS, and its storage in the dispersion table (reader, `info`,
selection)."""

import numpy as np
import pytest

from noisecorr.dispersion.table import SNR_BAND_ALPHA, measure_block
from noisecorr.signal.symmetric import snr

FS, H = 5.0, 3500                   # lags -700..700 s
N = 200                             # pairs: independent noise, the same signal
FC, SIGMA_E, T0, AMP = 0.5, 10.0, 130.0, 1.0
D = 300.0                           # km: signal window 60-200 s for 1.5-5 km/s


def packets(sigma, causal_amp=AMP, acausal_amp=0.5 * AMP, seed=0):
    t = np.arange(-H, H + 1) / FS
    sig = (causal_amp * (t > 0) + acausal_amp * (t < 0)) * np.exp(-0.5 * ((np.abs(t) - T0) / SIGMA_E) ** 2) \
        * np.cos(2 * np.pi * FC * (np.abs(t) - T0))
    rng = np.random.default_rng(seed)
    return sig[None] + sigma * rng.standard_normal((N, t.size))


def test_band_snr_is_amplitude_over_band_noise_rms():
    sigma = 0.01
    x = packets(sigma)
    r = snr(x, FS, np.full(N, D), periods=[1 / FC, 4.0], alpha=SNR_BAND_ALPHA, noise_length=400.0)
    # white noise of variance s^2 through exp(-alpha ((f - fc) / fc)^2): one-sided PSD 2 s^2 / fs,
    # integral of G^2 = fc sqrt(pi / (2 alpha))
    noise_band = sigma * np.sqrt(2.0 / FS * FC * np.sqrt(np.pi / (2 * SNR_BAND_ALPHA)))
    # the packet's spectrum (std 1 / (2 pi sigma_e)) times the Gaussian filter (std fc / sqrt(2 alpha))
    s_s, s_g = 1 / (2 * np.pi * SIGMA_E), FC / np.sqrt(2 * SNR_BAND_ALPHA)
    peak = AMP * s_g / np.hypot(s_s, s_g)
    expect = peak / noise_band
    assert np.median(r["band_causal"][:, 0]) == pytest.approx(expect, rel=0.03)
    assert np.median(r["band_acausal"][:, 0]) == pytest.approx(0.5 * expect, rel=0.03)
    # symmetric: mean of the sides, signal 0.75, noise RMS / sqrt(2)
    assert np.median(r["band_symmetric"][:, 0]) == pytest.approx(0.75 * np.sqrt(2) * expect, rel=0.03)
    # a band where the packet has no energy: only noise, SNR of a few (peak of noise over RMS)
    assert np.median(r["band_causal"][:, 1]) < 5
    # broadband: amplitude over the white-noise RMS (the peak sample carries noise too)
    assert np.median(r["causal"]) == pytest.approx(AMP / sigma, rel=0.05)


def test_stored_in_the_table_read_back_shown_and_selectable(tmp_path, capsys):
    from noisecorr.cli import main
    from noisecorr.results import ResultsWriter
    from noisecorr.results.reader import open_results

    x = np.concatenate([packets(0.01)[:2], packets(0.2, seed=1)[:2]]).astype(np.float32)
    periods = np.array([2.0, 3.0])
    out = measure_block(x, FS, np.full(4, D), periods, noise_length=15.0)   # the command: 5 x 3 s
    assert out["band_snr_causal"].shape == (4, 2)
    assert np.all(out["band_snr_causal"][:2, 0] > 4 * out["band_snr_causal"][2:, 0])   # 20 x the noise
    path = tmp_path / "results.h5"
    with ResultsWriter(path, {}, sampling_rate=FS) as w:
        w.write_block(["XS.A"] * 4, ["XS.B", "XS.C", "XS.D", "XS.E"], "ZZ", H / FS, x,
                      {"n_windows": 10, "distance_km": [D] * 4, "sampling_rate": FS})
    assert main(["dispersion", str(path), "--periods", "2,3", "--no-plots"]) == 0
    with open_results(path) as res:
        t = res.dispersion("ZZ")
    np.testing.assert_allclose(t.band_snr_causal, out["band_snr_causal"], rtol=1e-5)
    kept = t.select(min_band_snr=100.0, side="causal")
    assert kept.receiver.tolist() == ["XS.B", "XS.C"]
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "band SNR ZZ" in text and "2 s" in text
