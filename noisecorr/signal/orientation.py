"""Sensor orientation: rotate a sensor's channels (1/2/Z, misaligned E/N, ...) to E, N, Z.

Conventions (SEED / StationXML)
-------------------------------
A channel's ``azimuth`` is in degrees clockwise from north, its ``dip`` in degrees down
from the horizontal: a channel records the ground motion ``u`` projected on its unit
vector, which in (E, N, Up) coordinates is

    ``v = (cos(dip) sin(azimuth), cos(dip) cos(azimuth), -sin(dip))``

so E is (azimuth 90, dip 0), N is (0, 0), and the usual vertical Z (positive up) is
dip -90; a vertical channel with dip +90 points down and records ``-u_Z``. The output
of :func:`rotate_to_enz` is ``(u_E, u_N, u_Z)`` with Z positive up, obtained by solving
``d = V u`` for the three channels' vectors ``V`` (the same as ObsPy's
``rotate2zne``, which returns Z, N, E in that order). Two horizontal channels (dip 0)
alone give E and N from the 2 x 2 block; a vertical channel alone gives Z from its
sign. Non-orthogonal channels are handled exactly; (nearly) parallel ones are refused.

Examples
--------
>>> import numpy as np
>>> d1, d2 = np.array([np.cos(np.radians(30))]), np.array([-np.sin(np.radians(30))])
>>> e, n = horizontals_to_en(d1, d2, 30.0, 120.0)   # a northward motion seen by 1 at 30, 2 at 120
>>> abs(round(float(e[0]), 12)), round(float(n[0]), 12)
(0.0, 1.0)
"""

from __future__ import annotations

import logging

import numpy as np

from noisecorr.signal.preprocess import ProcessedTrace

__all__ = ["OrientationError", "NOMINAL", "HORIZONTAL_LETTERS", "channel_vector", "rotate_to_enz",
           "horizontals_to_en", "vertical_to_z", "is_nominal", "inventory_orientation", "orient_sensor"]

logger = logging.getLogger(__name__)

#: Orientation by the SEED naming convention: ``letter -> (azimuth, dip)`` in degrees.
NOMINAL = {"E": (90.0, 0.0), "N": (0.0, 0.0), "Z": (0.0, -90.0)}
#: Orientation letters of horizontal channels (SEED: E/N geographic, 1/2 any azimuth).
HORIZONTAL_LETTERS = ("E", "N", "1", "2")
#: Degrees within which an orientation counts as its nominal value (no rotation).
NOMINAL_TOLERANCE = 1e-6
#: Smallest ``|det|`` of the channels' direction matrix accepted (1: orthogonal).
MIN_DETERMINANT = 0.1


class OrientationError(ValueError):
    """The orientation of a channel is unknown or its channels cannot be rotated."""


def channel_vector(azimuth: float, dip: float) -> np.ndarray:
    """Unit vector (E, N, Up) a channel of ``azimuth`` and ``dip`` (degrees) records along."""
    a, d = np.radians(float(azimuth)), np.radians(float(dip))
    return np.array([np.cos(d) * np.sin(a), np.cos(d) * np.cos(a), -np.sin(d)])


def _solve(matrix: np.ndarray, data: np.ndarray, what: str) -> np.ndarray:
    det = float(np.linalg.det(matrix))
    if abs(det) < MIN_DETERMINANT:
        raise OrientationError(f"{what}: the channel directions are (nearly) parallel "
                               f"(|det| = {abs(det):.3g} < {MIN_DETERMINANT}); cannot rotate")
    return np.linalg.solve(matrix, np.asarray(data, dtype=np.float64))


def rotate_to_enz(data, azimuths, dips, what: str = "channels") -> np.ndarray:
    """Ground motion (E, N, Z up) from three channels of any orientation.

    Parameters
    ----------
    data : array_like, shape (3, npts)
        The three channels' samples (any order).
    azimuths, dips : sequence of 3 float
        Degrees, SEED conventions (see the module notes).
    what : str
        Named in error messages (e.g. the sensor).

    Returns
    -------
    ndarray, float64, shape (3, npts)
        ``u_E, u_N, u_Z`` (Z positive up).

    Raises
    ------
    OrientationError
        If the three directions are (nearly) coplanar.
    """
    v = np.array([channel_vector(a, d) for a, d in zip(azimuths, dips)])
    x = np.asarray(data, dtype=np.float64)
    if v.shape != (3, 3) or x.shape[0] != 3:
        raise ValueError(f"{what}: need three channels with three azimuths and dips")
    return _solve(v, x, what)


