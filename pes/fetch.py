"""Fetch waveforms from any client with ObsPy's ``get_waveforms`` signature.

Works with :class:`obspy.clients.filesystem.sds.Client`, :class:`obspy.clients.fdsn.Client`
and :class:`FileClient` (a plain folder of miniSEED/SAC files).

Items
-----
input (request) : dict
    ``{"seed_id": "NET.STA.LOC.CHA", "starttime": float, "endtime": float}``
    (POSIX seconds; ``chunk_requests`` makes them).
output (waveform) : dict
    the request plus ``"stream"`` (obspy.Stream) and ``"inventory"`` (obspy Inventory
    with responses, or None).
"""

from __future__ import annotations

import fnmatch
import logging
import os
from pathlib import Path

import numpy as np
from obspy import Stream, UTCDateTime, read

from noisecorr.engine import IterativePE

__all__ = ["FileClient", "FetchPE", "chunk_requests"]

logger = logging.getLogger(__name__)


def chunk_requests(seed_ids, starttime, endtime, chunk_length: float = 86400.0) -> list[dict]:
    """Requests for every channel and every chunk ``[t, t + chunk_length)`` in ``[starttime, endtime)``.

    Returns a list of request dicts (POSIX-second floats), channels inner, time outer.
    """
    t1, t2 = UTCDateTime(starttime), UTCDateTime(endtime)
    if not chunk_length > 0:
        raise ValueError(f"chunk_length must be > 0 s, got {chunk_length!r}")
    out = []
    t = t1
    while t < t2:
        end = min(t + chunk_length, t2)
        out.extend({"seed_id": sid, "starttime": float(t.timestamp), "endtime": float(end.timestamp)}
                   for sid in seed_ids)
        t = t + chunk_length
    return out


class FileClient:
    """A folder of waveform files (miniSEED, SAC, anything ``obspy.read`` knows) as a client.

    The folder is indexed once (headers only) on first use; ``get_waveforms`` then reads
    only the files that hold the requested channel and time span.

    Parameters
    ----------
    root : str or Path
        Folder searched recursively.
    pattern : str
        Glob for file names (default all files).

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from obspy import Trace, UTCDateTime
    >>> d = tempfile.mkdtemp()
    >>> Trace(np.arange(100, dtype=np.int32), {"station": "A", "network": "XX", "channel": "HHZ",
    ...       "sampling_rate": 1.0}).write(d + "/a.mseed", format="MSEED")
    >>> len(FileClient(d).get_waveforms("XX", "A", "", "HH?", UTCDateTime(10), UTCDateTime(20))[0])
    11
    """

    def __init__(self, root, pattern: str = "*"):
        self.root = Path(root)
        self.pattern = pattern
        self._index = None

    def _build_index(self) -> list[tuple[str, str, UTCDateTime, UTCDateTime]]:
        index = []
        for path in sorted(self.root.rglob(self.pattern)):
            if not path.is_file():
                continue
            try:
                st = read(str(path), headonly=True)
            except (TypeError, ValueError, OSError) as err:   # not a waveform file
                logger.debug("skipping %s: %s", path, err)
                continue
            for tr in st:
                index.append((str(path), tr.id, tr.stats.starttime, tr.stats.endtime))
        if not index:
            logger.warning("no waveform files found under %s (pattern %r)", self.root, self.pattern)
        return index

    def filenames(self, network, station, location, channel, starttime, endtime) -> list:
        """Files holding the matching channels in the span (``?``/``*`` wildcards allowed)."""
        if self._index is None:
            self._index = self._build_index()
        t1, t2 = UTCDateTime(starttime), UTCDateTime(endtime)
        wanted = f"{network}.{station}.{location}.{channel}"
        return sorted({p for p, sid, s, e in self._index
                       if fnmatch.fnmatchcase(sid, wanted) and s <= t2 and e >= t1})

    def get_waveforms(self, network, station, location, channel, starttime, endtime, **kwargs) -> Stream:
        """Stream of the matching channels (``?``/``*`` wildcards allowed), trimmed to the span."""
        t1, t2 = UTCDateTime(starttime), UTCDateTime(endtime)
        paths = self.filenames(network, station, location, channel, t1, t2)
        st = Stream()
        for p in paths:
            st += read(p).select(network=network, station=station, location=location, channel=channel)
        st.trim(t1, t2)
        return Stream([tr for tr in st if tr.stats.npts > 0])

    def __getstate__(self):
        # the index is rebuilt in each process rather than shipped
        return {"root": os.fspath(self.root), "pattern": self.pattern}

    def __setstate__(self, state):
        self.__init__(state["root"], state["pattern"])


