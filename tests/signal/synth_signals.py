"""Shared synthetic data for the signal tests (known answers, no files)."""

import numpy as np


def make_delayed_pair(n, k, *, noise=0.2, seed=0, extra=None):
    """Source and receiver of length ``n``: receiver[i] = source[i - k] + independent noise.

    Built from one longer white-noise series so the delayed copy is genuine (no wrap).
    ``extra`` samples on top of ``n`` let callers cut a longer continuous record.
    """
    rng = np.random.default_rng(seed)
    m = n + (extra or 0)
    K = abs(k)
    base = rng.standard_normal(m + 2 * K)
    src = base[K:K + m]
    rcv = base[K - k:K - k + m] + noise * rng.standard_normal(m)
    return src.astype(np.float32), rcv.astype(np.float32)