def horizontals_to_en(d1, d2, azimuth1: float, azimuth2: float, what: str = "horizontals"):
    """E and N from two horizontal channels (dip 0) of azimuths ``azimuth1``, ``azimuth2``.

    ``d_k = sin(az_k) u_E + cos(az_k) u_N`` is solved for ``(u_E, u_N)``; returns two
    float64 arrays. Orthogonal channels with ``azimuth2 = azimuth1 + 90`` give the usual
    rotation ``E = d1 sin(az1) + d2 cos(az1)``, ``N = d1 cos(az1) - d2 sin(az1)``.
    """
    a1, a2 = np.radians(float(azimuth1)), np.radians(float(azimuth2))
    m = np.array([[np.sin(a1), np.cos(a1)], [np.sin(a2), np.cos(a2)]])
    e, n = _solve(m, np.stack([np.asarray(d1, dtype=np.float64), np.asarray(d2, dtype=np.float64)]), what)
    return e, n


def vertical_to_z(data, dip: float, what: str = "vertical") -> np.ndarray:
    """``u_Z`` (up) from a vertical channel of ``dip`` -90 (up: unchanged) or +90 (down: sign flipped)."""
    s = -np.sin(np.radians(float(dip)))
    if abs(s) < 1.0 - 1e-6:
        raise OrientationError(f"{what}: dip {dip} degrees is not vertical (-90 or 90); the other two "
                               "channels are needed to rotate it")
    return np.asarray(data, dtype=np.float64) * np.sign(s)


def is_nominal(letter: str, azimuth: float, dip: float) -> bool:
    """True if an E/N/Z channel has its conventional orientation (:data:`NOMINAL`): no rotation needed."""
    if letter not in NOMINAL:
        return False
    az0, dip0 = NOMINAL[letter]
    if letter == "Z":
        return abs(dip - dip0) < NOMINAL_TOLERANCE
    daz = (azimuth - az0 + 180.0) % 360.0 - 180.0
    return abs(daz) < NOMINAL_TOLERANCE and abs(dip - dip0) < NOMINAL_TOLERANCE


def inventory_orientation(inventory, seed_id: str, time) -> tuple[float | None, float | None] | None:
    """``(azimuth, dip)`` of ``seed_id`` at ``time`` (POSIX s or UTCDateTime) in ``inventory``.

    Either may be None where the StationXML leaves it out; None when the inventory is None
    or does not hold the channel at that time.
    """
    if inventory is None:
        return None
    from obspy import UTCDateTime

    try:
        o = inventory.get_orientation(seed_id, UTCDateTime(time))
    except Exception as err:  # ObsPy raises a bare Exception when no channel matches
        logger.debug("no orientation for %s: %s", seed_id, err)
        return None
    az, dip = o.get("azimuth"), o.get("dip")
    return (None if az is None else float(az), None if dip is None else float(dip))


def _with_defaults(seed_id: str, orientation):
    """Azimuth and dip with the SEED-name defaults where unambiguous; raises for unknown azimuths."""
    letter = seed_id[-1].upper()
    az, dip = orientation if orientation is not None else (None, None)
    if letter in NOMINAL:
        az0, dip0 = NOMINAL[letter]
        if letter != "Z" and az is None:
            logger.warning("%s: no azimuth in the StationXML; using %g degrees, the azimuth its "
                           "SEED channel name implies", seed_id, az0)
        return (az0 if az is None else az), (dip0 if dip is None else dip)
    if az is None:
        where = "the channel is not in the StationXML" if orientation is None else "the StationXML gives no azimuth"
        raise OrientationError(f"{seed_id}: {where}; its orientation is unknown")
    return az, (0.0 if dip is None else dip)


def _trace(seed_id, like: ProcessedTrace, data, mask) -> ProcessedTrace:
    return ProcessedTrace(seed_id, like.starttime, like.sampling_rate, np.asarray(data, dtype=np.float32),
                          np.asarray(mask, dtype=bool))


