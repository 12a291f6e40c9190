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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from obspy import Stream, UTCDateTime, read

from noisecorr.engine import IterativePE

__all__ = ["ChannelSelection", "FileClient", "FetchPE", "chunk_requests", "has_data", "index_file", "read_checked",
           "select_channels", "station_code"]

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


#: SEED band codes, best first for ambient noise: higher sampling rate first and, at equal
#: rate, the broadband code (corner period >= 10 s) before the short-period one (SEED manual
#: v2.4, appendix A). Used to order channels that match the same ``channel_priority`` pattern.
BAND_ORDER = "FGCDHEBSMLVURPTQ"


def _channel_rank(channel: str, channel_priority) -> tuple | None:
    """``(pattern index, band rank, channel)`` of a channel code, or ``None`` if no pattern of
    ``channel_priority`` matches it (smaller is better)."""
    for i, pattern in enumerate(channel_priority):
        if fnmatch.fnmatchcase(channel, pattern):
            band = BAND_ORDER.find(channel[:1])
            return i, band if band >= 0 else len(BAND_ORDER), channel
    return None


def _location_rank(location: str, location_priority) -> tuple:
    """``(index in location_priority, location)``; unlisted locations after all listed ones,
    lexically. ``"--"`` (the FDSN spelling of an empty location) is the empty location."""
    order = ["" if loc == "--" else loc for loc in location_priority]
    return (order.index(location) if location in order else len(order)), location


def station_code(seed_id: str, all_locations: bool = False) -> str:
    """The station a channel belongs to: ``NET.STA``, or with ``all_locations``
    ``NET.STA.LOC`` (``NET.STA`` when the location is empty).

    Examples
    --------
    >>> station_code("XS.S0002.10.HHZ"), station_code("XS.S0002.10.HHZ", all_locations=True)
    ('XS.S0002', 'XS.S0002.10')
    >>> station_code("XS.S0002..HHZ", all_locations=True)
    'XS.S0002'
    """
    net, sta, loc, _ = seed_id.split(".")
    return f"{net}.{sta}.{loc}" if all_locations and loc else f"{net}.{sta}"


@dataclass(frozen=True)
class ChannelSelection:
    """Outcome of :func:`select_channels`.

    Attributes
    ----------
    chosen : tuple of str
        ``NET.STA.LOC.CHA`` kept, sorted.
    dropped : tuple of dict
        ``{"seed_id", "station", "chosen", "reason"}`` for every candidate left out:
        ``chosen`` names the channel group kept instead (``NET.STA.LOC.BI?``, or ``None``
        when the channel matches no ``channel_priority`` pattern).
    stations : dict
        ``{seed_id: station code}`` of the chosen channels (:func:`station_code`).
    """

    chosen: tuple
    dropped: tuple
    stations: dict


