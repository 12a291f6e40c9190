"""``noisecorr run``, ``synth``, ``plot`` and ``info``: the seismology commands."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .config import DEFAULT_OUT, ConfigError
from .progress import ProgressPrinter


@click.command("run")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML configuration (see configs/).")
@click.option("--data", help="SDS archive or folder of miniSEED/SAC files (default: bundled station_data/).")
@click.option("--inventory", help="StationXML with instrument responses.")
@click.option("--fdsn", help="Base URL of FDSN web services to fetch from.")
@click.option("--start", help="Start time, ISO 8601.")
@click.option("--end", help="End time, ISO 8601.")
@click.option("--stations", type=int, help="Use the first N stations (sorted by code); more than exist: synthetic.")
@click.option("-m", "--mapping", type=click.Choice(["sequential", "multiprocess", "mpi", "storm", "dask", "simple",
                                                         "multi"]),
              help="How to enact the workflow.")
@click.option("-n", "--processes", type=click.IntRange(min=1), help="Worker processes or MPI ranks.")
@click.option("--scheduler", metavar="ADDRESS",
              help="Dask scheduler to run on (--mapping dask; default: $DASK_SCHEDULER_ADDRESS, else a local "
                   "cluster of -n worker processes started for the run). -n defaults to its workers.")
@click.option("--out", help=f"Output folder (default: ./{DEFAULT_OUT}).")
@click.option("--resume", is_flag=True, default=None, help="Continue an interrupted run, skipping complete pairs.")
@click.option("--append", is_flag=True, default=False,
              help="Add the chunks of --start..--end (default start: where the results end) that the "
                   "results in --out lack, with the same parameters; rerun to finish an interrupted append.")
@click.option("--compression", type=click.Choice(["gzip", "lzf"]), help="Compress the stacks in the HDF5 file.")
@click.option("--keep", type=click.Choice(["stack", "chunks"]),
              help="chunks: also keep every chunk's correlation per pair as its time series (keep_chunks "
                   "in --config restricts which).")
@click.option("--memory", help="Memory budget of the run, all workers together (e.g. 8GB).")
@click.option("--scratch", type=click.Path(file_okay=False),
              help="Folder for station spectra spilled to disk when they do not fit --memory (default: $TMPDIR).")
@click.option("--provenance", is_flag=True, default=None,
              help="Record W3C-PROV lineage of the results (in OUT/provenance.sqlite unless --provenance-store).")
@click.option("--provenance-store", metavar="URL",
              help="Record provenance to this store (path, sqlite:///path or postgresql://...); implies --provenance.")
def run_command(config_file, data, inventory, fdsn, start, end, stations, mapping, processes, out, resume,
                append, compression, memory, scratch, provenance, provenance_store, scheduler, keep=None):
    """Cross-correlate every station pair and stack: the whole ambient-noise workflow.

    With no options, runs on the bundled sample stations and writes results.h5 and a
    record section to ./noisecorr_output.
    """
    from noisecorr.engine.errors import MappingError
    from noisecorr.mappings import load

    from .config import load_config
    from .runner import OutputLockError, append_workflow, run_workflow
    from .sources import resolve

    overrides = dict(data=data, inventory=inventory, fdsn=fdsn, start=start, end=end, stations=stations,
                     mapping=mapping, processes=processes, out=out, resume=resume, compression=compression, memory=memory,
                     scratch=scratch, keep=keep,
                     provenance=provenance_store or provenance)
    try:
        config = load_config(config_file, overrides=overrides)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    from noisecorr.mappings.dask.cli import setup_run

    config = setup_run(config, scheduler)  # --scheduler, and -n from a Dask cluster
    module = load(config.mapping)
    relaunch = getattr(module, "relaunch_if_needed", None)
    if relaunch is not None:
        inside = getattr(module, "inside_mpi", lambda: True)()
        if not inside:
            try:
                resolve(config)  # generate a synthetic network once, before the ranks start
            except ConfigError as exc:
                raise click.UsageError(str(exc)) from None
        code = relaunch(config.processes)
        if code is not None:
            return code
    show = ProgressPrinter()
    try:
        if append:
            from noisecorr.results.append import AppendError

            try:
                report = append_workflow(config, progress=show)
            except (AppendError, FileNotFoundError) as exc:
                raise click.UsageError(str(exc)) from None
        else:
            report = run_workflow(config, progress=show)
    except (ConfigError, FileExistsError, OutputLockError) as exc:
        raise click.UsageError(str(exc)) from None
    except MappingError as exc:
        raise click.UsageError(str(exc)) from None
    if report is None:
        return 0
    if not append:
        show.finish(report)
    click.echo(report.table())
    click.echo(report.out)
    return 3 if report.had_skips else 0


@click.command("synth")
@click.option("--stations", type=click.IntRange(min=2), required=True, help="Number of stations.")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--velocity", type=click.FloatRange(min=0, min_open=True), default=3.0, show_default=True,
              help="Propagation velocity (km/s).")
@click.option("--sampling-rate", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.option("--dispersion", default=None, metavar="C0,SLOPE[,T0]|TABLE.csv",
              help="Dispersive medium: phase velocity c(T) = C0 + SLOPE (T - T0) km/s, or a CSV table "
                   "of period,velocity (default: none, every frequency at --velocity).")
@click.option("--days", type=click.IntRange(min=1), default=None,
              help="Length in days from 2024-01-01 (SDS day files); overrides --hours.")
@click.option("--dvv", "dvv", multiple=True, metavar="SPEC",
              help="Time-varying medium, repeatable and summed: step:DATE:AMP, trend:RATE/day, "
                   "sine:AMP:PERIOD[:PHASE] (e.g. step:2024-01-05:-0.001, sine:0.002:365d); each "
                   "day propagates at velocity x (1 + dv/v); writes dvv_truth.csv.")
def synth_command(stations, hours, seed, velocity, sampling_rate, out, dispersion, days, dvv):
    """Write a synthetic network with known travel times (SDS, StationXML, truth.csv)."""
    from obspy import UTCDateTime

    from noisecorr.synth import write_network

    extra = {}
    if days is not None:
        hours = 24.0 * days
    if dvv:
        from noisecorr.synth.dvv import DvvHistory

        try:
            extra["dvv"] = DvvHistory(list(dvv), UTCDateTime(2024, 1, 1))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--dvv") from exc
    if sampling_rate / 2 <= 5.0:  # the default source band (0.1-5 Hz) needs 10 Hz Nyquist
        nyq = sampling_rate / 2
        extra["band"] = (min(0.1, 0.05 * nyq), min(0.2, 0.1 * nyq), 0.7 * nyq, 0.85 * nyq)
    if dispersion is not None:
        from noisecorr.synth.dispersion import parse_dispersion

        try:
            extra["dispersion"] = parse_dispersion(dispersion)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--dispersion") from exc
    t0 = time.perf_counter()
    archive = write_network(out, n_stations=stations, hours=hours, seed=seed, velocity=velocity,
                            sampling_rate=sampling_rate, **extra)
    medium = (f"dispersion {extra['dispersion'].describe()}" if "dispersion" in extra
              else f"velocity {velocity:g} km/s")
    if "dvv" in extra:
        medium += f", dv/v {extra['dvv'].describe()}"
    click.echo(f"{stations} stations, {hours:g} h at {sampling_rate:g} Hz, {medium} "
               f"in {time.perf_counter() - t0:.1f} s")
    click.echo(str(getattr(archive, "root", out)))
    return 0


@click.group("plot")
def plot_group():
    """Plots of a results file: record-section, pair, availability."""


def _open(results):
    from noisecorr.results import open_results

    path = Path(results)
    if path.is_dir():
        path = path / "results.h5"
    if not path.exists():
        raise click.BadParameter(f"no results file at {path}", param_hint="RESULTS")
    return open_results(path), path


@plot_group.command("record-section")
@click.argument("results")
@click.option("--component", default="ZZ", show_default=True)
@click.option("--velocity", "velocities", type=float, multiple=True, help="Guide lines (km/s), repeatable.")
@click.option("--maxlag", type=float, help="Lag limit of the plot (s).")
@click.option("-o", "--output", help="PNG file (default: record_section_<COMP>.png beside the results).")
def plot_record_section(results, component, velocities, maxlag, output):
    """CCFs ordered by inter-station distance, showing the move-out."""
    from noisecorr.results.plot import record_section

    res, path = _open(results)
    with res:
        output = output or str(path.parent / f"record_section_{component}.png")
        record_section(res, component=component, velocities=velocities or (2.0, 3.0, 4.0), maxlag=maxlag,
                       path=output)
    click.echo(output)
    return 0


@plot_group.command("pair")
@click.argument("results")
@click.argument("source")
@click.argument("receiver")
@click.option("--component", default="ZZ", show_default=True)
@click.option("-o", "--output", help="PNG file (default: ccf_<SRC>_<RCV>_<COMP>.png beside the results).")
def plot_pair(results, source, receiver, component, output):
    """One pair's cross-correlation."""
    from noisecorr.results.plot import pair_ccf

    res, path = _open(results)
    with res:
        if (source, receiver) not in res.pairs(component):
            raise click.BadParameter(f"no pair {source} -> {receiver} ({component}) in {path}")
        output = output or str(path.parent / f"ccf_{source}_{receiver}_{component}.png")
        pair_ccf(res, source, receiver, component, path=output)
    click.echo(output)
    return 0


