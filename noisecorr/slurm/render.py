"""Render the job scripts of ``scripts/slurm/`` for a run.

Templates are bash with ``{{NAME}}`` placeholders (no template engine: ``$`` stays bash's).
Every placeholder must be filled and every value that comes from the user is shell-quoted, so
a rendered script always passes ``bash -n``. ``#SBATCH`` lines come from the job options and
the cluster profile.

Examples
--------
>>> from noisecorr.slurm.profiles import load_profile
>>> from noisecorr.slurm.options import JobOptions
>>> opts = JobOptions(kind="mpi", out="/scratch/run", nodes=2, tasks_per_node=4, time="00:30:00",
...                   mem="8G", partition="test", account="pn12ab")
>>> job = render_job(opts, load_profile("supermuc-ng"), RunSpec(stations=10, start="2024-01-01",
...                  end="2024-01-02"))[0]
>>> [line for line in job.text.splitlines() if line.startswith("#SBATCH --nodes")]
['#SBATCH --nodes=2']
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SlurmOptionError
from .options import JobOptions, parse_duration, parse_memory, validate
from .profiles import Profile

KINDS = ("mpi", "multiprocess", "array")
_PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")


def templates_dir() -> Path:
    """``scripts/slurm`` of the source tree."""
    return Path(__file__).resolve().parents[2] / "scripts" / "slurm"


@dataclass
class RunSpec:
    """What the job's ``noisecorr run`` computes (options passed through to it)."""

    config: str | None = None
    stations: int | None = None
    data: str | None = None
    inventory: str | None = None
    start: str | None = None
    end: str | None = None
    chunk: str | None = None        # array: seconds per array task (default: chunk_length)


@dataclass
class Job:
    """A rendered job script."""

    kind: str                       # mpi | multiprocess | array | merge
    filename: str
    text: str
    memory_mb: int | None = None
    memory_estimated: bool = False
    spans: list = field(default_factory=list)   # array: [(start, end)] ISO strings
    memory_budget: int | None = None  # bytes: the job's noisecorr run --memory (all workers)
    memory_note: str = ""             # where memory_mb comes from (printed by --dry-run)
    plan: object = None               # the tile plan the run will choose (TilePlan), if tiled


def fill(template: str, values: dict, name: str = "template") -> str:
    """Replace every ``{{NAME}}``; a placeholder without a value is an error.

    >>> fill("echo {{A}}", {"A": "'x y'"})
    "echo 'x y'"
    """
    missing = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - set(values))
    if missing:
        raise KeyError(f"{name}: no value for placeholder(s) {missing}")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def _q(value) -> str:
    return shlex.quote(str(value))


def _load_run_config(run: RunSpec):
    """The workflow configuration the job will see (file < NOISECORR_* env < these flags)."""
    from noisecorr.workflow.config import ConfigError, load_config

    overrides = dict(stations=run.stations, data=run.data, inventory=run.inventory, start=run.start, end=run.end)
    try:
        return load_config(run.config, overrides=overrides)
    except ConfigError as exc:
        raise SlurmOptionError("--config", str(exc)) from None


def _span_and_stations(config, need_stations: bool):
    """``(start, end, n_stations)`` of the run; reads the data's station list only if needed."""
    from obspy import UTCDateTime

    start = UTCDateTime(config.start) if config.start else None
    end = UTCDateTime(config.end) if config.end else None
    n = config.stations
    if start is None or end is None or (n is None and need_stations):
        from noisecorr.workflow.config import ConfigError
        from noisecorr.workflow.sources import resolve

        try:
            sources = resolve(config)
        except ConfigError as exc:
            raise SlurmOptionError("--start/--end", str(exc)) from None
        start, end = start or sources.start, end or sources.end
        n = n or len(sources.stations)
    return start, end, n


def run_arguments(run: RunSpec) -> list:
    """``noisecorr run`` arguments for the job (paths made absolute: jobs start elsewhere)."""
    args = []
    if run.config:
        path = Path(run.config)
        if not path.is_file():
            raise SlurmOptionError("--config", f"no such file {run.config}")
        args += ["--config", str(path.resolve())]
    if run.stations is not None:
        args += ["--stations", str(run.stations)]
    if run.data:
        args += ["--data", str(Path(run.data).resolve()) if Path(run.data).exists() else run.data]
    if run.inventory:
        args += ["--inventory", str(Path(run.inventory).resolve())]
    return args


