"""``noisecorr slurm mpi|multiprocess|array|profiles`` and ``noisecorr merge``."""

from __future__ import annotations

from pathlib import Path

import click

from .errors import MergeError, SlurmOptionError


def _job_options(f):
    """The options every ``noisecorr slurm`` job command takes."""
    options = [
        click.option("--profile", default="generic", show_default=True,
                     help="Cluster profile: a name in configs/clusters/ (generic, supermuc-ng) or a YAML path."),
        click.option("--out", required=True, help="Output folder of the run (results, logs/, jobs/)."),
        click.option("--config", "config_file", help="Workflow YAML configuration (see configs/)."),
        click.option("--stations", type=int, help="Use the first N stations (noisecorr run --stations)."),
        click.option("--data", help="SDS archive or folder of waveforms (noisecorr run --data)."),
        click.option("--inventory", help="StationXML (noisecorr run --inventory)."),
        click.option("--start", help="Start of the span, ISO 8601 (default: the config's or the data's)."),
        click.option("--end", help="End of the span, ISO 8601."),
        click.option("--partition", help="SLURM partition (default: the profile's)."),
        click.option("--account", help="Account/project to charge (SuperMUC-NG: your project id)."),
        click.option("--qos", help="Quality of service."),
        click.option("--time", "time_", default="01:00:00", show_default=True,
                     help="Time limit: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS."),
        click.option("--mem", help="Memory per node (4000, 4000M, 4G); default: estimated from the config."),
        click.option("--cpus-per-task", type=int, default=1, show_default=True, help="CPUs per task."),
        click.option("--module", "modules", multiple=True, help="Module to load (repeatable)."),
        click.option("--activate", help="Shell line activating the environment, e.g. 'source /p/.venv/bin/activate'."),
        click.option("--python", default="python", show_default=True, help="Python that runs noisecorr in the job."),
        click.option("--workdir", help="Folder the job runs in (default: the current one)."),
        click.option("--job-name", help="Job name (default noisecorr-<kind>)."),
        click.option("--sbatch", "sbatch_extra", multiple=True, help="Extra sbatch option, e.g. --sbatch=--constraint=x."),
        click.option("--templates", type=click.Path(file_okay=False), help="Template folder (default scripts/slurm/)."),
        click.option("--write", "write_dir", type=click.Path(file_okay=False),
                     help="Also save the scripts in this folder (--submit saves them in OUT/jobs/)."),
        click.option("--dry-run", is_flag=True, help="Print the scripts (the default when --submit is not given)."),
        click.option("--submit", is_flag=True, help="Submit with sbatch and print the job id(s)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _render_and_act(kind, profile, out, config_file, stations, data, inventory, start, end, partition, account,
                    qos, time_, mem, cpus_per_task, modules, activate, python, workdir, job_name, sbatch_extra,
                    templates, write_dir, dry_run, submit, nodes=1, tasks_per_node=1, launcher=None, chunk=None,
                    max_parallel=None):
    from .options import JobOptions
    from .profiles import load_profile
    from .render import RunSpec, render_job

    if dry_run and submit:
        raise click.UsageError("--dry-run and --submit: choose one")
    try:
        prof = load_profile(profile)
        opts = JobOptions(kind=kind, out=out, nodes=nodes, tasks_per_node=tasks_per_node, cpus_per_task=cpus_per_task,
                          mem=mem, time=time_, partition=partition, account=account, qos=qos, job_name=job_name,
                          modules=list(modules), activate=activate, python=python, workdir=workdir, launcher=launcher,
                          sbatch=list(sbatch_extra), max_parallel=max_parallel)
        run = RunSpec(config=config_file, stations=stations, data=data, inventory=inventory, start=start, end=end,
                      chunk=chunk)
        jobs = render_job(opts, prof, run, templates=templates)
    except SlurmOptionError as exc:
        raise click.UsageError(str(exc)) from None
    out_path = Path(out).resolve()
    save_dirs = [Path(write_dir)] if write_dir else []
    if submit:
        save_dirs.append(out_path / "jobs")
    saved = {}
    for d in save_dirs:
        d.mkdir(parents=True, exist_ok=True)
        for job in jobs:
            p = d / job.filename
            p.write_text(job.text)
            p.chmod(0o755)
            saved.setdefault(job.kind, p)
    if not submit:
        for job in jobs:
            note = ""
            if job.memory_estimated and job.memory_mb:
                note = f" (memory {job.memory_mb} MB per node, estimated: {job.memory_note})"
            click.echo(f"# ---- {job.filename}{note}")
            click.echo(job.text, nl=False)
        if kind == "array":
            click.echo(f"# submit: mkdir -p {out_path}/logs && A=$(sbatch --parsable {jobs[0].filename}) && "
                       f"sbatch --dependency=afterok:$A {jobs[1].filename}")
        for d in save_dirs:
            click.echo(f"# saved in {d}", err=True)
        return 0
    from .submit import SubmitError, sbatch

    (out_path / "logs").mkdir(parents=True, exist_ok=True)
    try:
        first = sbatch(saved[jobs[0].kind])
        click.echo(f"{jobs[0].kind} job {first}")
        if kind == "array":
            merge = sbatch(saved["merge"], dependency=f"afterok:{first}")
            click.echo(f"merge job {merge} (after array job {first} succeeds)")
    except SubmitError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"logs in {out_path / 'logs'}")
    return 0


