"""Response removal by overlap-save in blocks (issue 26) against the whole-row deconvolution
it replaces and against the definition of a linear convolution, row by row, on synthetic
counts of channels with different responses."""

import numpy as np
import pytest

from noisecorr.signal import preprocess as pp
from noisecorr.signal.preprocess import bandpass, remove_response

from test_response_rows import FS, PRE_FILT, SENSORS, T0
from test_response_rows import _inventory as _rows_inventory

BAND = (0.05, 2.0, 4)
#: SENSORS plus a copy of the 120 s sensor with four times its gain: the same kernel length
#: (so the same block group) but another kernel, a quarter of the first's
BLOCK_SENSORS = SENSORS + [("HH2", 120.0, 6000.0)]
SIDS = [f"XX.STA.00.{cha}" for cha, _, _ in BLOCK_SENSORS]


def _inventory():
    return _rows_inventory(BLOCK_SENSORS)


@pytest.fixture(scope="module")
def counts():
    """Two hours at 20 Hz (above BLOCKED_MIN_SAMPLES), different red-ish noise per row,
    demeaned and with the chain's 20 s end tapers."""
    n = 150_001
    assert n >= pp.BLOCKED_MIN_SAMPLES
    rng = np.random.default_rng(21)
    x = np.cumsum(rng.standard_normal((len(SIDS), n)), axis=1) * 50.0 + rng.standard_normal((len(SIDS), n)) * 1e3
    x -= x.mean(axis=1, keepdims=True)
    ramp = 0.5 * (1 - np.cos(np.pi * np.arange(400) / 400))
    x[:, :400] *= ramp
    x[:, -400:] *= ramp[::-1]
    return _inventory(), x


def _kernels(inv, n):
    nfft = pp.response_nfft(n)
    return [pp._response_kernel(inv.get_response(s, T0), 1 / FS, nfft, "VEL", PRE_FILT, 60.0, BAND)
            for s in SIDS]


def test_the_test_covers_every_path(counts):
    """Two rows share a block length (one group), one has its own, and the 1 s sensor's
    kernel rings too long (its water level bites inside the band): the whole-row FFT."""
    inv, x = counts
    k = _kernels(inv, x.shape[1])
    assert k[2] is None and all(k[i] is not None for i in (0, 1, 3))
    assert k[0][:2] == k[3][:2] and k[1][1] != k[0][1]
    np.testing.assert_allclose(k[3][2], k[0][2] / 4, rtol=1e-6, atol=0)


def test_blocked_rows_are_the_whole_row_deconvolution(counts, monkeypatch):
    inv, x = counts
    blocked = remove_response(x, SIDS, T0, FS, inv, pre_filt=PRE_FILT, dtype=np.float32, band=BAND)
    monkeypatch.setattr(pp, "BLOCKED_MIN_SAMPLES", 1 << 60)
    whole = remove_response(x, SIDS, T0, FS, inv, pre_filt=PRE_FILT, dtype=np.float32, band=BAND)
    assert blocked.dtype == np.float32 and blocked.shape == x.shape
    core = slice(int(100 * FS), x.shape[1] - int(100 * FS))
    for i, sid in enumerate(SIDS):
        peak = np.abs(whole[i]).max()
        # the kernel's dropped tail (below KERNEL_TOL of its peak) and float32 rounding: within
        # the float32 path's tolerance (6e-6 at most here, for these red counts; 4e-7 on the
        # benchmark's synthetic day)
        np.testing.assert_allclose(blocked[i], whole[i], rtol=0, atol=1e-5 * peak, err_msg=sid)
        # and ObsPy's float64 deconvolution, then the forward-backward bandpass, away from the ends
        ref = bandpass(remove_response(x[i], sid, T0, FS, inv, pre_filt=PRE_FILT), FS, *BAND[:2], BAND[2])
        np.testing.assert_allclose(blocked[i][core], ref[core], rtol=0, atol=1e-5 * peak, err_msg=sid)
    np.testing.assert_array_equal(blocked[2], whole[2])       # the long kernel: the same code


