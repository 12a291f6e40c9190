"""Results of a run: one HDF5 file (h5py) per run.

File layout (format ``noisecorr.results``, version 1)
-----------------------------------------------------
::

    /                                  file attributes:
        format            "noisecorr.results"
        format_version    1
        software_version  e.g. "0.1.0"
        params            processing parameters, JSON text
        starttime         start of the input data (ISO string or "null")
        endtime           end of the input data
        n_pairs           number of (source, receiver, component) entries
    /stations/code        str[n]   "NET.STA", sorted
    /stations/latitude    float64[n] degrees
    /stations/longitude   float64[n] degrees
    /stations/elevation   float64[n] metres
    /index/source         str[m]   one row per stored stack
    /index/receiver       str[m]
    /index/component      str[m]
    /index/complete       bool[m]
    /pairs/<SRC>/<RCV>/<COMP>          float32 [n_lags] or [n_substacks, n_lags]
                                       (SRC, RCV as "NET.STA", "." kept;
                                       COMP like "ZZ"); chunked (one chunk per
                                       stack) when compressed (gzip or lzf)
        attributes: source, receiver, component,
                    source_coordinates, receiver_coordinates
                    (float64 [latitude deg, longitude deg, elevation m]),
                    distance_km, azimuth, back_azimuth (WGS84, ObsPy),
                    sampling_rate (Hz), maxlag (s), n_windows,
                    starttime, endtime (data used), complete (bool),
                    plus any other metadata given to the writer
                    (non-scalar values as JSON text, None as "null")

Lag axis: ``n = 2 * round(maxlag * fs) + 1`` samples, lag of sample ``k`` is
``(k - n // 2) / fs``, lag 0 at the centre (:func:`layout.lag_axis`).
Convention (as in :mod:`noisecorr.synth`): ``C(tau) = sum_t s(t) r(t + tau)``
for source ``s`` and receiver ``r``; energy from source to receiver arrives at
positive lags.

Crash safety and resume: see :mod:`noisecorr.results.writer` (checkpoint
parts ``<path>.parts/part-NNNNNN.h5`` written to ``.tmp`` and renamed; the
main file is only replaced by an atomic rename).
"""

from .layout import lag_axis, pair_path
from .reader import Results, open_results
from .writer import ResultsWriter, merge_parts

__all__ = ["ResultsWriter", "Results", "open_results", "merge_parts", "lag_axis",
           "pair_path"]
