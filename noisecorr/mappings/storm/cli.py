"""``noisecorr storm ...``: package a workflow as a Storm topology, check one, collect outputs.

Mounted by :mod:`noisecorr.cli` through :func:`commands`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group("storm")
def storm():
    """Apache Storm topologies: package a workflow, validate a Flux file, collect outputs."""


@storm.command("package")
@click.argument("target")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory to write the topology package into.")
@click.option("-n", "--processes", type=click.IntRange(min=1), default=None,
              help="Task budget shared among PEs (component parallelism; PE hints win). Default: CPU count.")
@click.option("-i", "--iterations", type=click.IntRange(min=0), default=None, help="Iterations of every source PE.")
@click.option("-d", "--data", default=None, help='JSON: {"PE name": iterations or [{"input": item}, ...]}.')
@click.option("-f", "--file", "data_file", default=None, help="File holding the JSON of -d.")
@click.option("--name", default=None, help="Topology name (default: noisecorr-<first PE names>).")
@click.option("--python", default="python3", show_default=True, help="Interpreter the workers run components with.")
@click.option("--output-dir", default=None,
              help="noisecorr.output.dir: where tasks write outputs (a shared file system on a cluster). "
                   "Default: OUT/outputs.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="topology.workers.")
@click.option("--no-vendor", is_flag=True, help="Do not copy the noisecorr sources into resources/.")
def package_command(target, out_dir, processes, iterations, data, data_file, name, python, output_dir, workers,
                    no_vendor):
    """Write a deployable Storm topology for workflow TARGET (MODULE[:ATTR] or FILE.py[:ATTR])."""
    from noisecorr.cli import load_target, parse_inputs

    from .package import FLUX_MAIN, package

    graph = load_target(target)
    inputs = parse_inputs(graph, iterations, data, data_file)
    spec = graph.describe(inputs)
    pkg = package(spec, out_dir, processes=processes, name=name, python=python, output_dir=output_dir,
                  vendor=not no_vendor, workers=workers)
    click.echo(f"topology '{pkg.name}' written to {pkg.root}")
    for pe, info in pkg.layout["pes"].items():
        click.echo(f"  {info['kind']:<5} {info['component']} x{info['parallelism']} ({pe})")
    click.echo("submit (see README.md for building the jar with Flux):")
    click.echo(f"  storm jar --jars flux-core-<version>.jar,flux-wrappers-<version>.jar {pkg.jar} {FLUX_MAIN} "
               f"--remote {pkg.yaml}")
    click.echo(f"run locally (Storm 2.x):\n  storm local --local-ttl 600 --jars ... {pkg.jar} {FLUX_MAIN} {pkg.yaml}")


@storm.command("validate")
@click.argument("yaml_file", type=click.Path(exists=True, dir_okay=False))
def validate_command(yaml_file):
    """Check a Flux topology file against Flux's schema (shell spouts and bolts)."""
    import yaml

    from .flux import check_flux

    problems = check_flux(yaml.safe_load(Path(yaml_file).read_text()))
    if problems:
        for p in problems:
            click.echo(f"  {p}", err=True)
        raise click.ClickException(f"{yaml_file}: {len(problems)} problem(s)")
    click.echo(f"{yaml_file}: valid")


@storm.command("collect")
@click.argument("package_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--output-dir", default=None, help="Where the tasks wrote (default: noisecorr.output.dir of the package).")
@click.option("--show", type=click.IntRange(min=0), default=10, show_default=True, help="Output items to print per output.")
def collect_command(package_dir, output_dir, show):
    """Merge the outputs the tasks of a finished topology wrote; report a failed PE."""
    import pickle

    import yaml

    from noisecorr.cli import _print_result

    from . import results

    root = Path(package_dir)
    layout = json.loads((root / "resources" / "layout.json").read_text())
    if output_dir is None:
        output_dir = yaml.safe_load((root / "topology.yaml").read_text())["config"]["noisecorr.output.dir"]
    err = results.first_error(output_dir, layout)
    if err is not None:
        raise err
    missing = results.missing_results(output_dir, layout)
    if missing:
        raise click.ClickException(f"not finished yet (or results elsewhere): no result from {', '.join(missing)}")
    spec = pickle.loads((root / "resources" / "graph.pkl").read_bytes())
    _print_result(results.load_result(spec, layout, output_dir, "storm", 0.0), show)


def commands():
    """The click commands this module adds to ``noisecorr``."""
    return [storm]
