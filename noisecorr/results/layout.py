"""Names, lag axis and pair geometry shared by the results writer and reader.

See :mod:`noisecorr.results` for the file layout.
"""

from __future__ import annotations

import json
import re

import numpy as np

FORMAT = "noisecorr.results"
#: Name of the results file inside a run's output folder.
RESULTS_FILE = "results.h5"
FORMAT_VERSION = 2
#: Metadata item of a pair whose per-chunk (sub-stack) rows keep a shorter maxlag (s) than
#: its stack (``keep_chunks.maxlag``; see :mod:`noisecorr.results.substacks`).
SERIES_MAXLAG = "series_maxlag"



def results_file(path):
    """The results file a user means by ``path``: a run's output folder stands for its
    :data:`RESULTS_FILE`, anything else is the file itself (a :class:`~pathlib.Path`)."""
    from pathlib import Path

    path = Path(path)
    return path / RESULTS_FILE if path.is_dir() else path


_CODE = re.compile(r"^[A-Za-z0-9_\-]{1,8}\.[A-Za-z0-9_\-]{1,8}(\.[A-Za-z0-9]{1,2})?$")
_COMP = re.compile(r"^[A-Za-z0-9]{1,4}$")


def check_code(code: str) -> str:
    """Validate a ``"NET.STA"`` code (kept with its ``.``), or ``"NET.STA.LOC"`` when every
    location of a station is a station of its own (``all_locations``)."""
    if not isinstance(code, str) or not _CODE.match(code):
        raise ValueError(f"station code must look like 'NET.STA' or 'NET.STA.LOC', got {code!r}")
    return code


def check_component(comp: str) -> str:
    """Validate a component name such as ``"ZZ"`` or ``"RT"``."""
    if not isinstance(comp, str) or not _COMP.match(comp):
        raise ValueError(f"component must be 1-4 letters/digits such as 'ZZ', got {comp!r}")
    return comp


def pair_path(source: str, receiver: str, component: str) -> str:
    """HDF5 path of a pair's dataset: ``/pairs/<SRC>/<RCV>/<COMP>``."""
    return f"/pairs/{check_code(source)}/{check_code(receiver)}/{check_component(component)}"


def half_length(maxlag: float, sampling_rate: float) -> int:
    """Samples on each side of lag 0: ``round(maxlag * sampling_rate)``."""
    if maxlag < 0 or sampling_rate <= 0:
        raise ValueError("maxlag must be >= 0 and sampling_rate > 0")
    return int(round(float(maxlag) * float(sampling_rate)))


def lag_count(maxlag: float, sampling_rate: float) -> int:
    """Samples of a stack of lags ``-maxlag..+maxlag``: ``2 * half_length + 1``."""
    return 2 * half_length(maxlag, sampling_rate) + 1


def lag_axis(maxlag: float, sampling_rate: float) -> np.ndarray:
    """Lags in seconds, ``-maxlag..+maxlag`` in steps of ``1/sampling_rate``.

    ``n = 2 * round(maxlag * fs) + 1`` samples with lag 0 exactly at the
    centre: sample ``k`` has lag ``(k - n // 2) / fs`` (computed from
    integers, so a delta at +k samples sits at exactly +k/fs).

    Examples
    --------
    >>> lag_axis(0.2, 10.0).tolist()
    [-0.2, -0.1, 0.0, 0.1, 0.2]
    """
    h = half_length(maxlag, sampling_rate)
    return np.arange(-h, h + 1, dtype=np.float64) / float(sampling_rate)


def resolve_maxlag(lags_or_maxlag, sampling_rate: float) -> float:
    """Return maxlag (s) from a maxlag value or a full lag array.

    A lag array must be exactly :func:`lag_axis` of its own maxlag (to
    1e-9 s); anything else is refused rather than silently re-gridded.
    """
    arr = np.asarray(lags_or_maxlag, dtype=float)
    if arr.ndim == 0:
        return float(arr)
    if arr.ndim != 1 or arr.size % 2 != 1:
        raise ValueError("lags must be a 1-D array of odd length centred on 0")
    h = arr.size // 2
    maxlag = h / float(sampling_rate)
    if not np.allclose(arr, lag_axis(maxlag, sampling_rate), rtol=0, atol=1e-9):
        raise ValueError("lags do not follow -maxlag..+maxlag in steps of 1/sampling_rate")
    return maxlag


def geometry(src: dict | None, rcv: dict | None) -> dict:
    """distance_km, azimuth (source to receiver) and back_azimuth (receiver
    to source), degrees, on the WGS84 ellipsoid (ObsPy ``gps2dist_azimuth``);
    empty if either coordinate set is unknown."""
    if not src or not rcv:
        return {}
    d, az, baz = geometry_many([src["latitude"]], [src["longitude"]],
                               [rcv["latitude"]], [rcv["longitude"]])
    return {"distance_km": float(d[0]), "azimuth": float(az[0]),
            "back_azimuth": float(baz[0])}


WGS84_A = 6378137.0
WGS84_F = 1 / 298.257223563


