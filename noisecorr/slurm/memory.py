"""The memory a job asks SLURM for (``--mem``) and the budget it gives the run (``--memory``).

One memory model serves both sides: the tile planner's (:func:`noisecorr.tiles.plan.plan_tiles`,
through :func:`noisecorr.workflow.build.plan_for`, the very call the run makes). For the tiled
stage (every run with ENZ components that records no provenance):

1. the budget the planner may use: the configuration's ``memory`` if set; else, when the
   cluster profile knows a node's memory, :data:`~noisecorr.slurm.allocation.JOB_FRACTION`
   of it per node; else none (the plan the run prefers, memory being no constraint);
2. the plan chosen within it, ``peak`` bytes per worker (:func:`~noisecorr.tiles.plan.predict_peak_bytes`);
3. per node ``peak * workers_on_node`` (plus, for phase-weighted/robust stacks and
   sub-stacks, the per-window correlations the stack keeps, which the tile plan does not
   count: ``pairs * lags * 4 B * windows * chunks / nodes``), divided by ``JOB_FRACTION``
   and rounded up to 256 MiB: that is ``--mem``;
4. the job runs ``noisecorr run --memory B`` with ``B = JOB_FRACTION * --mem`` shared by the
   workers of a node, times the nodes (:func:`run_budget`; the configured ``memory`` if that
   is smaller): exactly the default the run would compute from ``SLURM_MEM_PER_NODE``
   inside the job (:func:`~noisecorr.slurm.allocation.default_memory_budget`). So the run
   plans within what the job was given, and chooses the plan of step 2: that plan fits in
   ``B``, and every plan the planner prefers needs more than the budget of step 1, which is
   at least ``B``.

A ``--mem`` given by the user is checked the same way: the run must find a plan within its
``B``, or ``noisecorr slurm`` refuses ``--mem`` before anything is submitted.

Runs without the tiled stage (RTZ rotation, provenance, ``tiled: false``) correlate pair by
pair with every channel's full spectra in one process: their ``--mem`` comes from
:func:`noisecorr.slurm.options.estimate_memory_mb`, a formula of that path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .allocation import JOB_FRACTION
from .errors import SlurmOptionError

_MB = 2**20
#: ``--mem`` is rounded up to a multiple of this many MiB.
ROUND_MB = 256


@dataclass(frozen=True)
class MemoryEstimate:
    """``--mem`` of a job and how it was found.

    Attributes
    ----------
    mb : int
        Memory per node (MiB, sbatch's ``--mem``).
    plan : TilePlan or None
        The tile plan the run will choose (None without the tiled stage).
    how : str
        One line saying where the number comes from (printed by ``--dry-run``).
    """

    mb: int
    plan: object
    how: str


def run_budget_bytes(mem_mb: int, workers: int, workers_per_node: int) -> int:
    """The ``noisecorr run --memory`` of a job with ``--mem=<mem_mb>M``: all workers together.

    The same arithmetic as the run's own default inside the job: ``JOB_FRACTION`` of the
    node's allocation, shared by the workers of a node.

    >>> run_budget_bytes(4000, workers=4, workers_per_node=2) == 2 * int(0.8 * 4000 * 2**20)
    True
    """
    per_worker = int(JOB_FRACTION * mem_mb * _MB) // max(1, workers_per_node)
    return per_worker * max(1, workers)


def run_budget(config, mem_mb: int, workers: int, workers_per_node: int) -> int:
    """The budget a job gives its run (``noisecorr run --memory``): :func:`run_budget_bytes`,
    or the configured ``memory`` where that is smaller (the job then honours both)."""
    from noisecorr.tiles.plan import parse_memory

    budget = run_budget_bytes(mem_mb, workers, workers_per_node)
    return min(budget, parse_memory(config.memory)) if config.memory else budget


def _extra_stack_bytes(config, n_stations, n_windows, n_chunks):
    p = config.processing
    if p.stack_method == "linear" and not p.substack:
        return 0
    pairs = n_stations * (n_stations - 1) // 2 * len(p.components)
    return pairs * (2 * p.maxlag_samples + 1) * 4 * n_windows * max(1, n_chunks)


def job_memory(config, n_stations: int, span: float, n_chunks: int, workers: int, workers_per_node: int,
               nodes: int = 1, node_mb: int | None = None, option: str = "--nodes") -> MemoryEstimate:
    """``--mem`` per node for a job running ``config`` (see the module docstring).

    Parameters
    ----------
    config : WorkflowConfig
    n_stations : int
        Stations of the run.
    span : float
        Seconds of one chunk of the run (``min(chunk_length, end - start)``).
    n_chunks : int
        Chunks the run (or one array task) stacks.
    workers, workers_per_node, nodes : int
        Workers of the whole run, of one node, and nodes.
    node_mb : int, optional
        Memory of one node (MiB) from the cluster profile.
    option : str
        The option named when the run cannot fit (``--nodes`` or ``--stations``).

    Raises
    ------
    SlurmOptionError
        No plan fits the node (or the configured ``memory``).
    """
    from noisecorr.tiles.plan import format_bytes, parse_memory
    from noisecorr.workflow.build import plan_for, tiled_path
    from noisecorr.workflow.config import ConfigError

    from .options import estimate_memory_mb

    if not tiled_path(config) or n_stations < 2:
        mb = estimate_memory_mb(n_stations, config.processing, config.chunk_length, n_chunks, workers_per_node, nodes)
        return MemoryEstimate(mb, None, "per-pair correlation (no tiled stage): noisecorr.slurm.options."
                                        "estimate_memory_mb")
    if config.memory:
        budget, where = parse_memory(config.memory), f"the configured memory {config.memory}"
    elif node_mb:
        budget = run_budget_bytes(node_mb, workers, workers_per_node)
        where = f"{JOB_FRACTION:.0%} of a node's {node_mb // 1024} GB"
    else:
        budget, where = None, "no limit"
    try:
        plan = plan_for(config, n_stations, span, n_chunks, workers, budget)
    except ConfigError as exc:
        raise SlurmOptionError(option, f"the run does not fit within {where}: {exc}") from None
    p = config.processing
    n_windows = max(1, int((span - p.cc_len) // p.step) + 1)
    node_bytes = plan.peak_bytes * workers_per_node + _extra_stack_bytes(config, n_stations, n_windows,
                                                                        n_chunks) / max(1, nodes)
    mb = ROUND_MB * int(math.ceil(node_bytes / JOB_FRACTION / _MB / ROUND_MB))
    how = (f"tile plan within {where}: {n_stations} stations in tiles of {plan.block_size}, panel "
           f"{plan.panel_size}, factors in {plan.store}, {format_bytes(plan.peak_bytes)} per worker x "
           f"{workers_per_node} worker(s) per node, / {JOB_FRACTION:.0%}")
    return MemoryEstimate(mb, plan, how)


def check_memory(config, n_stations: int, span: float, n_chunks: int, workers: int, budget: int, mem_mb: int):
    """The tile plan the run of a job with a given ``--mem`` will choose within ``budget``
    (:func:`run_budget`); None without the tiled stage.

    Raises
    ------
    SlurmOptionError
        ``--mem``: no plan fits, so the run would stop at its start.
    """
    from noisecorr.tiles.plan import format_bytes
    from noisecorr.workflow.build import plan_for, tiled_path
    from noisecorr.workflow.config import ConfigError

    if not tiled_path(config) or n_stations < 2:
        return None
    try:
        return plan_for(config, n_stations, span, n_chunks, workers, budget)
    except ConfigError as exc:
        raise SlurmOptionError("--mem", f"{mem_mb} MB per node gives the run {format_bytes(budget)} "
                               f"({JOB_FRACTION:.0%} of it for {workers} worker(s)), too little: {exc}") from None
