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

from .select import one_stack

log = logging.getLogger(__name__)

__all__ = ["write_mseed"]


def write_mseed(res, selection, out_dir) -> list:
    """Write each selected stack as ``out_dir/COMP/SRC_RCV.mseed``; returns the paths."""
    from obspy import Trace, UTCDateTime

    out = Path(out_dir)
    paths = []
    for sel in selection:
        lags, data = one_stack(res, sel)
        net, sta = sel.receiver.split(".")[:2]
        tr = Trace(np.ascontiguousarray(data, dtype=np.float32), header=dict(
            network=net, station=sta, location="CC", channel=("X" + sel.component)[:3],
            sampling_rate=sel.sampling_rate, starttime=UTCDateTime(float(lags[0]))))
        d = out / sel.component
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"{sel.source}_{sel.receiver}.mseed"
        tr.write(str(p), format="MSEED", encoding="FLOAT32")
        paths.append(p)
    log.info("wrote %d miniSEED files under %s", len(paths), out)
    return paths