@plot_group.command("availability")
@click.argument("data")
@click.option("-o", "--output", default="availability.png", show_default=True)
def plot_availability(data, output):
    """Time coverage per station of an SDS archive or folder of waveform files."""
    from obspy import read

    from noisecorr.results.plot import availability

    intervals = []
    files = sorted(p for p in Path(data).rglob("*") if p.is_file() and not p.name.endswith((".xml", ".csv", ".json", ".md")))
    for f in files:
        try:
            st = read(str(f), headonly=True)
        except Exception as exc:
            click.echo(f"skipped {f}: not readable waveform data ({exc})", err=True)
            continue
        intervals.extend((f"{tr.stats.network}.{tr.stats.station}", tr.stats.starttime, tr.stats.endtime) for tr in st)
    if not intervals:
        raise click.BadParameter(f"no waveform data under {data}", param_hint="DATA")
    availability(intervals, path=output)
    click.echo(output)
    return 0


@click.command("info")
@click.argument("results")
def info_command(results):
    """Stations, pairs, windows used, parameters and skips of a results file."""
    import json

    res, path = _open(results)
    with res:
        pairs = res.pairs()
        click.echo(f"results        {path}")
        click.echo(f"stations       {len(res.stations())}")
        click.echo(f"components     {', '.join(res.components())}")
        click.echo(f"pairs          {len(pairs)}")
        windows = [res.meta(s, r, c).get("n_windows", 0) for c in res.components() for s, r in res.pairs(c)]
        if windows:
            click.echo(f"windows/pair   min {min(windows)}, median {sorted(windows)[len(windows) // 2]}, max {max(windows)}")
        from noisecorr.dispersion.table import info_lines

        for line in info_lines(res):  # SNR and dispersion, once `noisecorr dispersion` ran
            click.echo(line)
        click.echo("parameters     " + json.dumps(res.params, sort_keys=True))
    summary = path.parent / "summary.json"
    if summary.exists():
        s = json.loads(summary.read_text())
        click.echo(f"skipped        {len(s.get('skipped', []))}")
        for who, why in s.get("skipped", []):
            click.echo(f"  {who}: {why}")
    return 0


def commands():
    return [run_command, synth_command, plot_group, info_command]
