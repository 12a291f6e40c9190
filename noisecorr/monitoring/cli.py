"""``noisecorr dvv RESULTS``: dv/v of every pair, station and the network (prints; the
library logs)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

__all__ = ["commands", "mpi_launch", "mpi_barrier"]


def mpi_launch(mapping, processes):
    """For ``--mapping mpi``: ``(exit_status, reports)``.

    Outside MPI the command is re-run under the venv's ``mpiexec -n processes``
    (:func:`noisecorr.mappings.mpi.relaunch_if_needed`) and ``exit_status`` is its status;
    inside (a rank), ``exit_status`` is None and ``reports`` says whether this rank is
    rank 0, the one that writes files and prints. Other mappings: ``(None, True)``.
    """
    if mapping != "mpi":
        return None, True
    from noisecorr.mappings import load

    module = load("mpi")
    code = module.relaunch_if_needed(processes, argv=click.get_current_context().find_root().obj.get("argv"))
    if code is not None:
        return code, False
    return None, module.is_root()


def mpi_barrier(mapping):
    """Wait for every rank (``--mapping mpi`` only): rank 0 writes into a file the other
    ranks had open for reading only after they closed it."""
    if mapping == "mpi":
        from mpi4py import MPI

        MPI.COMM_WORLD.Barrier()


def _posix(text):
    from obspy import UTCDateTime

    return None if text is None else float(UTCDateTime(text).timestamp)


@click.command("dvv")
@click.argument("results", type=click.Path(exists=True, dir_okay=True))
@click.option("--method", type=click.Choice(["stretching", "mwcs", "wavelet"]), default="stretching", show_default=True)
@click.option("--component", default="ZZ", show_default=True)
@click.option("--freqmin", type=float, default=None, help="Hz; default: the run's band.")
@click.option("--freqmax", type=float, default=None)
@click.option("--velocity", type=float, default=3.0, show_default=True, help="km/s for the ballistic time.")
@click.option("--coda-factor", type=float, default=2.0, show_default=True,
              help="Coda starts at this multiple of the ballistic time (0: use --coda-start).")
@click.option("--coda-start", type=float, default=10.0, show_default=True, help="s, with --coda-factor 0.")
@click.option("--coda-length", type=float, default=40.0, show_default=True, help="s.")
@click.option("--side", type=click.Choice(["both", "causal", "acausal"]), default="both", show_default=True)
@click.option("--reference", nargs=2, default=None, metavar="START END",
              help="Reference period (ISO times); default: the full stack.")
@click.option("--stored-reference", is_flag=True,
              help="Use the reference stack stored by `noisecorr stack` (instead of --reference).")
@click.option("--max-dvv", type=float, default=0.01, show_default=True, help="Stretching grid half-width (fraction).")
@click.option("--min-snr", type=float, default=None,
              help="Leave pairs whose reference SNR (symmetric, 1.5-5 km/s window over the next 50 s) "
                   "is lower out of the station and network averages.")
@click.option("--mapping", default="sequential", show_default=True)
@click.option("-n", "--processes", type=int, default=None)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: RESULTS folder / dvv).")
@click.option("--plot-pair", nargs=2, default=None, metavar="SRC RCV", help="Also draw this pair's series.")
def dvv_command(results, method, component, freqmin, freqmax, velocity, coda_factor, coda_start,
                coda_length, side, reference, stored_reference, max_dvv, min_snr, mapping, processes, out,
                plot_pair):
    """Measure dv/v from the sub-stack series of RESULTS (a run with substack: true).

    Writes dvv.h5, dvv_pairs.csv, dvv_stations.csv, dvv_network.csv and plots to --out.
    dv/v > 0 is a velocity increase.
    """
    from noisecorr.monitoring import DvvConfig, load_series, measure, write
    from noisecorr.monitoring.measure import _mask
    from noisecorr.monitoring.plot import dvv_matrix, dvv_timeseries, series_image

    code, reports = mpi_launch(mapping, processes)
    if code is not None:
        return code
    from noisecorr.results.layout import results_file

    path = results_file(results)
    out = Path(out) if out else path.parent / "dvv"
    try:
        cfg = DvvConfig(method=method, component=component, freqmin=freqmin, freqmax=freqmax,
                        velocity=velocity, coda_factor=coda_factor or None, coda_start=coda_start,
                        coda_length=coda_length, side=side, max_dvv=max_dvv, min_snr=min_snr,
                        reference="stored" if stored_reference else
                        None if not reference else (_posix(reference[0]), _posix(reference[1])))
        series = load_series(path, component, cfg.reference)
        res = measure(series, cfg, mapping=mapping, processes=processes)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if res is None or not reports:
        return 0                  # an MPI rank other than 0: rank 0 has every pair's result
    files = write(res, out)
    dvv_timeseries(res, out / "dvv_network.png")
    dvv_matrix(res, out / "dvv_matrix.png")
    i = 0
    if plot_pair:
        i = series.pairs.index(tuple(plot_pair)) if tuple(plot_pair) in series.pairs else None
        if i is None:
            raise click.ClickException(f"pair {plot_pair[0]}-{plot_pair[1]} has no series in {path}")
    mask, _ = _mask(series, res.config)
    series_image(series, i, mask, out / f"series_{series.pairs[i][0]}_{series.pairs[i][1]}.png")
    v, e, n = res.network
    click.echo(f"dv/v ({method}, {component}, {res.config.freqmin:g}-{res.config.freqmax:g} Hz): "
               f"{len(res.pairs)} pairs x {res.times.size} spans; network mean "
               f"{100 * np.nanmean(v):+.4f} %, range {100 * np.nanmin(v):+.4f} .. {100 * np.nanmax(v):+.4f} %")
    if res.skipped:
        click.echo(f"skipped {len(res.skipped)} pair(s) whose coda window does not fit the lags: "
                   + ", ".join(f"{a}-{b}" for a, b in res.skipped[:20]))
    for name, p in files.items():
        click.echo(f"{name:10s} {p}")


def commands():
    return [dvv_command]
