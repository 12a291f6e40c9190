"""SAC export and import of stacks (the layout FTAN and tomography codes read).

One file per pair and component, ``COMP/SRC_RCV.SAC``, with (SAC header names):

===========  ================================================================
``delta``    1 / sampling rate, s
``b``        ``-maxlag``, s (two-sided); ``0`` for the symmetric component
``npts``     ``2 h + 1`` samples (``h + 1`` for the symmetric component)
``stla/stlo/stel``  receiver latitude, longitude (degrees), elevation (m)
``kstnm/knetwk``    receiver station and network codes
``evla/evlo/evel``  source ("event") latitude, longitude, elevation
``kevnm``    source code ``NET.STA``
``dist``     inter-station distance, km (the results' WGS84 value)
``az/baz``   azimuth source to receiver / receiver to source, degrees
``gcarc``    great-circle distance, degrees (ObsPy ``locations2degrees``)
``user0``    windows stacked
``kcmpnm``   component (e.g. ``ZZ``; ``ZZ_sym`` for the symmetric component)
===========  ================================================================

``lcalda`` is false, so SAC keeps these values. Positive lag: the wave travels from the
source to the receiver. The symmetric component (``--symmetric``) is the mean of the causal
side and the time-reversed acausal side (Bensen et al. 2007, GJI 169, section 4.1), written
as ``COMP_sym/SRC_RCV.SAC`` on ``t = 0..maxlag``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .select import one_stack, station_table

log = logging.getLogger(__name__)

__all__ = ["write_sac", "read_sac"]


def _geometry(table, sel):
    """Coordinates of both stations and gcarc (NaN if a station has no coordinates)."""
    from obspy.geodetics import locations2degrees

    src, rcv = table.get(sel.source), table.get(sel.receiver)
    gcarc = (float(locations2degrees(src[0], src[1], rcv[0], rcv[1]))
             if src is not None and rcv is not None else np.nan)
    return src, rcv, gcarc


def write_sac(res, selection, out_dir, symmetric: bool = False) -> list:
    """Write each selected stack as ``out_dir/COMP/SRC_RCV.SAC`` (and
    ``COMP_sym/SRC_RCV.SAC`` if ``symmetric``); returns the paths.

    See the module docstring for the header.
    """
    from obspy.io.sac import SACTrace

    from noisecorr.signal.symmetric import symmetric as sym

    out = Path(out_dir)
    table = station_table(res)
    paths = []
    for sel in selection:
        lags, data = one_stack(res, sel)
        src, rcv, gcarc = _geometry(table, sel)
        rnet, rsta = sel.receiver.split(".")[:2]
        hdr = dict(delta=1.0 / sel.sampling_rate, knetwk=rnet, kstnm=rsta[:8],
                   kevnm=sel.source[:16], lcalda=False, user0=float(sel.n_windows))
        if len(sel.source) > 16:
            log.warning("source code %s is longer than SAC's kevnm (16 characters): cut",
                        sel.source)
        if rcv is not None:
            hdr.update(stla=rcv[0], stlo=rcv[1], stel=rcv[2])
        if src is not None:
            hdr.update(evla=src[0], evlo=src[1], evel=src[2])
        for key, value in (("dist", sel.distance_km), ("az", sel.azimuth),
                           ("baz", sel.back_azimuth), ("gcarc", gcarc)):
            if np.isfinite(value):
                hdr[key] = float(value)
        versions = [(sel.component, float(lags[0]), data)]
        if symmetric:
            versions.append((f"{sel.component}_sym", 0.0, sym(data)[0].astype(np.float32)))
        for comp, b, values in versions:
            d = out / comp
            d.mkdir(parents=True, exist_ok=True)
            p = d / f"{sel.source}_{sel.receiver}.SAC"
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
    fields = ("kevnm", "kstnm", "knetwk", "kcmpnm", "b", "npts", "delta", "user0", "dist",
              "az", "baz", "evla", "evlo", "evel", "stla", "stlo", "stel")
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

    return dict(source=sac.kevnm.strip(), receiver=f"{sac.knetwk.strip()}.{sac.kstnm.strip()}",
                component=comp, sampling_rate=1.0 / delta, maxlag=h * delta,
                stack=np.asarray(sac.data, dtype=np.float32),
                n_windows=int(num(sac.user0, -1)), distance_km=num(sac.dist),
                azimuth=num(sac.az), back_azimuth=num(sac.baz),
                source_coordinates=coords(sac.evla, sac.evlo, sac.evel),
                receiver_coordinates=coords(sac.stla, sac.stlo, sac.stel))
