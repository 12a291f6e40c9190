"""Dispersion curves from stacks: SNR and FTAN group/phase velocities of many pairs,
their HDF5 and CSV outputs, plots and the ``noisecorr dispersion`` command.

The numerical work lives in :mod:`noisecorr.signal.symmetric` and
:mod:`noisecorr.signal.ftan`; this package reads results, runs them over every pair and
stores the curves.
"""
