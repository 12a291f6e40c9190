"""Where the waveforms, responses, stations and time span of a run come from.

One interface, many sources (as in ObsPy): an SDS archive, a folder of miniSEED/SAC files and
FDSN web services all become a client with ``get_waveforms(network, station, location,
channel, starttime, endtime)`` plus an :class:`obspy.Inventory` with responses.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from .config import ConfigError, WorkflowConfig, bundled_station_data

log = logging.getLogger(__name__)

#: Folder (in the current directory) where generated synthetic networks are cached.
SYNTH_CACHE = "noisecorr_cache"
#: Files a data folder may hold beside the waveforms (synthetic archives write them).
SIDE_FILES = ("manifest.json", "truth.csv", "sources.csv", "README.md")


@dataclass
class Sources:
    """The resolved inputs of a run.

    Attributes
    ----------
    client : object with ``get_waveforms``
    inventory : obspy.Inventory
    seed_ids : list of str
        ``NET.STA.LOC.CHA`` of every channel used, sorted: one channel group (location and
        band/instrument) per station, chosen by ``channel_priority`` and
        ``location_priority`` (:func:`pes.fetch.select_channels`).
    stations : dict
        ``{"NET.STA": {"latitude", "longitude", "elevation"}}``; with ``all_locations``
        the keys are ``NET.STA.LOC`` (``NET.STA`` for the empty location).
    start, end : obspy.UTCDateTime
    description : str
        Where the data came from (printed by the CLI, stored in the results).
    truth : path or None
        Travel-time table of a synthetic network, when known.
    skipped : list of (str, str)
        ``(station or channel, reason)`` left out while resolving.
    channels_dropped : list of dict
        ``{"seed_id", "station", "chosen", "reason"}``: channels of a used station left out
        because another channel group of that station was preferred (not a skip: the
        station is used).
    station_codes : dict
        ``{seed_id: station code}`` for every channel in ``seed_ids``.
    """

    client: object
    inventory: object
    seed_ids: list
    stations: dict
    start: object
    end: object
    description: str
    truth: Path | None = None
    skipped: list = field(default_factory=list)
    channels_dropped: list = field(default_factory=list)
    station_codes: dict = field(default_factory=dict)

    def station_of(self, seed_id: str) -> str:
        """The station code (a key of :attr:`stations`) that ``seed_id`` belongs to."""
        code = self.station_codes.get(seed_id)
        return code if code is not None else ".".join(seed_id.split(".")[:2])

    def channel_selection(self) -> dict:
        """``{"chosen": {station: [seed_id, ...]}, "dropped": [...]}`` for the run summary."""
        chosen = {}
        for sid in self.seed_ids:
            chosen.setdefault(self.station_of(sid), []).append(sid)
        return {"chosen": chosen, "dropped": [dict(d) for d in self.channels_dropped]}


def _is_sds(root: Path) -> bool:
    return any(p.is_dir() and p.name.isdigit() and len(p.name) == 4 for p in root.iterdir())


def _manifest_span(folder: Path):
    path = folder / "manifest.json"
    if not path.is_file():
        return None, None
    from obspy import UTCDateTime

    params = json.loads(path.read_text()).get("parameters", {})
    if "start" not in params or "hours" not in params:
        return None, None
    start = UTCDateTime(params["start"])
    return start, start + float(params["hours"]) * 3600.0


def _needed_orientations(components):
    """Orientation letters of the channels the components need; E or N also take a sensor's
    1/2 channels (any azimuth), which :class:`pes.preprocess.OrientPE` rotates to E/N."""
    needed = set()
    for comp in components:
        for c in comp:
            needed |= {"E", "N"} if c in "RT" else {c}
    if needed & {"E", "N"}:
        needed |= {"1", "2"}
    return needed


def synthetic_network(config: WorkflowConfig) -> Path:
    """Generate (or reuse from the cache) the synthetic network ``config.stations`` asks for."""
    from noisecorr.synth import write_network

    p = config.processing
    name = (f"synth_n{config.stations}_h{config.synthetic_hours:g}_s{config.synthetic_seed}"
            f"_v{config.synthetic_velocity:g}_fs{p.sampling_rate:g}")
    folder = Path(SYNTH_CACHE) / name
    log.info("using synthetic network of %d stations in %s (generated once, then cached)",
             config.stations, folder)
    write_network(folder, n_stations=config.stations, hours=config.synthetic_hours,
                  seed=config.synthetic_seed, velocity=config.synthetic_velocity,
                  sampling_rate=p.sampling_rate)
    return folder


def resolve(config: WorkflowConfig) -> Sources:
    """Resolve ``config`` into a client, an inventory, channels and a time span.

    Raises
    ------
    ConfigError
        Nothing usable (missing folder, no StationXML, no channels, no time span), naming
        the field to fix.
    """
    from obspy import UTCDateTime

    truth = None
    early_skips = []
    if config.fdsn:
        client, inventory, description = _fdsn(config)
        folder = None
    else:
        if config.data is None:
            folder = bundled_station_data()
            if config.stations is not None and config.stations > _count_stations(folder):
                folder = synthetic_network(config)
            description = f"sample stations in {folder}"
        else:
            folder = Path(config.data)
            description = f"archive {folder}"
            if not folder.is_dir():
                raise ConfigError(f"data: {folder} is not a folder")
        root = folder / "SDS" if (folder / "SDS").is_dir() else folder
        inv_path = Path(config.inventory) if config.inventory else None
        if inv_path is None:
            for candidate in (folder / "stations.xml", root.parent / "stations.xml", folder / "stationxml"):
                if candidate.exists():
                    inv_path = candidate
                    break
        if inv_path is None:
            raise ConfigError(f"inventory: no StationXML given and none found beside {folder}; use --inventory FILE")
        if _is_sds(root):
            from obspy.clients.filesystem.sds import Client as SDSClient

            client = SDSClient(str(root))
        else:
            from pes.fetch import FileClient

            # the run's own metadata beside the waveforms is not reported as unreadable files
            client = FileClient(str(root), exclude=[inv_path, *(folder / n for n in SIDE_FILES)])
        inventory, inv_problems = read_inventories(inv_path)
        early_skips.extend(inv_problems)
        if _is_sds(root):
            in_xml = {f"{n.code}.{s.code}" for n in inventory for s in n}
            for code in sorted(_sds_stations(root) - in_xml):
                early_skips.append((code, f"has data in {root} but is missing from the StationXML"))
        if (folder / "truth.csv").is_file():
            truth = folder / "truth.csv"

    start = UTCDateTime(config.start) if config.start else None
    end = UTCDateTime(config.end) if config.end else None
    if (start is None or end is None) and folder is not None:
        m_start, m_end = _manifest_span(folder)
        start, end = start or m_start, end or m_end
    if start is None or end is None:
        raise ConfigError("start/end: the time span is unknown for this data; give --start and --end")

    needed = _needed_orientations(config.processing.components)
    candidates, coords, skipped = [], {}, list(early_skips)
    for net in inventory:
        if not fnmatch.fnmatch(net.code, config.network):
            continue
        for sta in net:
            code = f"{net.code}.{sta.code}"
            chans = [
                f"{code}.{ch.location_code}.{ch.code}"
                for ch in sta
                if fnmatch.fnmatch(ch.code, config.channel) and ch.code[-1:] in needed
                and (ch.start_date is None or ch.start_date < end)
                and (ch.end_date is None or ch.end_date > start)
            ]
            if not chans:
                skipped.append((code, f"no channel matching {config.channel!r} with orientation {sorted(needed)}"))
                continue
            coords[code] = {"latitude": sta.latitude, "longitude": sta.longitude, "elevation": sta.elevation}
            candidates.extend(chans)
    selection = choose_channels(config, candidates, client, start, end, needed)
    for code in sorted(set(coords) - {".".join(s.split(".")[:2]) for s in selection.chosen}):
        reasons = sorted({d["reason"] for d in selection.dropped if d["seed_id"].startswith(code + ".")})
        skipped.append((code, "no channel kept: " + "; ".join(reasons)))
    codes = sorted(set(selection.stations.values()))
    if config.stations is not None:
        codes = codes[: config.stations]
    stations = {c: coords[".".join(c.split(".")[:2])] for c in codes}
    seed_ids = [s for s in selection.chosen if selection.stations[s] in stations]
    dropped = [d for d in selection.dropped if d["station"] in stations]
    if len(stations) < 2:
        raise ConfigError(f"stations: {len(stations)} usable station(s) in {description}; at least 2 are needed")
    return Sources(client, inventory, sorted(seed_ids), stations, start, end, description, truth, skipped,
                   channels_dropped=dropped, station_codes={s: selection.stations[s] for s in seed_ids})


def choose_channels(config: WorkflowConfig, candidates, client, start, end, needed):
    """One channel group per station (or per location, ``config.all_locations``) out of
    ``candidates`` by ``config.channel_priority`` and ``config.location_priority``; where a
    station has several groups, those without data in a file archive lose. Logs each choice
    that dropped channels. Returns a :class:`pes.fetch.ChannelSelection`."""
    from pes.fetch import has_data, select_channels

    selection = select_channels(candidates, config.channel_priority, config.location_priority,
                                all_locations=config.all_locations, needed=needed,
                                has_data=lambda sid: has_data(client, sid, start, end))
    by_station = {}
    for d in selection.dropped:
        by_station.setdefault(d["station"], []).append(d)
    for code, drops in sorted(by_station.items()):
        kept = sorted(s for s, c in selection.stations.items() if c == code)
        log.info("%s: using %s; dropped %s", code, ", ".join(kept) or "no channel",
                 "; ".join(f"{d['seed_id']} ({d['reason']})" for d in drops))
    if selection.dropped:
        log.info("channel selection: %d channel(s) of %d station(s) kept, %d dropped (listed in the run "
                 "summary under channel_selection)", len(selection.chosen), len(set(selection.stations.values())),
                 len(selection.dropped))
    return selection


def read_inventories(path: Path):
    """Read a StationXML file, or every ``*.xml`` in a folder (one station per file is common).

    Returns ``(inventory, [(file, reason), ...])``: in a folder, a malformed file is named and
    left out; a single malformed file is a :class:`ConfigError`.
    """
    from obspy import Inventory, read_inventory

    if path.is_dir():
        inventory, problems = Inventory(networks=[]), []
        files = sorted(path.glob("*.xml"))
        if not files:
            raise ConfigError(f"inventory: no *.xml StationXML files in {path}")
        for f in files:
            try:
                inventory += read_inventory(str(f))
            except Exception as exc:  # lxml/ObsPy raise many kinds; the file is named either way
                problems.append((str(f), f"malformed StationXML, left out ({type(exc).__name__}: {str(exc)[:150]})"))
        return inventory, problems
    try:
        return read_inventory(str(path)), []
    except FileNotFoundError:
        raise ConfigError(f"inventory: {path} does not exist") from None
    except Exception as exc:
        raise ConfigError(f"inventory: {path} is not readable StationXML: {exc}") from None


def _sds_stations(root: Path) -> set:
    """``NET.STA`` codes with data in an SDS tree (``YEAR/NET/STA/``)."""
    return {f"{sta.parent.name}.{sta.name}" for year in root.iterdir() if year.is_dir() and year.name.isdigit()
            for net in year.iterdir() if net.is_dir() for sta in net.iterdir() if sta.is_dir()}


def _count_stations(folder: Path) -> int:
    """Stations in ``folder/stations.xml``, counted from its ``Station`` elements without
    building ObsPy's inventory (the run parses the inventory it uses once, later)."""
    from lxml import etree

    n = 0
    for _, element in etree.iterparse(str(folder / "stations.xml"), events=("end",), tag="{*}Station"):
        n += 1
        element.clear()
    return n


def _fdsn(config):
    from obspy.clients.fdsn import Client

    try:
        client = Client(config.fdsn)
    except Exception as exc:
        raise ConfigError(f"fdsn: cannot use FDSN web services at {config.fdsn}: {exc}") from None
    from obspy import UTCDateTime

    if not (config.start and config.end):
        raise ConfigError("start/end: give --start and --end with --fdsn")
    inventory = client.get_stations(network=config.network, channel=config.channel,
                                    starttime=UTCDateTime(config.start), endtime=UTCDateTime(config.end),
                                    level="response")
    return client, inventory, f"FDSN web services at {config.fdsn}"
