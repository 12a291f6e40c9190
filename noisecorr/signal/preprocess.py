"""Per-station, per-chunk preprocessing of raw waveforms (Bensen et al. 2007, sec. 2).

:func:`preprocess_stream` turns an ObsPy Stream (one channel, possibly gappy or
overlapping, any sampling rate) into a :class:`ProcessedTrace` on the sample grid of a
time chunk ``[starttime, endtime)`` at the target sampling rate:

1. select the channel, reject empty/non-finite/all-zero data and inconsistent rates
   (header rates that differ by less than ``rate_tolerance``, relative, are the same rate:
   miniSEED writers often store estimates such as 100.00001 Hz);
2. join segments separated by at most ``max_gap_fill`` missing samples (or overlapping by
   at most that many, or torn by a fraction of a sample) by linear interpolation across the
   gap, so a single missing sample does not cost a taper on both sides of it; then, for
   each contiguous segment: remove the mean and linear trend, taper both ends
   (the tapered ramps are marked as gaps, since they no longer hold faithful data);
3. merge the segments onto one grid (:func:`merge_with_gap_mask`): missing samples are
   zero and flagged in a boolean gap mask, overlaps are resolved in favour of the
   later segment;
4. anti-aliased resampling to ``sampling_rate`` (:func:`resample`): an integer ratio
   uses a linear-phase (delay-compensated, i.e. zero-phase) Kaiser FIR low-pass and
   polyphase decimation; other ratios use the same FIR low-pass followed by Lanczos
   interpolation onto the chunk's sample grid;
5. sub-sample alignment: data whose first sample does not fall on the chunk grid
   ``starttime + k / sampling_rate`` is delayed or advanced by the fractional offset in
   the frequency domain (:func:`fractional_shift`);
6. instrument response removal with an ObsPy Inventory (``response_output``,
   ``pre_filt``, ``water_level`` as in :meth:`obspy.core.trace.Trace.remove_response`:
   ObsPy's evalresp response, taper, water level and spectral division, but in single
   precision, with the taper times the inverted response cached per response and FFT
   length, and with the FFT length of a full chunk (:func:`remove_response`,
   ``dtype=float32``): the samples differ from ObsPy's float64 ones by float32 rounding,
   not by method (3e-7 of the trace's peak on a 20 Hz day; tested below 1e-5). Chunks of
   at least :data:`BLOCKED_MIN_SAMPLES` apply the same operator as a finite kernel by
   overlap-save in cache-sized blocks instead of one FFT pair of twice the chunk's length
   (a seventh of the time for a day at 20 Hz); ObsPy's spectral division is a linear
   convolution with that kernel (its FFT length leaves no wrap-around), so this differs
   only by the kernel's tail beyond the lag where it falls below :data:`KERNEL_TOL` of its
   peak (4e-7 of the trace's peak on the benchmark's day, tested below 1e-5);
7. zero-phase Butterworth bandpass ``freqmin``-``freqmax`` (:func:`bandpass`); after a
   response removal it is folded into the same spectral pass as the filter's squared
   magnitude, which differs from forward-backward filtering only near the data's ends
   (zero padding instead of odd extension; see :func:`remove_response`);
8. trimming and zero-padding to exactly ``round((endtime - starttime) * sampling_rate)``
   samples.

Filter transients near gaps can extend a little beyond the masked ramps; windows
touching the mask are rejected downstream (:func:`noisecorr.signal.windows.cut_windows`).
The input Stream is never modified.

Deliberate differences from NoisePy 0.9.93's ``preprocess_raw`` (measured by
``scripts/compare_noisepy.py``: 0.993 median coefficient of the preprocessed traces, no
measurable effect on whitened stacks): NoisePy bandpasses ``0.9 freqmin``-``1.1 freqmax``
(capped at 0.45 of the rate) with the same 4-pole zero-phase Butterworth, resamples with
ObsPy's FFT ``resample`` and interpolates sub-sample starts in the time domain, and tapers
the ends of its data but correlates the tapered samples; here the band is exactly
``freqmin``-``freqmax``, resampling is an anti-aliased FIR with a frequency-domain shift,
and tapered ramps are masked, so a chunk without data beyond its ends (no fetch pad) loses
the window that touches each ramp. The default ``pre_filt`` follows the band
(:func:`default_pre_filt`); NoisePy's is ``(0.9 freqmin, freqmin, freqmax, 1.1 freqmax)``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import pickle
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import scipy.fft
from obspy import Stream, Trace, UTCDateTime

from noisecorr.signal import obspy_light
from noisecorr.signal.filters import butter_bandpass_zpk
from noisecorr.signal.windows import detrend_linear

# ObsPy's response tools without obspy.signal's __init__ (PPSD, pyplot: ~0.7 s); and
# scipy.signal (~0.7 s) only inside the functions that use more than the bandpass design
obspy_light.install()

__all__ = [
    "PreprocessError",
    "ProcessedTrace",
    "merge_with_gap_mask",
    "default_margin",
    "default_pre_filt",
    "fetch_pad",
    "resample",
    "antialias_fir",
    "fractional_shift",
    "bandpass",
    "remove_response",
    "response_nfft",
    "preprocess_stream",
    "preprocess_chunk",
]

logger = logging.getLogger(__name__)


class PreprocessError(ValueError):
    """Input data that cannot be preprocessed; the message names the seed id and the reason."""

    def __init__(self, seed_id: str, reason: str):
        self.seed_id = seed_id
        self.reason = reason
        super().__init__(f"{seed_id}: {reason}")


@dataclass(frozen=True)
class ProcessedTrace:
    """One channel of one time chunk after preprocessing.

    Attributes
    ----------
    seed_id : str
        ``NET.STA.LOC.CHA``.
    starttime : float
        Time of ``data[0]`` in POSIX seconds (UTC); the chunk start.
    sampling_rate : float
        Hz.
    data : ndarray, float32, shape (npts,)
        Ground motion in SI units (m/s for ``response_output="VEL"``), zero in gaps.
    gap_mask : ndarray, bool, shape (npts,)
        True where the sample holds no (faithful) data.
    """

    seed_id: str
    starttime: float
    sampling_rate: float
    data: np.ndarray
    gap_mask: np.ndarray

    @property
    def npts(self) -> int:
        return int(self.data.shape[0])

    @property
    def endtime(self) -> float:
        """End of the chunk (exclusive) in POSIX seconds: ``starttime + npts / sampling_rate``."""
        return self.starttime + self.npts / self.sampling_rate

    @property
    def coverage(self) -> float:
        """Fraction of samples holding data."""
        return float(1.0 - self.gap_mask.mean()) if self.npts else 0.0

    def times(self) -> np.ndarray:
        """Sample times in POSIX seconds (float64)."""
        return self.starttime + np.arange(self.npts) / self.sampling_rate


# ---------------------------------------------------------------------------- helpers
def _seed_id_of(stream: Stream, seed_id: str | None) -> str:
    ids = sorted({tr.id for tr in stream})
    if seed_id is not None:
        return seed_id
    if not ids:
        raise PreprocessError("<unknown>", "empty stream: no traces")
    if len(ids) > 1:
        raise PreprocessError(",".join(ids), "stream holds several channels; pass seed_id")
    return ids[0]


#: Default relative tolerance between the header sampling rates of one channel's segments.
RATE_TOLERANCE = 1e-5


def _check_traces(traces: list[Trace], seed_id: str, rate_tolerance: float = RATE_TOLERANCE) -> float:
    """Validate one channel's traces and return their common sampling rate in Hz.

    Rates that differ by at most ``rate_tolerance`` (relative to the median rate) are taken
    as one rate, the median. Each segment keeps its own start time, so the timing error this
    admits is at most ``rate_tolerance`` times a segment's length (0.86 s over a full day at
    1e-5; a segment of a day file is usually much shorter).
    """
    if not traces:
        raise PreprocessError(seed_id, "no data: no trace with this seed id")
    rates = sorted({float(tr.stats.sampling_rate) for tr in traces})
    for rate in rates:
        if not rate > 0 or not math.isfinite(rate):
            raise PreprocessError(seed_id, f"invalid sampling rate {rate!r} Hz")
    rate = float(np.median([float(tr.stats.sampling_rate) for tr in traces]))
    if len(rates) != 1:
        spread = (rates[-1] - rates[0]) / rate
        if spread > rate_tolerance:
            raise PreprocessError(seed_id, f"inconsistent sampling rates {rates} Hz (relative spread "
                                           f"{spread:.3g} > rate_tolerance {rate_tolerance:g})")
        logger.debug("%s: header rates %s Hz within tolerance; using %r Hz", seed_id, rates, rate)
    if all(tr.stats.npts == 0 for tr in traces):
        raise PreprocessError(seed_id, "no data: all traces are empty")
    for tr in traces:
        data = np.asarray(tr.data)
        if data.dtype.kind not in "iuf":
            raise PreprocessError(seed_id, f"unsupported data type {data.dtype}")
        if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
            raise PreprocessError(seed_id, f"data contain NaN or inf (trace starting {tr.stats.starttime})")
    if not any(np.count_nonzero(np.asarray(tr.data)) for tr in traces):
        raise PreprocessError(seed_id, "data are all zero")
    return rate


def _cosine_ramps(n: int, n_taper: int) -> np.ndarray:
    w = np.ones(n)
    if n_taper > 0:
        ramp = 0.5 * (1.0 - np.cos(np.pi * np.arange(n_taper) / n_taper))
        w[:n_taper] = ramp
        w[n - n_taper:] = ramp[::-1]
    return w


def _dilate(mask: np.ndarray) -> np.ndarray:
    """Grow the True runs of a boolean array by one sample on each side."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    return out


