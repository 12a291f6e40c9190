"""``noisecorr dispersion RESULTS``: SNR and FTAN dispersion curves of every pair, stored
in the results file, written as CSV, and plotted."""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np


def _floats(text, name):
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}", param_hint=name) from None
    if len(values) < 2 or any(b <= a for a, b in zip(values, values[1:])) or values[0] <= 0:
        raise click.BadParameter("need at least two positive, increasing periods", param_hint=name)
    return np.array(values)


@click.command("dispersion")
@click.argument("results", type=click.Path(exists=True))
@click.option("--component", default="ZZ", show_default=True)
@click.option("--periods", default=None, metavar="T1,T2,...",
              help="Periods in s (default: log-spaced over what the sampling, lags and distances allow).")
@click.option("--side", type=click.Choice(["symmetric", "causal", "acausal"]), default="symmetric",
              show_default=True, help="One-sided signal to analyse.")
@click.option("--vmin", type=float, default=1.5, show_default=True, help="Group velocity window, km/s.")
@click.option("--vmax", type=float, default=5.0, show_default=True)
@click.option("--alpha0", type=float, default=20.0, show_default=True,
              help="Gaussian filter alpha at 1000 km (alpha = alpha0 sqrt(d / 1000 km)).")
@click.option("--reference", "reference_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV of period,phase_velocity resolving the 2 pi ambiguity (default: continental Rayleigh).")
@click.option("--min-snr", type=float, default=5.0, show_default=True,
              help="Narrow-band SNR below which a period is flagged.")
@click.option("--wavelengths", type=float, default=3.0, show_default=True,
              help="Far-field criterion: trust periods with distance >= N wavelengths.")
@click.option("--phase-matched", is_flag=True,
              help="Add a phase-matched filter pass (against arrivals well apart from the main one).")
@click.option("--branch", type=click.Choice(["continuity", "reference"]), default="continuity", show_default=True,
              help="2 pi N of the phase: from the reference at the longest far-field period, then by "
                   "continuity; or nearest the reference at every period.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the CSV and plots (default: RESULTS's folder, dispersion/).")
@click.option("--pair", "pairs", multiple=True, metavar="SRC:RCV",
              help="Pair(s) to draw the FTAN image of (default: the pair with the best SNR).")
@click.option("--no-plots", is_flag=True)
@click.option("--mapping", type=click.Choice(["sequential", "multiprocess", "mpi"]), default=None,
              help="Measure blocks of pairs through the engine (DispersionPE) with this mapping "
                   "(default: in this process, one block of stacks in memory at a time).")
@click.option("-n", "--processes", type=click.IntRange(min=1), default=None,
              help="DispersionPE instances under --mapping multiprocess.")
def dispersion_command(results, component, periods, side, vmin, vmax, alpha0, reference_path, min_snr,
                       wavelengths, phase_matched, branch, out_dir, pairs, no_plots, mapping, processes):
    """SNR and group/phase velocity curves (FTAN) of every pair of a results file.

    The table is stored in RESULTS (group /dispersion/COMPONENT; read it with
    ``open_results(path).dispersion(component)``) and written as CSV; plots: the FTAN image
    with the picked ridge, all curves over each other, and the period-distance coverage.
    """
    from noisecorr.dispersion.reference import read_reference
    from noisecorr.dispersion.table import measure, write_table
    from noisecorr.monitoring.cli import mpi_barrier, mpi_launch
    from noisecorr.results.reader import open_results

    code, reports = mpi_launch(mapping, processes)
    if code is not None:
        return code

    per = _floats(periods, "--periods") if periods else None
    ref = None
    if reference_path:
        try:
            ref = read_reference(reference_path)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--reference") from exc
    if not 0 < vmin < vmax:
        raise click.BadParameter(f"need 0 < vmin < vmax, got {vmin}, {vmax}", param_hint="--vmin/--vmax")
    from noisecorr.results.layout import results_file

    path = results_file(results)  # a run's folder stands for its results.h5
    out = Path(out_dir) if out_dir else path.parent / "dispersion"
    t0 = time.perf_counter()
    with open_results(path) as res:
        try:
            table = measure(res, component, per, side=side, vmin=vmin, vmax=vmax, alpha0=alpha0,
                            reference=ref, min_snr=min_snr, n_wavelengths=wavelengths,
                            phase_matched=phase_matched, branch=branch, mapping=mapping,
                            processes=processes)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        if table is None:         # an MPI rank other than 0
            images = []
        else:
            images = _image_pairs(table, pairs)
        signals = {}
        if not no_plots:
            for s, r in images:
                lags, ccf = res.stack(s, r, component)
                h = ccf.shape[-1] // 2
                c, a = ccf[h:], ccf[h::-1]
                signals[(s, r)] = {"causal": c, "acausal": a, "symmetric": 0.5 * (c + a)}[side]
    mpi_barrier(mapping)          # every rank has closed RESULTS before rank 0 writes into it
    if table is None or not reports:
        return 0                  # an MPI rank other than 0: rank 0 has every pair's curves
    write_table(path, table)
    csv_path = table.to_csv(out / f"dispersion_{component}.csv")
    elapsed = time.perf_counter() - t0
    ok = table.trusted
    click.echo(f"{len(table)} pairs, {table.periods.size} periods "
               f"({table.periods[0]:.3g}-{table.periods[-1]:.3g} s) in {elapsed:.1f} s")
    click.echo(f"trusted        {int(ok.sum())} of {ok.size} pair-periods; "
               f"pairs with any: {int(ok.any(axis=1).sum())}")
    with np.errstate(all="ignore"):
        snr = table.snr_symmetric[np.isfinite(table.snr_symmetric)]
    if snr.size:
        click.echo(f"SNR symmetric  min {snr.min():.1f}, median {np.median(snr):.1f}, max {snr.max():.1f}")
    click.echo(f"stored         {path}:/dispersion/{component}")
    click.echo(f"csv            {csv_path}")
    if not no_plots:
        from noisecorr.dispersion.plot import plot_coverage, plot_curves, plot_ftan

        fs = float(table.params["sampling_rate"])
        for (s, r), sig in signals.items():
            i = table.index(s, r)
            p = out / f"ftan_{s}_{r}_{component}.png"
            plot_ftan(sig, 1.0 / fs, float(table.distance_km[i]), table.periods, table.group_velocity[i],
                      table.trusted[i], table.phase_velocity[i], path=p, alpha0=alpha0,
                      velocities=np.linspace(vmin, vmax, 141),
                      title=f"{s} - {r} {component}, {table.distance_km[i]:.1f} km")
            click.echo(f"plot           {p}")
        for kind in ("group", "phase"):
            p = out / f"curves_{kind}_{component}.png"
            plot_curves(table, kind, path=p)
            click.echo(f"plot           {p}")
        p = out / f"coverage_{component}.png"
        plot_coverage(table, path=p)
        click.echo(f"plot           {p}")
    return 0


def _image_pairs(table, pairs):
    if not pairs:
        if not len(table):
            return []
        snr = np.where(np.isfinite(table.snr_symmetric), table.snr_symmetric, -np.inf)
        i = int(np.argmax(snr))
        return [(str(table.source[i]), str(table.receiver[i]))]
    out = []
    for text in pairs:
        s, sep, r = text.partition(":")
        if not sep:
            raise click.BadParameter(f"expected SRC:RCV, got {text!r}", param_hint="--pair")
        try:
            table.index(s, r)
        except KeyError as exc:
            raise click.BadParameter(str(exc.args[0]), param_hint="--pair") from None
        out.append((s, r))
    return out


def commands():
    return [dispersion_command]
