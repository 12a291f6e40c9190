"""SAC export and import of stacks (the layout FTAN and tomography codes read).

One file per pair and component, ``COMP/SRC_RCV.SAC``, with (SAC header names):

==================  ================================================================
``delta``           1 / sampling rate, s
``b``               ``-maxlag``, s (two-sided); ``0`` for the symmetric component
``npts``            ``2 h + 1`` samples (``h + 1`` for the symmetric component)
``stla/stlo/stel``  receiver latitude, longitude (degrees), elevation (m)
``kstnm/knetwk``    receiver station and network codes (``khole``: its location, if any)
``evla/evlo/evel``  source ("event") latitude, longitude, elevation
``kevnm``           source code ``NET.STA`` (or ``NET.STA.LOC``; never cut: a code
                    longer than 16 characters is refused, :func:`code_headers`)
``dist``            inter-station distance, km (the results' WGS84 value)
``az/baz``          azimuth source to receiver / receiver to source, degrees
``gcarc``           great-circle distance, degrees (ObsPy ``locations2degrees``)
``user0``           windows stacked
``kcmpnm``          component (e.g. ``ZZ``; ``ZZ_sym`` for the symmetric component)
==================  ================================================================

``lcalda`` is false, so SAC keeps these values. Positive lag: the wave travels from the
source to the receiver. The symmetric component (``--symmetric``) is the mean of the causal
side and the time-reversed acausal side (Bensen et al. 2007, GJI 169, section 4.1), written
as ``COMP_sym/SRC_RCV.SAC`` on ``t = 0..maxlag``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .select import file_path, one_stack, station_table

log = logging.getLogger(__name__)

__all__ = ["write_sac", "read_sac", "sac_header", "code_headers"]


def _geometry(table, sel):
    """Coordinates of both stations and gcarc (NaN if a station has no coordinates)."""
    from obspy.geodetics import locations2degrees

    src, rcv = table.get(sel.source), table.get(sel.receiver)
    gcarc = (float(locations2degrees(src[0], src[1], rcv[0], rcv[1]))
             if src is not None and rcv is not None else np.nan)
    return src, rcv, gcarc


#: SAC's character header lengths (``kevnm`` has 16 characters, the others 8).
CODE_FIELDS = {"kevnm": 16, "knetwk": 8, "kstnm": 8, "khole": 8}


def code_headers(source: str, receiver: str) -> dict:
    """The SAC character headers of a pair: ``kevnm`` = the source code (``NET.STA`` or
    ``NET.STA.LOC``), ``knetwk``/``kstnm``/``khole`` = the receiver's network, station
    and location (``khole`` only if the code has one).

    SEED codes always fit (network 2, station 5, location 2 characters: at most 11 in
    ``kevnm``); a longer code is refused rather than cut, since a cut source would be
    read back as another station.

    Raises
    ------
    ValueError
        A code does not fit its header (the message names the pair, the field and its
        length).

    >>> code_headers("XS.A.00", "XS.B")
    {'kevnm': 'XS.A.00', 'knetwk': 'XS', 'kstnm': 'B'}
    """
    parts = receiver.split(".")
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise ValueError(f"pair {source}_{receiver}: receiver code {receiver!r} is not "
                         f"NET.STA or NET.STA.LOC")
    hdr = {"kevnm": source, "knetwk": parts[0], "kstnm": parts[1]}
    if len(parts) == 3 and parts[2]:
        hdr["khole"] = parts[2]
    for field, value in hdr.items():
        if len(value) > CODE_FIELDS[field]:
            raise ValueError(f"pair {source}_{receiver}: {value!r} has {len(value)} characters, "
                             f"SAC's {field} holds {CODE_FIELDS[field]}; it would be cut and "
                             f"read back as another station (rename the station)")
    return hdr


def sac_header(sel, table) -> dict:
    """The header of one selected stack (:class:`noisecorr.interop.select.Selection`),
    without ``b`` and ``kcmpnm`` (they differ between the two-sided and the symmetric
    version); ``table`` is :func:`noisecorr.interop.select.station_table`."""
    src, rcv, gcarc = _geometry(table, sel)
    hdr = dict(delta=1.0 / sel.sampling_rate, lcalda=False, user0=float(sel.n_windows),
               **code_headers(sel.source, sel.receiver))
    if rcv is not None:
        hdr.update(stla=rcv[0], stlo=rcv[1], stel=rcv[2])
    if src is not None:
        hdr.update(evla=src[0], evlo=src[1], evel=src[2])
    for key, value in (("dist", sel.distance_km), ("az", sel.azimuth),
                       ("baz", sel.back_azimuth), ("gcarc", gcarc)):
        if np.isfinite(value):
            hdr[key] = float(value)
    return hdr


def write_sac(res, selection, out_dir, symmetric: bool = False, layout: str = "tree") -> list:
    """Write each selected stack as ``out_dir/COMP/SRC_RCV.SAC`` (and
    ``COMP_sym/SRC_RCV.SAC`` if ``symmetric``); returns the paths.

    ``layout="flat"`` writes ``out_dir/SRC_RCV_COMP.SAC`` instead (the names of
    :meth:`noisecorr.results.reader.Results.export_sac`). See the module docstring for
    the header.

    Raises
    ------
    ValueError
        A station code does not fit its SAC header (:func:`code_headers`); checked for
        every selected stack before any file is written.
    """
    from obspy.io.sac import SACTrace

    from noisecorr.signal.symmetric import symmetric as sym

    out = Path(out_dir)
    table = station_table(res)
    headers = [sac_header(sel, table) for sel in selection]  # refuse before writing
    paths = []
    for sel, hdr in zip(selection, headers):
        lags, data = one_stack(res, sel)
        versions = [(sel.component, float(lags[0]), data)]
        if symmetric:
            versions.append((f"{sel.component}_sym", 0.0, sym(data)[0].astype(np.float32)))
        for comp, b, values in versions:
            p = file_path(out, sel.source, sel.receiver, comp, "SAC", layout)
            SACTrace(data=np.ascontiguousarray(values), b=b, kcmpnm=comp, **hdr).write(str(p))
            paths.append(p)
    log.info("wrote %d SAC files under %s", len(paths), out)
    return paths


def read_sac(path) -> dict:
    """One two-sided SAC stack written by :func:`write_sac` (or another tool with the same
    header) as a dict: ``source``, ``receiver``, ``component``, ``sampling_rate``,
    ``maxlag`` (s), ``stack`` (float32), ``n_windows``, ``distance_km``, ``azimuth``,
    ``back_azimuth`` and the station coordinates ``source_coordinates`` /
    ``receiver_coordinates`` ``(lat, lon, elevation)`` (None where absent).

    The component is ``kcmpnm``, else the name of the file's folder.

    Raises
    ------
    ValueError
        A header this needs is missing or the lag axis is not ``-maxlag..maxlag``
        (the message names the file and the field).
    """
    from types import SimpleNamespace

    from obspy import read

    p = Path(path)
    tr = read(str(p), format="SAC")[0]
    known = dict(tr.stats.sac)
    fields = ("kevnm", "kstnm", "knetwk", "khole", "kcmpnm", "b", "npts", "delta", "user0",
              "dist", "az", "baz", "evla", "evlo", "evel", "stla", "stlo", "stel")
    sac = SimpleNamespace(**{f: known.get(f) for f in fields})
    sac.data = tr.data
    for field in ("kevnm", "kstnm", "knetwk", "b"):
        if getattr(sac, field) is None:
            raise ValueError(f"{p}: SAC header {field} is not set (needed: the source code "
                             f"in kevnm, the receiver in knetwk/kstnm, b = -maxlag)")
    comp = (sac.kcmpnm or p.parent.name).strip()
    if comp.endswith("_sym"):
        raise ValueError(f"{p}: a symmetric (one-sided) component ({comp}) cannot be imported "
                         f"as a two-sided stack")
    npts, delta, b = int(sac.npts), float(sac.delta), float(sac.b)
    h = npts // 2
    if npts % 2 != 1 or abs(b + h * delta) > 1e-3 * delta:
        raise ValueError(f"{p}: b = {b} s and npts = {npts} are not a lag axis -maxlag..maxlag "
                         f"(expected odd npts and b = -(npts // 2) * delta)")

    def coords(la, lo, el):
        if la is None or lo is None:
            return None
        return (float(la), float(lo), 0.0 if el is None else float(el))

    def num(v, fill=np.nan):
        return fill if v is None else float(v)

    receiver = f"{sac.knetwk.strip()}.{sac.kstnm.strip()}"
    if sac.khole is not None and sac.khole.strip():
        receiver += f".{sac.khole.strip()}"
    return dict(source=sac.kevnm.strip(), receiver=receiver,
                component=comp, sampling_rate=1.0 / delta, maxlag=h * delta,
                stack=np.asarray(sac.data, dtype=np.float32),
                n_windows=int(num(sac.user0, -1)), distance_km=num(sac.dist),
                azimuth=num(sac.az), back_azimuth=num(sac.baz),
                source_coordinates=coords(sac.evla, sac.evlo, sac.evel),
                receiver_coordinates=coords(sac.stla, sac.stlo, sac.stel))
