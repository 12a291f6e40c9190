"""``noisecorr prov``: list, export and serve recorded provenance.

Every subcommand that reads a store takes it as an optional ``STORE`` argument or
``--store``: a store URL or file, or the output folder of ``noisecorr run --provenance``
(its ``provenance.sqlite``). Without either it opens ``$NOISECORR_PROVENANCE_STORE``, else
the store of the default output folder (``./noisecorr_output``), else the user store
(see :mod:`noisecorr.provenance.locate`), and prints on standard error which store it opened,
so that standard output stays the listing or the export.
"""

from __future__ import annotations

import click

_STORE_HELP = ("Provenance store: an output folder of `noisecorr run --provenance` (its provenance.sqlite), "
               "a file, sqlite:///path or postgresql://... (default: $NOISECORR_PROVENANCE_STORE, else "
               "./noisecorr_output, else $XDG_DATA_HOME/noisecorr/provenance.sqlite).")


def _store_options(fn):
    """The ``[STORE]`` argument and the ``--store`` option (either names the store)."""
    fn = click.option("--store", "store_option", metavar="STORE", help=_STORE_HELP)(fn)
    return click.argument("store_argument", metavar="[STORE]", required=False)(fn)


def _locate(store_argument, store_option):
    """The :class:`~noisecorr.provenance.locate.Located` store named or found; says which on stderr."""
    from .locate import locate
    from .store import StoreError

    if store_argument and store_option and store_argument != store_option:
        raise click.UsageError(f"two stores given: STORE {store_argument!r} and --store {store_option!r}; give one")
    try:
        found = locate(store_argument or store_option)
    except StoreError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"provenance store: {found.describe()}", err=True)
    return found


def _open(found):
    from .locate import open_located
    from .store import StoreError

    try:
        return open_located(found)
    except StoreError as exc:
        raise click.UsageError(str(exc)) from None


@click.group("prov")
def prov_group():
    """W3C-PROV lineage of runs: list, export, serve (web API and browser page).

    STORE: the output folder of `noisecorr run --provenance`, a store file or URL; default
    $NOISECORR_PROVENANCE_STORE, else ./noisecorr_output, else the user store.
    """


@prov_group.command("runs")
@_store_options
def runs_command(store_argument, store_option):
    """List the runs recorded in STORE, newest first."""
    with _open(_locate(store_argument, store_option)) as store:
        runs, total = store.runs(0, 200)
        for r in runs:
            click.echo(f"{r['run_id']}  {r['started']}  {r['status']:<9}  {r['mapping']:<12}  {r['user_name']}")
        click.echo(f"{total} run(s)")
    return 0


@prov_group.command("export")
@click.argument("run")
@click.option("--format", "fmt", type=click.Choice(["json", "provn", "xml"]), default="json", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File to write (default: standard output).")
@_store_options
def export_command(run, fmt, output, store_argument, store_option):
    """Export run RUN of STORE as PROV-JSON, PROV-N or PROV-XML."""
    from .export import ExportError, export

    with _open(_locate(store_argument, store_option)) as store:
        try:
            text = export(store, run, fmt)
        except ExportError as exc:
            raise click.BadParameter(str(exc), param_hint="RUN") from None
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
        click.echo(output)
    else:
        click.echo(text)
    return 0


@prov_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0: a free port.")
@_store_options
def serve_command(host, port, store_argument, store_option):
    """Serve STORE: the JSON API (OpenAPI at /openapi.json) and the browser page at /."""
    from .server import serve

    found = _locate(store_argument, store_option)
    _open(found).close()
    server = serve(found.url, host, port)
    click.echo(f"serving provenance on http://{host}:{server.server_port}/ (Ctrl-C to stop)", err=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def commands():
    return [prov_group]
