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
import math
import importlib.util
import pkgutil
import sys
import threading

__all__ = ["install", "npts2nfft", "cosine_sac_taper", "invert_spectrum"]

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


# ObsPy's response-removal helpers, re-stated: ``obspy.signal.util`` and ``obspy.signal.invsim``
# import scipy.signal (0.7 s) for functions a response removal does not call. Same
# algorithms, same results (tests/signal/test_obspy_light.py compares them to ObsPy's).

def npts2nfft(npts: int) -> int:
    """ObsPy's ``obspy.signal.util._npts2nfft`` (ObsPy 1.4/1.5): ``2 npts`` (``npts`` made
    even first), or, beyond 5000 points when a prime factor is 500 or more, the first of the
    next ten even numbers without one, else the next power of two."""
    from obspy.core.util.misc import factorize_int

    npts = int(npts)
    nfft = 2 * (npts + 1) if npts & 1 else 2 * npts

    def good(x):
        return max(factorize_int(x)) < 500

    if nfft > 5000 and not good(nfft):
        for i in range(1, 11):
            if good(nfft + 2 * i):
                return nfft + 2 * i
        return int(2 ** math.ceil(math.log(nfft) / math.log(2)))
    return nfft


def cosine_sac_taper(freqs, flimit):
    """ObsPy's ``obspy.signal.invsim.cosine_sac_taper``: 0 below ``f1`` and above ``f4``, 1
    between ``f2`` and ``f3``, cosine ramps between (``flimit = (f1, f2, f3, f4)``, Hz)."""
    import numpy as np

    fl1, fl2, fl3, fl4 = flimit
    taper = np.zeros_like(freqs)
    a = (fl1 <= freqs) & (freqs <= fl2)
    taper[a] = 0.5 * (1.0 - np.cos(np.pi * (freqs[a] - fl1) / (fl2 - fl1)))
    b = (fl2 < freqs) & (freqs < fl3)
    taper[b] = 1.0
    c = (fl3 <= freqs) & (freqs <= fl4)
    taper[c] = 0.5 * (1.0 + np.cos(np.pi * (freqs[c] - fl3) / (fl4 - fl3)))
    return taper


def invert_spectrum(spec, wlev) -> int:
    """ObsPy's ``obspy.signal.invsim.invert_spectrum`` (PITSA's spr_sinv.c), in place:
    values below the water level ``wlev`` dB under the largest modulus are raised to it
    (phase kept), then every non-zero value is inverted; returns how many were raised."""
    import numpy as np

    swamp = np.abs(spec).max() * 10.0 ** (-wlev / 20.0)
    sqrt_len = np.abs(spec)
    idx = np.where((sqrt_len < swamp) & (sqrt_len > 0.0))
    spec[idx] *= swamp / sqrt_len[idx]
    found = len(idx[0])
    sqrt_len = np.abs(spec)
    inn = np.where(sqrt_len > 0.0)
    spec[inn] = 1.0 / spec[inn]
    spec[sqrt_len == 0.0] = complex(0.0, 0.0)
    return found