def _runs(mask: np.ndarray) -> np.ndarray:
    """(start, stop) index pairs of the True runs of a boolean array."""
    m = np.concatenate(([False], mask, [False])).astype(np.int8)
    d = np.diff(m)
    return np.stack([np.flatnonzero(d == 1), np.flatnonzero(d == -1)], axis=1)


# ---------------------------------------------------------------------------- merging
def merge_with_gap_mask(stream: Stream, seed_id: str | None = None, *,
                        taper_fraction: float = 0.0, taper_max_length: float | None = None,
                        max_gap_fill: int = 0, rate_tolerance: float = RATE_TOLERANCE,
                        ) -> tuple[Trace, np.ndarray]:
    """Merge the traces of one channel onto one sample grid, returning a gap mask.

    Parameters
    ----------
    stream : obspy.Stream
        Not modified.
    seed_id : str, optional
        Channel to merge; required when the stream holds several.
    taper_fraction : float
        If > 0, each contiguous segment is demeaned, linearly detrended and
        cosine-tapered over ``taper_fraction`` of its length at both ends (capped at
        ``taper_max_length`` seconds) before merging, and the ramps are masked.
    taper_max_length : float, optional
        Seconds.
    max_gap_fill : int
        Segments whose gap, once placed on the grid, is at most this many missing samples
        (0 for a sub-sample tear; an overlap of at most this many samples counts too) are
        joined before detrending and tapering, the missing samples filled by linear
        interpolation between the neighbouring samples and not masked. 0 joins only
        segments that abut on the grid (tears of under half a sample); negative disables
        joining.
    rate_tolerance : float
        Relative tolerance between the segments' header sampling rates.

    Returns
    -------
    trace : obspy.Trace
        New trace (float64 data) starting at the earliest sample; gaps are zero.
        Segments are placed at the nearest sample of the first segment's grid;
        overlapping samples take the value of the later-starting segment.
    gap_mask : ndarray of bool
        True where no segment provided the sample (or the sample lies in a ramp).
    """
    sid = _seed_id_of(stream, seed_id)
    traces = [tr for tr in stream if tr.id == sid and tr.stats.npts > 0]
    fs = _check_traces(traces or [tr for tr in stream if tr.id == sid], sid, rate_tolerance)
    traces.sort(key=lambda tr: (tr.stats.starttime, tr.stats.endtime))
    t0 = traces[0].stats.starttime
    offsets = []
    for tr in traces:
        pos = (tr.stats.starttime - t0) * fs
        idx = int(round(pos))
        if abs(pos - idx) > 0.01:
            logger.debug("%s: segment at %s is %.3f samples off the grid; rounded",
                         sid, tr.stats.starttime, pos - idx)
        offsets.append(idx)
    segments, n_filled = _join_short_gaps(offsets, [np.asarray(tr.data, dtype=np.float64) for tr in traces],
                                          max_gap_fill)
    if n_filled:
        logger.info("%s: %d missing sample(s) in short gaps filled by linear interpolation", sid, n_filled)
    total = max(o + seg.size for o, seg in segments)
    prepared = []
    for off, seg in segments:
        seg_mask = np.zeros(seg.size, dtype=bool)
        if taper_fraction > 0:
            # a converted or joined segment is this call's own array: detrended in place
            seg = detrend_linear(seg, overwrite_x=not _shares_trace(seg, traces))
            n_taper = int(taper_fraction * seg.size)
            if taper_max_length is not None:
                n_taper = min(n_taper, int(round(taper_max_length * fs)))
            if 0 < n_taper and 2 * n_taper <= seg.size:  # ramps only: the middle is times 1.0
                ramp = _cosine_ramps(2 * n_taper, n_taper)
                seg[:n_taper] *= ramp[:n_taper]            # seg is this call's own array
                seg[seg.size - n_taper:] *= ramp[n_taper:]
            else:
                seg = seg * _cosine_ramps(seg.size, n_taper)
            seg_mask[:n_taper] = True
            seg_mask[seg.size - n_taper:] = True
        prepared.append((off, seg, seg_mask))
    n_overlap = 0
    if len(prepared) == 1 and taper_fraction > 0:
        _, data, mask = prepared[0]             # one segment, a new array: no copy onto a grid
    else:
        data = np.zeros(total, dtype=np.float64)
        mask = np.ones(total, dtype=bool)
        for off, seg, seg_mask in prepared:
            n_overlap += int(np.count_nonzero(~mask[off:off + seg.size]))
            data[off:off + seg.size] = seg
            mask[off:off + seg.size] = seg_mask
    if n_overlap:
        logger.info("%s: %d overlapping samples resolved in favour of the later segment", sid, n_overlap)
    stats = traces[0].stats.copy()
    stats.starttime = t0
    stats.sampling_rate = fs
    stats.npts = total
    return Trace(data=data, header=stats), mask


