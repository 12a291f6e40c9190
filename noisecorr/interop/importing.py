"""``noisecorr import``: other tools' stacks into a noisecorr results file."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["import_results", "FORMATS"]

#: Import formats.
FORMATS = ("asdf", "sac", "npz")

_SUFFIX = {"asdf": (".h5",), "sac": (".sac",), "npz": (".npz",)}


def _files(inputs, fmt):
    paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            hits = sorted(q for q in p.rglob("*") if q.suffix.lower() in _SUFFIX[fmt])
            if fmt == "sac":
                sym = [q for q in hits if q.parent.name.endswith("_sym")]
                if sym:
                    log.warning("skipping %d symmetric (one-sided) SAC files under %s "
                                "(e.g. %s): only two-sided stacks can be imported",
                                len(sym), p, sym[0])
                hits = [q for q in hits if not q.parent.name.endswith("_sym")]
            found += hits
        elif p.exists():
            found.append(p)
        else:
            raise FileNotFoundError(f"no such file or folder: {p}")
    if not found:
        raise ValueError(f"no {fmt} files ({'/'.join(_SUFFIX[fmt])}) in {', '.join(map(str, paths))}")
    return found


def _records(files, fmt, data_type):
    if fmt == "asdf":
        from .asdf import read_asdf

        for f in files:
            yield from read_asdf(f, data_type)
    elif fmt == "sac":
        from .sac import read_sac

        for f in files:
            yield read_sac(f)
    else:
        from .npz import read_npz

        for f in files:
            z = read_npz(f)
            table = {str(c): (float(a), float(o), float(e)) for c, a, o, e in zip(
                z["station_code"], z["station_latitude"], z["station_longitude"],
                z["station_elevation"])}
            fs = float(z["sampling_rate"])
            h = len(z["lags"]) // 2
            for i, (s, r) in enumerate(zip(z["source"].astype(str), z["receiver"].astype(str))):
                yield dict(source=s, receiver=r, component=str(z["component"]),
                           sampling_rate=fs, maxlag=h / fs, stack=z["stacks"][i],
                           n_windows=int(z["n_windows"][i]),
                           distance_km=float(z["distance_km"][i]),
                           azimuth=float(z["azimuth"][i]),
                           back_azimuth=float(z["back_azimuth"][i]),
                           source_coordinates=table.get(s), receiver_coordinates=table.get(r))


def import_results(inputs, out, fmt: str, data_type: str | None = None,
                   params: dict | None = None) -> int:
    """Write the stacks found in ``inputs`` into a new results file ``out``.

    Parameters
    ----------
    inputs : path or list of paths
        Files or folders (searched recursively: ``*.h5`` for asdf, ``*.SAC`` for sac,
        ``*.npz`` for npz; symmetric SAC folders ``*_sym`` are skipped with a warning).
    out : path
        New results file.
    fmt : {"asdf", "sac", "npz"}
    data_type : str, optional
        ASDF only: which NoisePy stack to import (e.g. ``Allstack_pws``).
    params : dict, optional
        Stored as the results' ``params`` (default ``{"imported_from": fmt}`` and, for
        ASDF, the stack method).

    Returns
    -------
    int
        Stacks written. Station coordinates come from the headers; distance, azimuth and
        back-azimuth are the headers' values (computed from the coordinates where absent).

    Raises
    ------
    FileExistsError
        ``out`` exists.
    ValueError
        Bad input (the reader names the file and field), or the same pair and component
        twice (named).
    """
    from noisecorr.results.writer import ResultsWriter

    if fmt not in FORMATS:
        raise ValueError(f"unknown import format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; import into a new results file")
    records = list(_records(_files(inputs, fmt), fmt, data_type))
    stations, seen = {}, {}
    for rec in records:
        for prefix in ("source", "receiver"):
            xyz = rec[f"{prefix}_coordinates"]
            if xyz is not None:
                stations[rec[prefix]] = xyz
        key = (rec["source"], rec["receiver"], rec["component"])
        if key in seen:
            raise ValueError(f"{key[0]}_{key[1]} {key[2]} found twice ({seen[key]} and now "
                             f"again); import one of them")
        seen[key] = rec.get("data_type", fmt)
    if params is None:
        params = {"imported_from": fmt}
        types = {r.get("data_type") for r in records} - {None}
        if len(types) == 1:
            params["processing"] = {"stack_method": types.pop().split("_", 1)[1]}
    table = [dict(code=c, latitude=v[0], longitude=v[1], elevation=v[2])
             for c, v in sorted(stations.items())]
    with ResultsWriter(out, params, stations=table, resume=False) as w:
        for rec in records:
            meta = {"sampling_rate": rec["sampling_rate"], "n_windows": rec["n_windows"]}
            for k in ("distance_km", "azimuth", "back_azimuth"):
                if np.isfinite(rec[k]):
                    meta[k] = rec[k]
            w.write_pair(rec["source"], rec["receiver"], rec["component"], rec["maxlag"],
                         rec["stack"], meta)
    log.info("imported %d stacks from %s into %s", len(records), fmt, out)
    return len(records)
