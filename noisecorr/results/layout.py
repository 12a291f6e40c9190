"""Names, lag axis and pair geometry shared by the results writer and reader.

See :mod:`noisecorr.results` for the file layout.
"""

from __future__ import annotations

import json
import re

import numpy as np

FORMAT = "noisecorr.results"
FORMAT_VERSION = 1

_CODE = re.compile(r"^[A-Za-z0-9_\-]{1,8}\.[A-Za-z0-9_\-]{1,8}$")
_COMP = re.compile(r"^[A-Za-z0-9]{1,4}$")


def check_code(code: str) -> str:
    """Validate a ``"NET.STA"`` code (kept with its ``.``)."""
    if not isinstance(code, str) or not _CODE.match(code):
        raise ValueError(f"station code must look like 'NET.STA', got {code!r}")
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
    from obspy.geodetics import gps2dist_azimuth

    d, az, baz = gps2dist_azimuth(src["latitude"], src["longitude"],
                                  rcv["latitude"], rcv["longitude"])
    return {"distance_km": d / 1000.0, "azimuth": az, "back_azimuth": baz}


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