def _shares_trace(data: np.ndarray, traces) -> bool:
    """Whether ``data`` may be (a view of) the samples of one of ``traces`` (bounds only)."""
    return any(np.may_share_memory(data, tr.data) for tr in traces)


def _join_short_gaps(offsets: list[int], segs: list[np.ndarray], max_gap_fill: int):
    """Join grid-placed segments (sorted by offset) whose gap is at most ``max_gap_fill``.

    Returns ``([(offset, data), ...], n_filled)``: the joined segments and the number of
    samples filled by linear interpolation. In an overlap the later segment's samples win,
    as in :func:`merge_with_gap_mask`.
    """
    if max_gap_fill < 0:
        return list(zip(offsets, segs)), 0
    out: list[tuple[int, np.ndarray]] = []
    n_filled = 0
    for off, seg in zip(offsets, segs):
        if out:
            prev_off, prev = out[-1]
            end = prev_off + prev.size
            gap = off - end
            # join a short gap, or a short overlap that does not swallow the earlier segment
            if -min(max_gap_fill, prev.size - 1) <= gap <= max_gap_fill and off + seg.size > end:
                if gap > 0:
                    # linear interpolation between the last sample before and the first after
                    frac = np.arange(1, gap + 1) / (gap + 1)
                    fill = prev[-1] + (seg[0] - prev[-1]) * frac
                    joined = np.concatenate([prev, fill, seg])
                    n_filled += gap
                else:
                    joined = np.concatenate([prev[:prev.size + gap], seg])
                out[-1] = (prev_off, joined)
                continue
        out.append((off, seg))
    return out, n_filled


# ---------------------------------------------------------------------------- resampling
def antialias_fir(rate_in: float, rate_out: float, *, passband: float = 0.8,
                  attenuation_db: float = 80.0) -> np.ndarray:
    """Symmetric (linear-phase) Kaiser low-pass FIR for resampling ``rate_in -> rate_out``.

    Passband up to ``passband * rate_out / 2``, stopband from the new Nyquist
    frequency ``rate_out / 2`` with at least ``attenuation_db`` dB attenuation, so
    nothing above the new Nyquist frequency aliases. Odd length, unit DC gain.
    """
    import scipy.signal

    nyq_in = rate_in / 2.0
    new_nyq = rate_out / 2.0
    width = (1.0 - passband) * new_nyq / nyq_in
    numtaps, beta = scipy.signal.kaiserord(attenuation_db, width)
    numtaps |= 1
    cutoff = 0.5 * (1.0 + passband) * new_nyq
    return scipy.signal.firwin(numtaps, cutoff, window=("kaiser", beta), fs=rate_in)


def resample(data: np.ndarray, rate_in: float, rate_out: float, *, start_offset: float = 0.0,
             npts: int | None = None) -> np.ndarray:
    """Anti-aliased resampling of a regularly sampled series.

    Sample ``i`` of the input is at time ``i / rate_in``; sample ``j`` of the output
    is at time ``start_offset + j / rate_out`` (no delay, no phase shift).

    * ``rate_in / rate_out`` an integer ``q`` and ``start_offset == 0``: polyphase
      decimation with :func:`antialias_fir` (``scipy.signal.resample_poly``; the
      symmetric filter's delay is compensated, so the result is zero-phase);
    * otherwise: the same FIR low-pass (applied as a centred convolution, zero-phase)
      when downsampling, then Lanczos interpolation (``a = 20``) at the output times.

    Parameters
    ----------
    data : ndarray, shape (n,)
    rate_in, rate_out : float
        Hz; ``rate_out <= rate_in``.
    start_offset : float
        Seconds from the first input sample to the first output sample.
    npts : int, optional
        Output length; default all output samples inside the input span.

    Returns
    -------
    ndarray, float64
    """
    import scipy.signal

    x = np.asarray(data, dtype=np.float64)
    if rate_out > rate_in * (1 + 1e-12):
        raise ValueError(f"upsampling from {rate_in} Hz to {rate_out} Hz is not supported")
    ratio = rate_in / rate_out
    q = int(round(ratio))
    default_npts = int(math.floor(((x.size - 1) / rate_in - start_offset) * rate_out + 1e-9)) + 1
    npts = max(default_npts, 0) if npts is None else int(npts)
    if abs(ratio - q) < 1e-9 and start_offset == 0.0:
        if q == 1:
            y = x.copy()
        else:
            y = scipy.signal.resample_poly(x, 1, q, window=antialias_fir(rate_in, rate_out))
        out = np.zeros(npts)
        n = min(npts, y.size)
        out[:n] = y[:n]
        return out
    from obspy.signal.interpolation import lanczos_interpolation

    if ratio > 1 + 1e-9:
        x = scipy.signal.oaconvolve(x, antialias_fir(rate_in, rate_out), mode="same")
    if npts <= 0:
        return np.zeros(0)
    return np.asarray(lanczos_interpolation(x, 0.0, 1.0 / rate_in, float(start_offset),
                                            1.0 / rate_out, npts, a=20), dtype=np.float64)


def fractional_shift(data: np.ndarray, shift: float) -> np.ndarray:
    """Delay a band-limited series by ``shift`` samples (may be fractional or negative).

    ``y[n] = x(n - shift)``: with ``shift = +0.25`` every feature moves a quarter
    sample later. Computed in the frequency domain (``Y(f) = X(f) exp(-2 pi i f shift dt)``)
    on a zero-padded copy, so the ends do not wrap into each other.

    Parameters
    ----------
    data : ndarray, shape (n,)
    shift : float
        Samples.

    Returns
    -------
    ndarray, float64, shape (n,)
    """
    x = np.asarray(data, dtype=np.float64)
    n = x.size
    if n == 0 or shift == 0:
        return x.copy()
    nfft = scipy.fft.next_fast_len(n + 2 * int(math.ceil(abs(shift))) + 64, real=True)
    spec = scipy.fft.rfft(x, nfft)
    k = np.arange(spec.size)
    spec *= np.exp(-2j * np.pi * k * shift / nfft)
    if nfft % 2 == 0:  # keep the Nyquist bin real (the shift's symmetric part)
        spec[-1] = spec[-1].real * np.cos(np.pi * shift)
    return scipy.fft.irfft(spec, nfft)[:n]


def _resample_mask(mask: np.ndarray, rate_in: float, rate_out: float, start_offset: float,
                   npts: int) -> np.ndarray:
    """Conservative mask on the output grid: a sample is masked if a masked input sample
    lies within one output sample interval of it."""
    out = np.zeros(npts, dtype=bool)
    for a, b in _runs(mask):
        t_a = a / rate_in - start_offset
        t_b = (b - 1) / rate_in - start_offset
        lo = max(int(math.floor(t_a * rate_out)), 0)
        hi = min(int(math.ceil(t_b * rate_out)), npts - 1)
        if hi >= lo:
            out[lo:hi + 1] = True
    return out


# ---------------------------------------------------------------------------- filters
#: Fewer samples than this in a chunk cannot be filtered meaningfully.
MIN_SAMPLES = 64


def _bandpass_sos(sampling_rate: float, freqmin: float, freqmax: float, corners: int) -> np.ndarray:
    import scipy.signal

    return scipy.signal.butter(corners, [freqmin, freqmax], btype="bandpass", fs=sampling_rate,
                               output="sos")