class FetchPE(IterativePE):
    """Fetch the waveforms (and optionally the response inventory) of one request.

    Parameters
    ----------
    client
        Anything with ``get_waveforms(network, station, location, channel, starttime, endtime)``.
    inventory : obspy.Inventory, optional
        Attached to every output item (for :class:`pes.preprocess.PreprocessPE`).
    fetch_inventory : bool
        Ask the client's ``get_stations(..., level="response")`` instead (FDSN).
    pad : float
        Seconds fetched either side of the chunk, so filters settle outside it.

    Unreadable files (empty, not waveform data, corrupt or truncated miniSEED) and client
    failures are written to ``rejected`` as ``{"seed_id", "chunk", "reason"}`` naming the
    file, and logged; the readable rest of the channel is still used.
    """

    def __init__(self, client, inventory=None, fetch_inventory: bool = False, pad: float = 0.0,
                 name: str | None = None):
        super().__init__()
        if name:
            self.name = name
        self._add_output("rejected")
        self.client = client
        self.inventory = inventory
        self.fetch_inventory = fetch_inventory
        self.pad = float(pad)

    def _process(self, request):
        sid = request["seed_id"]
        net, sta, loc, cha = sid.split(".")
        t1 = UTCDateTime(request["starttime"]) - self.pad
        t2 = UTCDateTime(request["endtime"]) + self.pad
        stream, problems = self._fetch(net, sta, loc, cha, t1, t2)
        for problem in problems:
            self.log("%s: %s", sid, problem, level=logging.WARNING)
            self.write("rejected", {"seed_id": sid, "chunk": request["starttime"], "reason": problem})
        if stream is None:
            return None
        inventory = self.inventory
        if self.fetch_inventory:
            inventory = self.client.get_stations(network=net, station=sta, location=loc, channel=cha,
                                                 starttime=t1, endtime=t2, level="response")
        self.log("fetched %s %s-%s: %d traces", sid, t1, t2, len(stream), level=logging.DEBUG)
        return {**request, "stream": stream, "inventory": inventory}

    def _fetch(self, net, sta, loc, cha, t1, t2):
        """``(stream or None, [problem, ...])``: unreadable files are named and left out."""
        files = _files_of(self.client, net, sta, loc, cha, t1, t2)
        if files is None:  # a client without files (FDSN, in memory): one request, one answer
            try:
                return self.client.get_waveforms(net, sta, loc, cha, t1, t2), []
            except Exception as exc:  # any client failure is reported for this channel, not fatal
                return None, [f"cannot get waveforms: {type(exc).__name__}: {exc}"]
        stream, problems = Stream(), []
        for path in files:
            part, problem = read_checked(path, t1, t2)
            if problem:
                problems.append(problem)
                continue
            stream += part.select(network=net, station=sta, location=loc, channel=cha)
        # join contiguous traces (day files) as ObsPy's SDS client does; traces that cannot be
        # joined (mixed sampling rates or data types: ObsPy's merge would raise and empty the
        # stream) stay separate, and preprocessing rejects the channel naming the inconsistency
        if len({(tr.id, tr.stats.sampling_rate, tr.data.dtype) for tr in stream}) == len({tr.id for tr in stream}):
            stream.merge(method=-1)
        stream.trim(t1, t2)
        stream = Stream([tr for tr in stream if tr.stats.npts > 0])
        if not len(stream) and problems:
            return None, problems
        return stream, problems


def read_checked(path, starttime=None, endtime=None):
    """Read one waveform file; ``(stream, None)`` or ``(None, "file: reason")``.

    Empty files, files that are not waveform data, files libmseed can only read in part
    (truncated or corrupt records, reported as warnings) and records whose samples are not
    numbers (text encoding) are refused with the reason.
    """
    import warnings

    path = str(path)
    try:
        if os.path.getsize(path) == 0:
            return None, f"{path}: empty file"
    except OSError as exc:
        return None, f"{path}: cannot open ({exc.strerror})"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            stream = read(path, starttime=starttime, endtime=endtime)
        except Exception as exc:  # ObsPy raises TypeError, ValueError, InternalMSEEDError, ...
            return None, f"{path}: not readable waveform data ({type(exc).__name__}: {exc})"
    damage = [str(w.message) for w in caught if "mseed" in type(w.message).__name__.lower()
              or "record" in str(w.message).lower()]
    if damage:
        return None, f"{path}: corrupt or truncated miniSEED ({damage[0][:200]})"
    text = [tr for tr in stream if not np.issubdtype(tr.data.dtype, np.number)]
    if text:  # e.g. a damaged encoding byte read as ASCII text records
        return None, (f"{path}: {text[0].id} holds {text[0].data.dtype} samples, not numbers "
                      f"(miniSEED text encoding or a damaged header)")
    if stream and getattr(stream[0].stats, "_format", "") == "MSEED":
        reclen = stream[0].stats.mseed.record_length
        size = os.path.getsize(path)
        if reclen and size % reclen:
            return None, (f"{path}: truncated miniSEED ({size} bytes is not a whole number of "
                          f"{reclen}-byte records)")
    return stream, None


def _files_of(client, net, sta, loc, cha, t1, t2):
    """The files a file-based client would read for this request, or ``None``."""
    if hasattr(client, "filenames"):
        return client.filenames(net, sta, loc, cha, t1, t2)
    if type(client).__module__.startswith("obspy.clients.filesystem.sds"):
        return sorted(client._get_filenames(net, sta, loc, cha, t1, t2))
    return None
