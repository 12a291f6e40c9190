"""The tile kernel's operand layouts, checked against plain loops.

``assemble_block(..., stations_last=True)`` (the receiver panel of the product) must hold
exactly the transpose of the default layout, with zeros where a station lacks a window or
has no data, through chunk boundaries of the frequency axis; ``tile_cross_spectra`` must
be the window sum of products of every pair at every frequency.
"""

import numpy as np
import pytest

from noisecorr.tiles import assemble_block, tile_cross_spectra, window_grid


def _factors(rng, n_band, n_windows):
    return (rng.standard_normal((n_band, n_windows))
            + 1j * rng.standard_normal((n_band, n_windows))).astype(np.complex64)


@pytest.mark.parametrize("n_band", [1, 37, 3001])  # 3001: several frequency chunks and a partial last
@pytest.mark.parametrize("conjugate", [False, True])
def test_stations_last_is_the_transpose_with_gaps(n_band, conjugate):
    rng = np.random.default_rng(n_band)
    fs, step = 10.0, 60.0
    starts = [np.arange(8) * step, np.arange(8)[[0, 2, 3, 7]] * step, (), np.arange(1, 6) * step]
    factors = [_factors(rng, n_band, len(t)) if len(t) else None for t in starts]
    grid = window_grid([t for t in starts if len(t)], fs)
    a, ma = assemble_block(factors, starts, grid, fs, n_band, conjugate=conjugate)
    b, mb = assemble_block(factors, starts, grid, fs, n_band, conjugate=conjugate,
                           stations_last=True)
    assert b.shape == (n_band, len(grid), len(starts))
    np.testing.assert_array_equal(b, a.transpose(0, 2, 1))
    np.testing.assert_array_equal(ma, mb)
    # by hand: station 1 has grid windows 0, 2, 3, 7 only; station 2 nothing
    for k, t in enumerate(starts):
        cols = np.searchsorted(grid, np.round(np.asarray(t) * fs).astype(np.int64))
        want = np.zeros((n_band, len(grid)), np.complex64)
        if len(t):
            want[:, cols] = np.conj(factors[k]) if conjugate else factors[k]
        np.testing.assert_array_equal(b[:, :, k], want)
        assert mb[k].sum() == len(t)


def test_cross_spectra_are_window_sums_of_products():
    rng = np.random.default_rng(3)
    n_band, w = 5, 7
    src = np.stack([_factors(rng, n_band, w) for _ in range(3)], axis=1)  # (f, i, w)
    rcv = np.stack([_factors(rng, n_band, w) for _ in range(4)], axis=2)  # (f, w, j)
    out = np.empty((n_band, 3, 4), np.complex64)
    got = tile_cross_spectra(src, rcv, out=out)
    assert got is out
    for f in range(n_band):
        for i in range(3):
            for j in range(4):
                want = sum(complex(src[f, i, k]) * complex(rcv[f, k, j]) for k in range(w))
                assert abs(got[f, i, j] - want) < 1e-5 * max(1.0, abs(want))