def array_spans(start, end, chunk_seconds: float, chunk_length: float) -> list:
    """``[(start, end)]`` of the array tasks: ``chunk_seconds`` each, the last possibly shorter.

    ``chunk_seconds`` must be a whole multiple of the workflow's ``chunk_length``, so every task
    preprocesses exactly the chunks a single run over the whole span would (same windows, same
    stacks after the merge).

    >>> from obspy import UTCDateTime
    >>> [(str(a)[11:16], str(b)[11:16]) for a, b in array_spans(UTCDateTime("2024-01-01T22:30"),
    ...  UTCDateTime("2024-01-02T01:30"), 3600, 3600)]
    [('22:30', '23:30'), ('23:30', '00:30'), ('00:30', '01:30')]
    """
    ratio = chunk_seconds / chunk_length
    if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
        raise SlurmOptionError("--chunk", f"{chunk_seconds:g} s per array task is not a whole multiple of the "
                               f"workflow's chunk_length ({chunk_length:g} s), so tasks would cut chunks "
                               "differently from a single run; choose a multiple or set chunk_length")
    n = int(math.ceil((end - start) / chunk_seconds - 1e-9))
    return [(start + i * chunk_seconds, min(start + (i + 1) * chunk_seconds, end)) for i in range(n)]


def _setup_lines(opts: JobOptions, profile: Profile, threads: str) -> str:
    lines = []
    modules = list(profile.modules) + [m for m in opts.modules if m not in profile.modules]
    activate = opts.activate or profile.activate
    if modules or activate:
        # module and activation scripts often read unset variables: not under `set -u`
        lines.append("set +u")
        lines += [f"module load {_q(m)}" for m in modules]
        if activate:
            lines.append(activate)
        lines.append("set -u")
    lines += [
        "export PYTHONUNBUFFERED=1",
        f"export OMP_NUM_THREADS={threads} OPENBLAS_NUM_THREADS={threads} MKL_NUM_THREADS={threads}",
    ]
    return "\n".join(lines)


def _sbatch_lines(opts: JobOptions, profile: Profile, kind: str, logs: Path, memory_mb, array=None) -> str:
    name = opts.job_name or f"noisecorr-{kind}"
    log = f"{logs}/%x-%A_%a.out" if array else f"{logs}/%x-%j.out"
    lines = [f"--job-name={name}", f"--output={log}"]
    if opts.partition:
        lines.append(f"--partition={opts.partition}")
    if opts.account:
        lines.append(f"--account={opts.account}")
    if opts.qos:
        lines.append(f"--qos={opts.qos}")
    lines += [f"--nodes={opts.nodes}", f"--ntasks-per-node={opts.tasks_per_node}",
              f"--cpus-per-task={opts.cpus_per_task}"]
    if memory_mb is not None:
        lines.append(f"--mem={memory_mb}M")
    lines.append(f"--time={opts.time}")
    if array:
        lines.append(f"--array={array}")
    lines += list(profile.sbatch) + [s for s in opts.sbatch if s not in profile.sbatch]
    for line in lines:
        if any(c in line for c in "\n\r"):
            raise SlurmOptionError("--sbatch", f"{line!r} spans lines")
    return "\n".join(f"#SBATCH {line}" for line in lines)