def select_channels(seed_ids, channel_priority, location_priority, *, all_locations: bool = False,
                    needed=None, has_data=None) -> ChannelSelection:
    """Keep one location and one band/instrument per station out of ``seed_ids``.

    A station that recorded the same ground motion on several channels (``HHZ`` and
    ``BHZ``, or location ``00`` and ``10``) must enter a run once: otherwise two channels
    claim the same station key. Channels are grouped by station and *channel group*
    (location and the first two letters of the channel code, e.g. ``00.HH``); the best group
    is kept whole, so all orientations of a station come from one instrument. Groups are
    compared by, in this order:

    1. data: a group with data in the archive (``has_data`` true) before one without;
    2. orientations: a group covering more of ``needed`` first (``HHZ`` alone loses to
       ``BHZ, BHN, BHE`` when the run needs E, N and Z);
    3. ``channel_priority``: the first fnmatch pattern matching the channel code, then
       :data:`BAND_ORDER` (higher rate first) among channels matching the same pattern;
    4. ``location_priority``: listed locations in order, then the others lexically.

    The channel decides before the location (as in ObsPy's mass downloader): a broadband
    ``10.HH`` is kept over ``00.LH``. Channels that match no ``channel_priority`` pattern
    (mass position ``VMZ``, gravimeters, ...) are dropped.

    Parameters
    ----------
    seed_ids : iterable of str
        Candidate ``NET.STA.LOC.CHA`` codes (already filtered by channel pattern, orientation
        and epoch).
    channel_priority : sequence of str
        fnmatch patterns on channel codes, best first (e.g. ``["HH?", "BH?", "EH?"]``).
    location_priority : sequence of str
        Location codes, best first (``""`` or ``"--"``: the empty location).
    all_locations : bool
        Keep the best channel group of every location, each as its own station
        ``NET.STA.LOC`` (:func:`station_code`), instead of one location per station.
    needed : set of str, optional
        Orientation letters the run uses (``{"Z"}``, ``{"E", "N", "Z"}``).
    has_data : callable, optional
        ``has_data(seed_id) -> bool or None``; ``None`` (or no callable): unknown, e.g. FDSN.
        Only called for stations with more than one group.

    Returns
    -------
    ChannelSelection

    Examples
    --------
    >>> sel = select_channels(["XS.A..BHZ", "XS.A..HHZ", "XS.B.10.HHZ", "XS.B.00.HHZ"],
    ...                       ["HH?", "BH?"], ["", "00"])
    >>> sel.chosen
    ('XS.A..HHZ', 'XS.B.00.HHZ')
    >>> [(d["seed_id"], d["reason"]) for d in sel.dropped]  # doctest: +NORMALIZE_WHITESPACE
    [('XS.A..BHZ', 'XS.A..HH? is earlier in channel_priority'),
     ('XS.B.10.HHZ', 'XS.B.00.HH? is earlier in location_priority')]
    """
    needed = set(needed) if needed is not None else None
    by_station: dict = {}
    dropped = []
    for sid in sorted(set(seed_ids)):
        net, sta, loc, cha = sid.split(".")
        code = station_code(sid, all_locations)
        if _channel_rank(cha, channel_priority) is None:
            dropped.append({"seed_id": sid, "station": code, "chosen": None,
                            "reason": f"{cha} matches no channel_priority pattern {list(channel_priority)}"})
            continue
        by_station.setdefault(code, {}).setdefault(f"{net}.{sta}.{loc}.{cha[:2]}?", []).append(sid)
    chosen, stations = [], {}
    why = ("has data in the archive", "covers more of the orientations needed",
           "is earlier in channel_priority", "is earlier in location_priority")
    for code, groups in sorted(by_station.items()):
        ranks = {}
        for group, sids in groups.items():
            loc, cha = sids[0].split(".")[2:]
            known = [has_data(s) for s in sids] if has_data is not None and len(groups) > 1 else [None]
            no_data = all(k is False for k in known)
            orientations = {s[-1] for s in sids}
            coverage = len(orientations & needed) if needed is not None else len(orientations)
            ranks[group] = (no_data, -coverage, _channel_rank(cha, channel_priority)[:2],
                            _location_rank(loc, location_priority), group)
        best = min(ranks, key=ranks.get)
        chosen.extend(groups[best])
        stations.update({s: code for s in groups[best]})
        for group in sorted(set(groups) - {best}):
            decisive = next(i for i, (a, b) in enumerate(zip(ranks[best], ranks[group])) if a != b)
            reason = f"{best} {why[decisive]}" if decisive < len(why) else f"{best} sorts first"
            dropped.extend({"seed_id": s, "station": code, "chosen": best, "reason": reason}
                           for s in groups[group])
    return ChannelSelection(tuple(sorted(chosen)), tuple(sorted(dropped, key=lambda d: d["seed_id"])),
                            stations)


def has_data(client, seed_id: str, starttime, endtime) -> bool | None:
    """Whether a file-based client holds files of ``seed_id`` in the span.

    ``None`` for clients that cannot tell without fetching (FDSN web services, in-memory
    clients). For a :class:`FileClient` the folder's header index answers; for ObsPy's SDS
    client, the day files' names.
    """
    net, sta, loc, cha = seed_id.split(".")
    files = _files_of(client, net, sta, loc, cha, UTCDateTime(starttime), UTCDateTime(endtime))
    return None if files is None else bool(files)


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
    file, and logged; the readable rest of the channel is still used. When nothing of the
    channel-chunk is left (every file refused, the client failed), one
    ``{"seed_id", "chunk", "reason"}`` also goes to ``absent`` (for
    :class:`pes.tiles.TileRoutePE`: its tiles need not wait for it).

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
        self._add_output("absent")
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
            self.write("absent", {"seed_id": sid, "chunk": request["starttime"],
                                  "reason": "; ".join(problems)})
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
