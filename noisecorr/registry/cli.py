"""``noisecorr registry ...``: add, list, show, sign, remove, export and import registry entries,
and manage your signing key and trusted keys (``keygen``, ``trust``, ``trusted``, ``untrust``).

Mounted by :mod:`noisecorr.cli` through :func:`commands`. ``noisecorr enact registry:ws.wf``
goes through :func:`load_registry_target`.
"""

from __future__ import annotations

import functools
import json

import click

from .errors import RegistryError
from .signing import SIGNING_KEY_ENV, TRUSTED_KEYS_ENV, default_signing_key_path, default_trusted_keys_path
from .store import ENV_VAR, default_path

REGISTRY_HELP = (f"Registry: a SQLite file, sqlite:///path or postgresql://user@host:port/db "
                 f"(default: ${ENV_VAR}, else $XDG_DATA_HOME/noisecorr/registry.sqlite, "
                 f"here {default_path()}).")
#: Prefix of ``noisecorr enact`` targets that name a registry workflow.
TARGET_PREFIX = "registry:"


def registry_option(fn):
    return click.option("--registry", "url", default=None, metavar="URL", help=REGISTRY_HELP)(fn)


def _open(url):
    from .core import Registry

    return Registry(url)


def _errors_to_click(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RegistryError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def load_registry_target(target, url=None, allow_unsigned=False):
    """The workflow graph of ``registry:ws.workflow[@version]`` (for ``noisecorr enact``).

    ``allow_unsigned`` (``enact --trust-unsigned``) runs it even if it is unsigned or signed
    by a key you do not trust, for this load only.
    """
    ref = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else target
    try:
        return _open(url).load_workflow(ref, allow_unsigned=allow_unsigned)
    except RegistryError as exc:
        raise click.BadParameter(str(exc), param_hint="TARGET") from exc


def _row(entry, status=None):
    tags = f" [{', '.join(entry.tags)}]" if entry.tags else ""
    head = f"{status:<10}" if status else ""
    return f"{head}{entry.ref:<36} {entry.kind:<8} {entry.summary}{tags}"


@click.group("registry")
def registry():
    """Store, share and recombine PEs and workflows (with their source, hash and version)."""


@registry.command("add")
@click.argument("targets", nargs=-1, required=True, metavar="FILE.py|MODULE...")
@click.option("-w", "--workspace", default="default", show_default=True, help="Workspace (namespace) of the entries.")
@click.option("--version", "version", type=click.IntRange(min=1), default=None,
              help="Version of every entry (default: the next one of each name; same source = unchanged).")
@click.option("-t", "--tag", "tags", multiple=True, help="Tag the entries (repeatable).")
@registry_option
@_errors_to_click
def add_command(targets, workspace, version, tags, url):
    """Register the PE classes and exported workflows defined in modules or files."""
    reg = _open(url)
    for target in targets:
        for added in reg.add(target, workspace=workspace, version=version, tags=tags):
            click.echo(_row(added.entry, added.status))


@registry.command("add-builtin")
@click.option("-t", "--tag", "tags", multiple=True, help="Extra tag (they are all tagged 'builtin').")
@registry_option
@_errors_to_click
def add_builtin_command(tags, url):
    """Register every module of the ready-made PEs (package pes) in workspace 'noisecorr'."""
    for added in _open(url).add_builtin(tags=tags):
        click.echo(_row(added.entry, added.status))


@registry.command("list")
@click.argument("pattern", required=False)
@click.option("-w", "--workspace", default=None, help="Only this workspace.")
@click.option("-t", "--tag", default=None, help="Only entries with this tag.")
@click.option("--text", default=None, help="Words that must all appear in the name or documentation.")
@click.option("--kind", type=click.Choice(["pe", "workflow"]), default=None)
@click.option("-a", "--all-versions", is_flag=True, help="Every version, not only the latest.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per entry, in a list).")
@registry_option
@_errors_to_click
def list_command(pattern, workspace, tag, text, kind, all_versions, as_json, url):
    """List entries (PATTERN: glob or substring of ws.Name), with their first docstring line."""
    entries = _open(url).list(pattern, workspace=workspace, tag=tag, text=text, kind=kind,
                              all_versions=all_versions)
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in entries], indent=1))
        return
    for entry in entries:
        click.echo(_row(entry))
    if not entries:
        click.echo("no entries match", err=True)


