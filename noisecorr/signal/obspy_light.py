"""Import ObsPy's signal tools without what :mod:`obspy.signal`'s ``__init__`` loads.

``import obspy.signal.invsim`` (or ``.util``, or the ``evrespwrapper`` that
:meth:`obspy.core.inventory.response.Response.get_evalresp_response` imports) first runs
``obspy/signal/__init__.py``, which imports :class:`~obspy.signal.PPSD` and with it
``matplotlib.pyplot``, ObsPy's imaging and the SEED parser: about 0.7 s of CPU, more than a
small run's computing, for none of the functions a response removal calls.

:func:`install` registers ``obspy.signal`` as its real package (same spec, same
``__path__``, so every submodule imports from ObsPy's own files) whose ``__init__`` code
runs the first time one of the package's own names is asked for (``obspy.signal.PPSD``,
``from obspy.signal import PPSD``): code that uses the package as documented sees no
difference, only the cost moves to the first use of ``PPSD`` and the like
(``tests/signal/test_obspy_light.py``). Nothing is done when ``obspy.signal`` is already
imported.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
import threading

__all__ = ["install"]

_LOCK = threading.RLock()


def install() -> None:
    """Register the deferred ``obspy.signal`` package (idempotent; see the module doc)."""
    with _LOCK:
        if "obspy.signal" in sys.modules:
            return
        import obspy

        spec = importlib.util.find_spec("obspy.signal")
        if spec is None or spec.loader is None or not spec.submodule_search_locations:
            return
        module = importlib.util.module_from_spec(spec)
        state = {"done": False}
        submodules = {m.name for m in pkgutil.iter_modules(spec.submodule_search_locations)}

        def complete():
            with _LOCK:
                if state["done"]:
                    return
                state["done"] = True
                module.__dict__.pop("__getattr__", None)
                spec.loader.exec_module(module)

        def __getattr__(name):
            # the package's own names (PPSD, ...) exist only once its __init__ has run
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(name)
            if name in submodules and not state["done"]:
                # ``from obspy.signal import util`` in ObsPy's own modules: the submodule
                return importlib.import_module(f"obspy.signal.{name}")
            complete()
            try:
                return module.__dict__[name]
            except KeyError:
                raise AttributeError(f"module 'obspy.signal' has no attribute {name!r}") from None

        module.__getattr__ = __getattr__
        sys.modules["obspy.signal"] = module
        obspy.signal = module
