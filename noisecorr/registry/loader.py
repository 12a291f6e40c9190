"""Turn stored source into live classes and graphs, checking its hash first.

Each entry's module source runs in a *synthetic module* whose name is derived from the entry
(workspace, name, version and content hash), so loading twice gives the same module and two
versions never collide. The module is registered with
:func:`cloudpickle.register_pickle_by_value`: PE prototypes made from it carry their code
with them into spawned worker processes and MPI ranks, which never see the registry.
"""

from __future__ import annotations

import contextvars
import hashlib
import linecache
import logging
import re
import sys
import types

from .errors import IntegrityError, RegistryError

log = logging.getLogger("noisecorr.registry")

#: Registry whose code is being executed (so ``load_pe`` inside registered code uses it).
active_registry = contextvars.ContextVar("noisecorr_active_registry", default=None)


def sha256_text(source: str) -> str:
    """Content hash of stored source: sha256 of its UTF-8 bytes, as hex."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def verify(ref, expected, source):
    """Raise :class:`IntegrityError` naming ``ref`` unless ``source`` hashes to ``expected``."""
    if source is None:
        raise IntegrityError(f"registry entry {ref}: its source (sha256 {expected}) is missing from the "
                             "registry; refusing to load it")
    actual = sha256_text(source)
    if actual != expected:
        raise IntegrityError(
            f"registry entry {ref}: stored source does not match its content hash (recorded sha256 "
            f"{expected}, source hashes to {actual}); it was changed outside noisecorr, so it is not run. "
            f"Remove it and add it again from a trusted copy."
        )


def module_name(workspace, name, version, sha256):
    """Deterministic name of the synthetic module for one entry."""
    def clean(s):
        return re.sub(r"[^0-9A-Za-z_]", "_", s)

    return f"_noisecorr_registry__{clean(workspace)}__{clean(name)}__v{version}__{sha256[:16]}"


def exec_module(name, source, filename, package=None, registry=None, by_value=True):
    """Run ``source`` as module ``name`` (reused if already loaded) and return the module.

    The source is put in :mod:`linecache` under ``filename`` so that tracebacks and
    :func:`inspect.getsource` show it.
    """
    existing = sys.modules.get(name)
    if existing is not None:
        return existing
    module = types.ModuleType(name)
    module.__file__ = filename
    module.__package__ = package
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    sys.modules[name] = module
    token = active_registry.set(registry)
    try:
        code = compile(source, filename, "exec")
        exec(code, module.__dict__)
    except Exception as exc:
        del sys.modules[name]
        raise RegistryError(f"running {filename} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        active_registry.reset(token)
    if by_value:
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)
    return module


def forget_module(name):
    """Remove a module made by :func:`exec_module` (used for the throw-away module of ``add``)."""
    module = sys.modules.pop(name, None)
    if module is not None:
        linecache.cache.pop(getattr(module, "__file__", None), None)


def unmet_requirements(requirements):
    """The requirements (PEP 508 strings) that the running environment does not satisfy."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    unmet = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            unmet.append(f"{text} (not installed)")
            continue
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            unmet.append(f"{text} (installed: {installed})")
    return unmet