def bandpass(data: np.ndarray, sampling_rate: float, freqmin: float, freqmax: float,
             corners: int = 4) -> np.ndarray:
    """Zero-phase Butterworth bandpass (``corners`` poles, applied forward and backward)."""
    import scipy.signal

    sos = _bandpass_sos(sampling_rate, freqmin, freqmax, corners)
    return scipy.signal.sosfiltfilt(sos, np.asarray(data, dtype=np.float64))


def _bandpass_gain(sampling_rate: float, freqs: np.ndarray, freqmin: float, freqmax: float,
                   corners: int) -> np.ndarray:
    """``|H(f)|**2`` of :func:`bandpass`'s filter at ``freqs`` (Hz): the gain of the
    forward-backward filter away from the data's ends.

    From the filter's zeros, poles and gain (the same Butterworth design as its sections):
    ``|e^{iw} - q|**2 = (1 - |q|)**2 + 4 |q| sin((w - arg q) / 2)**2`` for every zero and
    pole ``q`` (``w = 2 pi f / fs``), which keeps its precision where a pole sits close to
    the unit circle (no difference of nearly equal terms, unlike the expanded polynomials):
    ``scipy.signal.sosfreqz``'s values to rounding (tested) in a fraction of its time for
    the million bins of a day at 20 Hz.
    """
    z, p, k = butter_bandpass_zpk(corners, freqmin, freqmax, sampling_rate)  # scipy.signal.butter's
    half = np.pi * np.asarray(freqs, dtype=np.float64) / float(sampling_rate)     # w / 2
    sin_h, cos_h = np.sin(half), np.cos(half)

    def sq(q):
        # sin((w - a) / 2) = sin(w/2) cos(a/2) - cos(w/2) sin(a/2): two sines for all factors
        r, a = abs(q), np.angle(q)
        d = sin_h * math.cos(0.5 * a) - cos_h * math.sin(0.5 * a)
        return (1.0 - r) ** 2 + (4.0 * r) * np.square(d)

    gain = np.full(half.shape, float(k) ** 2)
    for q in z:
        gain *= sq(q)
    for q in p:
        gain /= sq(q)
    return gain


def remove_response(data: np.ndarray, seed_id, starttime: UTCDateTime, sampling_rate: float,
                    inventory, *, output: str = "VEL", pre_filt=None,
                    water_level: float | None = 60.0, dtype=np.float64,
                    nfft: int | None = None, band: tuple | None = None) -> np.ndarray:
    """Deconvolve the instrument response of ``seed_id`` from counts.

    ObsPy's :meth:`~obspy.core.trace.Trace.remove_response` (spectral division with the
    ``pre_filt`` cosine taper and ``water_level`` in dB; no extra demean or taper: the
    caller has done both), with the inverted response cached per response content,
    sampling interval and FFT length; where ObsPy's FFT length has a large prime factor a
    longer, fast one is used (:func:`response_nfft`), which differs from ObsPy by rounding
    and wrap-around only.

    Parameters
    ----------
    data : ndarray, shape (npts,) or (n_channels, npts)
        Counts; 2-D data hold one channel per row, all starting at ``starttime``.
    seed_id : str or sequence of str
        The channel (1-D data) or one seed id per row (2-D data).
    starttime : UTCDateTime
        Time of the first sample (selects the response epoch).
    sampling_rate : float
        Hz.
    inventory : obspy.Inventory
    output : {"VEL", "DISP", "ACC"}
    pre_filt : 4 floats or None
        Hz, as ObsPy's.
    water_level : float or None
        dB, as ObsPy's.
    dtype : float64 or float32
        ``float64``: ObsPy's operations in ObsPy's order (``np.fft``), row by row: the
        same samples as ObsPy where its FFT length is a fast one. ``float32``: the taper
        and the inverted response multiplied once into one cached complex64 spectrum, and
        all rows transformed by one batched single-precision ``scipy.fft`` pair (about
        half the time of the float64 pair for a day at 20 Hz); the samples differ from
        the float64 ones by float32 rounding (tested: below 1e-5 of each row's peak).
        ObsPy's other step, the last spectral bin made real (``abs``), is kept in both.
        Polynomial responses always go through ObsPy itself. float32 rows of at least
        :data:`BLOCKED_MIN_SAMPLES` samples whose operator's impulse response falls below
        :data:`KERNEL_TOL` of its peak within a small fraction of ``nfft`` are convolved
        with that truncated kernel by overlap-save instead (:func:`_response_kernel`,
        :func:`_deconvolve_blocked`): the same linear convolution but for the kernel's tail.
    nfft : int, optional
        FFT length, at least ``2 npts``; default :func:`response_nfft`. A longer one only
        pads more zeros (the samples agree to rounding and the response's time aliasing, see
        :func:`response_nfft`); callers pass the length of a full chunk so that a chunk
        whose data start late or end early reuses the cached response of the full ones
        instead of another evalresp of a million frequencies.
    band : (freqmin, freqmax, corners), optional
        Also apply :func:`bandpass` (Hz, Hz, Butterworth order). With ``dtype=float32``
        it is applied in the same spectral pass, as the squared magnitude of the same
        Butterworth filter (:func:`_bandpass_gain`) folded into the cached response:
        what forward-backward filtering does, except at the data's ends, where the data
        are padded with zeros instead of ``sosfiltfilt``'s odd extension. That difference
        decays with the filter's impulse response; for 0.05-2 Hz at 20 Hz it is 5e-5 of
        the trace's peak just past the masked taper of a data end of the benchmark's
        synthetic day and below float32 rounding 40 s later (a red-noise series with 20 s
        end tapers: 4e-3 at 20 s from an end, 3e-4 at 40 s, 5e-7 at 100 s). Otherwise
        (float64, polynomial responses) it is :func:`bandpass` itself, after the
        deconvolution.

    Returns
    -------
    ndarray, ``dtype``, the shape of ``data``, in m/s (VEL), m (DISP) or m/s**2 (ACC).

    Raises
    ------
    PreprocessError
        Naming the channel, when the inventory has no response for it at ``starttime``,
        or it cannot be removed (e.g. no stages), or the result is not finite.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.float64, np.float32):
        raise ValueError(f"dtype must be float64 or float32, got {dtype}")
    x = np.asarray(data)
    rows = x[None] if x.ndim == 1 else x
    sids = [seed_id] if isinstance(seed_id, str) else list(seed_id)
    if rows.ndim != 2 or len(sids) != rows.shape[0]:
        raise ValueError(f"need one seed id per row: {len(sids)} seed id(s) for data of shape {x.shape}")
    if inventory is None:
        raise PreprocessError(sids[0], "missing response: no inventory given")
    responses = []
    for sid in sids:
        try:
            responses.append(inventory.get_response(sid, starttime))
        except Exception as err:  # ObsPy raises a bare Exception for a missing response
            raise PreprocessError(sid, f"missing response at {starttime}: {err}") from err
    delta = 1.0 / sampling_rate
    npts = rows.shape[-1]
    nfft = response_nfft(npts) if nfft is None else int(nfft)
    if nfft < 2 * npts:
        raise ValueError(f"nfft ({nfft}) must be at least twice the number of samples ({npts})")
    out = np.empty(rows.shape, dtype=dtype)
    try:
        if dtype == np.float64:
            done = _deconvolve_rows64(rows, out, responses, delta, nfft, output, pre_filt, water_level)
        else:
            done = _deconvolve_rows32(rows, out, responses, delta, nfft, output, pre_filt, water_level, band)
    except Exception as err:
        sid = sids[0] if len(sids) == 1 else ",".join(sids)
        raise PreprocessError(sid, f"response cannot be removed: {type(err).__name__}: {err}") from err
    for i, sid in enumerate(sids):
        if not done[i]:  # a polynomial response: ObsPy itself
            out[i] = _remove_response_obspy(rows[i], sid, starttime, sampling_rate, inventory, output,
                                            pre_filt, water_level)
        if band is not None and (dtype == np.float64 or not done[i]):
            out[i] = bandpass(out[i], sampling_rate, *band)
        if not np.all(np.isfinite(out[i])):
            raise PreprocessError(sid, "response removal gave non-finite samples (check the StationXML)")
    return out[0] if x.ndim == 1 else out


def _remove_response_obspy(data, seed_id, starttime, sampling_rate, inventory, output, pre_filt,
                           water_level) -> np.ndarray:
    """ObsPy's ``Trace.remove_response`` on a new Trace of ``data`` (float64)."""
    net, sta, loc, cha = seed_id.split(".")
    tr = Trace(data=np.array(data, dtype=np.float64, copy=True),
               header={"network": net, "station": sta, "location": loc, "channel": cha,
                       "sampling_rate": sampling_rate, "starttime": starttime})
    try:
        tr.remove_response(inventory=inventory, output=output, pre_filt=pre_filt,
                           water_level=water_level, zero_mean=False, taper=False)
    except Exception as err:  # empty stage lists, unsupported stages, evalresp failures...
        raise PreprocessError(seed_id, f"response cannot be removed: {type(err).__name__}: {err}") from err
    return np.asarray(tr.data, dtype=np.float64)


