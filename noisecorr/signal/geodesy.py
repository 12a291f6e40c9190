"""Station-pair geometry: distance, azimuth and back-azimuth.

Distances are geodesic on the WGS84 ellipsoid (Karney's algorithm through
:func:`obspy.geodetics.gps2dist_azimuth`); :func:`great_circle_km` gives the
spherical great-circle distance for comparison with codes that use a sphere.

Examples
--------
>>> g = pair_geometry(0.0, 0.0, 0.0, 1.0)
>>> round(g.distance_km, 2), round(g.azimuth, 6), round(g.back_azimuth, 6)
(111.32, 90.0, 270.0)
>>> round(great_circle_km(0.0, 0.0, 0.0, 1.0), 2)
111.19
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from obspy.geodetics import gps2dist_azimuth

__all__ = ["PairGeometry", "pair_geometry", "great_circle_km", "EARTH_RADIUS_KM"]

#: Mean Earth radius in km used by :func:`great_circle_km` (IUGG mean radius).
EARTH_RADIUS_KM = 6371.0


@dataclass(frozen=True)
class PairGeometry:
    """Geometry of a source-receiver station pair.

    Attributes
    ----------
    distance_km : float
        WGS84 geodesic distance in km.
    azimuth : float
        Azimuth in degrees clockwise from north of the receiver seen from the source
        (``theta`` in Lin et al. 2008), in [0, 360).
    back_azimuth : float
        Azimuth in degrees of the source seen from the receiver (``psi``), in [0, 360).
    """

    distance_km: float
    azimuth: float
    back_azimuth: float


def _check_coords(lat: float, lon: float) -> None:
    if not (np.isfinite(lat) and np.isfinite(lon)) or not -90 <= lat <= 90:
        raise ValueError(f"invalid coordinates latitude={lat!r}, longitude={lon!r}")


def pair_geometry(src_lat: float, src_lon: float, rcv_lat: float, rcv_lon: float) -> PairGeometry:
    """Distance (km), azimuth and back-azimuth (degrees) from source to receiver.

    Parameters
    ----------
    src_lat, src_lon, rcv_lat, rcv_lon : float
        Geographic coordinates in degrees.
    """
    _check_coords(src_lat, src_lon)
    _check_coords(rcv_lat, rcv_lon)
    dist_m, az, baz = gps2dist_azimuth(float(src_lat), float(src_lon), float(rcv_lat), float(rcv_lon))
    return PairGeometry(dist_m / 1000.0, float(az) % 360.0, float(baz) % 360.0)


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float,
                    radius_km: float = EARTH_RADIUS_KM) -> float:
    """Great-circle distance on a sphere of ``radius_km`` (haversine formula), in km."""
    _check_coords(lat1, lon1)
    _check_coords(lat2, lon2)
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(lon2 - lon1)
    h = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return float(2 * radius_km * np.arcsin(np.sqrt(min(1.0, h))))
