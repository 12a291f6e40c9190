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
import errno
import os
import re
import stat
from pathlib import Path

import numpy as np
from obspy import Stream, UTCDateTime, read

from noisecorr.engine import IterativePE

__all__ = ["FileClient", "FetchPE", "chunk_requests", "index_file", "read_checked"]

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


#: Name endings of waveform files: a folder named so is reported, not silently walked into.
WAVEFORM_SUFFIXES = (".mseed", ".miniseed", ".msd", ".ms", ".seed", ".sac", ".segy", ".sgy")
#: An SDS day-file name (``NET.STA.LOC.CHA.TYPE.YEAR.DOY``).
SDS_DAY_FILE = re.compile(r"^[^.]+\.[^.]+\.[^.]*\.[^.]+\.[A-Z]\.\d{4}\.\d{3}$")
#: The start of a miniSEED 2 fixed header: 6-character sequence number, quality code, reserved byte.
_MSEED_HEAD = re.compile(rb"^[0-9 \x00]{6}[DRQM][ \x00]")


def file_problem(path) -> str | None:
    """Why ``path`` cannot be opened as a regular file, or ``None`` if it can.

    Checked with ``stat`` first, so that only regular files are ever opened (opening a
    FIFO would block the reader): a link to nothing, a link loop, a directory, a
    FIFO/socket/device, an empty file, no permission to read (tried by opening it).
    """
    path = str(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        if os.path.islink(path):
            return ("symbolic link loop" if exc.errno == errno.ELOOP else
                    f"broken symbolic link (to {os.readlink(path)!r}: {exc.strerror})")
        return f"cannot open ({exc.strerror})"
    if stat.S_ISDIR(st.st_mode):
        return "a directory, not a file"
    if not stat.S_ISREG(st.st_mode):
        kind = "FIFO" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode) else "device"
        return f"not a regular file ({kind})"
    if st.st_size == 0:
        return "empty file"
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:  # permission denied, vanished since the stat
        return f"cannot open ({exc.strerror})"
    return None


def _miniseed_id(head: bytes) -> str | None:
    """``NET.STA.LOC.CHA`` from a miniSEED 2 fixed header, or ``None`` if ``head`` is not one."""
    if len(head) < 20 or not _MSEED_HEAD.match(head):
        return None
    text = head[8:20].decode("ascii", errors="replace")
    return f"{text[10:12].strip()}.{text[0:5].strip()}.{text[5:7].strip()}.{text[7:10].strip()}"


