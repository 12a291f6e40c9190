"""Pair geometry against known values; ENZ->RTZ rotation against Lin et al. (2008)."""

import numpy as np
import pytest

from noisecorr.signal.components import (ENZ_PAIRS, RTZ_PAIRS, pair_index, required_channels,
                                         rotate_to_rtz)
from noisecorr.signal.geodesy import great_circle_km, pair_geometry


def test_equator_one_degree():
    g = pair_geometry(0.0, 0.0, 0.0, 1.0)
    # WGS84 equatorial radius 6378.137 km: 1 degree of the equator is 111.3195 km
    assert g.distance_km == pytest.approx(6378.137 * np.pi / 180, rel=1e-6)
    assert g.azimuth == pytest.approx(90.0) and g.back_azimuth == pytest.approx(270.0)
    # on a sphere of radius 6371 km: 111.19 km
    assert great_circle_km(0.0, 0.0, 0.0, 1.0) == pytest.approx(111.195, abs=1e-3)


def test_meridian_and_swap():
    g = pair_geometry(10.0, 20.0, 11.0, 20.0)
    assert g.azimuth == pytest.approx(0.0, abs=1e-9) and g.back_azimuth == pytest.approx(180.0)
    assert 110.5 < g.distance_km < 110.7          # WGS84 meridian degree near 10.5 N: 110.6 km
    h = pair_geometry(11.0, 20.0, 10.0, 20.0)
    assert h.distance_km == pytest.approx(g.distance_km)
    assert h.azimuth == pytest.approx(180.0)


def test_great_circle_quarter():
    assert great_circle_km(0, 0, 90, 0) == pytest.approx(np.pi / 2 * 6371.0)


def test_bad_coordinates():
    with pytest.raises(ValueError, match="latitude"):
        pair_geometry(91.0, 0.0, 0.0, 0.0)


def lin2008(tensor, theta, psi):
    """Lin, Moschetti & Ritzwoller (2008), eq. 1, written out term by term."""
    th, ps = np.radians(theta), np.radians(psi)
    EE, EN, NN, NE = tensor[0, 0], tensor[0, 1], tensor[1, 1], tensor[1, 0]
    TT = -np.cos(th) * np.cos(ps) * EE + np.cos(th) * np.sin(ps) * EN \
        - np.sin(th) * np.sin(ps) * NN + np.sin(th) * np.cos(ps) * NE
    RR = -np.sin(th) * np.sin(ps) * EE - np.sin(th) * np.cos(ps) * EN \
        - np.cos(th) * np.cos(ps) * NN - np.cos(th) * np.sin(ps) * NE
    TR = -np.cos(th) * np.sin(ps) * EE - np.cos(th) * np.cos(ps) * EN \
        + np.sin(th) * np.cos(ps) * NN + np.sin(th) * np.sin(ps) * NE
    RT = -np.sin(th) * np.cos(ps) * EE + np.sin(th) * np.sin(ps) * EN \
        + np.cos(th) * np.sin(ps) * NN - np.cos(th) * np.cos(ps) * NE
    return RR, RT, TR, TT


@pytest.mark.parametrize("theta,psi", [(30.0, 215.0), (123.0, 300.5), (0.0, 180.0), (271.0, 88.0)])
def test_rotation_matches_lin_2008(theta, psi):
    rng = np.random.default_rng(int(theta))
    c = rng.standard_normal((3, 3, 17))
    out = rotate_to_rtz(c, theta, psi)
    RR, RT, TR, TT = lin2008(c, theta, psi)
    np.testing.assert_allclose(out[0, 0], RR, atol=1e-12)
    np.testing.assert_allclose(out[0, 1], RT, atol=1e-12)
    np.testing.assert_allclose(out[1, 0], TR, atol=1e-12)
    np.testing.assert_allclose(out[1, 1], TT, atol=1e-12)
    np.testing.assert_allclose(out[2, 2], c[2, 2])            # ZZ untouched


def test_rotation_geometry_receiver_due_east():
    """Receiver due east (theta=90, psi=270): R is east at both stations, T is south."""
    c = np.zeros((3, 3))
    c[0, 0] = 1.0                                             # EE
    c[1, 1] = 2.0                                             # NN
    c[0, 2] = 3.0                                             # EZ
    out = rotate_to_rtz(c, 90.0, 270.0)
    assert out[0, 0] == pytest.approx(1.0)                    # RR = EE
    assert out[1, 1] == pytest.approx(2.0)                    # TT = (-N)(-N) = NN
    assert out[0, 2] == pytest.approx(3.0)                    # RZ = EZ
    assert abs(out[0, 1]) < 1e-12


def test_pair_names():
    assert len(ENZ_PAIRS) == 9 and len(RTZ_PAIRS) == 9
    assert pair_index("NZ") == (1, 2) and pair_index("tr") == (1, 0)
    assert required_channels(["ZZ"]) == (("Z",), ("Z",))
    assert required_channels(["RT"]) == (("E", "N"), ("E", "N"))
    assert required_channels(["EZ", "RZ"]) == (("E", "N"), ("Z",))
    with pytest.raises(ValueError, match="component pair"):
        pair_index("XY")