def test_each_row_keeps_its_own_kernel(counts):
    """Rows alone, rows permuted: the same samples; the same counts under the four times
    louder sensor come out a quarter as large (its kernel, not its group neighbour's)."""
    inv, x = counts
    out = remove_response(x, SIDS, T0, FS, inv, pre_filt=PRE_FILT, dtype=np.float32, band=BAND)
    perm = [3, 1, 0, 2]
    swapped = remove_response(x[perm], [SIDS[i] for i in perm], T0, FS, inv, pre_filt=PRE_FILT,
                              dtype=np.float32, band=BAND)
    for j, i in enumerate(perm):
        alone = remove_response(x[i], SIDS[i], T0, FS, inv, pre_filt=PRE_FILT, dtype=np.float32, band=BAND)
        peak = np.abs(out[i]).max()
        np.testing.assert_allclose(swapped[j], out[i], rtol=0, atol=1e-6 * peak)
        np.testing.assert_allclose(alone, out[i], rtol=0, atol=1e-6 * peak)
    same = remove_response(np.stack([x[0], x[0]]), [SIDS[0], SIDS[3]], T0, FS, inv, pre_filt=PRE_FILT,
                           dtype=np.float32, band=BAND)
    np.testing.assert_allclose(same[1], same[0] / 4, rtol=0, atol=1e-6 * np.abs(same[0]).max())


@pytest.mark.parametrize("lengths, npts", [((40, 40), 5003), ((40, 40), 5 * (1024 - 80)), ((120, 7), 5003),
                                          ((0, 55, 300), 5003)])
def test_overlap_save_is_the_linear_convolution(lengths, npts):
    """_deconvolve_blocked against np.convolve, row by row, for kernels of different half
    lengths in one group (rows aligned by their own L) and several blocks, the last one
    partial or (5 blocks of B - 2 L exactly) full."""
    rng = np.random.default_rng(len(lengths))
    B = 1024
    rows = rng.standard_normal((len(lengths), npts))
    kernels, expected = [], []
    for i, L in enumerate(lengths):
        g = rng.standard_normal(2 * L + 1)                # g[j] = h[j - L]
        kernels.append((L, B, np.fft.rfft(g, B).astype(np.complex64)))
        expected.append(np.convolve(rows[i], g)[L:L + npts])   # y[n] = sum_k h[k] x[n - k]
    got = pp._deconvolve_blocked(rows, kernels)
    assert got.shape == rows.shape and got.dtype == np.float32
    for i in range(len(lengths)):
        scale = np.abs(expected[i]).max()
        np.testing.assert_allclose(got[i], expected[i], rtol=0, atol=1e-5 * scale)


def test_kernel_is_refused_where_the_last_bin_is_not_zero(counts, monkeypatch):
    """Without pre_filt and band the operator's Nyquist bin is not zero: ObsPy's real last
    bin cannot be repeated per block, so the row takes the whole-row FFT (the same samples
    as with the blocked path switched off)."""
    inv, x = counts
    nfft = pp.response_nfft(x.shape[1])
    assert pp._response_kernel(inv.get_response(SIDS[0], T0), 1 / FS, nfft, "VEL", None, 60.0, None) is None
    a = remove_response(x[0], SIDS[0], T0, FS, inv, pre_filt=None, dtype=np.float32)
    monkeypatch.setattr(pp, "BLOCKED_MIN_SAMPLES", 1 << 60)
    np.testing.assert_array_equal(a, remove_response(x[0], SIDS[0], T0, FS, inv, pre_filt=None, dtype=np.float32))


def test_kernel_from_the_coarse_grid_is_the_full_grids(monkeypatch):
    """The kernel evaluated on every 8th bin of the FFT's grid (the response's kernel aliased
    with an eighth of the period) is the full grid's one to well below the tolerance, and
    deconvolves the same samples."""
    inv = _inventory()
    n = 163_840
    nfft = pp.response_nfft(n)
    monkeypatch.setattr(pp, "KERNEL_GRID_MIN", 1 << 15)
    assert nfft // pp._kernel_grid(nfft) == 8
    resp = inv.get_response(SIDS[0], T0)
    coarse = pp._response_kernel(resp, 1 / FS, nfft, "VEL", PRE_FILT, 60.0, BAND)
    x = np.cumsum(np.random.default_rng(4).standard_normal(n)) * 50.0
    x -= x.mean()
    a = remove_response(x, SIDS[0], T0, FS, inv, pre_filt=PRE_FILT, dtype=np.float32, band=BAND)
    monkeypatch.setattr(pp, "KERNEL_GRID_MIN", 1 << 60)
    assert pp._kernel_grid(nfft) == nfft
    full = pp._response_kernel(resp, 1 / FS, nfft, "VEL", PRE_FILT, 60.0, BAND)
    assert coarse is not None and full is not None and abs(coarse[0] - full[0]) <= 2 and coarse[1] == full[1]
    np.testing.assert_allclose(coarse[2], full[2], rtol=0, atol=1e-6 * np.abs(full[2]).max())
    b = remove_response(x, SIDS[0], T0, FS, inv, pre_filt=PRE_FILT, dtype=np.float32, band=BAND)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * np.abs(b).max())
