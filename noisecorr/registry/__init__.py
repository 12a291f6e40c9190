"""The PE and workflow registry: store, share and recombine PEs.

A registry keeps PE classes and workflows with the *source* of the module that defines them,
its sha256, a version per name, ports, docstring and declared requirements. It lives in one
SQLite file (default ``$XDG_DATA_HOME/noisecorr/registry.sqlite``, i.e.
``~/.local/share/noisecorr/registry.sqlite``; override with ``$NOISECORR_REGISTRY``) or in a
PostgreSQL database (``postgresql://user@host:port/db``, ``pip install 'noisecorr[registry]'``).
Names are ``workspace.Name``; workspaces keep groups apart.

>>> import os, tempfile
>>> from noisecorr.registry import Registry
>>> reg = Registry(os.path.join(tempfile.mkdtemp(), "registry.sqlite"))
>>> [a.entry.ref for a in reg.add("noisecorr.engine.examples", workspace="demo")]
['demo.NumberSource@1', 'demo.Doubler@1', 'demo.Sink@1', 'demo.Collect@1']
>>> Doubler = reg.load_pe("demo.Doubler")
>>> Doubler.__name__, reg.get("demo.Doubler").ports["inputs"]
('Doubler', {'input': {'grouping': None, 'optional': False}})

Loaded code runs only after its hash is checked, and its classes pickle by value, so a
graph built from registry PEs runs under every mapping. Registered code may itself use
other entries with :func:`load_pe` / :func:`load_workflow` (they resolve in the registry
that is loading it), which is how PEs are recombined into new workflows.
"""

from __future__ import annotations

from .core import Added, Entry, Registry
from .discover import export_workflow
from .errors import ConflictError, IntegrityError, NotFoundError, RegistryError
from .loader import active_registry
from .names import DEFAULT_WORKSPACE, parse_ref
from .store import ENV_VAR, default_path, default_url


def _current():
    return active_registry.get() or Registry()


def load_pe(ref, registry=None):
    """Load a PE class from ``registry`` (a URL or :class:`Registry`).

    Default: the registry that is loading the calling code, else the default registry.
    """
    reg = registry if isinstance(registry, Registry) else (Registry(registry) if registry else _current())
    return reg.load_pe(ref)


def load_workflow(ref, registry=None, **kwargs):
    """Load a workflow graph; ``registry`` as in :func:`load_pe`."""
    reg = registry if isinstance(registry, Registry) else (Registry(registry) if registry else _current())
    return reg.load_workflow(ref, **kwargs)


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
    "default_path",
    "default_url",
    "export_workflow",
    "load_pe",
    "load_workflow",
    "parse_ref",
]
