"""The ``noisecorr`` command line.

``main(argv=None) -> int`` is the entry point (console script ``noisecorr`` and
``python -m noisecorr``). Library code logs; only this module prints. Commands live beside
the code they drive (``enact`` and ``stack`` here; ``run``, ``synth``, ``plot``, ``storm`` ...
where they live, each module listing its own in ``commands()``) so the command line stays a
thin layer over the library. Those are mounted lazily (:data:`LAZY_COMMANDS`): ``noisecorr
--help`` imports none of their modules, ``noisecorr NAME ...`` imports only NAME's.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import signal
import sys
from pathlib import Path

import click

import noisecorr
from noisecorr.engine.errors import EngineError, GraphError, MappingError, PEError

#: Exit codes: 0 success, 1 a run failed, 2 bad usage/configuration, 3 done with skips.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SKIPS = 0, 1, 2, 3


def _configure_logging(verbose, quiet):
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


#: The commands that live in other modules: name -> (module, attribute, short help). The
#: module is imported only when the command runs or shows its own help; the group's help lists
#: the short help from here. tests/test_cli.py checks the table against every module's
#: ``commands()`` (names, objects and short help), so a command added there fails until listed.
LAZY_COMMANDS = {
    "dispersion": ("noisecorr.dispersion.cli", "dispersion_command",
                   "SNR and group/phase velocity curves (FTAN) of every pair of a results file."),
    "dvv": ("noisecorr.monitoring.cli", "dvv_command",
            "Measure dv/v from the sub-stack series of RESULTS (a run with substack: true)."),
    "export": ("noisecorr.interop.cli", "export_command",
               "Write the stacks of RESULTS as SAC, ASDF, miniSEED or npz files."),
    "import": ("noisecorr.interop.cli", "import_command",
               "Read other tools' stacks (INPUTS: files or folders) into a noisecorr results file."),
    "info": ("noisecorr.workflow.cli", "info_command",
             "Stations, pairs, windows used, parameters and skips of a results file."),
    "merge": ("noisecorr.slurm.cli", "merge_command",
              "Combine per-task results (array jobs) into the final stacks of OUT/results.h5."),
    "plot": ("noisecorr.workflow.cli", "plot_group",
             "Plots of a results file: record-section, pair, availability."),
    "prov": ("noisecorr.provenance.cli", "prov_group",
             "W3C-PROV lineage of runs: list, export, serve (web API and browser page)."),
    "registry": ("noisecorr.registry.cli", "registry",
                 "Store, share and recombine PEs and workflows (with their source, hash and version)."),
    "run": ("noisecorr.workflow.cli", "run_command",
            "Cross-correlate every station pair and stack: the whole ambient-noise workflow."),
    "slurm": ("noisecorr.slurm.cli", "slurm_group",
              "SLURM job scripts for noisecorr runs (MPI across nodes, one node, or a job array)."),
    "storm": ("noisecorr.mappings.storm.cli", "storm",
              "Apache Storm topologies: package a workflow, validate a Flux file, collect outputs."),
    "synth": ("noisecorr.workflow.cli", "synth_command",
              "Write a synthetic network with known travel times (SDS, StationXML, truth.csv)."),
}


class LazyGroup(click.Group):
    """A click group whose :data:`LAZY_COMMANDS` are imported on first use (click's documented
    lazy-loading pattern: ``list_commands`` names them, ``get_command`` imports one), and whose
    help lists them from the table without importing any."""

    def __init__(self, *args, lazy_commands=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx, cmd_name):
        if cmd_name in self.lazy_commands and cmd_name not in self.commands:
            module_name, attr, _ = self.lazy_commands[cmd_name]
            command = getattr(importlib.import_module(module_name), attr)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx, formatter):
        """Click's command list, with the short help of a command not yet imported taken from
        the table (shortened to the terminal width the same way click shortens its own)."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name) or click.Command(name, help=self.lazy_commands[name][2])
            if not command.hidden:
                rows.append((name, command))
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in rows])


