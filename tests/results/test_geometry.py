"""Vectorised WGS84 geometry against ObsPy's gps2dist_azimuth."""

import warnings

import numpy as np
import pytest
from obspy.geodetics import gps2dist_azimuth

from noisecorr.results.layout import geometry, geometry_many


def _angle_error(a, b):
    e = np.abs(np.asarray(a) - np.asarray(b)) % 360
    return np.minimum(e, 360 - e)


def test_geometry_many_matches_obspy_to_1m_and_1e6_deg():
    rng = np.random.default_rng(7)
    n = 3000
    lat1, lon1 = rng.uniform(-89, 89, n), rng.uniform(-180, 180, n)
    lat2, lon2 = rng.uniform(-89, 89, n), rng.uniform(-180, 180, n)
    # short (array-sized) pairs, equator, meridian, coincident, lon beyond 180
    lat2[:500] = np.clip(lat1[:500] + rng.normal(0, 0.05, 500), -89, 89)
    lon2[:500] = lon1[:500] + rng.normal(0, 0.05, 500)
    lat1[500:550] = lat2[500:550] = 0.0
    lon2[550:600] = lon1[550:600]
    lat2[600:620], lon2[600:620] = lat1[600:620], lon1[600:620]
    lon1[620:650] += 360.0
    d, az, baz = geometry_many(lat1, lon1, lat2, lon2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ObsPy warns about (rare) antipodes
        ref = np.array([gps2dist_azimuth(*x) for x in zip(lat1, lon1, lat2, lon2)])
    assert np.max(np.abs(d * 1000 - ref[:, 0])) < 1.0
    far = ref[:, 0] > 1.0  # azimuths of coincident points are 0 by convention
    assert np.max(_angle_error(az, ref[:, 1])[far]) < 1e-6
    assert np.max(_angle_error(baz, ref[:, 2])[far]) < 1e-6
    assert np.all(d[600:620] == 0) and np.all(az[600:620] == 0)


def test_geometry_single_pair_and_bad_latitude():
    g = geometry({"latitude": 47.0, "longitude": 10.0}, {"latitude": 47.3, "longitude": 10.4})
    dist, az, baz = gps2dist_azimuth(47.0, 10.0, 47.3, 10.4)
    assert g["distance_km"] == pytest.approx(dist / 1000, abs=1e-6)
    assert g["azimuth"] == pytest.approx(az, abs=1e-9)
    assert g["back_azimuth"] == pytest.approx(baz, abs=1e-9)
    assert geometry(None, {"latitude": 0, "longitude": 0}) == {}
    with pytest.raises(ValueError, match="latitude"):
        geometry_many([91.0], [0.0], [0.0], [0.0])
