"""Which stacks of a results file an export writes: pairs, components, distance range."""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Selection", "select", "station_table"]


@dataclasses.dataclass(frozen=True)
class Selection:
    """One selected stack and its metadata from the results' index.

    Attributes
    ----------
    source, receiver : str
        ``NET.STA`` codes; positive lag = wave from source to receiver.
    component : str
    index : int
        Position of the pair in ``Results.pairs(component)``.
    distance_km, azimuth, back_azimuth : float
        From the results (NaN if unknown); azimuth from source to receiver, degrees
        clockwise from north.
    n_windows : int
        Windows stacked (-1 if unknown).
    sampling_rate : float
        Hz.
    """

    source: str
    receiver: str
    component: str
    index: int
    distance_km: float
    azimuth: float
    back_azimuth: float
    n_windows: int
    sampling_rate: float


def select(res, pairs=None, components=None, min_distance=None, max_distance=None) -> list:
    """The stacks of ``res`` to export, sorted by component then pair.

    Parameters
    ----------
    res : noisecorr.results.reader.Results
    pairs : iterable of (source, receiver) or "SRC_RCV" / "SRC-RCV" text, optional
    components : iterable of str, optional
    min_distance, max_distance : float, optional
        km, inclusive.

    Raises
    ------
    KeyError
        A requested pair or component is not in the file (named in the message).
    """
    have = res.components()
    comps = list(components) if components else have
    missing = [c for c in comps if c not in have]
    if missing:
        raise KeyError(f"component(s) {', '.join(missing)} not in {res.path} "
                       f"(it has {', '.join(have)})")
    wanted = None if pairs is None else {parse_pair(p) for p in pairs}
    found, out = set(), []
    for comp in comps:
        plist = res.pairs(comp)
        cols = {k: res.column(k, comp) for k in
                ("distance_km", "azimuth", "back_azimuth", "n_windows", "sampling_rate")}
        for i, (s, r) in enumerate(plist):
            if wanted is not None and (s, r) not in wanted:
                continue
            found.add((s, r))
            d = float(cols["distance_km"][i])
            if min_distance is not None and not d >= min_distance:
                continue
            if max_distance is not None and not d <= max_distance:
                continue
            out.append(Selection(s, r, comp, i, d, float(cols["azimuth"][i]),
                                 float(cols["back_azimuth"][i]), int(cols["n_windows"][i]),
                                 float(cols["sampling_rate"][i])))
    if wanted is not None and wanted - found:
        raise KeyError(f"pair(s) {', '.join(f'{s}_{r}' for s, r in sorted(wanted - found))} "
                       f"not in {res.path} for component(s) {', '.join(comps)}")
    return out


def parse_pair(p):
    """``(source, receiver)`` from a tuple or ``"SRC_RCV"`` text.

    >>> parse_pair("XS.A_XS.B"), parse_pair(("XS.A", "XS.B"))
    (('XS.A', 'XS.B'), ('XS.A', 'XS.B'))
    """
    if isinstance(p, str):
        parts = p.split("_")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"pair {p!r}: write it as SOURCE_RECEIVER, e.g. XS.A_XS.B")
        return parts[0], parts[1]
    s, r = p
    return str(s), str(r)


def station_table(res) -> dict:
    """``{code: (latitude, longitude, elevation)}`` (degrees, degrees, metres)."""
    return {st["code"]: (float(st["latitude"]), float(st["longitude"]),
                         float(st["elevation"])) for st in res.stations()}


def one_stack(res, sel: Selection) -> tuple:
    """``(lags, stack)`` of a selection as 1-D float32 (the full stack of sub-stacks)."""
    lags, data = res.stack(sel.source, sel.receiver, sel.component)
    return lags, np.ascontiguousarray(data, dtype=np.float32)