@click.group(cls=LazyGroup, lazy_commands=LAZY_COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(noisecorr.__version__, prog_name="noisecorr")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def cli(ctx, verbose, quiet):
    """Ambient-noise cross-correlation on a dataflow engine (sequential, multiprocess, MPI, Storm)."""
    _configure_logging(verbose, quiet)
    ctx.ensure_object(dict)


# -- loading a graph from a module or file ------------------------------------------------------
def load_target(target, registry=None, trust_unsigned=False):
    """Load ``MODULE[:ATTR]``, ``path/to/file.py[:ATTR]`` or ``registry:WS.WORKFLOW[@VERSION]``
    and return the workflow graph.

    A ``registry:`` target is loaded from the registry at ``registry`` (a URL; default
    ``$NOISECORR_REGISTRY``, else the default SQLite file, see :mod:`noisecorr.registry`);
    it must be signed by a trusted key unless ``trust_unsigned`` (this load only).

    Without ``ATTR`` the module's ``graph`` attribute is used, else its only
    :class:`~noisecorr.engine.WorkflowGraph`. A callable attribute is called with no arguments
    and must return a graph. Modules loaded from a file are pickled by value, so worker
    processes do not need to import the file.
    """
    from noisecorr.engine import WorkflowGraph

    if target.startswith("registry:"):
        from noisecorr.registry.cli import load_registry_target

        return load_registry_target(target, registry, allow_unsigned=trust_unsigned)
    module_part, _, attr = target.partition(":")
    if target.count(":") > 1 or (os.name == "nt" and len(module_part) == 1):
        module_part, _, attr = target.rpartition(":")
    if module_part.endswith(".py") or os.sep in module_part:
        path = Path(module_part)
        if not path.is_file():
            raise click.BadParameter(f"no such file: {path}", param_hint="TARGET")
        name = "noisecorr_user_" + "".join(c if c.isalnum() else "_" for c in path.stem)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)
    else:
        try:
            module = importlib.import_module(module_part)
        except ImportError as exc:
            raise click.BadParameter(f"cannot import module {module_part!r}: {exc}", param_hint="TARGET") from exc
    if attr:
        if not hasattr(module, attr):
            raise click.BadParameter(f"module {module_part!r} has no attribute {attr!r}", param_hint="TARGET")
        obj = getattr(module, attr)
    elif isinstance(getattr(module, "graph", None), WorkflowGraph):
        obj = module.graph
    else:
        graphs = [v for v in vars(module).values() if isinstance(v, WorkflowGraph)]
        if len(graphs) != 1:
            raise click.BadParameter(
                f"module {module_part!r} defines {len(graphs)} workflow graphs; name one as MODULE:ATTR",
                param_hint="TARGET",
            )
        obj = graphs[0]
    if callable(obj) and not isinstance(obj, WorkflowGraph):
        obj = obj()
    if not isinstance(obj, WorkflowGraph):
        raise click.BadParameter(f"{target!r} is not a WorkflowGraph (got {type(obj).__name__})", param_hint="TARGET")
    return obj


def parse_inputs(graph, iterations, data, data_file):
    """Turn ``-i``/``-d``/``-f`` into the ``inputs`` dict of :func:`noisecorr.engine.run`."""
    given = [x is not None for x in (iterations, data, data_file)]
    if sum(given) > 1:
        raise click.UsageError("give at most one of -i/--iterations, -d/--data and -f/--file")
    if iterations is not None:
        sources = [pe for pe in graph.pes if not pe.inputconnections]
        return {pe: iterations for pe in sources}
    if data_file is not None:
        try:
            data = Path(data_file).read_text()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {data_file}: {exc}", param_hint="-f/--file") from exc
    if data is None:
        return {}
    try:
        parsed = json.loads(data)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="-d/--data") from exc
    if not isinstance(parsed, dict):
        raise click.BadParameter('expected a JSON object {"PE name": iterations or [{...}, ...]}', param_hint="-d/--data")
    return parsed


def _print_result(result, show):
    click.echo(result.summary())
    for (pe, port), items in result.outputs.items():
        click.echo(f"{pe}.{port}: {len(items)} item(s)")
        for item in items[:show]:
            click.echo(f"  {item!r}"[:200])
        if len(items) > show:
            click.echo(f"  ... {len(items) - show} more")


@cli.command()
@click.argument("target")
@click.option("-m", "--mapping", default="sequential", show_default=True,
              help="sequential, multiprocess, mpi, storm or dask (dispel4py's simple and multi are aliases).")
@click.option("-n", "--processes", type=click.IntRange(min=1), default=None,
              help="Worker processes (multiprocess) or MPI ranks (mpi; re-launches under mpiexec).")
@click.option("-i", "--iterations", type=click.IntRange(min=0), default=None, help="Iterations of every source PE.")
@click.option("-d", "--data", default=None, help='JSON: {"PE name": iterations or [{"input": item}, ...]}.')
@click.option("-f", "--file", "data_file", default=None, help="File holding the JSON of -d.")
@click.option("--plan", "show_plan", is_flag=True, help="Print the placement of PE instances before running.")
@click.option("--show", type=click.IntRange(min=0), default=10, show_default=True, help="Output items to print per output.")
@click.option("--registry", "registry_url", default=None, metavar="URL",
              help="Registry of registry:WS.WORKFLOW targets (default: $NOISECORR_REGISTRY or the default file).")
