"""Results of a run: one HDF5 file (h5py) per run.

File layout (format ``noisecorr.results``, version 2)
-----------------------------------------------------
::

    /                                  file attributes:
        format            "noisecorr.results"
        format_version    2
        software_version  e.g. "0.1.0"
        params            processing parameters, JSON text
        starttime         start of the input data (ISO string or "null")
        endtime           end of the input data
        n_pairs           number of (source, receiver, component) entries
    /stations/code        str[n]   "NET.STA", sorted
    /stations/latitude    float64[n] degrees
    /stations/longitude   float64[n] degrees
    /stations/elevation   float64[n] metres
    /index/                            one row per stored stack, sorted by
                                       (source, receiver, component);
                                       attribute sorted = True
        source, receiver  bytes[m]  "NET.STA" (fixed-length ASCII)
        component         bytes[m]  e.g. "ZZ"
        complete          bool[m]
        n_windows         int64[m]  windows stacked (-1 unknown)
        sampling_rate     float64[m] Hz
        maxlag            float64[m] s (as given; the lag axis follows from
                                    the stack length and sampling_rate)
        distance_km, azimuth, back_azimuth
                          float64[m] WGS84 (Vincenty, as ObsPy's
                                    gps2dist_azimuth), NaN if a station
                                    has no coordinates
        starttime, endtime bytes[m] data used (ISO text, "" unknown)
        extra             bytes[m]  only if some pair has other metadata:
                                    a JSON object per row ("" none)
    /pairs/<SRC>/<RCV>/<COMP>          float32 [n_lags] or [n_substacks, n_lags]
                                       (SRC, RCV as "NET.STA", "." kept;
                                       COMP like "ZZ"); no attributes;
                                       contiguous, or one chunk per stack
                                       when compressed (gzip or lzf)

Station coordinates of a pair come from ``/stations``. ``Results.meta``
returns the same dict as for version 1 (source_coordinates,
receiver_coordinates, distance_km, ..., plus the ``extra`` items, now parsed
from JSON rather than returned as JSON text).

Version 1 (still read; upgraded to version 2 when resumed and merged) had
only source/receiver/component/complete in ``/index`` (variable-length
strings) and every item above as attributes of the pair's dataset, plus
``source_coordinates``/``receiver_coordinates``.

Lag axis: ``n = 2 * round(maxlag * fs) + 1`` samples, lag of sample ``k`` is
``(k - n // 2) / fs``, lag 0 at the centre (:func:`layout.lag_axis`).
Convention (as in :mod:`noisecorr.synth`): ``C(tau) = sum_t s(t) r(t + tau)``
for source ``s`` and receiver ``r``; energy from source to receiver arrives at
positive lags.

Crash safety and resume: see :mod:`noisecorr.results.writer` (checkpoint
parts ``<path>.parts/part-NNNNNN.h5`` written to ``.tmp`` and renamed; a
part keeps its stacks as 2-D ``/blocks/<k>`` plus the index columns with
``block``/``block_row``; the main file is only replaced by an atomic
rename). Writing many pairs: :meth:`ResultsWriter.write_block`.
"""

from .layout import lag_axis, pair_path
from .reader import Results, open_results
from .writer import ResultsWriter, merge_parts

__all__ = ["ResultsWriter", "Results", "open_results", "merge_parts", "lag_axis",
           "pair_path"]
