"""Spherical-Earth geometry for the synthetic network.

The synthetic world is a sphere of radius :data:`EARTH_RADIUS_KM` (6371.0 km).
Every distance the generator uses -- source to station (for the propagation
delays) and station to station (for ``truth.csv``) -- is the great-circle
distance on that sphere, computed with the haversine formula. Because one
metric is used throughout, the stationary-phase argument holds exactly: a
source on the great circle through stations A and B, beyond A, arrives at B
``d(A, B) / v`` seconds after it arrives at A.

Note that ObsPy's ``gps2dist_azimuth`` measures on the WGS84 ellipsoid; it
differs from the spherical truth by up to about 0.5 % of the distance.
"""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_KM = 6371.0


def great_circle_km(lat1, lon1, lat2, lon2):
    """Great-circle distance in km between points given in degrees.

    Broadcasts like numpy. Haversine formula on a sphere of radius
    :data:`EARTH_RADIUS_KM`.

    Examples
    --------
    >>> round(float(great_circle_km(0.0, 0.0, 0.0, 1.0)), 3)
    111.195
    """
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(np.asarray(lon2) - np.asarray(lon1))
    h = np.sin(dphi / 2.0) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2.0) ** 2
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def azimuth_deg(lat1, lon1, lat2, lon2):
    """Initial azimuth (degrees clockwise from north, 0..360) from point 1 to 2."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlmb = np.radians(np.asarray(lon2) - np.asarray(lon1))
    y = np.sin(dlmb) * np.cos(p2)
    x = np.cos(p1) * np.sin(p2) - np.sin(p1) * np.cos(p2) * np.cos(dlmb)
    return np.degrees(np.arctan2(y, x)) % 360.0


def destination(lat, lon, azimuth, distance_km):
    """Point reached from (lat, lon) going ``distance_km`` along ``azimuth`` (deg).

    Returns ``(lat, lon)`` in degrees, longitude wrapped to [-180, 180).
    """
    p1, l1 = np.radians(lat), np.radians(lon)
    az = np.radians(azimuth)
    delta = np.asarray(distance_km) / EARTH_RADIUS_KM
    p2 = np.arcsin(np.sin(p1) * np.cos(delta) + np.cos(p1) * np.sin(delta) * np.cos(az))
    l2 = l1 + np.arctan2(np.sin(az) * np.sin(delta) * np.cos(p1),
                         np.cos(delta) - np.sin(p1) * np.sin(p2))
    return np.degrees(p2), (np.degrees(l2) + 180.0) % 360.0 - 180.0
