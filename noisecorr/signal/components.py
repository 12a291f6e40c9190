"""Component pairs and rotation of the ENZ correlation tensor to RTZ.

A component pair is written source component then receiver component: ``"EN"`` is
the correlation of the source station's east channel with the receiver station's
north channel.

Rotation convention (Lin, Moschetti & Ritzwoller 2008, GJI 173, 281, eq. 1): with
``theta`` the azimuth of the receiver seen from the source and ``psi`` the
back-azimuth (azimuth of the source seen from the receiver), the radial direction
points along the great circle from source to receiver at both stations and the
transverse direction is the radial turned 90 degrees clockwise seen from above:

* source:   R = azimuth ``theta``,        T = ``theta + 90``
* receiver: R = azimuth ``psi + 180``,    T = ``psi + 270``

where a horizontal direction of azimuth ``a`` is ``(E, N) = (sin a, cos a)``.

The E and N inputs are geographic: channels recorded at other azimuths (1/2, misaligned
E/N, upside-down Z) are rotated to E, N, Z first (:mod:`noisecorr.signal.orientation`),
and the time normalisation and whitening must use weights common to E and N
(``joint_normalisation``, :func:`noisecorr.signal.normalize.joint_time_normalize`):
per-channel weights change the E/N ratio and leak R into T. The rotation itself is linear
and exact; it commutes with the stacking and with common (but not per-channel) weights.
Then ``C_pq = sum_ij U_src[p, i] C_ij U_rcv[q, j]`` for p, q in (R, T, Z) and i, j in
(E, N, Z); e.g. ``RR = -sin(theta) sin(psi) EE - sin(theta) cos(psi) EN
- cos(theta) cos(psi) NN - cos(theta) sin(psi) NE`` as in Lin et al. (2008).

Examples
--------
>>> import numpy as np
>>> t = np.zeros((3, 3, 1)); t[1, 1] = 1.0          # only NN
>>> rtz = rotate_to_rtz(t, azimuth=0.0, back_azimuth=180.0)   # receiver due north
>>> float(rtz[0, 0, 0])                              # RR = NN
1.0
"""

from __future__ import annotations

import numpy as np

__all__ = ["ENZ", "RTZ", "ENZ_PAIRS", "RTZ_PAIRS", "DEFAULT_COMPONENTS", "pair_index",
           "rotation_matrices", "rotate_to_rtz", "rotate_to_rtz_block", "required_channels"]

ENZ = ("E", "N", "Z")
RTZ = ("R", "T", "Z")
#: The 9 ENZ pairs, source component first, in tensor (row-major) order.
ENZ_PAIRS = tuple(a + b for a in ENZ for b in ENZ)
#: The 9 RTZ pairs, in tensor order.
RTZ_PAIRS = tuple(a + b for a in RTZ for b in RTZ)
DEFAULT_COMPONENTS = ("ZZ",)


def pair_index(pair: str) -> tuple[int, int]:
    """Tensor indices ``(i, j)`` of a pair name in ENZ or RTZ order, e.g. ``"NZ" -> (1, 2)``."""
    p = pair.upper()
    if len(p) != 2:
        raise ValueError(f"component pair must be two letters, got {pair!r}")
    for axes in (ENZ, RTZ):
        if p[0] in axes and p[1] in axes:
            return axes.index(p[0]), axes.index(p[1])
    raise ValueError(f"component pair {pair!r} not in {list(ENZ_PAIRS + RTZ_PAIRS)}")


def required_channels(components) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Source and receiver channel components needed for the requested pairs.

    RTZ pairs other than ZZ need E and N (and Z when either side is Z) on both stations.
    """
    src, rcv = set(), set()
    for pair in components:
        p = pair.upper()
        pair_index(p)
        if p in ENZ_PAIRS:
            src.add(p[0]); rcv.add(p[1])
            continue
        for side, letter in ((src, p[0]), (rcv, p[1])):
            side.update(("E", "N") if letter in "RT" else ("Z",))
    order = {c: k for k, c in enumerate(ENZ)}
    return tuple(sorted(src, key=order.get)), tuple(sorted(rcv, key=order.get))


def rotation_matrices(azimuth: float, back_azimuth: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows (R, T, Z) in (E, N, Z) coordinates at the source and at the receiver.

    Parameters
    ----------
    azimuth : float
        ``theta``, degrees, receiver seen from the source.
    back_azimuth : float
        ``psi``, degrees, source seen from the receiver.
    """
    def frame(radial_az_deg: float) -> np.ndarray:
        a = np.radians(radial_az_deg)
        return np.array([[np.sin(a), np.cos(a), 0.0],           # R
                         [np.cos(a), -np.sin(a), 0.0],          # T = R + 90 degrees
                         [0.0, 0.0, 1.0]])                      # Z
    return frame(float(azimuth)), frame(float(back_azimuth) + 180.0)


