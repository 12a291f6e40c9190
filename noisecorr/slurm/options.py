"""Job options of ``noisecorr slurm``: parsing, validation against a profile, the memory
estimate of the per-pair path (the tiled path's is in :mod:`noisecorr.slurm.memory`).

Every check names the option it refuses (``--nodes``, ``--time``...), before anything is
written or submitted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from .errors import SlurmOptionError
from .profiles import Profile

_TIME = re.compile(r"^(?:(?P<d>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?"
                   r"|(?P<h>\d+):(?P<m>\d+):(?P<s>\d+)|(?P<mm>\d+):(?P<ss>\d+)|(?P<only>\d+))$")


def parse_time(text: str, option: str = "--time") -> int:
    """Seconds of a SLURM time limit: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``,
    ``D-HH:MM:SS`` (sbatch's formats).

    >>> parse_time("01:30:00"), parse_time("2-00:00:00"), parse_time("90"), parse_time("1-12")
    (5400, 172800, 5400, 129600)
    >>> parse_time("1h")
    Traceback (most recent call last):
    ...
    noisecorr.slurm.errors.SlurmOptionError: --time: '1h' is not a SLURM time (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)
    """
    m = _TIME.match(str(text).strip())
    if not m:
        raise SlurmOptionError(option, f"{text!r} is not a SLURM time (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)")
    g = {k: int(v) for k, v in m.groupdict().items() if v is not None}
    if "only" in g:
        seconds = g["only"] * 60
    elif "mm" in g:
        seconds = g["mm"] * 60 + g["ss"]
    elif "h" in g:
        seconds = g["h"] * 3600 + g["m"] * 60 + g["s"]
    else:
        seconds = g["d"] * 86400 + g["dh"] * 3600 + g.get("dm", 0) * 60 + g.get("ds", 0)
    if seconds <= 0:
        raise SlurmOptionError(option, f"{text!r} is not a positive time")
    return seconds


def format_time(seconds: int) -> str:
    """``D-HH:MM:SS`` (or ``HH:MM:SS`` under a day).

    >>> format_time(5400), format_time(180000)
    ('01:30:00', '2-02:00:00')
    """
    d, rest = divmod(int(seconds), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{d}-" if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


_MEM = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)B?$", re.IGNORECASE)


def parse_memory(text, option: str = "--mem") -> int:
    """Megabytes of a memory size: ``4000`` (MB, as sbatch), ``4000M``, ``4G``, ``1.5T``.

    >>> parse_memory("4G"), parse_memory("4000"), parse_memory("512M")
    (4096, 4000, 512)
    """
    m = _MEM.match(str(text).strip())
    if not m or float(m.group(1)) <= 0:
        raise SlurmOptionError(option, f"{text!r} is not a memory size (e.g. 4000, 4000M, 4G)")
    factor = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}[m.group(2).upper()]
    return int(math.ceil(float(m.group(1)) * factor))


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")


def parse_duration(text, option: str = "--chunk") -> float:
    """Seconds of ``3600``, ``3600s``, ``60m``, ``1h`` or ``1d``.

    >>> parse_duration("1h"), parse_duration("1d"), parse_duration(900)
    (3600.0, 86400.0, 900.0)
    """
    m = _DURATION.match(str(text).strip())
    if not m or float(m.group(1)) <= 0:
        raise SlurmOptionError(option, f"{text!r} is not a positive duration (e.g. 86400, 1d, 1h, 900s)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


@dataclass
class JobOptions:
    """What a job asks SLURM for and how it runs ``noisecorr``.

    Attributes mirror the command-line options of ``noisecorr slurm``; ``None`` means "not
    given" (the profile's value or SLURM's default applies).
    """

    kind: str                       # mpi | multiprocess | array | merge
    out: str
    nodes: int = 1
    tasks_per_node: int = 1
    cpus_per_task: int = 1
    mem: str | None = None          # per node, sbatch syntax; None: estimated
    time: str = "01:00:00"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    job_name: str | None = None
    modules: list = field(default_factory=list)
    activate: str | None = None
    python: str = "python"
    workdir: str | None = None
    launcher: str | None = None     # srun | mpiexec (mpi only); None: the profile's
    sbatch: list = field(default_factory=list)
    run_args: list = field(default_factory=list)   # noisecorr run arguments (config, stations...)
    max_parallel: int | None = None  # array: at most this many tasks at once

    @property
    def ntasks(self) -> int:
        return self.nodes * self.tasks_per_node


def validate(opts: JobOptions, profile: Profile) -> JobOptions:
    """Check ``opts`` against ``profile``; fill the partition and launcher defaults.

    Raises :class:`SlurmOptionError` naming the first bad option.
    """
    for name in ("nodes", "tasks_per_node", "cpus_per_task"):
        v = getattr(opts, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SlurmOptionError("--" + name.replace("_", "-"), f"must be a positive integer, got {v!r}")
    if opts.max_parallel is not None and opts.max_parallel < 1:
        raise SlurmOptionError("--max-parallel", f"must be a positive integer, got {opts.max_parallel!r}")
    if opts.kind in ("multiprocess", "array", "merge"):
        if opts.nodes != 1:
            raise SlurmOptionError("--nodes", f"a {opts.kind} job runs on one node, got {opts.nodes} "
                                   "(use `noisecorr slurm mpi` to span nodes)")
        if opts.tasks_per_node != 1:
            raise SlurmOptionError("--tasks-per-node", f"a {opts.kind} job is one task (its workers are "
                                   f"--cpus-per-task processes), got {opts.tasks_per_node}")
    seconds = parse_time(opts.time)
    opts.partition = opts.partition or profile.default_partition
    part = profile.partition(opts.partition)
    if part is not None:
        if part.max_nodes is not None and opts.nodes > part.max_nodes:
            raise SlurmOptionError("--nodes", f"{opts.nodes} nodes is more than partition {part.name} allows "
                                   f"(at most {part.max_nodes})")
        if part.min_nodes is not None and opts.nodes < part.min_nodes:
            raise SlurmOptionError("--nodes", f"{opts.nodes} nodes is fewer than partition {part.name} needs "
                                   f"(at least {part.min_nodes})")
        if part.max_time is not None and seconds > parse_time(part.max_time):
            raise SlurmOptionError("--time", f"{opts.time} is longer than partition {part.name} allows "
                                   f"({part.max_time})")
    cpus = profile.node_cpus(opts.partition)
    if cpus and opts.tasks_per_node * opts.cpus_per_task > cpus:
        raise SlurmOptionError(
            "--cpus-per-task" if opts.tasks_per_node == 1 else "--tasks-per-node",
            f"{opts.tasks_per_node} task(s) x {opts.cpus_per_task} CPU(s) is more than a node of "
            f"{profile.name}{' partition ' + opts.partition if opts.partition else ''} has ({cpus})")
    if opts.mem is not None:
        mb = parse_memory(opts.mem)
        node_gb = profile.node_memory_gb(opts.partition)
        if node_gb and mb > node_gb * 1024:
            raise SlurmOptionError("--mem", f"{opts.mem} per node is more than a node of {profile.name} has "
                                   f"({node_gb} GB)")
    launcher = opts.launcher or profile.launcher
    if launcher not in ("srun", "mpiexec"):
        raise SlurmOptionError("--launcher", f"{launcher!r} is not one of srun, mpiexec")
    opts.launcher = launcher
    if opts.job_name is not None and not re.match(r"^[A-Za-z0-9_.\-]+$", opts.job_name):
        raise SlurmOptionError("--job-name", f"{opts.job_name!r}: use letters, digits, '_', '.', '-'")
    for line in opts.sbatch:
        if not str(line).startswith("--"):
            raise SlurmOptionError("--sbatch", f"{line!r} is not a long sbatch option (e.g. --constraint=x)")
    return opts


# -- memory --------------------------------------------------------------------------------
#: Resident memory of one Python process with numpy, scipy, obspy and h5py imported (MB).
PROCESS_BASE_MB = 350
#: Safety factor on the estimate (temporaries, allocator fragmentation, HDF5 caches).
SAFETY = 1.5


def _next_fast_len(n: int) -> int:
    from scipy.fft import next_fast_len

    return int(next_fast_len(int(n), real=True))


def estimate_memory_mb(n_stations: int, processing, chunk_length: float, n_chunks: int,
                       processes_per_node: int, nodes: int = 1) -> int:
    """Memory per node (MB) of a run *without the tiled stage* (RTZ components, provenance,
    ``tiled: false``), which correlates pair by pair with every channel's full spectra.

    Runs with the tiled stage take ``--mem`` from the tile plan instead
    (:func:`noisecorr.slurm.memory.job_memory`). The formula of the per-pair path::

        c      = n_stations * n_orientations            channels (1 for ZZ, 3 for ENZ/RTZ pairs)
        w      = floor((chunk_length - cc_len) / step) + 1      windows per channel-chunk
        nfft   = next_fast_len(cc_len * fs * (2 if zero_pad else 1))
        S      = c * w * (nfft // 2 + 1) * 8 B           spectra of one chunk (complex64)
        L      = 2 * round(maxlag * fs) + 1              lags
        P      = n_stations * (n_stations - 1) / 2 * n_components
        K      = P * L * 8 B                             running float64 sums (linear stack)
               (pws, robust, substacks: noisecorr.signal.stack.stack_memory_bytes, the
               states per sub-stack span and robust piece, not per window)
        node   = SAFETY * ((S + K) / nodes + processes_per_node * PROCESS_BASE_MB)

    with ``SAFETY`` = 1.5 and ``PROCESS_BASE_MB`` = 350, rounded up to a whole GB. Spectra
    and stacks spread over the nodes (group-by routing), the per-process base does not.

    >>> from noisecorr.signal.params import CorrelationParams
    >>> p = CorrelationParams(cc_len=1800.0, step=1800.0, sampling_rate=20.0, maxlag=200.0)
    >>> estimate_memory_mb(1000, p, 86400.0, 1, 48, nodes=10) // 1024   # GB per node
    32
    """
    fs = float(processing.sampling_rate)
    orientations = {c for pair in processing.components for c in pair}
    channels = n_stations * max(1, len(orientations))
    windows = max(1, int(math.floor((chunk_length - processing.cc_len) / processing.step)) + 1)
    nfft = _next_fast_len(processing.cc_len * fs * (2 if processing.zero_pad else 1))
    spectra = channels * windows * (nfft // 2 + 1) * 8
    lags = 2 * int(round(processing.maxlag * fs)) + 1
    pairs = n_stations * (n_stations - 1) // 2 * len(processing.components)
    stacks = pairs * lags * 8
    if processing.stack_method != "linear" or processing.substack:
        from noisecorr.signal.stack import stack_memory_bytes

        stacks = stack_memory_bytes(pairs, lags, processing.stack_method, chunk_length * max(1, n_chunks),
                                    chunk_length, processing.substack_len if processing.substack else None)
    total = SAFETY * ((spectra + stacks) / 2**20 / nodes + processes_per_node * PROCESS_BASE_MB)
    return int(math.ceil(total / 1024.0)) * 1024