def orient_sensor(traces, orientations) -> tuple[list[ProcessedTrace], list[tuple[str, str]]]:
    """Rotate one sensor's channels of one chunk to E, N, Z (Z up).

    Parameters
    ----------
    traces : sequence of ProcessedTrace
        Channels of one sensor (``NET.STA.LOC`` and band/instrument code, e.g. ``HH1``,
        ``HH2``, ``HHZ``), on the same sample grid.
    orientations : dict
        ``seed_id -> (azimuth, dip)`` (degrees, either may be None) or None (channel not
        in the inventory), e.g. from :func:`inventory_orientation`.

    Returns
    -------
    (traces, problems)
        ``traces``: the E/N/Z channels that could be obtained, renamed ``...E``,
        ``...N``, ``...Z`` (the data are unchanged, not copied, where a channel already
        has its conventional orientation). ``problems``: ``[(seed_id, reason)]`` for every
        input channel left out, naming why (unknown azimuth: the sensor's horizontals are
        left out, not guessed; a horizontal without its partner; channels that cannot be
        rotated). A gap in any channel used for a rotated channel is a gap in it.

    Notes
    -----
    E/N/Z channels without azimuth or dip take the orientation their SEED name implies
    (with a warning for a missing horizontal azimuth); 1/2 channels without an azimuth
    cannot be used. All channels already at their nominal orientation pass unchanged; if
    every channel is horizontal (dip 0) or vertical (dip +-90) the horizontals are rotated
    by :func:`horizontals_to_en` and the vertical by :func:`vertical_to_z`, otherwise the
    three channels are needed by :func:`rotate_to_enz`.
    """
    traces = list(traces)
    if not traces:
        return [], []
    sensor = traces[0].seed_id[:-1]
    by_letter, problems = {}, []
    for tr in traces:
        letter = tr.seed_id[-1].upper()
        if tr.seed_id[:-1] != sensor:
            raise ValueError(f"orient_sensor: {tr.seed_id} is not a channel of {sensor}?")
        if letter in by_letter:
            raise ValueError(f"orient_sensor: {sensor}: two channels with orientation letter {letter}")
        by_letter[letter] = tr
    ref = traces[0]
    for tr in traces[1:]:
        if (abs(tr.starttime - ref.starttime) > 0.01 / ref.sampling_rate or tr.npts != ref.npts
                or tr.sampling_rate != ref.sampling_rate):
            raise OrientationError(f"{sensor}: channels {ref.seed_id} and {tr.seed_id} are not on one "
                                   "sample grid; cannot rotate")
    if "E" in by_letter and "N" in by_letter:
        for c in [c for c in by_letter if c in "12"]:
            problems.append((by_letter.pop(c).seed_id, f"{sensor} has E and N channels, which are used"))
    known, unknown = {}, {}
    for letter, tr in by_letter.items():
        try:
            known[letter] = _with_defaults(tr.seed_id, orientations.get(tr.seed_id))
        except OrientationError as err:
            unknown[letter] = str(err)
    horizontal = [c for c in by_letter if c not in "Z3"]
    if any(c in unknown for c in horizontal):
        why = "; ".join(unknown[c] for c in horizontal if c in unknown)
        for c in horizontal:
            problems.append((by_letter[c].seed_id, f"{why}: the horizontal channels of {sensor} are skipped"))
        for c in horizontal:
            by_letter.pop(c)
            known.pop(c, None)
            unknown.pop(c, None)
        horizontal = []
    for c, why in unknown.items():  # a "3" channel without orientation
        problems.append((by_letter.pop(c).seed_id, why))
        known.pop(c, None)
    if set(by_letter) - {"E", "N", "Z"} == set() and all(is_nominal(c, *known[c]) for c in by_letter):
        out = [_trace(sensor + c, by_letter[c], by_letter[c].data, by_letter[c].gap_mask) for c in by_letter]
        return _ordered(out), problems
    flat = {c: abs(known[c][1]) < 1e-6 for c in by_letter}
    vertical = {c: abs(abs(known[c][1]) - 90.0) < 1e-6 for c in by_letter}
    out = []
    if all(flat[c] or vertical[c] for c in by_letter) and sum(vertical.values()) <= 1:
        hz = [c for c in by_letter if flat[c]]
        if len(hz) == 2:
            (c1, c2) = hz
            e, n = horizontals_to_en(by_letter[c1].data, by_letter[c2].data, known[c1][0], known[c2][0],
                                     what=f"{sensor}{c1}/{c2}")
            mask = by_letter[c1].gap_mask | by_letter[c2].gap_mask
            out += [_trace(sensor + "E", by_letter[c1], e, mask), _trace(sensor + "N", by_letter[c1], n, mask)]
        elif len(hz) == 1:
            problems.append((by_letter[hz[0]].seed_id, f"its horizontal partner is missing: cannot rotate "
                             f"{by_letter[hz[0]].seed_id} (azimuth {known[hz[0]][0]:g}) to E and N"))
        elif len(hz) > 2:
            raise OrientationError(f"{sensor}: more than two horizontal channels {hz}")
        for c in by_letter:
            if vertical[c]:
                z = vertical_to_z(by_letter[c].data, known[c][1], what=by_letter[c].seed_id)
                out.append(_trace(sensor + "Z", by_letter[c], z, by_letter[c].gap_mask))
        return _ordered(out), problems
    if len(by_letter) != 3:
        for c in by_letter:
            problems.append((by_letter[c].seed_id, f"{sensor}: tilted channels (dips "
                             f"{ {by_letter[k].seed_id: known[k][1] for k in by_letter} }) need all three "
                             "channels to rotate; the sensor is skipped"))
        return [], problems
    letters = sorted(by_letter)
    enz = rotate_to_enz([by_letter[c].data for c in letters], [known[c][0] for c in letters],
                        [known[c][1] for c in letters], what=sensor)
    mask = np.logical_or.reduce([by_letter[c].gap_mask for c in letters])
    ref = by_letter[letters[0]]
    return [_trace(sensor + c, ref, enz[k], mask) for k, c in enumerate("ENZ")], problems


def _ordered(traces):
    order = {c: k for k, c in enumerate("ENZ")}
    return sorted(traces, key=lambda t: order[t.seed_id[-1]])