def rotate_to_rtz(tensor: np.ndarray, azimuth: float, back_azimuth: float) -> np.ndarray:
    """Rotate an (E, N, Z) x (E, N, Z) correlation tensor to (R, T, Z) x (R, T, Z).

    Parameters
    ----------
    tensor : ndarray, shape (3, 3, ...)
        ``tensor[i, j]`` is the correlation of source component ``ENZ[i]`` with
        receiver component ``ENZ[j]`` (trailing axes: lags, windows, ...).
    azimuth, back_azimuth : float
        Degrees, see :func:`rotation_matrices`.

    Returns
    -------
    ndarray, shape (3, 3, ...)
        ``out[p, q]`` for source ``RTZ[p]`` and receiver ``RTZ[q]``; a new array.
    """
    c = np.asarray(tensor)
    if c.shape[:2] != (3, 3):
        raise ValueError(f"tensor must have shape (3, 3, ...), got {c.shape}")
    us, ur = rotation_matrices(azimuth, back_azimuth)
    out = np.einsum("pi,ij...,qj->pq...", us, c, ur)
    return out.astype(np.result_type(c.dtype, np.float32), copy=False)


def rotate_to_rtz_block(tensors: np.ndarray, azimuths, back_azimuths) -> np.ndarray:
    """:func:`rotate_to_rtz` of a block of pairs as one batched matrix product.

    ``out[k, p, q] = sum_ij U_src,k[p, i] tensors[k, i, j] U_rcv,k[q, j]`` is, with the
    nine components flattened, ``out[k] = (U_src,k kron U_rcv,k) @ tensors[k]``: one
    ``np.matmul`` of ``(n_pairs, 9, 9)`` by ``(n_pairs, 9, n)`` where ``n`` covers the
    trailing axes (windows, lags).

    Parameters
    ----------
    tensors : ndarray, shape (n_pairs, 3, 3, ...)
        ENZ x ENZ correlations of each pair (see :func:`rotate_to_rtz`).
    azimuths, back_azimuths : array_like, shape (n_pairs,)
        Degrees, per pair (see :func:`rotation_matrices`).

    Returns
    -------
    ndarray, shape (n_pairs, 3, 3, ...), float32 for float32 input (else float64)
    """
    c = np.asarray(tensors)
    az = np.atleast_1d(np.asarray(azimuths, dtype=np.float64))
    baz = np.atleast_1d(np.asarray(back_azimuths, dtype=np.float64))
    if c.ndim < 3 or c.shape[1:3] != (3, 3) or az.shape != (c.shape[0],) or baz.shape != az.shape:
        raise ValueError(f"tensors must have shape (n_pairs, 3, 3, ...) with one azimuth and "
                         f"back-azimuth per pair, got {c.shape}, {az.shape}, {baz.shape}")

    def frames(radial):
        a = np.radians(radial)
        f = np.zeros(a.shape + (3, 3))
        f[:, 0, 0], f[:, 0, 1] = np.sin(a), np.cos(a)
        f[:, 1, 0], f[:, 1, 1] = np.cos(a), -np.sin(a)
        f[:, 2, 2] = 1.0
        return f

    us, ur = frames(az), frames(baz + 180.0)
    kron = np.einsum("kpi,kqj->kpqij", us, ur).reshape(len(az), 9, 9)
    dtype = np.result_type(c.dtype, np.float32)
    flat = c.reshape(c.shape[0], 9, -1)
    out = np.matmul(kron.astype(dtype), flat.astype(dtype, copy=False))
    return out.reshape(c.shape).astype(dtype, copy=False)
