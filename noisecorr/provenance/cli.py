"""``noisecorr prov``: list, export and serve recorded provenance."""

from __future__ import annotations

import click


def _open(store_url):
    from .store import Store, StoreError, default_url, redact

    url = store_url or default_url()
    try:
        return Store(url, create=False)
    except StoreError as exc:
        raise click.UsageError(f"{exc} (record one with --provenance, or pass --store {redact(url)})") from None


_STORE = click.option("--store", "store_url", metavar="URL", envvar="NOISECORR_PROVENANCE_STORE",
                      help="Provenance store: path, sqlite:///path or postgresql://... "
                           "(default: $NOISECORR_PROVENANCE_STORE, else $XDG_DATA_HOME/noisecorr/provenance.sqlite).")


@click.group("prov")
def prov_group():
    """W3C-PROV lineage of runs: list, export, serve (web API and browser page)."""


@prov_group.command("runs")
@_STORE
def runs_command(store_url):
    """List recorded runs, newest first."""
    with _open(store_url) as store:
        runs, total = store.runs(0, 200)
        for r in runs:
            click.echo(f"{r['run_id']}  {r['started']}  {r['status']:<9}  {r['mapping']:<12}  {r['user_name']}")
        click.echo(f"{total} run(s)")
    return 0


@prov_group.command("export")
@click.argument("run")
@click.option("--format", "fmt", type=click.Choice(["json", "provn", "xml"]), default="json", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File to write (default: standard output).")
@_STORE
def export_command(run, fmt, output, store_url):
    """Export run RUN as PROV-JSON, PROV-N or PROV-XML."""
    from .export import ExportError, export

    with _open(store_url) as store:
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
@_STORE
def serve_command(host, port, store_url):
    """Serve the JSON API (OpenAPI at /openapi.json) and the browser page at /."""
    from .server import serve

    _open(store_url).close()
    from .store import default_url

    server = serve(store_url or default_url(), host, port)
    click.echo(f"serving provenance on http://{host}:{server.server_port}/ (Ctrl-C to stop)", err=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def commands():
    return [prov_group]
