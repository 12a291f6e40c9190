"""Ready-made Processing Elements for ambient-noise cross-correlation.

Each PE is a thin wrapper over the pure functions of :mod:`noisecorr.signal`; items are
plain picklable dicts of numpy arrays and strings (see each module for the fields).

A typical graph::

    Fetch -> Preprocess -> Normalise -> Spectra -> Whiten -> CrossCorrelate -> Stack

``CrossCorrelate`` groups items by ``"chunk"`` (all stations of one time chunk meet in one
instance) and ``Stack`` by ``"key"`` (one instance per station pair and component).
"""

from pes.correlate import CrossCorrelatePE
from pes.fetch import FetchPE, FileClient, chunk_requests
from pes.normalise import NormalisePE, SpectraPE, WhitenPE
from pes.preprocess import PreprocessPE
from pes.stack import StackPE

__all__ = ["FetchPE", "FileClient", "chunk_requests", "PreprocessPE", "NormalisePE", "SpectraPE",
           "WhitenPE", "CrossCorrelatePE", "StackPE"]