def geometry_many(lat1, lon1, lat2, lon2):
    """Vectorised :func:`geometry`: ``(distance_km, azimuth, back_azimuth)`` arrays.

    Vincenty's inverse formula on WGS84, the same iteration as ObsPy's
    ``calc_vincenty_inverse`` (which ``gps2dist_azimuth`` uses without
    geographiclib), run on whole arrays: agrees with ObsPy to well under a
    millimetre and 1e-9 degrees. Rows that do not converge (nearly antipodal
    points) fall back to ObsPy one by one, so they get ObsPy's answer and
    warning. Coincident points give ``(0, 0, 0)`` as in ObsPy; NaN
    coordinates give NaN.

    Parameters
    ----------
    lat1, lon1, lat2, lon2 : array_like
        Degrees; point 1 is the source, point 2 the receiver.

    Examples
    --------
    >>> d, az, baz = geometry_many([0.0], [0.0], [0.0], [1.0])
    >>> round(float(d[0]), 3), float(az[0]), float(baz[0])
    (111.319, 90.0, 270.0)
    """
    a, f = WGS84_A, WGS84_F
    b = a * (1 - f)
    lat1, lon1, lat2, lon2 = (np.atleast_1d(np.asarray(x, dtype=np.float64))
                              for x in (lat1, lon1, lat2, lon2))
    lat1, lon1, lat2, lon2 = np.broadcast_arrays(lat1, lon1, lat2, lon2)
    if np.any(np.abs(lat1) > 90) or np.any(np.abs(lat2) > 90):
        raise ValueError("latitude must be within -90..90 degrees")
    # ObsPy normalises longitudes to -180..180 before differencing
    nl1 = np.where(lon1 > 180, (lon1 + 180) % 360 - 180, np.where(lon1 < -180, lon1 % 360, lon1))
    nl2 = np.where(lon2 > 180, (lon2 + 180) % 360 - 180, np.where(lon2 < -180, lon2 % 360, lon2))
    same = np.isclose(lat1, lat2, rtol=1e-9, atol=0) & np.isclose(nl1, nl2, rtol=1e-9, atol=0)
    u1 = np.arctan((1 - f) * np.tan(np.radians(lat1)))
    u2 = np.arctan((1 - f) * np.tan(np.radians(lat2)))
    su1, cu1, su2, cu2 = np.sin(u1), np.cos(u1), np.sin(u2), np.cos(u2)
    omega = np.radians(nl2) - np.radians(nl1)
    dlon = omega.copy()
    todo = ~same & np.isfinite(dlon) & np.isfinite(u1) & np.isfinite(u2)
    sin_s = cos_s = sigma = cos2sm = sqr_ca = np.zeros_like(dlon)
    with np.errstate(invalid="ignore", divide="ignore"):
        for _ in range(101):
            sqr_sin_s = (cu2 * np.sin(dlon)) ** 2 + (cu1 * su2 - su1 * cu2 * np.cos(dlon)) ** 2
            sin_s = np.sqrt(sqr_sin_s)
            cos_s = su1 * su2 + cu1 * cu2 * np.cos(dlon)
            sigma = np.arctan2(sin_s, cos_s)
            sin_a = cu1 * cu2 * np.sin(dlon) / sin_s
            sqr_ca = 1 - sin_a * sin_a
            equatorial = np.isclose(sqr_ca, 0, rtol=1e-9, atol=0)
            cos2sm = np.where(equatorial, 0.0,
                              cos_s - 2 * su1 * su2 / np.where(equatorial, 1.0, sqr_ca))
            c = (f / 16) * sqr_ca * (4 + f * (4 - 3 * sqr_ca))
            new = omega + (1 - c) * f * sin_a * (
                sigma + c * sin_s * (cos2sm + c * cos_s * (-1 + 2 * cos2sm ** 2)))
            moving = todo & (new != 0) & ~(np.abs((dlon - new) / new) <= 1e-9)
            dlon = np.where(todo, new, dlon)
            todo = moving
            if not todo.any():
                break
        u_sq = sqr_ca * (a * a - b * b) / (b * b)
        big_a = 1 + (u_sq / 16384) * (4096 + u_sq * (-768 + u_sq * (320 - 175 * u_sq)))
        big_b = (u_sq / 1024) * (256 + u_sq * (-128 + u_sq * (74 - 47 * u_sq)))
        dsig = big_b * sin_s * (cos2sm + (big_b / 4) * (
            cos_s * (-1 + 2 * cos2sm ** 2)
            - (big_b / 6) * cos2sm * (-3 + 4 * sin_s ** 2) * (-3 + 4 * cos2sm ** 2)))
        dist = b * big_a * (sigma - dsig)
        az = np.arctan2(cu2 * np.sin(dlon), cu1 * su2 - su1 * cu2 * np.cos(dlon))
        baz = np.arctan2(cu1 * np.sin(dlon), -su1 * cu2 + cu1 * su2 * np.cos(dlon)) + np.pi
    az = np.where(az < 0, az + 2 * np.pi, az)
    baz = np.where(baz < 0, baz + 2 * np.pi, np.where(baz > 2 * np.pi, baz - 2 * np.pi, baz))
    dist, az, baz = dist / 1000.0, np.degrees(az), np.degrees(baz)
    dist[same], az[same], baz[same] = 0.0, 0.0, 0.0
    bad = np.flatnonzero(todo | (~same & ~np.isfinite(dist)
                                 & np.isfinite(lat1 + lat2 + nl1 + nl2)))
    if bad.size:
        from obspy.geodetics import gps2dist_azimuth
        for i in bad:
            d, az[i], baz[i] = gps2dist_azimuth(lat1[i], lon1[i], lat2[i], lon2[i])
            dist[i] = d / 1000.0
    return dist, az, baz


def to_attr(value):
    """A metadata value as something h5py stores natively (JSON for the rest)."""
    if value is None:
        return "null"
    if isinstance(value, (bool, np.bool_)):
        return np.bool_(value)
    if isinstance(value, (int, float, str, np.integer, np.floating)):
        return value
    if hasattr(value, "isoformat") or type(value).__name__ == "UTCDateTime":
        return str(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "iuf" and value.ndim == 1:
        return value
    return json.dumps(value, default=str)


def from_attr(value):
    """Inverse of :func:`to_attr` for reading (numpy scalars to Python)."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value == "null":
        return None
    return value