def _memory(opts: JobOptions, profile: Profile, config, n_stations, span, n_chunks, workers, workers_per_node):
    """``(mb or None, estimated, run budget or None, note, plan)`` of a job.

    ``mb``: ``--mem`` as given, else estimated from the tile plan (:mod:`noisecorr.slurm.memory`;
    None on whole-node profiles, where the run reads the node's limit itself). The run
    budget is the job's ``noisecorr run --memory`` (bytes, all workers).
    """
    from noisecorr.tiles.plan import format_bytes

    from .memory import check_memory, job_memory, run_budget

    node_gb = profile.node_memory_gb(opts.partition)
    if opts.mem is not None:
        mb = parse_memory(opts.mem)
        budget = run_budget(config, mb, workers, workers_per_node)
        plan = check_memory(config, n_stations, span, n_chunks, workers, budget, mb)
        return mb, False, budget, f"--mem as given; the run plans within {format_bytes(budget)}", plan
    option = "--nodes" if opts.kind == "mpi" else "--stations"
    est = job_memory(config, n_stations, span, n_chunks, workers, workers_per_node, opts.nodes,
                     node_mb=int(node_gb * 1024) if node_gb else None, option=option)
    if node_gb and est.mb > node_gb * 1024:
        raise SlurmOptionError(
            option,
            f"the run needs about {est.mb / 1024:.1f} GB per node ({est.how}) but a node of {profile.name} has "
            f"{node_gb} GB: " + ("use more nodes" if opts.kind == "mpi" else "use fewer stations or the mpi job")
            + ", or give --mem to override")
    if profile.whole_nodes:
        return None, True, None, est.how, est.plan
    return est.mb, True, run_budget(config, est.mb, workers, workers_per_node), est.how, est.plan


def _memory_arg(budget) -> str:
    return "" if budget is None else f" --memory {int(budget)}"