@registry.command("show")
@click.argument("ref", metavar="WS.NAME[@VERSION]")
@click.option("--source", "with_source", is_flag=True, help="Also print the stored source (hash checked).")
@click.option("--json", "as_json", is_flag=True)
@registry_option
@_errors_to_click
def show_command(ref, with_source, as_json, url):
    """Show an entry: version, hash, ports, requirements, documentation."""
    from .loader import unmet_requirements

    reg = _open(url)
    entry, source = reg.source(ref) if with_source else (reg.get(ref), None)
    versions = [e.version for e in reg.versions(ref)]
    trust = reg.trust_of(entry)
    if as_json:
        d = entry.to_dict()
        d["versions"] = versions
        d["signer_id"] = entry.signer_id
        d["trust"] = trust.state
        if with_source:
            d["source"] = source
        click.echo(json.dumps(d, indent=1))
        return
    click.echo(f"{entry.ref}  ({entry.kind})")
    click.echo(f"  versions:     {', '.join(map(str, versions))}")
    click.echo(f"  module:       {entry.module} ({entry.filename or 'no file name'}), attribute {entry.qualname}")
    click.echo(f"  sha256:       {entry.sha256}")
    click.echo(f"  signature:    {trust.describe()}")
    click.echo(f"  added:        {entry.created_at}")
    click.echo(f"  tags:         {', '.join(entry.tags) or '-'}")
    unmet = set(unmet_requirements(entry.requirements))
    reqs = [r + (" (unmet)" if any(u.startswith(r + " (") for u in unmet) else "") for r in entry.requirements]
    click.echo(f"  requirements: {', '.join(reqs) or '-'}")
    if entry.uses:
        click.echo(f"  uses:         {', '.join(entry.uses)}")
    if entry.kind == "pe":
        ports = entry.ports
        click.echo(f"  ports (from {ports.get('from')}):")
        for name, decl in ports.get("inputs", {}).items():
            grouping = decl.get("grouping")
            click.echo(f"    input  {name}" + (f"  grouping={grouping!r}" if grouping is not None else "")
                       + ("  (optional)" if decl.get("optional") else ""))
        for name in ports.get("outputs", []):
            click.echo(f"    output {name}")
    elif entry.ports.get("built"):
        click.echo("  PEs:          " + ", ".join(f"{p['name']} ({p['class']})" for p in entry.ports["pes"]))
        for s, sp, d, dp in entry.ports["edges"]:
            click.echo(f"    {s}.{sp} -> {d}.{dp}")
    else:
        click.echo(f"  graph:        built when loaded ({entry.ports.get('reason', '')})")
    if entry.doc:
        click.echo("")
        click.echo("\n".join("  " + line for line in entry.doc.splitlines()))
    if with_source:
        click.echo("")
        click.echo(source, nl=not source.endswith("\n"))


@registry.command("sign")
@click.argument("refs", nargs=-1, required=True, metavar="WS.NAME[@VERSION]...")
@click.option("--replace", is_flag=True, help="Replace a signature by another key with yours.")
@registry_option
@_errors_to_click
def sign_command(refs, replace, url):
    """Sign stored entries with your key: you vouch for their source, so read it first
    (`noisecorr registry show REF --source`)."""
    reg = _open(url)
    for ref in refs:
        added = reg.sign(ref, replace=replace)
        click.echo(_row(added.entry, added.status))


@registry.command("keygen")
@click.option("--name", default=None, help="Your name, recorded in every entry you sign (default: user@host).")
@click.option("--force", is_flag=True, help="Replace an existing key.")
@_errors_to_click
def keygen_command(name, force):
    """Make your Ed25519 signing key and add its public key to your trusted keys."""
    from .signing import TrustedKeys, generate_key

    key = generate_key(name=name, force=force)
    trusted = TrustedKeys()
    trusted.add(key.public)
    click.echo(f"signing key {key.public.key_id} ({key.public.name}) written to {key.path}")
    click.echo(f"public key (give it to those who should trust you): {key.path}.pub")
    click.echo(f"  {key.public.line()}")
    click.echo(f"your own key is now in your trusted keys ({trusted.path})")


