"""Typed, validated processing parameters for ambient-noise cross-correlation.

Field names follow NoisePy (Jiang & Denolle 2020, SRL 91(3)); every field is used by the
functions in :mod:`noisecorr.signal` and does what its name says. A NoisePy ``fft_cc``
dictionary translates name for name with one exception in meaning: ``smoothspect_N``
counts bins of the spectrum noisecorr computes, which is zero-padded to at least
``2 n - 1`` samples for a linear correlation (``zero_pad``, the default), so one bin is
half as wide in Hz as NoisePy's (which does not pad) and the same ``smoothspect_N``
smooths over half the bandwidth. For NoisePy's smoothing width, double ``smoothspect_N``
or set ``zero_pad: false``. Names translate, but noisecorr's defaults differ from NoisePy's
processing in a few deliberate steps (FFT length, window taper, outlier criterion,
whitening shape): ``configs/noisepy.yaml`` selects NoisePy's behaviour for each
(``whitening_style``, ``window_taper_max``, ``outlier_reference``, ``zero_pad``), and
:mod:`noisecorr.signal.noisepy_compat` tabulates the differences.

Examples
--------
>>> p = CorrelationParams(sampling_rate=20.0, cc_len=1800.0, step=450.0,
...                       freqmin=0.05, freqmax=2.0, maxlag=200.0)
>>> p.cc_len_samples, p.step_samples, p.maxlag_samples
(36000, 9000, 4000)
>>> CorrelationParams.from_dict({"cc_method": "deconv"}).cc_method
'deconv'
>>> CorrelationParams.from_dict({"cc_lenght": 10})
Traceback (most recent call last):
...
ValueError: unknown parameter(s) ['cc_lenght']; allowed: ...
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

logger = logging.getLogger(__name__)

__all__ = [
    "CorrelationParams",
    "TIME_NORMS",
    "FREQ_NORMS",
    "CC_METHODS",
    "STACK_METHODS",
    "RESPONSE_OUTPUTS",
    "COMPONENTS",
]

#: Allowed values of ``time_norm`` (Bensen et al. 2007, section 3.2).
TIME_NORMS = ("none", "one_bit", "rma")
#: Allowed values of ``freq_norm`` (spectral whitening, Bensen et al. 2007, section 3.3).
FREQ_NORMS = ("none", "phase_only", "rma")
#: Allowed values of ``cc_method``.
CC_METHODS = ("xcorr", "coherency", "deconv")
#: Allowed values of ``stack_method``.
STACK_METHODS = ("linear", "pws", "robust")
#: Allowed values of ``response_output`` (ObsPy ``remove_response`` names) plus "none".
RESPONSE_OUTPUTS = ("VEL", "DISP", "ACC", "NONE")
_ENZ_PAIRS = tuple(a + b for a in "ENZ" for b in "ENZ")
_RTZ_PAIRS = tuple(a + b for a in "RTZ" for b in "RTZ")
#: Allowed component pairs: source component then receiver component.
COMPONENTS = tuple(dict.fromkeys(_ENZ_PAIRS + _RTZ_PAIRS))

_SAMPLE_TOL = 1e-6


def _whole_samples(name: str, seconds: float, rate: float) -> int:
    n = seconds * rate
    if abs(n - round(n)) > _SAMPLE_TOL * max(1.0, abs(n)):
        raise ValueError(
            f"{name}={seconds!r} s is not a whole number of samples at "
            f"sampling_rate={rate!r} Hz ({n!r} samples)"
        )
    return int(round(n))



def _iso_utc(name: str, value: Any) -> str:
    """``value`` (ISO 8601 text, or a datetime/date as YAML parses one) as
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC; naive times are UTC."""
    import datetime as _dt

    if isinstance(value, _dt.datetime):
        moment = value
    elif isinstance(value, _dt.date):
        moment = _dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = _dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{name} must be an ISO 8601 time such as 2024-01-01T00:00:00Z, "
                             f"got {value!r}") from None
    else:
        raise ValueError(f"{name} must be an ISO 8601 time such as 2024-01-01T00:00:00Z or None, "
                         f"got {value!r}")
    if moment.tzinfo is not None:
        moment = moment.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

@dataclass(frozen=True)
class CorrelationParams:
    """Parameters of the processing chain (NoisePy-compatible names).

    Parameters
    ----------
    sampling_rate : float
        Target sampling rate in Hz after anti-aliased decimation/resampling.
    cc_len : float
        Length of each correlation window in seconds.
    step : float
        Time between the starts of consecutive windows in seconds (``step < cc_len``
        gives overlapping windows). Must satisfy ``0 < step <= cc_len``.
    freqmin, freqmax : float
        Band in Hz used by the bandpass filter and the spectral whitening;
        ``0 < freqmin < freqmax < sampling_rate / 2``.
    time_norm : {"none", "one_bit", "rma"}
        Time-domain normalisation (Bensen et al. 2007).
    freq_norm : {"none", "phase_only", "rma"}
        Spectral whitening: "phase_only" keeps the phase only, "rma" divides by the
        running mean of the amplitude spectrum over ``smoothspect_N`` bins.
    smooth_N : int
        Half-width in samples of the running absolute mean for ``time_norm="rma"``
        (the averaging window is ``2 * smooth_N + 1`` samples).
    smoothspect_N : int
        Half-width in frequency bins of the spectral smoothing for ``freq_norm="rma"``
        and for the denominators of ``cc_method`` "coherency"/"deconv" (0: no smoothing).
        Bins of the FFT of length ``nfft``: ``sampling_rate / nfft`` Hz each, half
        NoisePy's bin width when ``zero_pad`` is on (see the module notes).
    cc_method : {"xcorr", "coherency", "deconv"}
        Cross-correlation flavour, see :func:`noisecorr.signal.correlate.cross_spectrum`.
    maxlag : float
        Largest lag kept in seconds; lags run from ``-maxlag`` to ``+maxlag``.
        ``maxlag < cc_len`` and, without ``zero_pad``, ``maxlag < cc_len / 2``.
    substack : bool
        If True, also produce sub-stacks over ``substack_len`` seconds.
    substack_len : float
        Length in seconds of the time span grouped into one sub-stack; a multiple of
        ``cc_len`` as in NoisePy (``substack_len == cc_len`` keeps every window).
        Default (None): ``cc_len``.
    substack_origin : str or None
        A boundary of the sub-stack grid, an ISO 8601 time (UTC unless it says otherwise;
        normalised to ``YYYY-MM-DDTHH:MM:SS.ffffffZ``). Sub-stack ``k`` of every pair covers
        ``[origin + k * substack_len, origin + (k + 1) * substack_len)`` and a window belongs
        to the one holding its start time. None (default): 1970-01-01T00:00:00Z, a midnight
        UTC, so daily (or hourly...) sub-stacks start at midnight UTC; set it to shift the
        grid (e.g. weekly sub-stacks starting on a Monday). See
        :func:`noisecorr.signal.stack.substack_index`.
    stack_method : {"linear", "pws", "robust"}
        Stacking method (linear mean; phase-weighted, Schimmel & Paulssen 1997;
        robust, Pavlis & Vernon 2010).
    pws_power : float
        Exponent of the phase coherence in the phase-weighted stack (``>= 0``).
    max_over_std : float
        Reject a window when ``max|x| > max_over_std * std(x)``; ``inf`` disables it.
    water_level : float
        Water level in dB for instrument response removal (ObsPy semantics), or None.
    pre_filt : tuple of 4 float or None
        Corner frequencies (Hz) of the cosine pre-filter applied during response
        removal, increasing, the last at most the Nyquist frequency of ``sampling_rate``.
        None (default): derived from the band, flat over ``freqmin``-``freqmax``
        (:func:`noisecorr.signal.preprocess.default_pre_filt`).
    response_output : {"VEL", "DISP", "ACC", "NONE"}
        Physical quantity after response removal; "NONE" skips response removal.
    zero_pad : bool
        Zero-pad windows to at least ``2 * n - 1`` samples before the FFT so the
        correlation is linear (not circular).
    spectral_water_level : float
        Relative water level (fraction of the per-window maximum) for the denominators
        of whitening, coherency and deconvolution; must be in ``(0, 1)``.
    components : tuple of str
        Component pairs to correlate, source then receiver, e.g. ``("ZZ",)``; any of
        the 9 ENZ pairs or the 9 RTZ pairs (RTZ pairs need all three ENZ channels).
    max_gap_fill : int
        Gaps of at most this many samples (at the recorded rate; also overlaps of at most
        this many samples and tears of a fraction of a sample) are filled by linear
        interpolation before tapering, instead of being masked with a taper on both sides;
        negative disables it. 5 samples is 0.05 s at 100 Hz, far below the periods kept.
    rate_tolerance : float
        Relative tolerance between the header sampling rates of one channel (100.0 and
        100.00001 Hz are one rate); a rate this close to an integer multiple of
        ``sampling_rate`` decimates as that multiple. Must be in ``[0, 1e-3]``.
    joint_normalisation : {"auto", "horizontal", "all", "none"}
        Which channels of a sensor share the weights of ``time_norm`` and ``freq_norm``
        (:func:`noisecorr.signal.normalize.joint_time_normalize`,
        :func:`~noisecorr.signal.normalize.joint_whiten`): "horizontal": E and N are
        divided by one weight from the quadratic mean of their amplitudes (sample by
        sample, bin by bin), Z on its own; "all": E, N and Z share one weight; "none":
        every channel on its own (NoisePy). Per-channel weights change the E/N amplitude
        ratio and leak R into T after rotation (TT/RR about 0.07 for a purely radial
        wave); common weights do not. "auto" (default): "horizontal" when an R or T
        component is requested, else "none" (see :attr:`joint_mode`). Joint channels
        keep only the windows all of them accepted.
    window_taper : float
        Fraction of every correlation window tapered at each end before normalisation and
        FFT, in ``[0, 0.5]`` (a Tukey window; 0.05 by default).
    window_taper_max : int or None
        Cap of each taper ramp in samples, with NoisePy's Hann ramps (NoisePy: 20); None
        (default): no cap. See :func:`noisecorr.signal.noisepy_compat.window_taper`.
    outlier_reference : {"window", "chunk"}
        What ``max_over_std`` compares a window's peak with: its own standard deviation
        (default) or the whole chunk's (NoisePy). See
        :func:`noisecorr.signal.windows.cut_windows`.
    whitening_style : {"noisecorr", "noisepy"}
        Shape of the spectral whitening: "noisecorr" (default) ramps inside the band over
        10 % of its log width and smooths over ``2 smoothspect_N + 1`` bins
        (:func:`noisecorr.signal.normalize.whiten`); "noisepy" is NoisePy 0.9.93's, flat
        between the bins nearest ``freqmin``/``freqmax`` with 100-bin ramps outside the
        band and a ``smoothspect_N``-bin running mean
        (:func:`noisecorr.signal.noisepy_compat.noisepy_whiten`).
    """

    sampling_rate: float = 20.0
    cc_len: float = 1800.0
    step: float = 450.0
    freqmin: float = 0.05
    freqmax: float = 2.0
    time_norm: str = "none"
    freq_norm: str = "rma"
    smooth_N: int = 10
    smoothspect_N: int = 10
    cc_method: str = "xcorr"
    maxlag: float = 200.0
    substack: bool = False
    substack_len: float | None = None
    substack_origin: str | None = None
    stack_method: str = "linear"
    pws_power: float = 2.0
    max_over_std: float = 10.0
    water_level: float | None = 60.0
    pre_filt: tuple[float, float, float, float] | None = None
    response_output: str = "VEL"
    zero_pad: bool = True
    spectral_water_level: float = 1e-3
    components: tuple[str, ...] = field(default=("ZZ",))
    max_gap_fill: int = 5
    rate_tolerance: float = 1e-5
    joint_normalisation: str = "auto"
    window_taper: float = 0.05
    window_taper_max: int | None = None
    outlier_reference: str = "window"
    whitening_style: str = "noisecorr"

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:  # noqa: C901 - a flat list of checks reads best
        def _set(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if self.substack_len is None:
            _set("substack_len", self.cc_len)
        for name in ("sampling_rate", "cc_len", "step", "freqmin", "freqmax", "maxlag",
                     "substack_len", "pws_power", "max_over_std", "spectral_water_level"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if math.isnan(value):
                raise ValueError(f"{name} must not be NaN")
            _set(name, float(value))
        for name in ("smooth_N", "smoothspect_N"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if isinstance(self.max_gap_fill, bool) or not isinstance(self.max_gap_fill, int):
            raise ValueError(f"max_gap_fill must be an integer number of samples, got {self.max_gap_fill!r}")
        if (isinstance(self.rate_tolerance, bool) or not isinstance(self.rate_tolerance, (int, float))
                or not 0 <= self.rate_tolerance <= 1e-3):
            raise ValueError(f"rate_tolerance must be a relative tolerance in [0, 1e-3], got {self.rate_tolerance!r}")
        _set("rate_tolerance", float(self.rate_tolerance))
        if (isinstance(self.window_taper, bool) or not isinstance(self.window_taper, (int, float))
                or not 0 <= self.window_taper <= 0.5):
            raise ValueError(f"window_taper must be a fraction in [0, 0.5], got {self.window_taper!r}")
        _set("window_taper", float(self.window_taper))
        if self.window_taper_max is not None and (
                isinstance(self.window_taper_max, bool) or not isinstance(self.window_taper_max, int)
                or self.window_taper_max < 0):
            raise ValueError("window_taper_max must be a non-negative number of samples or None, "
                             f"got {self.window_taper_max!r}")
        for name, allowed in (("outlier_reference", ("window", "chunk")),
                              ("whitening_style", ("noisecorr", "noisepy"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r} is not one of {list(allowed)}")
        if self.joint_normalisation not in ("auto", "horizontal", "all", "none"):
            raise ValueError(f"joint_normalisation={self.joint_normalisation!r} is not one of "
                             "['auto', 'horizontal', 'all', 'none']")
        for name in ("substack", "zero_pad"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

        fs = self.sampling_rate
        if not (fs > 0 and math.isfinite(fs)):
            raise ValueError(f"sampling_rate must be positive and finite, got {fs!r}")
        nyquist = fs / 2.0
        if not self.cc_len > 0 or not math.isfinite(self.cc_len):
            raise ValueError(f"cc_len must be positive and finite, got {self.cc_len!r}")
        if not 0 < self.step <= self.cc_len:
            raise ValueError(
                f"step must satisfy 0 < step <= cc_len ({self.cc_len!r}), got {self.step!r}"
            )
        if not self.freqmin > 0:
            raise ValueError(f"freqmin must be > 0 Hz, got {self.freqmin!r}")
        if not self.freqmax < nyquist:
            raise ValueError(
                f"freqmax must be below the Nyquist frequency {nyquist!r} Hz of "
                f"sampling_rate={fs!r}, got {self.freqmax!r}"
            )
        if self.freqmax > 0.8 * nyquist:
            logger.warning(
                "freqmax %r Hz is above the anti-alias passband (0.8 x Nyquist = %r Hz) of "
                "sampling_rate=%r Hz: the band above it is attenuated by the decimation filter",
                self.freqmax, 0.8 * nyquist, fs)
        if not self.freqmin < self.freqmax:
            raise ValueError(
                f"freqmin ({self.freqmin!r}) must be smaller than freqmax ({self.freqmax!r})"
            )
        for name, allowed in (("time_norm", TIME_NORMS), ("freq_norm", FREQ_NORMS),
                              ("cc_method", CC_METHODS), ("stack_method", STACK_METHODS)):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not one of {list(allowed)}")
        output = self.response_output.upper() if isinstance(self.response_output, str) else None
        if output not in RESPONSE_OUTPUTS:
            raise ValueError(
                f"response_output={self.response_output!r} is not one of {list(RESPONSE_OUTPUTS)}"
            )
        _set("response_output", output)
        if not self.maxlag > 0:
            raise ValueError(f"maxlag must be > 0 s, got {self.maxlag!r}")
        if self.maxlag >= self.cc_len:
            # a window of n samples has lags up to n - 1 samples only
            raise ValueError(
                f"maxlag ({self.maxlag!r} s) must be shorter than cc_len ({self.cc_len!r} s)"
            )
        if not self.zero_pad and not self.maxlag < self.cc_len / 2:
            raise ValueError(
                f"maxlag ({self.maxlag!r} s) must be below cc_len / 2 ({self.cc_len / 2!r} s) "
                "when zero_pad is False (circular correlation wraps around)"
            )
        # substack_len only matters with substack on: a cc_len of 3600 s must not be refused
        # for the default substack_len of 1800 s of a run that keeps no sub-stacks
        if self.substack and (not self.substack_len >= self.cc_len or not math.isfinite(self.substack_len)):
            raise ValueError(
                f"substack_len ({self.substack_len!r} s) must be finite and >= cc_len "
                f"({self.cc_len!r} s) when substack is on"
            )
        ratio = self.substack_len / self.cc_len
        if self.substack and abs(ratio - round(ratio)) > _SAMPLE_TOL * ratio:
            raise ValueError(
                f"substack_len ({self.substack_len!r} s) must be a multiple of cc_len "
                f"({self.cc_len!r} s) when substack is on"
            )
        if not self.pws_power >= 0:
            raise ValueError(f"pws_power must be >= 0, got {self.pws_power!r}")
        if self.substack_origin is not None:
            _set("substack_origin", _iso_utc("substack_origin", self.substack_origin))
        if not self.max_over_std > 0:
            raise ValueError(f"max_over_std must be > 0 (inf disables it), got {self.max_over_std!r}")
        if not 0 < self.spectral_water_level < 1:
            raise ValueError(
                f"spectral_water_level must be in (0, 1), got {self.spectral_water_level!r}"
            )
        if self.water_level is not None:
            if isinstance(self.water_level, bool) or not isinstance(self.water_level, (int, float)):
                raise ValueError(f"water_level must be a number of dB or None, got {self.water_level!r}")
            _set("water_level", float(self.water_level))
        if self.pre_filt is not None:
            try:
                pf = tuple(float(f) for f in self.pre_filt)
            except (TypeError, ValueError) as err:
                raise ValueError(f"pre_filt must be 4 frequencies in Hz or None, got {self.pre_filt!r}") from err
            if len(pf) != 4 or not all(0 <= a < b for a, b in zip(pf[:-1], pf[1:])) or pf[0] < 0:
                raise ValueError(
                    f"pre_filt must be 4 increasing non-negative frequencies in Hz, got {self.pre_filt!r}"
                )
            if pf[3] > nyquist:
                raise ValueError(
                    f"pre_filt ({pf!r}) must end at or below the Nyquist frequency {nyquist!r} Hz"
                )
            _set("pre_filt", pf)
        comps = (self.components,) if isinstance(self.components, str) else self.components
        try:
            comps = tuple(str(c).upper() for c in comps)
        except TypeError as err:
            raise ValueError(f"components must be a sequence of pairs, got {self.components!r}") from err
        bad = [c for c in comps if c not in COMPONENTS]
        if not comps or bad:
            raise ValueError(f"components {bad or list(comps)!r} not allowed; allowed: {list(COMPONENTS)}")
        _set("components", comps)

        # whole numbers of samples (windows must fall on the sample grid)
        _whole_samples("cc_len", self.cc_len, fs)
        _whole_samples("step", self.step, fs)
        _whole_samples("maxlag", self.maxlag, fs)

    # ------------------------------------------------------------------ derived values
    @property
    def cc_len_samples(self) -> int:
        """Window length in samples."""
        return int(round(self.cc_len * self.sampling_rate))

    @property
    def step_samples(self) -> int:
        """Window step in samples."""
        return int(round(self.step * self.sampling_rate))

    @property
    def maxlag_samples(self) -> int:
        """Largest lag in samples."""
        return int(round(self.maxlag * self.sampling_rate))

    @property
    def substack_origin_seconds(self) -> float:
        """``substack_origin`` as POSIX seconds (0.0, i.e. 1970-01-01T00:00:00Z, if None)."""
        if self.substack_origin is None:
            return 0.0
        import datetime as _dt

        moment = _dt.datetime.fromisoformat(self.substack_origin.replace("Z", "+00:00"))
        return (moment - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)).total_seconds()

    @property
    def joint_mode(self) -> str:
        """``joint_normalisation`` with "auto" resolved: "horizontal" when a requested
        component pair has R or T, else "none"."""
        if self.joint_normalisation != "auto":
            return self.joint_normalisation
        return "horizontal" if any(c in "RT" for pair in self.components for c in pair) else "none"

    @property
    def nfft(self) -> int:
        """FFT length used for the windows (see :func:`noisecorr.signal.spectra.choose_nfft`)."""
        from noisecorr.signal.spectra import choose_nfft

        return choose_nfft(self.cc_len_samples, zero_pad=self.zero_pad)

    # ------------------------------------------------------------------ conversions
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of all parameters."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CorrelationParams":
        """Build from a mapping, rejecting unknown keys (naming them).

        Missing keys take their defaults. Lists are accepted for ``pre_filt`` and
        ``components``.
        """
        names = set(cls.field_names())
        unknown = sorted(k for k in d if k not in names)
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; allowed: {sorted(names)}")
        kwargs = dict(d)
        if isinstance(kwargs.get("components"), list):
            kwargs["components"] = tuple(kwargs["components"])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data dictionary (round-trips through :meth:`from_dict`)."""
        out = dataclasses.asdict(self)
        out["components"] = list(self.components)
        if self.pre_filt is not None:
            out["pre_filt"] = list(self.pre_filt)
        return out

    def replace(self, **changes: Any) -> "CorrelationParams":
        """Copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