_RESPONSE_CACHE: "OrderedDict[tuple, object]" = OrderedDict()
#: Bytes the cached responses may hold together (the most recent one is always kept): nine
#: complex64 responses of a 20 Hz day (14 MB each), so a network of a few sensor types does
#: not evaluate them anew for every station, or three of the float64 pairs (42 MB each).
RESPONSE_CACHE_BYTES = 128 << 20


def _response_key(response) -> bytes:
    """Content hash of an ObsPy Response (stations of a network often share one)."""
    return hashlib.sha1(pickle.dumps(response, protocol=4)).digest()


#: Largest prime factor of an FFT length that pocketfft transforms with its fast radix passes.
FAST_FFT_PRIME = 11


def response_nfft(npts: int) -> int:
    """FFT length of the response deconvolution of ``npts`` samples.

    ObsPy's ``_npts2nfft`` (at least ``2 npts``, so the deconvolution does not wrap around)
    when it only has prime factors up to :data:`FAST_FFT_PRIME`; otherwise the next
    5-smooth length above it (``scipy.fft.next_fast_len``). ObsPy accepts prime factors up
    to 500: a day at 20 Hz with a 100 s pad either side (1,732,000 samples) gets
    3,464,000 = 2^6 5^3 433, whose transform pair takes about 6 times as long as one of
    3,499,200 = 2^7 3^7 5^2 on this project's machines. The longer length only pads more
    zeros (less wrap-around than ObsPy, never more) and samples the same response on a
    finer frequency grid: the result differs from ObsPy's by rounding and by the response's
    time aliasing beyond ``2 npts`` samples (tested: below 1e-6 of the trace's peak).

    >>> response_nfft(12345), response_nfft(1732000)
    (24696, 3499200)
    """
    from obspy.core.util.misc import factorize_int

    nfft = obspy_light.npts2nfft(int(npts))  # ObsPy's _npts2nfft
    if max(factorize_int(nfft), default=1) <= FAST_FFT_PRIME:
        return nfft
    return int(scipy.fft.next_fast_len(nfft, real=True))


def _is_polynomial(response) -> bool:
    from obspy.core.inventory import PolynomialResponseStage

    return not response.response_stages or isinstance(response.response_stages[0], PolynomialResponseStage)


def _nbytes(value) -> int:
    return sum(int(getattr(v, "nbytes", 0)) for v in (value if isinstance(value, tuple) else (value,)))


def _cached(key, make):
    """``_RESPONSE_CACHE[key]``, made by ``make()`` on a miss; the least recently used
    entries are evicted beyond :data:`RESPONSE_CACHE_BYTES`."""
    value = _RESPONSE_CACHE.get(key)
    if value is None:
        value = make()
        _RESPONSE_CACHE[key] = value
        total = sum(_nbytes(v) for v in _RESPONSE_CACHE.values())
        while len(_RESPONSE_CACHE) > 1 and total > RESPONSE_CACHE_BYTES:
            total -= _nbytes(_RESPONSE_CACHE.popitem(last=False)[1])
    else:
        _RESPONSE_CACHE.move_to_end(key)
    return value


def _inverted_response(response, delta, nfft, output, pre_filt, water_level):
    """``(inverse, taper or None, freqs)`` on the ``nfft // 2 + 1`` bins of an FFT of length
    ``nfft`` as ObsPy 1.5's ``Trace.remove_response`` computes them (evalresp,
    ``cosine_sac_taper``, ``invert_spectrum`` or the plain inverse without water level);
    not cached."""
    from noisecorr.signal.obspy_light import cosine_sac_taper, invert_spectrum  # ObsPy's, re-stated

    freq_response, freqs = response.get_evalresp_response(delta, nfft, output=output)
    taper = cosine_sac_taper(freqs, flimit=pre_filt) if pre_filt else None
    if water_level is None:
        freq_response[0] = 0.0
        freq_response[1:] = 1.0 / freq_response[1:]
    else:
        invert_spectrum(freq_response, water_level)
    return freq_response, taper, freqs


def _operator(response, delta, nfft, output, pre_filt, water_level, band):
    """``taper * inverse`` on the ``nfft // 2 + 1`` bins (complex128; :func:`_inverted_response`),
    times the squared magnitude of the Butterworth bandpass ``band = (freqmin, freqmax,
    corners)`` when given (cached per rate, FFT length and band: shared by every response);
    the operator itself is not cached."""
    freq_response, taper, freqs = _inverted_response(response, delta, nfft, output, pre_filt, water_level)
    op = freq_response if taper is None else freq_response * taper
    if band is not None:
        op *= _cached(("bandpass", float(delta), int(nfft), band),
                      lambda: _bandpass_gain(1.0 / delta, freqs, *band))
    return op


def _operator_key(response, delta, nfft, output, pre_filt, water_level, band) -> tuple:
    """The cache key of an operator's parameters (``pre_filt`` and ``band`` normalised)."""
    pre = None if pre_filt is None else tuple(float(f) for f in pre_filt)
    return (_response_key(response), float(delta), int(nfft), output, pre, water_level, _band(band))


def _band(band):
    """``band`` as ``(float, float, int)``, or None."""
    return None if band is None else (float(band[0]), float(band[1]), int(band[2]))


