"""The PE and workflow registry: store, share and recombine PEs.

A registry keeps PE classes and workflows with the *source* of the module that defines them,
its sha256, a version per name, ports, docstring and declared requirements. It lives in one
SQLite file (default ``$XDG_DATA_HOME/noisecorr/registry.sqlite``, i.e.
``~/.local/share/noisecorr/registry.sqlite``; override with ``$NOISECORR_REGISTRY``) or in a
PostgreSQL database (``postgresql://user@host:port/db``, ``pip install 'noisecorr[registry]'``).
Names are ``workspace.Name``; workspaces keep groups apart.

Entries are signed with your Ed25519 key when you add them (``noisecorr registry keygen``
makes one), and loaded code runs only if it is signed by a key in your trusted keys, or is
unchanged from a module of the installed noisecorr; see :mod:`noisecorr.registry.signing`.

>>> import os, tempfile
>>> from noisecorr.registry import Registry, TrustedKeys, generate_key
>>> home = tempfile.mkdtemp()
>>> key = generate_key(os.path.join(home, "signing_key"), name="Demo Author")
>>> trusted = TrustedKeys(os.path.join(home, "trusted_keys"))
>>> trusted.add(key.public)
True
>>> reg = Registry(os.path.join(home, "registry.sqlite"), trusted_keys=trusted, signing_key=key)
>>> [a.entry.ref for a in reg.add("noisecorr.engine.examples", workspace="demo")]
['demo.NumberSource@1', 'demo.Doubler@1', 'demo.Sink@1', 'demo.Collect@1']
>>> Doubler = reg.load_pe("demo.Doubler")
>>> Doubler.__name__, reg.get("demo.Doubler").ports["inputs"]
('Doubler', {'input': {'grouping': None, 'optional': False}})
>>> reg.get("demo.Doubler").signer_name, reg.trust_of("demo.Doubler").state
('Demo Author', 'trusted')

Loaded code runs only after its hash and signature are checked, and its classes pickle by
value, so a graph built from registry PEs runs under every mapping. Registered code may itself use
other entries with :func:`load_pe` / :func:`load_workflow` (they resolve in the registry
that is loading it), which is how PEs are recombined into new workflows.
"""

from __future__ import annotations

from .core import Added, Entry, Registry, Trust
from .discover import export_workflow
from .errors import ConflictError, IntegrityError, NotFoundError, RegistryError, SignatureError, UntrustedError
from .loader import active_registry
from .names import DEFAULT_WORKSPACE, parse_ref
from .signing import TrustedKeys, generate_key
from .store import ENV_VAR, default_path, default_url


def _current():
    return active_registry.get() or Registry()


def load_pe(ref, registry=None, allow_unsigned=False):
    """Load a PE class from ``registry`` (a URL or :class:`Registry`).

    Default: the registry that is loading the calling code, else the default registry.
    ``allow_unsigned`` as in :meth:`Registry.load_pe` (this call only).
    """
    reg = registry if isinstance(registry, Registry) else (Registry(registry) if registry else _current())
    return reg.load_pe(ref, allow_unsigned=allow_unsigned)


def load_workflow(ref, registry=None, allow_unsigned=False, **kwargs):
    """Load a workflow graph; ``registry`` and ``allow_unsigned`` as in :func:`load_pe`."""
    reg = registry if isinstance(registry, Registry) else (Registry(registry) if registry else _current())
    return reg.load_workflow(ref, allow_unsigned=allow_unsigned, **kwargs)


__all__ = [
    "Added",
    "ConflictError",
    "DEFAULT_WORKSPACE",
    "ENV_VAR",
    "Entry",
    "IntegrityError",
    "NotFoundError",
    "Registry",
    "RegistryError",
    "SignatureError",
    "Trust",
    "TrustedKeys",
    "UntrustedError",
    "default_path",
    "default_url",
    "export_workflow",
    "generate_key",
    "load_pe",
    "load_workflow",
    "parse_ref",
]