def render_job(opts: JobOptions, profile: Profile, run: RunSpec, templates: Path | None = None) -> list:
    """Render the scripts of one ``noisecorr slurm`` command.

    Returns a list of :class:`Job`: one for ``mpi`` and ``multiprocess``, two (the array and
    its merge job) for ``array``.
    """
    if opts.kind not in KINDS:
        raise SlurmOptionError("kind", f"{opts.kind!r} is not one of {', '.join(KINDS)}")
    validate(opts, profile)
    templates = Path(templates) if templates else templates_dir()
    config = _load_run_config(run)
    out = Path(opts.out).resolve()
    logs = out / "logs"
    workdir = Path(opts.workdir).resolve() if opts.workdir else Path.cwd()
    args = run_arguments(run)
    start, end, n_stations = _span_and_stations(config, True)
    span = min(float(config.chunk_length), float(end - start))
    chunks_total = max(1, int(math.ceil((end - start) / config.chunk_length - 1e-9)))
    common = {"SETUP": None, "LOGS": _q(logs), "OUT": _q(out), "WORKDIR": _q(workdir),
              "PYTHON": _q(opts.python) if "/" in opts.python or " " in opts.python else opts.python,
              "RUN_ARGS": "".join(" " + _q(a) for a in args)}

    def template(name):
        path = templates / f"{name}.sbatch"
        if not path.is_file():
            raise SlurmOptionError("--templates", f"no template {path}")
        return path.read_text()

    if opts.kind == "mpi":
        if config.processes is not None and config.processes != opts.ntasks:
            raise SlurmOptionError("--config", f"processes: {config.processes} in the configuration, but the job "
                                   f"starts {opts.ntasks} MPI rank(s) (--nodes x --tasks-per-node); remove it")
        run_args_start = f" --start {_q(start)} --end {_q(end)}" if run.start or run.end else ""
        mb, est, budget, note, plan = _memory(opts, profile, config, n_stations, span, chunks_total, opts.ntasks,
                                              opts.tasks_per_node)
        if opts.launcher == "srun":
            launch = (f'srun --mpi={_q(profile.mpi)} --ntasks="$SLURM_NTASKS" '
                      f'--cpus-per-task="${{SLURM_CPUS_PER_TASK:-1}}"')
        else:
            launch = 'mpiexec -n "$SLURM_NTASKS"'
        values = dict(common, SBATCH=_sbatch_lines(opts, profile, "mpi", logs, mb),
                      SETUP=_setup_lines(opts, profile, '"${SLURM_CPUS_PER_TASK:-1}"'),
                      NODES=opts.nodes, NTASKS=opts.ntasks, LAUNCHER=opts.launcher, LAUNCH=launch)
        values["RUN_ARGS"] = run_args_start + values["RUN_ARGS"] + _memory_arg(budget)
        return [Job("mpi", f"{opts.job_name or 'noisecorr-mpi'}.sbatch", fill(template("mpi"), values, "mpi.sbatch"),
                    mb, est, memory_budget=budget, memory_note=note, plan=plan)]

    if opts.kind == "multiprocess":
        run_args_start = f" --start {_q(start)} --end {_q(end)}" if run.start or run.end else ""
        workers = opts.cpus_per_task
        mb, est, budget, note, plan = _memory(opts, profile, config, n_stations, span, chunks_total, workers, workers)
        values = dict(common, SBATCH=_sbatch_lines(opts, profile, "multiprocess", logs, mb),
                      SETUP=_setup_lines(opts, profile, "1"), CPUS=opts.cpus_per_task)
        values["RUN_ARGS"] = run_args_start + values["RUN_ARGS"] + _memory_arg(budget)
        return [Job("multiprocess", f"{opts.job_name or 'noisecorr-multiprocess'}.sbatch",
                    fill(template("multiprocess"), values, "multiprocess.sbatch"), mb, est,
                    memory_budget=budget, memory_note=note, plan=plan)]

    # array + merge
    p = config.processing
    if p.stack_method != "linear" or p.substack:
        raise SlurmOptionError("--config", f"stack_method {p.stack_method!r}{' with substacks' if p.substack else ''}: "
                               "per-task results can be merged exactly only for linear stacks without substacks; "
                               "use the mpi or multiprocess job for pws/robust/substacks")
    chunk = parse_duration(run.chunk) if run.chunk else float(config.chunk_length)
    spans = array_spans(start, end, chunk, float(config.chunk_length))
    per_task_chunks = max(1, int(round(chunk / config.chunk_length)))
    workers = opts.cpus_per_task  # multiprocess with that many workers, or one sequential process
    mb, est, budget, note, plan = _memory(opts, profile, config, n_stations, min(span, chunk), per_task_chunks,
                                          workers, workers)
    n = len(spans)
    array = f"0-{n - 1}" + (f"%{opts.max_parallel}" if opts.max_parallel else "")
    tasks_dir = out / "tasks"
    mapping = "multiprocess" if opts.cpus_per_task > 1 else "sequential"
    processes = ' --processes "$SLURM_CPUS_PER_TASK"' if opts.cpus_per_task > 1 else ""
    iso = [(str(a), str(b)) for a, b in spans]
    common["RUN_ARGS"] += _memory_arg(budget)
    values = dict(common, SBATCH=_sbatch_lines(opts, profile, "array", logs, mb, array=array),
                  SETUP=_setup_lines(opts, profile, "1"), N_TASKS=n, CHUNK=f"{chunk:g}", TASKS_DIR=_q(tasks_dir),
                  STARTS=" ".join(_q(a) for a, _ in iso), ENDS=" ".join(_q(b) for _, b in iso),
                  MAPPING=mapping, PROCESSES=processes)
    array_job = Job("array", f"{opts.job_name or 'noisecorr-array'}.sbatch",
                    fill(template("array"), values, "array.sbatch"), mb, est, iso,
                    memory_budget=budget, memory_note=note, plan=plan)
    merge_opts = JobOptions(kind="merge", out=opts.out, time=opts.time, partition=opts.partition,
                            account=opts.account, qos=opts.qos, modules=opts.modules, activate=opts.activate,
                            python=opts.python, workdir=opts.workdir, sbatch=opts.sbatch,
                            job_name=(opts.job_name + "-merge") if opts.job_name else "noisecorr-merge")
    validate(merge_opts, profile)
    # the merge holds one pair from every task at a time, and the writer's checkpoint buffer
    merge_mb = None if profile.whole_nodes else 1024 * max(1, math.ceil(
        1.5 * (2 * 350 + 2000 * (2 * round(p.maxlag * p.sampling_rate) + 1) * 4 * 2 / 2**20) / 1024))
    merge_values = dict(common, SBATCH=_sbatch_lines(merge_opts, profile, "merge", logs, merge_mb),
                        SETUP=_setup_lines(merge_opts, profile, "1"), N_TASKS=n, TASKS_DIR=_q(tasks_dir),
                        START=_q(iso[0][0]), END=_q(iso[-1][1]))
    merge_job = Job("merge", f"{merge_opts.job_name}.sbatch", fill(template("merge"), merge_values, "merge.sbatch"),
                    merge_mb, True)
    return [array_job, merge_job]
