"""Pure numpy/scipy science of ambient-noise cross-correlation.

Modules
-------
params
    :class:`~noisecorr.signal.params.CorrelationParams`, validated NoisePy-style options.
preprocess
    Merge with gap mask, detrend, taper, resample, sub-sample alignment, response
    removal, bandpass, trim (Bensen et al. 2007).
windows
    Cutting into ``cc_len`` windows every ``step`` and rejecting gap/outlier windows.
normalize
    One-bit and running-absolute-mean normalisation; band-limited spectral whitening.
spectra
    Batched real FFTs (``(n_windows, n_freq)`` complex64 layout).
correlate
    Cross-spectra (xcorr, coherency, deconv) and the exact lag axis.
stack
    Linear, phase-weighted (Schimmel & Paulssen 1997) and robust (Pavlis & Vernon
    2010) stacks, sub-stacks.
geodesy, components
    Pair distance/azimuth; ENZ pairs and rotation to RTZ (Lin et al. 2008).
chain
    The per-station and per-pair chain assembled from the above.

Importing this package has no side effects; import the submodules you need.
"""