@click.option("--trust-unsigned", is_flag=True,
              help="Run a registry: target even if it is unsigned or signed by a key you do not trust (this run only).")
@click.option("--provenance", is_flag=True, help="Record W3C-PROV lineage (default store: see `noisecorr prov --help`).")
@click.option("--provenance-store", metavar="URL", default=None,
              help="Record provenance to this store (path, sqlite:///path, postgresql://...); implies --provenance.")
def enact(target, mapping, processes, iterations, data, data_file, show_plan, show, registry_url, trust_unsigned,
          provenance, provenance_store):
    """Enact the workflow graph TARGET (MODULE[:ATTR], FILE.py[:ATTR] or registry:WS.WORKFLOW[@V])."""
    from noisecorr.engine import run
    from noisecorr.mappings import canonical_name, load

    name = canonical_name(mapping)
    module = load(name)
    relaunch = getattr(module, "relaunch_if_needed", None)
    if relaunch is not None:
        code = relaunch(processes, argv=click.get_current_context().find_root().obj.get("argv"))
        if code is not None:
            raise SystemExit(code)
    graph = load_target(target, registry=registry_url, trust_unsigned=trust_unsigned)
    inputs = parse_inputs(graph, iterations, data, data_file)
    if show_plan:
        from noisecorr.engine.plan import make_plan

        spec = graph.describe(inputs)
        workers = module.default_workers(processes) if hasattr(module, "default_workers") else (processes or 1)
        plan = make_plan(spec, 1 if name == "sequential" else workers)
        if _is_root(module):
            click.echo(plan.describe())
    try:
        result = run(graph, inputs=inputs, mapping=name, processes=processes,
                     provenance=provenance_store or (True if provenance else None))
    except EngineError as exc:
        if _is_root(module):
            raise
        # Another MPI rank: rank 0 prints the error; exit with the status it will use.
        raise SystemExit(EXIT_USAGE if isinstance(exc, (GraphError, MappingError)) else EXIT_FAILED) from None
    if result is not None:
        _print_result(result, show)
        if getattr(result, "provenance_run_id", None):
            click.echo(f"provenance run {result.provenance_run_id}")


@cli.command("stack")
@click.argument("results", type=click.Path(exists=True))
@click.option("--window", required=True, help="Moving window, e.g. 10d, 12h (a whole number of chunks).")
@click.option("--step", required=True, help="Step between windows, e.g. 1d.")
@click.option("--method", type=click.Choice(["linear", "pws"]), default="linear", show_default=True)
@click.option("--reference", default="all", show_default=True,
              help="Reference stack: all, or the chunks starting in START:END (dates) or START/END (ISO times).")
@click.option("--component", "components", multiple=True,
              help="Component(s) (repeat); default: every component with chunk series.")
@click.option("--pws-power", type=float, default=None, help="Default: the run's pws_power.")
def stack_command(results, window, step, method, reference, components, pws_power):
    """Moving-window and reference stacks of RESULTS (a folder or results.h5 of a run with
    keep: chunks), stored in the results file (group /moving; a rerun replaces it).

    Read them with Results.moving(src, rcv, comp) and Results.reference(...).
    """
    from noisecorr.results.moving import store

    from noisecorr.results.layout import results_file

    path = results_file(results)
    try:
        summary = store(path, window, step, method, components or None, reference, pws_power)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc).strip("'\"")) from exc
    for comp, s in summary.items():
        note = "" if s["phasors"] != "chunks" else " (pws from the chunk stacks' phasors: an approximation)"
        click.echo(f"{comp}: {s['pairs']} pairs x {s['windows']} moving windows of {window} every "
                   f"{step}, {method}{note}; {s['empty']} without data (NaN)")
    click.echo(f"stored in {path}:/moving")


def _is_root(module):
    is_root = getattr(module, "is_root", None)
    return True if is_root is None else is_root()


class _Terminated(BaseException):
    """SIGTERM, turned into an exception so that workers are stopped and files closed."""


def _raise_terminated(signum, frame):
    raise _Terminated()


def main(argv=None) -> int:
    """Run the command line; return the exit status (never calls ``sys.exit`` itself)."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        # argv is kept for commands that re-launch themselves (enact --mapping mpi -n N).
        obj = {"argv": list(sys.argv[1:] if argv is None else argv)}
        result = cli.main(args=argv, prog_name="noisecorr", standalone_mode=False, obj=obj)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_FAILED
    except (GraphError, MappingError) as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_USAGE
    except PEError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_FAILED
    except EngineError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_FAILED
    except _Terminated:
        click.echo("terminated (SIGTERM)", err=True)
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    return result if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
