"""``noisecorr export`` and ``noisecorr import``: results to and from SAC, ASDF (NoisePy's
stack layout), miniSEED and npz."""

from __future__ import annotations

import click

from . import FORMATS
from .importing import FORMATS as IMPORT_FORMATS


def _split(values):
    out = []
    for v in values:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out or None


@click.command("export")
@click.argument("results", type=click.Path(exists=True))
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Output folder (created).")
@click.option("--pair", "pairs", multiple=True, metavar="SRC_RCV",
              help="Pair(s) to export, e.g. XS.A_XS.B (repeat or comma-separate; default all).")
@click.option("--component", "components", multiple=True,
              help="Component(s), e.g. ZZ (repeat or comma-separate; default all).")
@click.option("--min-distance", type=float, default=None, help="km.")
@click.option("--max-distance", type=float, default=None, help="km.")
@click.option("--symmetric", is_flag=True,
              help="SAC: also write the symmetric component as COMP_sym/SRC_RCV.SAC.")
def export_command(results, fmt, out_dir, pairs, components, min_distance, max_distance,
                   symmetric):
    """Write the stacks of RESULTS as SAC, ASDF, miniSEED or npz files."""
    from . import export

    try:
        paths = export(results, out_dir, fmt, pairs=_split(pairs), components=_split(components),
                       min_distance=min_distance, max_distance=max_distance,
                       symmetric=symmetric)
    except (KeyError, ValueError) as exc:
        raise click.ClickException(str(exc).strip("'\"")) from exc
    click.echo(f"wrote {len(paths)} {fmt} file(s) to {out_dir}")


@click.command("import")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--format", "fmt", type=click.Choice(IMPORT_FORMATS), required=True,
              help="asdf: NoisePy stack files; sac: SAC files with noisecorr's export headers.")
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="New noisecorr results file (.h5).")
@click.option("--data-type", default=None,
              help="ASDF: NoisePy stack to read, e.g. Allstack_pws (default Allstack_linear).")
def import_command(inputs, fmt, out, data_type):
    """Read other tools' stacks (INPUTS: files or folders) into a noisecorr results file."""
    from . import import_results

    try:
        n = import_results(list(inputs), out, fmt, data_type=data_type)
    except (KeyError, ValueError, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"imported {n} stack(s) into {out}")


def commands():
    return [export_command, import_command]