keygen_command.help = (f"Make your Ed25519 signing key (${SIGNING_KEY_ENV}, else {default_signing_key_path()}; "
                       "mode 0600) and add its public key to your trusted keys.")


@registry.command("trust")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False),
                metavar="PUBKEY_FILE...")
@click.option("--name", default=None, help="Name to trust the key as (default: the name in the file).")
@_errors_to_click
def trust_command(files, name):
    """Trust the public key(s) in PUBKEY_FILE (a signing_key.pub from `keygen`): entries they
    sign will run when loaded. Get the file over a channel you trust, not from the registry."""
    from .signing import TrustedKeys, read_public_key_file

    trusted = TrustedKeys()
    for path in files:
        key = read_public_key_file(path, name=name)
        new = trusted.add(key)
        click.echo(f"{'trusted' if new else 'already trusted'}  {key.key_id}  {key.name}")


trust_command.help += f" Trusted keys: ${TRUSTED_KEYS_ENV}, else {default_trusted_keys_path()}."


@registry.command("trusted")
@_errors_to_click
def trusted_command():
    """List your trusted keys: key id, name and public key."""
    from .signing import TrustedKeys

    trusted = TrustedKeys()
    keys = trusted.keys()
    for key in keys:
        click.echo(f"{key.key_id}  {key.name:<30} {key.b64}")
    if not keys:
        click.echo(f"no trusted keys in {trusted.path}", err=True)


@registry.command("untrust")
@click.argument("key_id")
@_errors_to_click
def untrust_command(key_id):
    """Stop trusting the key KEY_ID (as listed by `noisecorr registry trusted`)."""
    from .signing import TrustedKeys

    key = TrustedKeys().remove(key_id)
    click.echo(f"untrusted  {key.key_id}  {key.name}")


@registry.command("remove")
@click.argument("ref", metavar="WS.NAME[@VERSION]")
@registry_option
@_errors_to_click
def remove_command(ref, url):
    """Remove one version, or every version of a name when no version is given."""
    for entry in _open(url).remove(ref):
        click.echo(f"removed   {entry.ref}")


@registry.command("export")
@click.argument("bundle", type=click.Path(dir_okay=False, writable=True))
@click.argument("refs", nargs=-1, metavar="[WS.NAME[@VERSION]]...")
@click.option("-w", "--workspace", default=None, help="Only this workspace (without REFS).")
@click.option("--latest-only", is_flag=True, help="Only the latest version of each name.")
@registry_option
@_errors_to_click
def export_command(bundle, refs, workspace, latest_only, url):
    """Write entries (default: all) with their sources to a JSON bundle file."""
    entries = _open(url).export(bundle, refs=list(refs) or None, workspace=workspace, all_versions=not latest_only)
    click.echo(f"exported {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} to {bundle}")


@registry.command("import")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.option("-w", "--workspace", default=None, help="Import into this workspace instead of the bundle's.")
@registry_option
@_errors_to_click
def import_command(bundle, workspace, url):
    """Add the entries of a bundle file (every source hash-checked first; versions kept)."""
    for added in _open(url).import_bundle(bundle, workspace=workspace):
        click.echo(_row(added.entry, added.status))


@registry.command("info")
@registry_option
@_errors_to_click
def info_command(url):
    """Where the registry is, its schema version and what it holds."""
    info = _open(url).info()
    click.echo(f"registry:       {info['backend']}")
    click.echo(f"schema version: {info['schema_version']} (latest {info['latest_schema_version']})")
    click.echo(f"entries:        {info['entries']} ({info['names']} names)")
    click.echo(f"workspaces:     {', '.join(info['workspaces']) or '-'}")


def commands():
    """Commands mounted on ``noisecorr``."""
    return [registry]
