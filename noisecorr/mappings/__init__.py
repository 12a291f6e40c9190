"""The mappings that enact a workflow graph, by name.

Each mapping is a small module with ``enact(spec, processes=None, **options) -> RunResult``
over the shared run loop in :mod:`noisecorr.engine.runtime`; it is imported only when it is
used, so a missing optional dependency (mpi4py for ``mpi``, distributed for ``dask``) only matters to those who ask
for that mapping.
"""

from __future__ import annotations

import importlib
import importlib.util

from noisecorr.engine.errors import MappingError

#: name -> (module, optional dependency module or None, extra to install)
MAPPINGS = {
    "sequential": ("noisecorr.mappings.sequential", None, None),
    "multiprocess": ("noisecorr.mappings.multiprocess", None, None),
    "mpi": ("noisecorr.mappings.mpi", "mpi4py", "mpi"),
    "storm": ("noisecorr.mappings.storm", None, "storm"),
    "dask": ("noisecorr.mappings.dask", "distributed", "dask"),
}

#: dispel4py's names
ALIASES = {"simple": "sequential", "multi": "multiprocess"}


def canonical_name(name) -> str:
    """Resolve aliases; raise :class:`MappingError` listing valid names for unknown ones."""
    key = ALIASES.get(name, name)
    if key not in MAPPINGS:
        valid = ", ".join(list(MAPPINGS) + [f"{a} (= {b})" for a, b in ALIASES.items()])
        raise MappingError(f"unknown mapping {name!r}; valid mappings: {valid}")
    return key


def load(name):
    """Import and return the module of mapping ``name``; fail at once if it cannot run."""
    key = canonical_name(name)
    module, dependency, extra = MAPPINGS[key]
    if dependency is not None and importlib.util.find_spec(dependency) is None:
        raise MappingError(
            f"mapping {key!r} needs {dependency}, which is not installed; "
            f"install it with: pip install 'noisecorr[{extra}]'"
        )
    if importlib.util.find_spec(module) is None:
        raise MappingError(f"mapping {key!r} is not available in this installation ({module} is missing)")
    return importlib.import_module(module)