def _inverse_response(response, delta, nfft, output, pre_filt, water_level, precision="complex128",
                      band=None):
    """The inverted response and the ``pre_filt`` taper on the ``nfft // 2 + 1`` bins, cached
    per response content, sampling interval, FFT length, output, ``pre_filt``, water level
    and ``precision``: a day at 20 Hz spends about a third of the time in evalresp and the
    water-level inversion otherwise.

    ``precision="complex128"``: ``(inverse, taper or None)`` as ObsPy 1.5 computes them
    (evalresp, ``cosine_sac_taper``, ``invert_spectrum``), kept apart so that they are
    applied in ObsPy's order. ``"complex64"``: their product, one complex64 array (a
    quarter of the memory of the pair), times the squared magnitude of the Butterworth
    bandpass ``band = (freqmin, freqmax, corners)`` when given (see :func:`remove_response`).
    """
    band = _band(band)
    key = (*_operator_key(response, delta, nfft, output, pre_filt, water_level, band), precision)

    def make():
        if precision == "complex64":
            return _operator(response, delta, nfft, output, pre_filt, water_level, band).astype(np.complex64)
        freq_response, taper, _ = _inverted_response(response, delta, nfft, output, pre_filt, water_level)
        return freq_response, taper

    return _cached(key, make)


def _deconvolve_rows64(rows, out, responses, delta, nfft, output, pre_filt, water_level):
    """ObsPy's ``Trace.remove_response`` (``zero_mean=False, taper=False``) step for step,
    row by row, into ``out``: ``np.fft.rfft``, taper, inverse, last bin made real,
    ``np.fft.irfft``, the same operations in the same order as ObsPy 1.5, hence the same
    samples where ``nfft`` is ObsPy's; otherwise (a fast length, :func:`response_nfft`, or
    the caller's) the samples agree with ObsPy's to rounding and wrap-around. Returns, per
    row, whether it was done (False: a polynomial response, left to ObsPy)."""
    npts = rows.shape[-1]
    done = []
    for i, response in enumerate(responses):
        if _is_polynomial(response):
            done.append(False)
            continue
        freq_response, taper = _inverse_response(response, delta, nfft, output, pre_filt, water_level)
        spec = np.fft.rfft(np.asarray(rows[i], dtype=np.float64), n=nfft)
        if taper is not None:
            spec *= taper
        spec *= freq_response
        spec[-1] = abs(spec[-1]) + 0.0j
        out[i] = np.fft.irfft(spec)[0:npts]
        done.append(True)
    return done


#: Relative size, to its peak, of the largest sample of a deconvolution kernel that the
#: blocked path (:func:`_response_kernel`) may drop from the kernel's tail.
KERNEL_TOL = 1e-8
#: Shortest FFT length of the frequency grid a deconvolution kernel is computed on
#: (:func:`_kernel_grid`; 2**18 samples are 3.6 hours at 20 Hz).
KERNEL_GRID_MIN = 1 << 18
#: Rows shorter than this many samples are deconvolved in one FFT of the whole row (for them
#: the blocked path saves little, and the kernel costs one more transform of ``nfft``).
BLOCKED_MIN_SAMPLES = 1 << 17


def _kernel_grid(nfft: int) -> int:
    """FFT length of the frequency grid :func:`_response_kernel` evaluates the response on:
    ``nfft`` halved while it stays even and at least :data:`KERNEL_GRID_MIN` (so its bins
    are every ``nfft // n``-th bin of ``nfft``'s grid, the Nyquist bin included)."""
    n = int(nfft)
    while n % 4 == 0 and n // 2 >= KERNEL_GRID_MIN:
        n //= 2
    return n


def _response_kernel(response, delta, nfft, output, pre_filt, water_level, band):
    """The operator of :func:`_inverse_response` (``taper * inverse``, times the bandpass's
    squared magnitude with ``band``) as a finite kernel for overlap-save, cached:
    ``(half_length L, block length B, block spectrum G)`` or None.

    The operator's impulse response ``h`` (lag ``k`` at ``h[k]``, lag ``-k`` at
    ``h[n - k]``) truncated to the lags ``|k| <= L``, ``L`` the largest lag where ``|h|``
    exceeds :data:`KERNEL_TOL` of its peak; ``G`` its spectrum on ``B`` bins, ``B`` a fast
    length of about four kernel lengths (measured fastest: longer blocks leave the
    processor's cache). ``h`` comes from the operator in double precision on a coarser grid
    of ``nfft``'s frequencies (:func:`_kernel_grid`: ObsPy's evalresp, taper and water level
    at every ``nfft // n``-th bin, an eighth of the evalresp for a day at 20 Hz), which is
    ``nfft``'s kernel aliased with period ``n``; accepted only where ``L <= n / 8``, so the
    aliased part is below the tolerance too. (The water level is set from the maximum of the
    response on that grid: the same to rounding, the response being smooth at its peak.)
    None (use the whole-row FFT) when ``B`` would exceed a quarter of ``nfft`` or ``L``
    an eighth of ``n`` (a kernel that rings for a large part of the data), or when the
    operator's Nyquist bin is not zero (ObsPy makes the product's last bin real there,
    which a block's spectrum cannot repeat).
    """
    band = _band(band)
    key = ("kernel", *_operator_key(response, delta, nfft, output, pre_filt, water_level, band),
           KERNEL_TOL, KERNEL_GRID_MIN)

    def make():                      # () for no kernel: the cache stores no None
        n = _kernel_grid(nfft)
        op = _operator(response, delta, n, output, pre_filt, water_level, band)
        if n % 2 == 0 and op[-1] != 0:
            return ()
        h = scipy.fft.irfft(op, n=n)
        a = np.abs(h)
        peak = float(a.max())
        if not peak > 0:
            return ()
        half = n // 2
        lags = np.maximum(a[1:half + 1], a[n - 1:n - half - 1:-1])    # |h| at +k and -k
        hits = np.flatnonzero(lags > KERNEL_TOL * peak)
        L = int(hits[-1]) + 1 if hits.size else 0
        B = int(scipy.fft.next_fast_len(max(4 * (2 * L + 1), 1 << 14), real=True))
        if 8 * L > n or 4 * B > nfft:
            return ()
        g = np.concatenate([h[n - L:], h[:L + 1]]) if L else h[:1].copy()   # g[j] = h[j - L]
        return L, B, scipy.fft.rfft(g, n=B).astype(np.complex64)

    return _cached(key, make) or None


