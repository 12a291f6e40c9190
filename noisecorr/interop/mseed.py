"""miniSEED export of stacks.

Convention: the lag axis becomes absolute time from the POSIX epoch, so a stack on lags
``-maxlag..maxlag`` starts at ``1970-01-01T00:00:00 - maxlag`` (``starttime =
UTCDateTime(-maxlag)``) and lag 0 is at ``1970-01-01T00:00:00``: ``lag = t -
UTCDateTime(0)``. Network and station codes are the receiver's, location ``CC``,
channel ``X`` + component (``XZZ``), float32 encoding. One file per pair and component:
``COMP/SRC_RCV.mseed`` (miniSEED has no room for the source: it is in the file name).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .select import file_path, one_stack

log = logging.getLogger(__name__)

__all__ = ["write_mseed", "stack_trace"]


def stack_trace(lags, data, receiver: str, component: str, sampling_rate: float):
    """One stack as an ObsPy Trace in the convention of the module docstring: the
    receiver's network and station codes, location ``CC``, channel ``X`` + component,
    ``starttime = UTCDateTime(lags[0])`` (lag in s = time since the POSIX epoch)."""
    from obspy import Trace, UTCDateTime

    net, sta = receiver.split(".")[:2]  # NET.STA or NET.STA.LOC (all_locations)
    return Trace(np.ascontiguousarray(data, dtype=np.float32), header=dict(
        network=net, station=sta, location="CC", channel=("X" + component)[:3],
        sampling_rate=sampling_rate, starttime=UTCDateTime(float(lags[0]))))


def write_mseed(res, selection, out_dir, layout: str = "tree") -> list:
    """Write each selected stack as ``out_dir/COMP/SRC_RCV.mseed`` (``layout="flat"``:
    ``out_dir/SRC_RCV_COMP.mseed``); returns the paths."""
    out = Path(out_dir)
    paths = []
    for sel in selection:
        lags, data = one_stack(res, sel)
        tr = stack_trace(lags, data, sel.receiver, sel.component, sel.sampling_rate)
        p = file_path(out, sel.source, sel.receiver, sel.component, "mseed", layout)
        tr.write(str(p), format="MSEED", encoding="FLOAT32")
        paths.append(p)
    log.info("wrote %d miniSEED files under %s", len(paths), out)
    return paths
