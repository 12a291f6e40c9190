"""Which stacks of a results file an export writes: pairs, components, distance range."""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Selection", "select", "station_table", "file_path"]


@dataclasses.dataclass(frozen=True)
class Selection:
    """One selected stack and its metadata from the results' index.

    Attributes
    ----------
    source, receiver : str
        ``NET.STA`` codes; positive lag = wave from source to receiver.
    component : str
    index : int
        Position of the stored pair in ``Results.pairs(stored component)``.
    reversed : bool
        Only the reverse pair is stored (``receiver -> source``, component letters
        swapped): the stack is that one reversed in time, as
        :meth:`noisecorr.results.reader.Results.stack` gives it.
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
    reversed: bool = False


def select(res, pairs=None, components=None, min_distance=None, max_distance=None) -> list:
    """The stacks of ``res`` to export, sorted by component then pair.

    A requested pair that is stored only the other way round (``receiver -> source``,
    component ``component[::-1]``) is selected as requested: its stack is the stored one
    reversed in time (:meth:`noisecorr.results.reader.Results.stack`), azimuth and back
    azimuth swap.

    Parameters
    ----------
    res : noisecorr.results.reader.Results
    pairs : iterable of (source, receiver) or "SRC_RCV" / "SRC-RCV" text, optional
        Default every stored pair, in its stored order.
    components : iterable of str, optional
    min_distance, max_distance : float, optional
        km, inclusive.

    Raises
    ------
    KeyError
        A requested pair or component is not in the file (named in the message).
    """
    have = res.components()
    if components:
        comps = list(components)
    elif pairs is None:
        comps = have
    else:  # a reversed pair's components are named the other way round (ZR stored: RZ)
        comps = sorted(set(have) | {c[::-1] for c in have})
    if pairs is None:
        missing = [c for c in comps if c not in have]
    else:  # a component may be there only as its reverse (ZR for a reversed RZ)
        missing = [c for c in comps if c not in have and c[::-1] not in have]
    if missing:
        raise KeyError(f"component(s) {', '.join(missing)} not in {res.path} "
                       f"(it has {', '.join(have)})")
    wanted = None if pairs is None else {parse_pair(p) for p in pairs}
    found, out = set(), []
    names = ("distance_km", "azimuth", "back_azimuth", "n_windows", "sampling_rate")

    def row(s, r, comp, i, cols, rev):
        d = float(cols["distance_km"][i])
        if min_distance is not None and not d >= min_distance:
            return
        if max_distance is not None and not d <= max_distance:
            return
        az, baz = float(cols["azimuth"][i]), float(cols["back_azimuth"][i])
        if rev:
            az, baz = baz, az
        out.append(Selection(s, r, comp, i, d, az, baz, int(cols["n_windows"][i]),
                             float(cols["sampling_rate"][i]), rev))

    for comp in comps:
        stored = []
        if comp in have:
            where = {p: i for i, p in enumerate(res.pairs(comp))}
            cols = {k: res.column(k, comp) for k in names}
            stored = [((s, r), i) for (s, r), i in where.items()
                      if wanted is None or (s, r) in wanted]
            for (s, r), i in stored:
                found.add((s, r))
                row(s, r, comp, i, cols, False)
        if wanted is None or comp[::-1] not in have:
            continue
        rev_where = {p: i for i, p in enumerate(res.pairs(comp[::-1]))}
        rev_cols = None
        direct = {p for p, _ in stored}
        for s, r in sorted(wanted - direct):
            i = rev_where.get((r, s))
            if i is None:
                continue
            if rev_cols is None:
                rev_cols = {k: res.column(k, comp[::-1]) for k in names}
            found.add((s, r))
            row(s, r, comp, i, rev_cols, True)
    out.sort(key=lambda x: (comps.index(x.component), x.source, x.receiver))
    if wanted is not None and wanted - found:
        raise KeyError(f"pair(s) {', '.join(f'{s}_{r}' for s, r in sorted(wanted - found))} "
                       f"not in {res.path} for component(s) {', '.join(comps)} "
                       f"(neither way round)")
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


def file_path(out_dir, source: str, receiver: str, component: str, ext: str,
              layout: str = "tree"):
    """Where an export writes one stack: ``out_dir/COMP/SRC_RCV.EXT`` (``layout="tree"``,
    the folder is created) or ``out_dir/SRC_RCV_COMP.EXT`` (``"flat"``)."""
    from pathlib import Path

    out = Path(out_dir)
    if layout == "tree":
        d = out / component
        name = f"{source}_{receiver}.{ext}"
    elif layout == "flat":
        d, name = out, f"{source}_{receiver}_{component}.{ext}"
    else:
        raise ValueError(f"unknown export layout {layout!r}; use 'tree' or 'flat'")
    d.mkdir(parents=True, exist_ok=True)
    return d / name


def one_stack(res, sel: Selection) -> tuple:
    """``(lags, stack)`` of a selection as 1-D float32 (the full stack of sub-stacks; a
    reversed selection reversed in time by the reader)."""
    lags, data = res.stack(sel.source, sel.receiver, sel.component)
    return lags, np.ascontiguousarray(data, dtype=np.float32)
