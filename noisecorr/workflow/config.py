"""One typed, validated configuration for the ambient-noise workflow.

Precedence (lowest to highest): defaults < YAML file (``--config``) < environment variables
``NOISECORR_<KEY>`` (e.g. ``NOISECORR_MAPPING=multiprocess``, ``NOISECORR_CC_LEN=3600``)
< command-line flags. Bad configuration fails before anything runs, naming the field and
the allowed values; unknown keys are rejected by name.

The file has two sections; ``processing`` uses NoisePy's parameter names (see
:class:`noisecorr.signal.params.CorrelationParams`)::

    data: null            # SDS archive or folder of miniSEED/SAC; null: bundled station_data/
    inventory: null       # StationXML with responses
    mapping: sequential
    processing:
      cc_len: 1800
      ...

YAML is read with ``yaml.safe_load`` (no object construction).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from noisecorr.signal.params import CorrelationParams

#: Output folder used when ``--out`` is not given (created in the current directory).
DEFAULT_OUT = "noisecorr_output"
MAPPINGS = ("sequential", "multiprocess", "mpi", "storm", "dask")
#: What a run keeps per pair: the stack over the whole span, or also every chunk's.
KEEP = ("stack", "chunks")
#: Default ``channel_priority``: broadband high-gain seismometers by sampling rate (HH > BH),
#: then short period (EH > SH), mid and long period (MH > LH), then any other high-gain
#: seismometer, low-gain seismometer, geophone, accelerometer (instrument codes H, L, P, N).
DEFAULT_CHANNEL_PRIORITY = ("HH?", "BH?", "EH?", "SH?", "MH?", "LH?", "?H?", "?L?", "?P?", "?N?")
#: Default ``location_priority``: the empty location, then ``00``, then the others lexically.
DEFAULT_LOCATION_PRIORITY = ("", "00")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


def keep_chunks_error(exc: ValueError) -> ConfigError:
    """The :class:`ConfigError` of a bad ``keep_chunks`` (a ValueError of
    :meth:`noisecorr.results.series.ChunkSelection.from_config`), named ``keep_chunks``
    unless the message names its sub-key already (``keep_chunks.maxlag: ...``)."""
    text = str(exc)
    return ConfigError(text if text.startswith("keep_chunks") else f"keep_chunks: {text}")


def bundled_station_data() -> Path:
    """Folder of the sample stations shipped with the source tree."""
    return Path(__file__).resolve().parents[2] / "station_data"


@dataclass
class WorkflowConfig:
    """Everything a ``noisecorr run`` needs.

    Attributes
    ----------
    data : str or None
        SDS archive root or a folder of miniSEED/SAC files. ``None`` (and no ``fdsn``)
        uses the bundled ``station_data/``.
    inventory : str or None
        StationXML file with instrument responses (default: ``stations.xml`` beside the
        data when it exists).
    fdsn : str or None
        Base URL of FDSN web services (dataselect and station); used instead of ``data``.
    start, end : str or None
        Time span (ISO 8601). Default: the span announced by the data's ``manifest.json``
        (bundled and synthetic data), else required.
    stations : int or None
        Use the first N stations sorted by code. If N exceeds the stations available and
        no ``data`` is given, a synthetic network of N stations is generated and cached.
    network, channel : str
        Selection patterns (``fnmatch``) for networks and channels, e.g. ``"*"``, ``"?HZ"``.
    channel_priority : list of str or str
        When a station has several channels of one orientation (``HHZ`` and ``BHZ``), which
        channel group is kept: fnmatch patterns on channel codes, best first (default
        :data:`DEFAULT_CHANNEL_PRIORITY`; a string is split at commas); channels matching
        none are dropped. See :func:`pes.fetch.select_channels`.
    location_priority : list of str or str
        Location codes, best first (``""``: the empty location; a string is split at
        commas: ``",00,10"``); unlisted ones come after, lexically. The channel priority
        decides before the location.
    all_locations : bool
        Keep every location of a station as a station of its own, ``NET.STA.LOC``
        (``NET.STA`` for the empty location) in pair keys and results; default: one
        location per station, results keyed ``NET.STA``.
    chunk_length : float
        Seconds of data preprocessed and correlated at once (a "day"; 86400 by default).
    mapping : str
        ``sequential``, ``multiprocess``, ``mpi`` or ``storm``.
    processes : int or None
        Worker processes or MPI ranks.
    out : str
        Output folder (results ``results.h5``, plots, logs).
    resume : bool
        Skip pairs already complete in ``out`` instead of refusing to overwrite.
    compression : str or None
        HDF5 compression of the stacks: ``None``, ``"gzip"`` or ``"lzf"``.
    synthetic_hours, synthetic_seed, synthetic_velocity : float, int, float
        Parameters of a generated synthetic network (see ``stations``).
    provenance : bool or str
        Record W3C-PROV lineage: ``True`` (stored in ``<out>/provenance.sqlite``) or a store
        URL (a file path, ``sqlite:///path`` or ``postgresql://...``).
    provenance_rules : dict or None
        What is recorded (see :mod:`noisecorr.provenance.rules`): ``record`` (PE name
        patterns), ``metadata`` (item keys kept on entities), ``store`` (``PE`` or
        ``PE.port`` patterns whose items are stored in full); ``None``: every PE, the
        domain metadata keys, and the stacks.
    lock_stale_after : float
        Seconds without heartbeat after which the output lock of a run on *another host* is
        taken over as stale (600 by default; a lock of this host is stale as soon as its
        process is gone). See :mod:`noisecorr.workflow.lock`.
    keep : str
        ``"stack"`` (default): one stack per pair and component. ``"chunks"``: also the
        correlation of every chunk (``chunk_length`` seconds, on the grid of the run's
        ``start``) as the pair's time series, stored in the sub-stack layout of
        :mod:`noisecorr.results.substacks` (``substack_len = chunk_length``, chunks without
        windows kept as gaps: count 0, NaN row). Sets ``processing.substack`` for the run.
    keep_chunks : dict or None
        With ``keep: chunks``, what is kept per chunk (the full stack is always written
        for every pair): ``components`` (list, e.g. ``[ZZ]``), ``pairs`` (a list of
        ``SRC-RCV`` or a file of them, one a line), ``distance_km`` (``[min, max]``,
        inclusive), ``maxlag`` (s, ``0 < maxlag <= processing.maxlag``, linear stacks
        only: each chunk row keeps the lags ``|lag| <= maxlag``, the full stack all of
        them). ``None``: every pair and component, every lag. See
        :class:`noisecorr.results.series.ChunkSelection`.
    processing : CorrelationParams
        The science parameters (NoisePy names).
    """

    data: str | None = None
    inventory: str | None = None
    fdsn: str | None = None
    start: str | None = None
    end: str | None = None
    stations: int | None = None
    network: str = "*"
    channel: str = "*"
    channel_priority: list = field(default_factory=lambda: list(DEFAULT_CHANNEL_PRIORITY))
    location_priority: list = field(default_factory=lambda: list(DEFAULT_LOCATION_PRIORITY))
    all_locations: bool = False
    chunk_length: float = 86400.0
    mapping: str = "sequential"
    processes: int | None = None
    out: str = DEFAULT_OUT
    resume: bool = False
    compression: str | None = None
    synthetic_hours: float = 2.0
    synthetic_seed: int = 0
    synthetic_velocity: float = 3.0
    provenance: bool | str = False
    provenance_rules: dict | None = None
    memory: str | None = None
    scratch: str | None = None
    tiled: bool = True
    lock_stale_after: float = 600.0
    keep: str = "stack"
    keep_chunks: dict | None = None
    processing: CorrelationParams = field(default_factory=CorrelationParams)

    def __post_init__(self):
        self.validate()

    # -- validation ------------------------------------------------------------------------
    def validate(self):
        if self.mapping not in MAPPINGS + ("simple", "multi"):
            raise ConfigError(f"mapping: {self.mapping!r} is not one of {', '.join(MAPPINGS)}")
        for name in ("stations", "processes"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ConfigError(f"{name}: must be a positive integer or null, got {v!r}")
        if self.stations is not None and self.stations < 2:
            raise ConfigError(f"stations: at least 2 stations are needed for a pair, got {self.stations}")
        if not (isinstance(self.chunk_length, (int, float)) and self.chunk_length > 0):
            raise ConfigError(f"chunk_length: must be a positive number of seconds, got {self.chunk_length!r}")
        if self.chunk_length < self.processing.cc_len:
            raise ConfigError(
                f"chunk_length: {self.chunk_length} s is shorter than processing.cc_len "
                f"{self.processing.cc_len} s, so no window fits"
            )
        if not (isinstance(self.provenance, bool) or (isinstance(self.provenance, str) and self.provenance.strip())):
            raise ConfigError(f"provenance: must be true, false or a store URL, got {self.provenance!r}")
        if self.provenance_rules is not None:
            from noisecorr.provenance.rules import Rules, RulesError

            try:
                Rules.from_dict(self.provenance_rules)
            except RulesError as exc:
                raise ConfigError(str(exc)) from None
        if self.memory is not None:
            from noisecorr.tiles.plan import parse_memory

            try:
                parse_memory(self.memory)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"memory: {exc}") from None
        if self.scratch is not None and not (isinstance(self.scratch, str) and self.scratch.strip()):
            raise ConfigError(f"scratch: must be a folder path or null, got {self.scratch!r}")
        self._validate_priorities()
        if isinstance(self.lock_stale_after, bool) or not (isinstance(self.lock_stale_after, (int, float))
                                                           and self.lock_stale_after > 0):
            raise ConfigError(f"lock_stale_after: must be a positive number of seconds, got {self.lock_stale_after!r}")
        self._validate_keep()
        if not isinstance(self.tiled, bool):
            raise ConfigError(f"tiled: must be true or false, got {self.tiled!r}")
        if self.compression not in (None, "gzip", "lzf"):
            raise ConfigError(f"compression: {self.compression!r} is not one of null, gzip, lzf")
        if self.data is not None and self.fdsn is not None:
            raise ConfigError("data and fdsn: give one source of waveforms, not both")
        for name in ("synthetic_hours", "synthetic_velocity"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0):
                raise ConfigError(f"{name}: must be a positive number, got {v!r}")
        for name in ("start", "end"):
            v = getattr(self, name)
            if v is not None:
                from obspy import UTCDateTime

                try:
                    UTCDateTime(str(v))
                except Exception:
                    raise ConfigError(f"{name}: {v!r} is not an ISO 8601 time (e.g. 2024-01-01T00:00:00)") from None
        if self.start and self.end:
            from obspy import UTCDateTime

            if UTCDateTime(str(self.end)) <= UTCDateTime(str(self.start)):
                raise ConfigError(f"end: {self.end} is not after start {self.start}")
        return self

    def _validate_keep(self):
        if self.keep not in KEEP:
            raise ConfigError(f"keep: {self.keep!r} is not one of {', '.join(KEEP)}")
        if self.keep_chunks is not None:
            from noisecorr.results.series import ChunkSelection

            if self.keep != "chunks":
                raise ConfigError("keep_chunks: restricts what keep: chunks keeps per chunk; "
                                  f"it needs keep: chunks (keep is {self.keep!r})")
            try:
                sel = ChunkSelection.from_config(self.keep_chunks, run_maxlag=self.processing.maxlag)
            except ValueError as exc:
                raise keep_chunks_error(exc) from None
            extra = sorted((sel.components or set()) - set(self.processing.components))
            if extra:
                raise ConfigError(f"keep_chunks: components {extra} are not computed by the run "
                                  f"(processing.components: {list(self.processing.components)})")
            if sel.maxlag is not None and self.processing.stack_method != "linear":
                raise ConfigError(
                    f"keep_chunks.maxlag: needs processing.stack_method linear (it is "
                    f"{self.processing.stack_method!r}): an append updates a {self.processing.stack_method} "
                    "stack from its per-chunk rows, which a shorter per-chunk maxlag leaves without "
                    "the outer lags; drop keep_chunks.maxlag or use linear stacks")
        if self.keep == "chunks":
            p = self.processing
            if p.substack and abs(p.substack_len - self.chunk_length) > 1e-9:
                raise ConfigError(
                    f"keep: chunks keeps one sub-stack per chunk (substack_len = chunk_length "
                    f"{self.chunk_length} s); processing.substack_len {p.substack_len} s asks for "
                    "another span: drop it or use substack without keep: chunks")
            ratio = self.chunk_length / self.processing.cc_len
            if abs(ratio - round(ratio)) > 1e-9:
                raise ConfigError(
                    f"keep: chunks keeps one row per chunk, so chunk_length ({self.chunk_length} s) "
                    f"must be a multiple of processing.cc_len ({self.processing.cc_len} s)")

    @property
    def series_maxlag(self) -> float | None:
        """``keep_chunks.maxlag`` (s): the lags kept per chunk, ``None`` for the run's maxlag."""
        if self.keep != "chunks" or not isinstance(self.keep_chunks, dict):
            return None
        value = self.keep_chunks.get("maxlag")
        return None if value is None else float(value)

    def results_params(self, start=None) -> dict:
        """The ``params`` a run of this configuration starting at ``start`` stores in its
        results file (what a resume and an append compare): the processing of
        :meth:`chunk_params`, ``chunk_length`` and, with a shorter per-chunk maxlag,
        ``keep_chunks.maxlag``."""
        out = {"processing": self.chunk_params(start).to_dict(), "chunk_length": self.chunk_length}
        if self.series_maxlag is not None:
            out["keep_chunks"] = {"maxlag": self.series_maxlag}
        return out

    def chunk_params(self, start=None) -> CorrelationParams:
        """The processing parameters the run uses: with ``keep: chunks`` sub-stacks of one
        chunk each (``substack_len = chunk_length``) on the grid of the chunks that start
        at ``start`` (UTCDateTime or ISO text; the origin is the grid's first point after
        the epoch, so any run starting on that grid shares it); a configured
        ``processing.substack_origin`` or ``start=None`` keeps ``substack_origin``. Else
        ``processing`` unchanged."""
        p = self.processing
        if self.keep != "chunks":
            return p
        d = {**p.to_dict(), "substack": True, "substack_len": float(self.chunk_length)}
        if start is not None and p.substack_origin is None:
            # the first grid point after the epoch, so that runs appended later (another
            # start on the same grid) share the grid and the parameters
            from obspy import UTCDateTime

            d["substack_origin"] = str(UTCDateTime(UTCDateTime(start).timestamp % float(self.chunk_length)))
        try:
            return CorrelationParams.from_dict(d)
        except ValueError as exc:
            raise ConfigError(f"keep: chunks: {exc}") from None

    def _validate_priorities(self):
        # a comma-separated string (handy in NOISECORR_* variables and flags) is a list
        if isinstance(self.channel_priority, str):
            self.channel_priority = [p.strip() for p in self.channel_priority.split(",")]
        if isinstance(self.location_priority, str):
            self.location_priority = [p.strip() for p in self.location_priority.split(",")]
        cp, lp = self.channel_priority, self.location_priority
        if not (isinstance(cp, (list, tuple)) and cp and all(isinstance(p, str) and p.strip() for p in cp)):
            raise ConfigError(f"channel_priority: must be a non-empty list of channel code patterns such as "
                              f'["HH?", "BH?", "EH?"], got {cp!r}')
        if not isinstance(lp, (list, tuple)):
            raise ConfigError(f"location_priority: must be a list of location codes such as [\"\", \"00\", \"10\"], "
                              f"got {lp!r}")
        for loc in lp:
            if not isinstance(loc, str):
                raise ConfigError(f"location_priority: {loc!r} is not a string; quote location codes in YAML "
                                  f"(\"00\", not 00, which YAML reads as the number 0)")
            if loc != "--" and (len(loc) > 2 or not all(c.isalnum() for c in loc)):
                raise ConfigError(f"location_priority: {loc!r} is not a location code (0 to 2 letters or "
                                  f"digits, or \"--\" for the empty location)")
        if not isinstance(self.all_locations, bool):
            raise ConfigError(f"all_locations: must be true or false, got {self.all_locations!r}")

    # -- (de)serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "processing"}
        d["processing"] = self.processing.to_dict()
        return d

    def replace(self, **changes) -> "WorkflowConfig":
        """A validated copy with ``changes`` (``processing`` keys may be given flat)."""
        top = {f.name for f in fields(self)}
        proc = {k: changes.pop(k) for k in list(changes) if k not in top}
        if isinstance(changes.get("processing"), dict):
            proc = {**changes.pop("processing"), **proc}
        processing = self.processing
        if proc:
            try:
                processing = CorrelationParams.from_dict({**self.processing.to_dict(), **proc})
            except ValueError as exc:
                raise ConfigError(f"processing: {exc}") from None
        return dataclasses.replace(self, processing=processing, **changes)


def _top_level_keys():
    return {f.name for f in fields(WorkflowConfig)} - {"processing"}


def _processing_keys():
    return set(CorrelationParams().to_dict())


def from_mapping(values: dict, base: WorkflowConfig | None = None, where="config") -> WorkflowConfig:
    """Apply a dict of settings (file or environment) on top of ``base``; unknown keys fail."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(values).__name__}")
    top, proc_keys = _top_level_keys(), _processing_keys()
    changes = {}
    for key, value in values.items():
        if key == "processing":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: processing must be a mapping of NoisePy parameters")
            unknown = set(value) - proc_keys
            if unknown:
                raise ConfigError(
                    f"{where}: unknown processing key(s) {sorted(unknown)}; known: {sorted(proc_keys)}"
                )
            changes.setdefault("processing", {}).update(value)
        elif key in top:
            changes[key] = value
        elif key in proc_keys:  # NoisePy users write them flat
            changes.setdefault("processing", {})[key] = value
        else:
            raise ConfigError(f"{where}: unknown key {key!r}; known keys: {sorted(top)} and processing.*")
    try:
        return (base or WorkflowConfig()).replace(**changes)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_yaml(path) -> dict:
    """Read a YAML config safely; errors name the file (and line when YAML knows it)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return values or {}


def _coerce(text, example):
    """Parse an environment string into the type of ``example`` (YAML scalar rules)."""
    if isinstance(example, list) and not text.lstrip().startswith("["):
        return text  # a comma-separated list ("HH?,BH?"): the field's validation splits it
    value = yaml.safe_load(text)
    if isinstance(example, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def from_environment(environ=None) -> dict:
    """Settings from ``NOISECORR_<KEY>`` variables (top-level and processing keys)."""
    environ = os.environ if environ is None else environ
    defaults = WorkflowConfig().to_dict()
    out = {}
    for key in sorted(_top_level_keys() | _processing_keys()):
        var = f"NOISECORR_{key.upper()}"
        if var in environ:
            example = defaults.get(key, defaults["processing"].get(key))
            out[key] = _coerce(environ[var], example)
    return out


def load_config(path=None, environ=None, overrides=None) -> WorkflowConfig:
    """Build the configuration: defaults < file < environment < ``overrides`` (flags).

    ``overrides`` values that are ``None`` are ignored (flags not given).
    """
    config = WorkflowConfig()
    if path is not None:
        config = from_mapping(load_yaml(path), config, where=f"config file {path}")
    env = from_environment(environ)
    if env:
        config = from_mapping(env, config, where="environment (NOISECORR_*)")
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    if flags:
        config = from_mapping(flags, config, where="command line")
    return config
