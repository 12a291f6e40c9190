"""Cross-correlation: exact lag axis, sign convention, all cc_methods, no NaN."""

import numpy as np
import pytest
import scipy.fft

from synth_signals import make_delayed_pair
from noisecorr.signal.correlate import (CC_METHODS, accumulate_cross_spectra, block_cross_spectra,
                                        correlate, cross_spectra_to_lags, cross_spectrum, lag_axis,
                                        receiver_factor, source_factor)
from noisecorr.signal.normalize import whiten
from noisecorr.signal.spectra import band_indices, choose_nfft, rfft_windows


def direct_correlation(s, r, maxlag):
    """C(tau) = sum_t s(t) r(t + tau) straight from the definition (linear, no FFT)."""
    n = s.size
    out = np.zeros(2 * maxlag + 1)
    for j, tau in enumerate(range(-maxlag, maxlag + 1)):
        if tau >= 0:
            out[j] = np.dot(s[: n - tau].astype(np.float64), r[tau:].astype(np.float64))
        else:
            out[j] = np.dot(s[-tau:].astype(np.float64), r[: n + tau].astype(np.float64))
    return out


def test_lag_axis_is_exact():
    lags = lag_axis(4000, 20.0)
    assert lags.size == 8001
    assert lags[4000] == 0.0
    assert lags[0] == -200.0 and lags[-1] == 200.0
    np.testing.assert_array_equal(lags * 20.0, np.arange(-4000, 4001))