@click.group("slurm")
def slurm_group():
    """SLURM job scripts for noisecorr runs (MPI across nodes, one node, or a job array).

    Scripts come from the templates in scripts/slurm/, checked against a cluster profile
    (configs/clusters/): --dry-run prints them, --submit runs sbatch. Every script uses
    `set -euo pipefail`, logs to OUT/logs/%x-%j.out and resumes when run again.

    Memory per node, when --mem is not given, comes from the tile plan the run will
    choose (the run's own memory model; see noisecorr.slurm.memory), divided by 0.8; the
    job passes 80 % of --mem on to `noisecorr run --memory`, so the run plans within its
    allocation. Without --mem (whole-node profiles) the run reads its limit from the
    job's cgroup and SLURM_MEM_PER_NODE / SLURM_MEM_PER_CPU.
    """


@slurm_group.command("mpi")
@_job_options
@click.option("--nodes", type=int, default=1, show_default=True, help="Nodes.")
@click.option("--tasks-per-node", type=int, default=1, show_default=True, help="MPI ranks per node.")
@click.option("--launcher", type=click.Choice(["srun", "mpiexec"]),
              help="srun --mpi=pmi2 (MPICH wheel) or mpiexec inside the allocation (default: the profile's).")
def mpi_command(nodes, tasks_per_node, launcher, **kw):
    """One MPI run of the workflow across nodes (noisecorr run --mapping mpi)."""
    return _render_and_act("mpi", nodes=nodes, tasks_per_node=tasks_per_node, launcher=launcher, **kw)


@slurm_group.command("multiprocess")
@_job_options
def multiprocess_command(**kw):
    """One node, --cpus-per-task worker processes (noisecorr run --mapping multiprocess)."""
    return _render_and_act("multiprocess", **kw)


@slurm_group.command("array")
@_job_options
@click.option("--chunk", help="Time span per array task: seconds or 1d, 6h, 3600s (default: chunk_length, a day); "
                              "a whole multiple of the config's chunk_length.")
@click.option("--max-parallel", type=int, help="Run at most this many array tasks at once (--array=...%N).")
def array_command(chunk, max_parallel, **kw):
    """A job array splitting the time span, then a merge job combining the stacks.

    Task i runs noisecorr run over its span into OUT/tasks/task-NNNN/ (sequential, or
    multiprocess with --cpus-per-task > 1); the merge job (--dependency=afterok on the
    array) writes OUT/results.h5 with the window-weighted linear stacks.
    """
    return _render_and_act("array", chunk=chunk, max_parallel=max_parallel, **kw)


@slurm_group.command("profiles")
def profiles_command():
    """List the cluster profiles and their partitions."""
    from .options import format_time, parse_time
    from .profiles import available_profiles, load_profile

    for name in available_profiles():
        p = load_profile(name)
        node = f"{p.cpus or '?'} CPUs, {p.memory_gb or '?'} GB per node"
        click.echo(f"{name:<14}{p.description} ({node}; launcher {p.launcher})")
        for part in p.partitions.values():
            limit = format_time(parse_time(part.max_time)) if part.max_time else "?"
            click.echo(f"  {part.name:<10}nodes {part.min_nodes or 1}-{part.max_nodes or '?'}, time <= {limit}"
                       + (f", {part.memory_gb} GB per node" if part.memory_gb else ""))
    return 0


@click.command("merge")
@click.argument("tasks", nargs=-1, required=True)
@click.option("--out", required=True, help="Folder of the final results.h5.")
@click.option("--start", help="The span the tasks must cover (checked).")
@click.option("--end", help="End of that span.")
@click.option("--tasks", "expected", type=click.IntRange(min=1), help="Number of task folders task-NNNN expected.")
@click.option("--no-plot", is_flag=True, help="Skip the record section.")
def merge_command(tasks, out, start, end, expected, no_plot):
    """Combine per-task results (array jobs) into the final stacks of OUT/results.h5.

    TASKS are task folders (each with results.h5) or folders of task-NNNN folders. Linear
    stacks are weighted by their window counts; the task spans must tile the span.
    """
    from noisecorr.workflow.lock import OutputLockError

    from .merge import merge_tasks

    try:
        report = merge_tasks(tasks, out, start=start, end=end, expected=expected, plot=not no_plot)
    except (MergeError, OutputLockError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(report.table())
    return 0


def commands():
    return [slurm_group, merge_command]
