"""noisecorr: ambient-noise cross-correlation on an embedded dataflow engine.

The package has two halves:

* :mod:`noisecorr.engine` -- a dataflow engine in the spirit of dispel4py: Processing
  Elements (PEs) with named ports connected into an abstract graph, enacted unchanged by a
  mapping chosen at run time (``sequential``, ``multiprocess``, ``mpi``, ``storm``).
* the seismology domain: signal functions (:mod:`noisecorr.signal`), ready-made PEs
  (the top-level :mod:`pes` package), results I/O and the ``noisecorr`` command line.

Importing :mod:`noisecorr` has no side effects and does not import numpy, MPI or ObsPy.
"""

__version__ = "0.1.0"


def open_results(path):
    """Open a results file written by a ``noisecorr run`` (see :mod:`noisecorr.results`)."""
    from noisecorr.results import open_results as _open

    return _open(path)


__all__ = ["__version__", "open_results"]