@pytest.mark.parametrize("nfft_extra", [0, 1])          # even and odd FFT lengths
@pytest.mark.parametrize("n", [200, 201])
def test_xcorr_matches_definition_linear(n, nfft_extra):
    """With nfft >= 2n - 1 the FFT result equals the time-domain definition at every lag."""
    s, r = make_delayed_pair(n, 13, seed=n)
    nfft = 2 * n - 1 + nfft_extra
    maxlag = n - 1
    ccf, lags = correlate(rfft_windows(s[None], nfft, dtype=np.complex128),
                          rfft_windows(r[None], nfft, dtype=np.complex128), nfft, 1.0, maxlag)
    np.testing.assert_allclose(ccf[0], direct_correlation(s, r, maxlag), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(lags, np.arange(-maxlag, maxlag + 1))


@pytest.mark.parametrize("nfft", [256, 257, 300, 301])
def test_circular_correlation_matches_definition(nfft):
    """Without zero padding the result is the circular correlation, exact for every |lag| < nfft/2."""
    rng = np.random.default_rng(nfft)
    s = rng.standard_normal(nfft)
    r = rng.standard_normal(nfft)
    L = (nfft - 1) // 2
    ccf = cross_spectra_to_lags(np.conj(scipy.fft.rfft(s)) * scipy.fft.rfft(r), nfft, L)
    expected = [np.dot(s, np.roll(r, -tau)) for tau in range(-L, L + 1)]
    np.testing.assert_allclose(ccf, expected, rtol=1e-9, atol=1e-9)


CASES = [(512, True), (512, False), (511, True), (511, False)]


def case_nfft(n, zero_pad):
    return choose_nfft(n, zero_pad) if zero_pad else n


@pytest.mark.parametrize("cc_method", CC_METHODS)
@pytest.mark.parametrize("k", [9, -9, 1, -1, 0])
@pytest.mark.parametrize("n,zero_pad", CASES)
def test_delayed_receiver_peaks_at_delay(cc_method, k, n, zero_pad):
    """A receiver delayed by k samples peaks at lag +k*dt for every method, parity and padding."""
    fs = 8.0
    s, r = make_delayed_pair(n * 4, k, seed=abs(k) + n)
    S = rfft_windows(s.reshape(4, n), nfft := case_nfft(n, zero_pad))
    R = rfft_windows(r.reshape(4, n), nfft)
    assert (nfft % 2) == (n % 2) or zero_pad
    ccf, lags = correlate(S, R, nfft, fs, maxlag=20 / fs, cc_method=cc_method, smoothspect_N=3)
    assert ccf.shape == (4, 41) and ccf.dtype == np.float32
    assert np.all(np.isfinite(ccf))
    for row in ccf:
        assert lags[np.argmax(row)] == pytest.approx(k / fs, abs=1e-12)


def test_both_nfft_parities_exercised():
    """The cases above reach an odd and an even FFT length, padded and circular (an even
    nfft is where a peer code's ifftshift moves every lag by one sample)."""
    lengths = {(zp, case_nfft(n, zp) % 2) for n, zp in CASES}
    assert {(False, 0), (False, 1)} <= lengths and any(zp for zp, _ in lengths)
    for n, zp in CASES:
        if zp:
            assert case_nfft(n, zp) >= 2 * n - 1


def test_peak_follows_delay_sign_not_argument_order():
    """Swapping source and receiver mirrors the correlation: C_rs(tau) = C_sr(-tau)."""
    s, r = make_delayed_pair(400, 6, seed=3)
    nfft = choose_nfft(400)
    S, R = rfft_windows(s[None], nfft), rfft_windows(r[None], nfft)
    c_sr, _ = correlate(S, R, nfft, 1.0, 30)
    c_rs, _ = correlate(R, S, nfft, 1.0, 30)
    np.testing.assert_allclose(c_rs[0], c_sr[0][::-1], rtol=1e-5, atol=1e-3)


def test_deconv_recovers_transfer_function():
    """deconv is R/S: a receiver = 2 * (source delayed by 5) deconvolves to a spike of height 2 at lag 5."""
    rng = np.random.default_rng(7)
    n = 256
    s = rng.standard_normal(n)
    r = 2.0 * np.roll(s, 5)                                  # circular delay: exact R = 2 e^{-i w 5} S
    S = scipy.fft.rfft(s)[None]
    R = scipy.fft.rfft(r)[None]
    ccf = cross_spectra_to_lags(cross_spectrum(S, R, "deconv", water_level=1e-9), n, 20)[0]
    assert np.argmax(ccf) == 20 + 5
    assert ccf[25] == pytest.approx(2.0, rel=1e-3)
    assert np.max(np.abs(np.delete(ccf, 25))) < 1e-3


@pytest.mark.parametrize("cc_method", CC_METHODS)
def test_no_nan_when_whitened_band_is_zero(cc_method):
    """Spectra that are zero outside the band, or zero everywhere, never give NaN or inf."""
    rng = np.random.default_rng(2)
    n, nfft, fs = 300, 600, 10.0
    x = rng.standard_normal((3, n)).astype(np.float32)
    W = whiten(rfft_windows(x, nfft), fs, nfft, 1.0, 2.0, "phase_only")
    W[1] = 0.0                                               # a window with an entirely zero spectrum
    Z = np.zeros_like(W)
    with np.errstate(all="raise"):                           # no division by zero or invalid ops
        for a, b in ((W, W), (W, Z), (Z, W), (Z, Z)):
            c = cross_spectrum(a, b, cc_method, smoothspect_N=2)
            assert np.all(np.isfinite(c))
            ccf, _ = correlate(a, b, nfft, fs, 10.0, cc_method)
            assert np.all(np.isfinite(ccf))
    out = cross_spectrum(W, W, cc_method)
    assert np.all(out[1] == 0)
    assert np.all(out[0][: int(1.0 * nfft / fs)] == 0)      # below freqmin stays exactly zero


def test_coherency_is_bounded_by_one():
    rng = np.random.default_rng(4)
    S = rfft_windows(rng.standard_normal((5, 128)).astype(np.float32), 256)
    R = rfft_windows(rng.standard_normal((5, 128)).astype(np.float32), 256)
    c = cross_spectrum(S, R, "coherency", water_level=1e-6)
    assert np.max(np.abs(c)) <= 1.0 + 1e-5
    np.testing.assert_allclose(np.abs(cross_spectrum(S, S, "coherency", water_level=1e-6)), 1.0,
                               rtol=1e-4)


def test_accumulated_cross_spectra_equal_mean_of_window_ccfs():
    """The linear-stack fast path (sum spectra, one inverse FFT) equals stacking per-window ccfs."""
    s, r = make_delayed_pair(6 * 300, -4, seed=11)
    nfft = choose_nfft(300)
    S, R = rfft_windows(s.reshape(6, 300), nfft), rfft_windows(r.reshape(6, 300), nfft)
    for method in CC_METHODS:
        total, n = accumulate_cross_spectra(S, R, method)
        fast = cross_spectra_to_lags(total / n, nfft, 50)
        ccfs, _ = correlate(S, R, nfft, 1.0, 50, method)
        assert n == 6
        np.testing.assert_allclose(fast, ccfs.mean(axis=0), rtol=1e-4, atol=1e-4 * np.abs(fast).max())


def test_block_cross_spectra_equal_pairwise_sums():
    """The BLAS-3 block product gives the same window-summed cross-spectra as pair by pair."""
    rng = np.random.default_rng(5)
    n_i, n_j, n_w, n = 3, 4, 5, 64
    nfft = choose_nfft(n)
    A = rfft_windows(rng.standard_normal((n_i * n_w, n)).astype(np.float32), nfft).reshape(n_i, n_w, -1)
    B = rfft_windows(rng.standard_normal((n_j * n_w, n)).astype(np.float32), nfft).reshape(n_j, n_w, -1)
    band = band_indices(nfft, 1.0, 0.1, 0.3)
    for method in CC_METHODS:
        src = np.stack([source_factor(a, method) for a in A])
        rcv = np.stack([receiver_factor(b, method) for b in B])
        block = block_cross_spectra(src, rcv, band)
        assert block.shape == (band.stop - band.start, n_i, n_j)
        for i in range(n_i):
            for j in range(n_j):
                ref, _ = accumulate_cross_spectra(A[i], B[j], method)
                np.testing.assert_allclose(block[:, i, j], ref[band], rtol=1e-4,
                                           atol=1e-4 * np.abs(ref).max())


def test_inputs_are_not_mutated():
    s, r = make_delayed_pair(256, 3)
    S, R = rfft_windows(s[None], 512), rfft_windows(r[None], 512)
    S.flags.writeable = False
    R.flags.writeable = False
    for method in CC_METHODS:
        correlate(S, R, 512, 1.0, 10, method)


def test_maxlag_beyond_half_nfft_is_refused():
    with pytest.raises(ValueError, match="maxlag_samples"):
        cross_spectra_to_lags(np.zeros(129, np.complex64), 256, 128)