def index_file(path):
    """Header of one file for :class:`FileClient`: ``([(seed_id, start, end), ...], None)``
    or ``(None, {"path", "reason", "damaged"})``.

    Any failure of ObsPy's readers (``NotImplementedError`` for a SEG-Y header it does not
    support, ``TypeError`` for an unknown format, miniSEED errors, ...) leaves the file out
    with the reason. ``damaged`` is true when the file starts with a miniSEED record header
    (so it is waveform data of the channel named in the reason, damaged); such a file counts
    as a skip of the run, the others (notes, zips, other formats, empty files, links,
    folders) are only listed. A directory is reported only when its name is a waveform
    file name (:data:`WAVEFORM_SUFFIXES`, SDS day file); its contents are still indexed.
    """
    path = str(path)
    problem = file_problem(path)
    if problem == "a directory, not a file":
        name = os.path.basename(path)
        if name.lower().endswith(WAVEFORM_SUFFIXES) or SDS_DAY_FILE.match(name):
            return None, {"path": path, "reason": "a directory with a waveform file name, not a file",
                          "damaged": False}
        return [], None
    if problem:
        return None, {"path": path, "reason": problem, "damaged": False}
    try:
        st = read(path, headonly=True)
    except Exception as exc:  # any reader failure: the file is named, the run goes on
        try:
            with open(path, "rb") as fh:
                sid = _miniseed_id(fh.read(20))
        except OSError:  # vanished or locked since the reader tried: reported as unreadable
            sid = None
        what = f"damaged miniSEED of {sid}" if sid else "not readable waveform data"
        return None, {"path": path, "reason": f"{what} ({type(exc).__name__}: {str(exc)[:200]})",
                      "damaged": sid is not None}
    return [(tr.id, tr.stats.starttime, tr.stats.endtime) for tr in st], None


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

    exclude : sequence of str or Path
        Files or folders neither indexed nor listed (the run's own StationXML, manifest).

    Files that cannot be read (notes, zips, other formats, empty or damaged files, links
    to nothing, FIFOs, folders with a waveform file name) never stop the indexing: they are
    listed in :attr:`skipped_files` with the reason (:func:`index_file`).

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

    def __init__(self, root, pattern: str = "*", exclude=()):
        self.root = Path(root)
        self.pattern = pattern
        self.exclude = tuple(os.path.abspath(p) for p in exclude)
        self._index = None
        #: ``[{"path", "reason", "damaged"}, ...]``: files left out of the index (see
        #: :func:`index_file`), filled when the folder is indexed.
        self.skipped_files = []

    def _build_index(self) -> list[tuple[str, str, UTCDateTime, UTCDateTime]]:
        index, self.skipped_files = [], []
        for path in sorted(self.root.rglob(self.pattern)):
            if any(str(path.absolute()) == e or str(path.absolute()).startswith(e + os.sep) for e in self.exclude):
                continue
            traces, skipped = index_file(path)
            if skipped is not None:
                self.skipped_files.append(skipped)
                logger.debug("skipping %s: %s", skipped["path"], skipped["reason"])
                continue
            index.extend((str(path), sid, s, e) for sid, s, e in traces)
        if self.skipped_files:
            logger.info("%d file(s) under %s cannot be read and are left out, e.g. %s", len(self.skipped_files),
                        self.root, "; ".join(f"{f['path']}: {f['reason']}" for f in self.skipped_files[:3]))
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
        return {"root": os.fspath(self.root), "pattern": self.pattern, "exclude": self.exclude}

    def __setstate__(self, state):
        self.__init__(state["root"], state["pattern"], state.get("exclude", ()))


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

    Every file that cannot be read is also written once per instance to ``skipped_files``
    as ``{"path", "reason", "damaged"}``: the files a :class:`FileClient` left out of its
    index (``damaged`` only for miniSEED that fails to read, see :func:`index_file`) and the
    files read for a channel that were refused (``damaged`` true: the file, by its SDS
    name or its index entry, holds that channel, so they are also in ``rejected``).
    """

    def __init__(self, client, inventory=None, fetch_inventory: bool = False, pad: float = 0.0,
                 name: str | None = None):
        super().__init__()
        if name:
            self.name = name
        self._add_output("rejected")
        self._add_output("skipped_files")
        self._files_reported = 0
        self._file_problems = []
        self.client = client
        self.inventory = inventory
        self.fetch_inventory = fetch_inventory
        self.pad = float(pad)

    def _process(self, request):
        sid = request["seed_id"]
        net, sta, loc, cha = sid.split(".")
        t1 = UTCDateTime(request["starttime"]) - self.pad
        t2 = UTCDateTime(request["endtime"]) + self.pad
        self._file_problems = []
        stream, problems = self._fetch(net, sta, loc, cha, t1, t2)
        index_skips = getattr(self.client, "skipped_files", None) or []
        for entry in index_skips[self._files_reported:]:
            self.write("skipped_files", dict(entry))
        self._files_reported = len(index_skips)
        for path, reason in self._file_problems:
            self.write("skipped_files", {"path": path, "reason": reason, "damaged": True})
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
                self._file_problems.append((str(path), problem[len(str(path)) + 2:]))
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
    problem = file_problem(path)
    if problem:
        return None, f"{path}: {problem}"
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
