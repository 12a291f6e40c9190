"""ASDF stacks in the layout NoisePy (0.9.93, ``noisepy.seis.stack`` and
``noisepy.seis.io.asdfstore.ASDFStackStore``) writes and reads.

Layout (looked up in NoisePy's source):

- one file per station pair and time span: ``DIR/SRC/RCV/<start>T<end>.h5``, ``SRC`` and
  ``RCV`` as ``NET.STA``, times as ``%Y_%m_%d_%H_%M_%S``
  (``asdfstore._filename_from_stations``; ``get_station_pairs`` parses the two folders);
- in each, auxiliary data of data type ``Allstack_<method>`` (``Allstack_linear``,
  ``Allstack_pws``, ``Allstack_robust``: ``stack.append_stacks``) and path = component
  (``ZZ``, ``EN``, ...; NoisePy's rotated ``ZZ`` is ``ZZ_R``), a 1-D float32 array on lags
  ``-maxlag..maxlag``;
- parameters (``noise_module.cc_parameters``, updated by the stacking step): ``dt`` (s),
  ``maxlag`` (s; NoisePy stores ``int(maxlag)``, we store the exact float, which its
  readers use the same way), ``dist`` (km, float32), ``azi``, ``baz`` (degrees, float32), ``lonS``,
  ``latS``, ``lonR``, ``latR`` (degrees, float32), ``ngood`` (windows stacked),
  ``cc_method``, ``time`` (POSIX start of the span), ``substack`` (False for a full stack),
  ``comp``. We add ``elS``, ``elR`` (station elevations, m) which NoisePy ignores.

NoisePy opens the files with ``pyasdf.ASDFDataSet(path, mode="r", mpi=False,
compression=None)`` and reads ``ds.auxiliary_data[name][component]`` ``.data[:]`` and
``.parameters`` (``ASDFStackStore.read``); :func:`read_asdf` does the same.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .select import one_stack, station_table

log = logging.getLogger(__name__)

__all__ = ["write_asdf", "read_asdf", "DATE_FORMAT", "stack_name"]

#: NoisePy's time format in file names (``noisepy.seis.io.constants.DATE_FORMAT``).
DATE_FORMAT = "%Y_%m_%d_%H_%M_%S"


def _pyasdf():
    try:
        import pyasdf
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError("ASDF needs pyasdf: pip install 'noisecorr[interop]'") from exc
    return pyasdf


def stack_name(params: dict) -> str:
    """NoisePy's data type of a stack made with our ``stack_method`` (default linear).

    >>> stack_name({"processing": {"stack_method": "pws"}})
    'Allstack_pws'
    """
    proc = params.get("processing") or params
    return f"Allstack_{proc.get('stack_method', 'linear')}"


def _span(res, sel, warned):
    from obspy import UTCDateTime

    meta = res.meta(sel.source, sel.receiver, sel.component)
    start = meta.get("starttime") or res.starttime
    end = meta.get("endtime") or res.endtime
    if start in (None, "null") or end in (None, "null"):
        if warned:
            return UTCDateTime(0.0), UTCDateTime(0.0)
        warned.append(True)
        log.warning("%s_%s %s: no start/end time in %s; the ASDF file is named after the "
                    "epoch (as every other pair without times)", sel.source, sel.receiver, sel.component, res.path)
        start = end = 0.0
    return UTCDateTime(start), UTCDateTime(end)


def write_asdf(res, selection, out_dir) -> list:
    """Write the selected stacks in NoisePy's layout (module docstring); returns the files.

    All components of a pair and span go into one file, as NoisePy does.
    """
    pyasdf = _pyasdf()
    out = Path(out_dir)
    table = station_table(res)
    name = stack_name(res.params)
    method = (res.params.get("processing") or res.params).get("cc_method", "xcorr")
    files, warned = {}, []
    for sel in selection:
        t0, t1 = _span(res, sel, warned)
        p = (out / sel.source / sel.receiver /
             f"{t0.strftime(DATE_FORMAT)}T{t1.strftime(DATE_FORMAT)}.h5")
        files.setdefault(p, []).append((sel, t0))
    for p, items in files.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.exists():
            os.remove(p)  # an export replaces, never appends to, an older export
        with pyasdf.ASDFDataSet(str(p), mode="a", mpi=False, compression=None) as ds:
            for sel, t0 in items:
                lags, data = one_stack(res, sel)
                src = table.get(sel.source, (np.nan, np.nan, np.nan))
                rcv = table.get(sel.receiver, (np.nan, np.nan, np.nan))
                params = {"dt": 1.0 / sel.sampling_rate, "maxlag": float(-lags[0]),
                          "dist": np.float32(sel.distance_km), "azi": np.float32(sel.azimuth),
                          "baz": np.float32(sel.back_azimuth),
                          "lonS": np.float32(src[1]), "latS": np.float32(src[0]),
                          "lonR": np.float32(rcv[1]), "latR": np.float32(rcv[0]),
                          "elS": float(src[2]), "elR": float(rcv[2]),
                          "ngood": int(sel.n_windows), "cc_method": str(method),
                          "time": float(t0.timestamp), "substack": False,
                          "comp": sel.component}
                ds.add_auxiliary_data(data=np.ascontiguousarray(data, dtype=np.float32),
                                      data_type=name, path=sel.component, parameters=params)
    log.info("wrote %d ASDF files (%s) under %s", len(files), name, out)
    return sorted(files)


def read_asdf(path, data_type: str | None = None) -> list:
    """The stacks of one NoisePy stack file, read as ``ASDFStackStore.read`` does.

    Parameters
    ----------
    path : path
        ``.../SRC/RCV/<span>.h5``: the two folders name the pair.
    data_type : str, optional
        E.g. ``Allstack_linear``; default: the only ``Allstack_*`` type in the file,
        ``Allstack_linear`` if there are several.

    Returns
    -------
    list of dict
        ``source``, ``receiver``, ``component``, ``sampling_rate``, ``maxlag`` (s),
        ``stack`` (float32), ``n_windows``, ``distance_km``, ``azimuth``, ``back_azimuth``,
        ``source_coordinates``, ``receiver_coordinates`` ``(lat, lon, elevation)``,
        ``starttime`` (POSIX s), ``data_type``.

    Raises
    ------
    ValueError
        No stack type in the file, or a parameter NoisePy always writes is missing
        (named with the file).
    """
    pyasdf = _pyasdf()
    p = Path(path)
    src_code, rcv_code = p.parent.parent.name, p.parent.name
    out = []
    with pyasdf.ASDFDataSet(str(p), mode="r", mpi=False, compression=None) as ds:
        names = ds.auxiliary_data.list()
        stacks = [n for n in names if n.startswith("Allstack")]
        if data_type is None:
            if not stacks:
                raise ValueError(f"{p}: no Allstack_* auxiliary data (has {names})")
            data_type = stacks[0] if len(stacks) == 1 else (
                "Allstack_linear" if "Allstack_linear" in stacks else stacks[0])
            if len(stacks) > 1:
                log.info("%s: has %s; importing %s", p, stacks, data_type)
        if data_type not in names:
            raise ValueError(f"{p}: no auxiliary data {data_type!r} (has {names})")
        comps = ds.auxiliary_data[data_type].list()
        if "ZZ_R" in comps and "ZZ" in comps:
            raise ValueError(f"{p}: {data_type} has both ZZ and the rotated ZZ_R; import "
                             f"one of them (data_type) from a copy without the other")
        for comp in comps:
            stream = ds.auxiliary_data[data_type][comp]
            par = dict(stream.parameters)
            for key in ("dt", "maxlag"):
                if key not in par:
                    raise ValueError(f"{p}: {data_type}/{comp} lacks the parameter {key!r}")
            data = np.asarray(stream.data[:], dtype=np.float32)
            if data.ndim != 1:
                raise ValueError(f"{p}: {data_type}/{comp} has shape {data.shape}, "
                                 f"expected one stack (1-D)")
            dt = float(par["dt"])

            def coords(la, lo, el):
                if la not in par or lo not in par or not np.isfinite(float(par[la])):
                    return None
                return (float(par[la]), float(par[lo]), float(par.get(el, 0.0)))

            out.append(dict(
                source=src_code, receiver=rcv_code,
                component="ZZ" if comp == "ZZ_R" else comp, sampling_rate=1.0 / dt,
                maxlag=(len(data) // 2) * dt, stack=data,
                n_windows=int(par.get("ngood", -1)),
                distance_km=float(par.get("dist", np.nan)),
                azimuth=float(par.get("azi", np.nan)),
                back_azimuth=float(par.get("baz", np.nan)),
                source_coordinates=coords("latS", "lonS", "elS"),
                receiver_coordinates=coords("latR", "lonR", "elR"),
                starttime=float(par["time"]) if "time" in par else None,
                data_type=data_type))
    return out