def _deconvolve_blocked(rows, kernels, out=None):
    """Linear convolution of every row with its kernel ``(L, B, G)`` by overlap-save, all rows
    and blocks in one batched float32 ``rfft``/``irfft`` pair of length ``B``.

    ``y[n] = sum_{|k| <= L} h[k] x[n - k]`` with the data zero beyond both ends: the samples
    of the whole-row product ``irfft(rfft(x, nfft) * op)[:npts]`` (``nfft >= 2 npts``, so no
    wrap-around there either) except for the kernel's tail beyond ``L``. Returns float32,
    the rows' shape (``out``, C-contiguous float32, when given). The rows must share ``B``
    (the caller groups them).
    """
    n_rows, npts = rows.shape
    L_max = max(k[0] for k in kernels)
    B = kernels[0][1]
    S = B - 2 * L_max                                      # output samples per block
    nb = -(-npts // S)
    xp = np.zeros((n_rows, nb * S + 2 * L_max), dtype=np.float32)
    for i, (L, _, _) in enumerate(kernels):
        # a shorter kernel is the longer one's zero-padded: shift the row by its own L so that
        # block sample 2 L_max lines up with output sample 0 for each kernel
        xp[i, L:L + npts] = rows[i]
    blocks = np.lib.stride_tricks.sliding_window_view(xp, B, axis=-1)[:, ::S][:, :nb]
    spec = scipy.fft.rfft(blocks, axis=-1)
    for i, (_, _, G) in enumerate(kernels):
        spec[i] *= G
    y = scipy.fft.irfft(spec, n=B, axis=-1, overwrite_x=True)
    if out is None:
        out = np.empty((n_rows, npts), dtype=np.float32)
    full = npts // S                                       # blocks whose S samples all fit
    for i, (L, _, _) in enumerate(kernels):
        # each block's valid samples straight into the row (one copy, no reshaped temporary)
        out[i, :full * S].reshape(full, S)[...] = y[i, :full, 2 * L:2 * L + S]
        out[i, full * S:] = y[i, full, 2 * L:2 * L + npts - full * S] if npts > full * S else 0
    return out


def _deconvolve_rows32(rows, out, responses, delta, nfft, output, pre_filt, water_level, band=None):
    """The float32 deconvolution of all (non-polynomial) rows into ``out``.

    Rows of at least :data:`BLOCKED_MIN_SAMPLES` whose operator has a short kernel
    (:func:`_response_kernel`): overlap-save in blocks (:func:`_deconvolve_blocked`), the
    whole-row result but for the kernel's tail (below :data:`KERNEL_TOL` of its peak), in
    about a seventh of the time of the whole-row pair for a day at 20 Hz (small transforms
    that stay in the processor's cache). Other rows: one batched ``scipy.fft.rfft`` of
    length ``nfft``, each row times its cached complex64 ``taper * inverse`` (times the
    bandpass's squared magnitude with ``band``), the last bin made real as ObsPy does, one
    batched ``scipy.fft.irfft``. Returns, per row, whether it was done (False: a polynomial
    response, left to ObsPy)."""
    npts = rows.shape[-1]
    done = [not _is_polynomial(r) for r in responses]
    idx = [i for i, ok in enumerate(done) if ok]
    if not idx:
        return done
    whole = idx
    if npts >= BLOCKED_MIN_SAMPLES:
        kernels = {i: _response_kernel(responses[i], delta, nfft, output, pre_filt, water_level, band)
                   for i in idx}
        groups = {}
        for i in idx:
            if kernels[i] is not None:
                groups.setdefault(kernels[i][1], []).append(i)
        for members in groups.values():
            if len(members) == rows.shape[0] and out.flags.c_contiguous:
                _deconvolve_blocked(rows, [kernels[i] for i in members], out)
            else:
                out[members] = _deconvolve_blocked(rows[members], [kernels[i] for i in members])
        whole = [i for i in idx if kernels[i] is None]
        if not whole:
            return done
    ops = [_inverse_response(responses[i], delta, nfft, output, pre_filt, water_level, "complex64", band)
           for i in whole]
    x = rows if len(whole) == rows.shape[0] else rows[whole]
    spec = scipy.fft.rfft(np.asarray(x, dtype=np.float32), n=nfft, axis=-1)
    for j, op in enumerate(ops):
        spec[j] *= op
    spec[:, -1] = np.abs(spec[:, -1])
    y = scipy.fft.irfft(spec, n=nfft, axis=-1)
    if len(whole) == rows.shape[0]:
        out[...] = y[:, :npts]
    else:
        out[whole] = y[:, :npts]
    return done


# ---------------------------------------------------------------------------- the chain
def preprocess_stream(stream: Stream, starttime, endtime, *, sampling_rate: float,
                      freqmin: float, freqmax: float, inventory=None, response_output: str = "VEL",
                      pre_filt=None, water_level: float | None = 60.0, seed_id: str | None = None,
                      taper_fraction: float = 0.05, taper_max_length: float | None = None,
                      margin: float | None = None, corners: int = 4, max_gap_fill: int = 5,
                      rate_tolerance: float = RATE_TOLERANCE) -> ProcessedTrace:
    """Preprocess one channel for the chunk ``[starttime, endtime)`` (see the module docs).

    Parameters
    ----------
    stream : obspy.Stream
        Raw data (counts) of the channel; may hold gaps, overlaps and data outside the
        chunk (up to ``margin`` seconds either side are used, which keeps filter edge
        effects out of the chunk). Not modified.
    starttime, endtime : UTCDateTime or float
        Chunk bounds (POSIX seconds if float); ``endtime`` exclusive.
    sampling_rate : float
        Target rate in Hz (<= the data's rate).
    freqmin, freqmax : float
        Bandpass corners in Hz; ``freqmax`` below the target Nyquist frequency.
    inventory : obspy.Inventory, optional
        Required unless ``response_output == "NONE"``.
    response_output : {"VEL", "DISP", "ACC", "NONE"}
    pre_filt : 4 floats or None
        Hz, see :meth:`obspy.core.trace.Trace.remove_response`; None: from the band,
        :func:`default_pre_filt`.
    water_level : float or None
        dB.
    seed_id : str, optional
        Channel to use when the stream holds several.
    taper_fraction : float
        Fraction of each segment tapered at both ends.
    taper_max_length : float, optional
        Cap of each ramp in seconds; default ``1 / freqmin``.
    margin : float, optional
        Seconds of data used either side of the chunk; default ``max(2 / freqmin, 20)``.
    corners : int
        Butterworth order of the bandpass.
    max_gap_fill : int
        Gaps of at most this many samples (at the data's own rate) are filled by linear
        interpolation instead of masked (see :func:`merge_with_gap_mask`).
    rate_tolerance : float
        Relative tolerance between header sampling rates; a rate within this tolerance of an
        integer multiple of ``sampling_rate`` is taken as that multiple, so decimation stays
        a polyphase integer-ratio filter.

    Returns
    -------
    ProcessedTrace

    Raises
    ------
    PreprocessError
        Empty input, no data in the chunk, NaN/inf, all-zero data, inconsistent or too
        low sampling rate, missing response.
    """
    t1 = UTCDateTime(starttime)
    t2 = UTCDateTime(endtime)
    fs = float(sampling_rate)
    sid = _seed_id_of(stream, seed_id)
    if not t2 > t1:
        raise PreprocessError(sid, f"chunk end {t2} is not after its start {t1}")
    if not 0 < freqmin < freqmax < fs / 2:
        raise PreprocessError(sid, f"need 0 < freqmin ({freqmin}) < freqmax ({freqmax}) < "
                                   f"Nyquist ({fs / 2}) Hz")
    npts_out = int(round((t2 - t1) * fs))
    margin = default_margin(freqmin) if margin is None else float(margin)
    taper_max_length = 1.0 / freqmin if taper_max_length is None else taper_max_length

    if len(stream) == 0:
        raise PreprocessError(sid, "no data: empty stream")
    traces = [tr for tr in stream if tr.id == sid]
    rate_in = _check_traces(traces, sid, rate_tolerance)
    ratio = rate_in / fs
    if round(ratio) >= 1 and rate_in != round(ratio) * fs and abs(ratio - round(ratio)) <= rate_tolerance * ratio:
        logger.debug("%s: header rate %r Hz taken as %r Hz", sid, rate_in, round(ratio) * fs)
        rate_in = round(ratio) * fs
        traces = [_with_rate(tr, rate_in) for tr in traces]
    if rate_in < fs * (1 - 1e-9):
        raise PreprocessError(sid, f"sampling rate {rate_in} Hz is below the target {fs} Hz")
    sliced = [tr.slice(t1 - margin, t2 + margin) for tr in traces]
    sliced = [tr for tr in sliced if tr.stats.npts > 0]
    if not sliced:
        raise PreprocessError(sid, f"no data in chunk {t1} - {t2}")
    if not any(np.count_nonzero(np.asarray(tr.data)) for tr in sliced):
        raise PreprocessError(sid, f"data are all zero in chunk {t1} - {t2}")

    merged, mask = merge_with_gap_mask(Stream(sliced), sid, taper_fraction=taper_fraction,
                                       taper_max_length=taper_max_length, max_gap_fill=max_gap_fill,
                                       rate_tolerance=rate_tolerance)
    t0 = merged.stats.starttime
    x = np.asarray(merged.data, dtype=np.float64)
    if x.size / rate_in < 1.0 / freqmin or x.size < MIN_SAMPLES:
        raise PreprocessError(sid, f"too short: {x.size} samples ({x.size / rate_in:.3g} s) of data, less "
                                   f"than one period of freqmin ({1.0 / freqmin:.3g} s) or {MIN_SAMPLES} samples")

    # resample onto the chunk grid: first output sample at chunk grid index k0
    pos = (t0 - t1) * fs                      # position of the first input sample, in output samples
    ratio = rate_in / fs
    integer_ratio = abs(ratio - round(ratio)) < 1e-9
    if integer_ratio:
        y = resample(x, rate_in, fs) if round(ratio) > 1 else x   # x is this call's own merged copy
        ymask = _resample_mask(mask, rate_in, fs, 0.0, y.size)
        k0 = int(round(pos))
        frac = pos - k0
        if abs(frac) > 1e-6:
            # sample j of y sits at grid position k0 + frac + j; the value belonging to grid
            # position k0 + j is y at index j - frac, i.e. y delayed by frac samples
            y = fractional_shift(y, frac)
            ymask = _dilate(ymask)
            logger.debug("%s: moved %.4f samples onto the chunk grid", sid, frac)
    else:
        k0 = int(math.ceil(pos - 1e-9))
        offset = (k0 - pos) / fs              # seconds from the first input sample
        y = resample(x, rate_in, fs, start_offset=offset)
        ymask = _resample_mask(mask, rate_in, fs, offset, y.size)

    tstart = t1 + k0 / fs
    if response_output.upper() != "NONE":
        if pre_filt is None:
            pre_filt = default_pre_filt(freqmin, freqmax, fs)
        # the FFT length of a full chunk (data over the chunk and both margins), so that
        # chunks with less data share its cached response
        full = int(round((t2 - t1 + 2 * margin) * fs)) + 1
        # the bandpass in the same spectral pass (see remove_response for how it differs
        # from bandpass() at the data's ends)
        y = remove_response(y, sid, tstart, fs, inventory, output=response_output.upper(),
                            pre_filt=pre_filt, water_level=water_level, dtype=np.float32,
                            nfft=response_nfft(max(y.size, full)), band=(freqmin, freqmax, corners))
    if y.size <= 6 * (2 * corners + 1):  # sosfiltfilt's padding needs this many samples
        raise PreprocessError(sid, f"too short after resampling: {y.size} samples at {fs} Hz")
    if response_output.upper() == "NONE":
        y = bandpass(y, fs, freqmin, freqmax, corners)
    y[ymask] = 0.0

    out = np.zeros(npts_out, dtype=np.float32)
    out_mask = np.ones(npts_out, dtype=bool)
    lo = max(k0, 0)
    hi = min(k0 + y.size, npts_out)
    if hi <= lo:
        raise PreprocessError(sid, f"no data in chunk {t1} - {t2}")
    out[lo:hi] = y[lo - k0:hi - k0]
    out_mask[lo:hi] = ymask[lo - k0:hi - k0]
    if out_mask.all():
        raise PreprocessError(sid, f"no usable data in chunk {t1} - {t2} (all masked)")
    if not np.all(np.isfinite(out)):
        raise PreprocessError(sid, "preprocessing produced NaN or inf")
    return ProcessedTrace(seed_id=sid, starttime=float(t1.timestamp), sampling_rate=fs,
                          data=out, gap_mask=out_mask)


def default_pre_filt(freqmin: float, freqmax: float, sampling_rate: float) -> tuple:
    """The response-removal pre-filter used when ``pre_filt`` is None (Hz, 4 corners).

    ``(freqmin / 2, freqmin, f3, f4)`` with ``f3 = min(2 freqmax, (freqmax + nyquist) / 2)``
    and ``f4 = min(4 freqmax, nyquist)``: flat over the whole ``freqmin``-``freqmax`` band
    (so the band is untouched), tapering to zero an octave below it and towards Nyquist, so
    the water level is not the only thing holding back the inverted response where the
    instrument has no gain (long periods; above the anti-alias corner).

    >>> default_pre_filt(0.05, 2.0, 20.0)
    (0.025, 0.05, 4.0, 8.0)
    """
    nyquist = float(sampling_rate) / 2.0
    f3 = min(2.0 * freqmax, 0.5 * (freqmax + nyquist))
    f4 = min(4.0 * freqmax, nyquist)
    return (0.5 * freqmin, float(freqmin), f3, f4)


def default_margin(freqmin: float) -> float:
    """Seconds of data :func:`preprocess_stream` uses either side of a chunk by default.

    ``max(2 / freqmin, 20)``: the segment-end taper is ``1 / freqmin`` long (masked) and the
    bandpass needs about as long again to settle; a fetch pad of this length keeps the
    ramps and filter transients outside the chunk (see :func:`fetch_pad`).
    """
    return max(2.0 / float(freqmin), 20.0)


def fetch_pad(params) -> float:
    """Seconds of data to fetch either side of a chunk for ``params`` (CorrelationParams).

    The preprocessing margin (:func:`default_margin`) rounded up to a whole second, so the
    first and last windows of every chunk are never lost to the taper, whatever ``freqmin``.
    """
    return float(math.ceil(default_margin(params.freqmin)))


def _with_rate(tr: Trace, rate: float) -> Trace:
    """A shallow copy of ``tr`` with its header rate set to ``rate`` (data shared, not copied)."""
    out = Trace(data=tr.data, header=tr.stats.copy())
    out.stats.sampling_rate = rate
    return out


def preprocess_chunk(stream: Stream, starttime, endtime, params, inventory=None,
                     seed_id: str | None = None) -> ProcessedTrace:
    """:func:`preprocess_stream` with the fields of a
    :class:`~noisecorr.signal.params.CorrelationParams`."""
    return preprocess_stream(
        stream, starttime, endtime, sampling_rate=params.sampling_rate, freqmin=params.freqmin,
        freqmax=params.freqmax, inventory=inventory, response_output=params.response_output,
        pre_filt=params.pre_filt, water_level=params.water_level, seed_id=seed_id,
        max_gap_fill=params.max_gap_fill, rate_tolerance=params.rate_tolerance)
