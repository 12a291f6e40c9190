"""Deterministic synthetic ambient-noise field with a known answer.

Model
-----
``n_sources`` point sources lie on an annulus well outside the network
(``source_distance_km``, default 3 to 5 network radii from the centre,
uniform over its area, azimuths jittered-stratified over the circle or a
sector ``source_azimuths``). Each source emits white
Gaussian noise band-limited by the taper ``W(f)`` (``band``: zero below
``f1``, C-infinity smooth step up to 1 at ``f2``, 1 up to ``f3``, smooth step
down to 0 at ``f4``). The vertical ground velocity (m/s) at station ``k`` is

.. math::

    v_k(t) = \\sum_s g_{ks}\\, s_s(t - \\delta_{ks}) + a_k\\, n_k(t),
    \\qquad \\delta_{ks} = (r_{ks} - r^{ref}_s) / c

with ``r_ks`` the great-circle distance source-station (see
:mod:`noisecorr.synth.geometry`), ``c`` the ``velocity`` (km/s),
``r_ref_s = r(source, centre) - radius_km`` a per-source time origin that is a
lower bound on every station's distance (dropping a common delay of a
stationary random source changes nothing, and keeps padding small),
``g_ks = sqrt(r_med / r_ks)`` optional cylindrical spreading, and ``n_k``
independent local noise (band-limited by the same ``W``) with amplitude such
that the coherent/local RMS ratio is ``snr``. Horizontal components
(``components="ZNE"``) carry the radial motion of each source's wave with
ellipticity ``ellipticity`` and a 90 degree phase shift (Rayleigh-like); no
Love waves.

The data in counts are ``v_k`` convolved with the STS-2 + digitizer response
of :mod:`noisecorr.synth.response` (applied in the frequency domain with the
very evalresp values ``remove_response`` inverts).

Dispersive medium (``dispersion=``, default off)
-------------------------------------------------
With a :class:`noisecorr.synth.dispersion.DispersionModel` each frequency travels at its
own phase velocity: the delay factor becomes
``exp(-2 pi i f (r_ks - r_ref_s) / c(f))`` (the common per-source phase
``exp(-2 pi i f r_ref_s / c(f))`` dropped is an all-pass filter of a stationary source,
which changes nothing). Wave-trains then travel at the group velocity
``U = c / (1 - (f/c) dc/df)``, exact for the model; correlations of a ring of sources tend
to ``J0(2 pi f d / c(f))`` (:func:`noisecorr.synth.dispersion.diffuse_ccf`). ``velocity`` is
then unused for propagation, and the truth table's travel time ``d / velocity`` is a
nominal value: the truth is ``model.group_velocity(f)`` and ``model.phase_velocity(f)``.
Without ``dispersion`` the output is bit-identical to what it was before the option.

Sign convention and the truth
-----------------------------
For stations A (source) and B (receiver),
``C_AB(tau) = sum_t a(t) b(t + tau)``. Energy travelling from A to B gives a
peak at ``tau = +d_AB / c``; energy from B to A at ``-d_AB / c``. Sources all
around the network give both; a sector of sources (``source_azimuths``)
gives only the side facing away from them.

Convergence: only sources near the inter-station great circle add up at
``+/- d/c``; everything else averages out as ``1/sqrt(duration x bandwidth)``.
With sources all around, a pair 100 km apart needs a few hours of the default
0.2-4 Hz band for clean peaks, 30 km about one to three hours; a sector of
sources converges much faster.

Precision: delays are applied as exact fractional delays in the frequency
domain, ``exp(-2 pi i f delta)``, with ``delta`` in float64 (phase rounded to
complex64, about 1e-7 rad). Travel times in the truth table are exact
(float64) for the spherical model. The CCF peak itself may differ from
``d / c`` by the stationary-phase smearing of a finite set of sources, which
shrinks with a broad band and sources near the inter-station great circle.

Algorithm (why it is fast and streams)
--------------------------------------
Time is cut into chunks of ``chunk_length`` seconds on a grid anchored at
``start``. A chunk is computed by overlap-save: each source's (and station's
local) white noise is taken over the chunk plus ``pad_before`` samples
(maximum relative delay plus the causal tail of the band/response filter)
and ``pad_after`` samples (its acausal tail), real-FFT'd, and in the band
only

.. math::

    X_k(f) = R(f) W(f) \\Big[\\sum_s g_{ks} e^{-2\\pi i f \\delta_{ks}} S_s(f)
              + a_k N_k(f)\\Big]

is evaluated and inverse-FFT'd; the padding samples are discarded, so each
output sample is the *linear* convolution of the global noise sequence with
the filter, truncated where the filter has decayed below about 1e-5 of its
energy. Consecutive chunks therefore join continuously, and the result does
not depend on ``chunk_length`` beyond that level.

``chunks_per_batch`` chunks share one frequency grid, so for each frequency
the phase matrix ``E_f = g * exp(-2 pi i f delta)`` of a station block
(``station_block`` x ``n_sources``) is built once and multiplied with the
source spectra of all chunks of the batch: a batched matrix product
(``station_block x n_sources`` @ ``n_sources x chunks_per_batch``). ``E_f`` is
formed as ``A(f0) * B(j df)`` over slabs of frequencies, so complex
exponentials are only evaluated once per slab. Memory is bounded by one
batch (it does not grow with the requested duration).

White noise (uniform, see :meth:`SyntheticNetwork._white`) is drawn in fixed blocks of :data:`NOISE_BLOCK` samples on the
global sample grid, each from its own ``SeedSequence([seed, kind, id...,
block])``; any chunk can therefore be regenerated alone, and results do not
depend on the chunking.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import scipy.fft
from obspy import UTCDateTime

from .geometry import azimuth_deg, destination, great_circle_km
from .response import sts2_response, velocity_to_counts

log = logging.getLogger(__name__)

#: Samples per white-noise block on the global grid (independent of chunking).
NOISE_BLOCK = 16384
#: Filter tails are cut where the energy outside is below this fraction.
TAIL_TOLERANCE = 1e-10

_KIND_STATION_LAYOUT = 1
_KIND_SOURCE_LAYOUT = 2
_KIND_SOURCE_NOISE = 3
_KIND_LOCAL_NOISE = 4
_BLOCK_OFFSET = 2 ** 40  # keeps block ids non-negative for SeedSequence

_FREQ_SLAB = 64
#: Largest |dv/v| of a time-varying medium (the delay padding allows for it).
_MAX_DVV = 0.1


@dataclass(frozen=True)
class SynthStation:
    """A synthetic station: codes and coordinates (degrees, metres)."""

    network: str
    station: str
    latitude: float
    longitude: float
    elevation: float = 0.0

    @property
    def code(self) -> str:
        """``"NET.STA"``."""
        return f"{self.network}.{self.station}"


@dataclass
class SynthBatch:
    """Output of one batch for one block of stations.

    ``data`` has shape ``(len(stations), n_components, n_samples)``, float32,
    in counts (``output="COUNTS"``) or m/s (``output="VEL"``); sample 0 is at
    ``starttime``.
    """

    starttime: UTCDateTime
    stations: list
    channels: tuple
    data: np.ndarray


def smooth_step(x):
    """C-infinity step: 0 for x <= 0, 1 for x >= 1, smooth in between."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        a = np.where(x > 0, np.exp(-1.0 / np.where(x > 0, x, 1.0)), 0.0)
        b = np.where(x < 1, np.exp(-1.0 / np.where(x < 1, 1.0 - x, 1.0)), 0.0)
        return np.where(a + b > 0, a / np.where(a + b > 0, a + b, 1.0), 0.0)


def band_taper(f, band):
    """The source band taper ``W(f)`` for ``band = (f1, f2, f3, f4)`` in Hz."""
    f1, f2, f3, f4 = band
    f = np.asarray(f, dtype=float)
    return smooth_step((f - f1) / (f2 - f1)) * smooth_step((f4 - f) / (f4 - f3))


def band_code(sampling_rate: float) -> str:
    """SEED band code for a broadband channel at ``sampling_rate`` Hz."""
    if sampling_rate >= 80:
        return "H"
    if sampling_rate >= 10:
        return "B"
    if sampling_rate > 1:
        return "M"
    return "L"


class SyntheticNetwork:
    """A deterministic synthetic network and noise field.

    Parameters
    ----------
    n_stations : int
        Number of stations, codes ``S0001``... (ignored if ``layout`` is a
        sequence of coordinates).
    seed : int
        Everything (layout, sources, noise) follows from it.
    velocity : float
        Propagation velocity, km/s.
    sampling_rate : float
        Hz.
    start : UTCDateTime
        Time of global sample 0 (the chunk grid is anchored here).
    network : str
        Network code.
    components : str
        ``"Z"`` or ``"ZNE"``.
    center : (float, float)
        (lat, lon) of the network centre, degrees.
    radius_km : float
        Stations lie within this distance of the centre.
    layout : {"random", "grid"} or sequence of (lat, lon)
        ``"random"``: uniform in the disc, station ``i`` drawn from its own
        seed so the first N stations do not depend on ``n_stations``.
        ``"grid"``: a square grid inside the disc.
    n_sources : int
        Number of noise sources.
    source_distance_km : (float, float), optional
        Annulus of sources around the centre; default (3, 5) x ``radius_km``.
    source_azimuths : (float, float)
        Sector of source azimuths seen from the centre, degrees clockwise
        from north; (0, 360) is all around.
    band : (f1, f2, f3, f4)
        Source band taper, Hz; ``f4`` below Nyquist.
    snr : float
        RMS ratio coherent / local noise at each station (``inf``: none).
    amplitude : float
        Typical RMS coherent ground velocity, m/s.
    spreading : bool
        Cylindrical spreading ``1/sqrt(r)`` of source amplitudes.
    ellipticity : float
        Horizontal/vertical amplitude ratio for ``"ZNE"``.
    dispersion : DispersionModel, optional
        Propagate each frequency at the model's phase velocity ``c(f)`` (see the module
        docstring); default ``None``: every frequency at ``velocity``.
    dvv : DvvHistory, optional
        A medium whose velocity changes with time (:class:`noisecorr.synth.dvv.DvvHistory`):
        each chunk propagates at the velocity of its day, ``velocity (1 + dv/v)`` (with
        ``dispersion``, every ``c(f)`` scaled likewise), so every delay is divided by
        ``1 + dv/v`` and the correlations of that day are the Green's functions of that day's
        medium. Chunks are evaluated at the UTC day of their first sample; the default
        900 s chunks never straddle a midnight when ``start`` is on the 900 s grid.
        ``|dv/v|`` must stay below 0.1.
    chunk_length : float
        Seconds per FFT chunk.
    chunks_per_batch : int
        Chunks sharing one frequency grid; bounds memory.
    station_block : int
        Stations processed together.
    workers : int
        Threads for scipy.fft.

    Examples
    --------
    >>> net = SyntheticNetwork(n_stations=3, seed=1, n_sources=20)
    >>> data = net.generate(0.0, 60.0)
    >>> data.shape
    (3, 1, 1200)
    """

    def __init__(self, n_stations: int = 10, seed: int = 0, velocity: float = 3.0,
                 sampling_rate: float = 20.0, start=UTCDateTime(2024, 1, 1),
                 network: str = "XS", components: str = "Z",
                 center: tuple = (47.0, 10.0), radius_km: float = 150.0,
                 layout="random", n_sources: int = 300,
                 source_distance_km: tuple | None = None,
                 source_azimuths: tuple = (0.0, 360.0),
                 band: tuple = (0.1, 0.2, 4.0, 5.0), snr: float = 2.0,
                 amplitude: float = 1e-6, spreading: bool = True,
                 ellipticity: float = 0.8, chunk_length: float = 900.0,
                 chunks_per_batch: int = 12, station_block: int = 64,
                 workers: int = 2, dispersion=None, dvv=None):
        self.seed = int(seed)
        self.velocity = float(velocity)
        self.sampling_rate = float(sampling_rate)
        self.start = UTCDateTime(start)
        self.network = str(network)
        self.components = str(components)
        self.center = (float(center[0]), float(center[1]))
        self.radius_km = float(radius_km)
        self.n_sources = int(n_sources)
        self.band = tuple(float(b) for b in band)
        self.snr = float(snr)
        self.amplitude = float(amplitude)
        self.spreading = bool(spreading)
        self.ellipticity = float(ellipticity)
        self.chunk_length = float(chunk_length)
        self.chunks_per_batch = int(chunks_per_batch)
        self.station_block = int(station_block)
        self.workers = int(workers)
        self.dispersion = dispersion
        self.dvv = dvv
        if source_distance_km is None:
            source_distance_km = (3.0 * self.radius_km, 5.0 * self.radius_km)
        self.source_distance_km = tuple(float(x) for x in source_distance_km)
        self.source_azimuths = tuple(float(x) for x in source_azimuths)
        self._validate()

        self.chunk_samples = int(round(self.chunk_length * self.sampling_rate))
        self.channels = tuple(band_code(self.sampling_rate) + "H" + c
                              for c in self.components)
        self.stations = self._make_stations(n_stations, layout)
        self._make_sources()
        self._plan_fft()

    # ------------------------------------------------------------------ setup
    def _validate(self):
        f1, f2, f3, f4 = self.band
        if not 0 < f1 < f2 <= f3 < f4 < self.sampling_rate / 2:
            raise ValueError(f"band must satisfy 0 < f1 < f2 <= f3 < f4 < Nyquist "
                             f"({self.sampling_rate / 2} Hz), got {self.band}")
        if self.components not in ("Z", "ZNE"):
            raise ValueError(f"components must be 'Z' or 'ZNE', got {self.components!r}")
        if self.velocity <= 0 or self.radius_km <= 0 or self.n_sources < 1:
            raise ValueError("velocity, radius_km and n_sources must be positive")
        if self.source_distance_km[0] <= self.radius_km:
            raise ValueError("sources must lie outside the network: "
                             "source_distance_km[0] > radius_km")
        if self.snr <= 0:
            raise ValueError("snr must be positive (inf for no local noise)")
        if round(self.chunk_length * self.sampling_rate) < 1 or self.chunks_per_batch < 1:
            raise ValueError("chunk_length and chunks_per_batch must be positive")
        if self.dispersion is not None:
            f = np.linspace(self.band[0], self.band[3], 512)
            c, u = self.dispersion.phase_velocity(f), self.dispersion.group_velocity(f)
            if not (np.all(np.isfinite(c)) and np.all(c > 0) and np.all(np.isfinite(u)) and np.all(u > 0)):
                raise ValueError(f"dispersion {self.dispersion.describe()} gives a non-positive "
                                 f"phase or group velocity in the band {self.band} Hz")

    def _rng(self, *ident) -> np.random.Generator:
        return np.random.Generator(np.random.SFC64(
            np.random.SeedSequence([self.seed, *[int(i) for i in ident]])))

    def _make_stations(self, n_stations, layout):
        clat, clon = self.center
        if isinstance(layout, str) and layout == "random":
            lat, lon = [], []
            for i in range(int(n_stations)):
                u, az = self._rng(_KIND_STATION_LAYOUT, i).random(2)
                la, lo = destination(clat, clon, 360.0 * az,
                                     self.radius_km * np.sqrt(u))
                lat.append(float(la))
                lon.append(float(lo))
        elif isinstance(layout, str) and layout == "grid":
            n = int(n_stations)
            side = int(np.ceil(np.sqrt(n)))
            half = self.radius_km / np.sqrt(2.0)
            xs = np.linspace(-half, half, side) if side > 1 else np.zeros(1)
            pts = [(x, y) for y in xs[::-1] for x in xs][:n]
            lat, lon = [], []
            for x, y in pts:
                la, lo = destination(clat, clon, np.degrees(np.arctan2(x, y)),
                                     np.hypot(x, y))
                lat.append(float(la))
                lon.append(float(lo))
        elif isinstance(layout, str):
            raise ValueError(f"layout must be 'random', 'grid' or a sequence of "
                             f"(lat, lon), got {layout!r}")
        else:
            lat = [float(p[0]) for p in layout]
            lon = [float(p[1]) for p in layout]
        if len(lat) > 9999:
            raise ValueError("at most 9999 stations (codes S0001..S9999)")
        dist = great_circle_km(clat, clon, np.array(lat), np.array(lon))
        if len(lat) and dist.max() > self.radius_km * (1 + 1e-9):
            raise ValueError(f"stations must lie within radius_km={self.radius_km} "
                             f"of center; farthest is {dist.max():.3f} km")
        stations = [SynthStation(self.network, f"S{i + 1:04d}", round(la, 6),
                                 round(lo, 6), 0.0)
                    for i, (la, lo) in enumerate(zip(lat, lon))]
        self._lat = np.array([s.latitude for s in stations])
        self._lon = np.array([s.longitude for s in stations])
        return stations

    def _make_sources(self):
        clat, clon = self.center
        r0, r1 = self.source_distance_km
        a0, a1 = self.source_azimuths
        u = np.array([self._rng(_KIND_SOURCE_LAYOUT, i).random(2)
                      for i in range(self.n_sources)])
        # uniform density over the annulus area
        r = np.sqrt(r0 ** 2 + u[:, 0] * (r1 ** 2 - r0 ** 2))
        span = a1 - a0 if 0.0 <= a1 - a0 <= 360.0 else (a1 - a0) % 360.0
        # jittered-stratified azimuths: source i in the i-th of n equal sectors,
        # so there are no large gaps in the stationary-phase directions
        az = (a0 + (np.arange(self.n_sources) + u[:, 1]) / self.n_sources * span) % 360.0
        self.source_latitudes, self.source_longitudes = destination(clat, clon, az, r)
        self._src_ref_km = great_circle_km(clat, clon, self.source_latitudes,
                                           self.source_longitudes) - self.radius_km
        self._r_med = float(np.median(r))

    def _plan_fft(self):
        fs = self.sampling_rate
        n = self.chunk_samples
        slowest = self.velocity
        if self.dispersion is not None:  # phase and group delays, over the band
            f = np.linspace(self.band[0], self.band[3], 512)
            slowest = float(min(self.dispersion.phase_velocity(f).min(),
                                self.dispersion.group_velocity(f).min()))
        if self.dvv is not None:
            slowest *= 1.0 - _MAX_DVV          # a slower day delays more
        self.max_delay_samples = int(np.ceil(2 * self.radius_km / slowest * fs)) + 1
        # impulse response of W * R (normalised) on a long grid -> tail lengths
        lh = scipy.fft.next_fast_len(int(2 ** np.ceil(np.log2(max(4096 * fs, 16 * n)))))
        lh = int(min(lh, 2 ** 22))
        fr = np.fft.rfftfreq(lh, 1 / fs)
        w = band_taper(fr, self.band)
        self.response = sts2_response(fs)
        nz = w > 0
        rr = np.zeros(len(fr), complex)
        rr[nz] = velocity_to_counts(self.response, fr[nz])
        rr /= self.response.instrument_sensitivity.value
        h = np.fft.irfft(w * rr, lh) ** 2 + np.fft.irfft(w, lh) ** 2
        tot = h.sum()
        causal = np.cumsum(h[: lh // 2][::-1])[::-1]  # energy at t >= j
        acausal = np.cumsum(h[lh // 2:])  # energy at t < -(lh//2 - j)
        tail_after = int(np.argmax(causal < TAIL_TOLERANCE * tot))
        tail_before = lh // 2 - int(np.argmax(acausal >= TAIL_TOLERANCE * tot))
        self.pad_before = self.max_delay_samples + tail_after + 1
        min_len = n + self.pad_before + tail_before + 1
        self.block_samples = scipy.fft.next_fast_len(min_len, real=True)
        self.pad_after = self.block_samples - n - self.pad_before
        L = self.block_samples
        freqs = np.fft.rfftfreq(L, 1 / fs)
        wb = band_taper(freqs, self.band)
        idx = np.nonzero(wb > 0)[0]
        self._m0, self._m1 = int(idx[0]), int(idx[-1]) + 1
        self._freqs = freqs[self._m0:self._m1]
        self._w = wb[self._m0:self._m1]
        self._r = velocity_to_counts(self.response, self._freqs)
        # unit-RMS band-limited noise: scale white noise by 1 / rms(W-filtered)
        self._noise_scale = 1.0 / np.sqrt(2.0 * np.sum(wb ** 2) / L)
        log.debug("synth FFT plan: L=%d pad_before=%d pad_after=%d band bins=%d",
                  L, self.pad_before, self.pad_after, self._m1 - self._m0)

    # --------------------------------------------------------------- geometry
    @property
    def codes(self) -> list:
        """``"NET.STA"`` codes in station order."""
        return [s.code for s in self.stations]

    def _delays(self, idx):
        """(delta seconds, amplitude, propagation azimuth at station) arrays
        of shape (len(idx), n_sources)."""
        lat = self._lat[idx][:, None]
        lon = self._lon[idx][:, None]
        r = great_circle_km(self.source_latitudes[None, :], self.source_longitudes[None, :],
                            lat, lon)
        delta = (r - self._src_ref_km[None, :]) / self.velocity
        g = np.sqrt(self._r_med / r) if self.spreading else np.ones_like(r)
        prop_az = (azimuth_deg(lat, lon, self.source_latitudes[None, :],
                               self.source_longitudes[None, :]) + 180.0) % 360.0
        return delta, g, prop_az

    def truth(self):
        """Rows ``(source, receiver, distance_km, travel_time_s)`` for every
        pair, source < receiver alphabetically (``NET.STA``)."""
        order = sorted(range(len(self.stations)), key=lambda i: self.stations[i].code)
        rows = []
        lat, lon = self._lat, self._lon
        for a_pos, i in enumerate(order):
            j = np.array(order[a_pos + 1:], dtype=int)
            if len(j) == 0:
                continue
            d = great_circle_km(lat[i], lon[i], lat[j], lon[j])
            for jj, dd in zip(j, d):
                rows.append((self.stations[i].code, self.stations[jj].code,
                             float(dd), float(dd) / self.velocity))
        return rows

    # ------------------------------------------------------------------ noise
    def _white(self, kind: int, ident: Sequence[int], n0: int, n1: int) -> np.ndarray:
        """Global white noise, float32, samples [n0, n1).

        Uniform on [-sqrt(3), sqrt(3)] (zero mean, unit variance): five
        times cheaper to draw than Gaussian, and Gaussian to a very good
        approximation once band-limited (central limit theorem).
        """
        nb = NOISE_BLOCK
        b0, b1 = n0 // nb, (n1 - 1) // nb
        out = np.empty((b1 - b0 + 1) * nb, dtype=np.float32)
        for b in range(b0, b1 + 1):
            rng = self._rng(kind, *ident, b + _BLOCK_OFFSET)
            view = out[(b - b0) * nb:(b - b0 + 1) * nb]
            rng.random(nb, dtype=np.float32, out=view)
        out -= np.float32(0.5)
        out *= np.float32(2.0 * np.sqrt(3.0))
        return out[n0 - b0 * nb:n1 - b0 * nb]

    def _band_spectra(self, series: np.ndarray, n_chunks: int) -> np.ndarray:
        """(rows, span) float32 -> (rows, n_chunks, n_band) complex64 of the
        overlapping blocks, one per chunk."""
        L, n = self.block_samples, self.chunk_samples
        win = np.lib.stride_tricks.sliding_window_view(series, L, axis=-1)[:, ::n][:, :n_chunks]
        spec = scipy.fft.rfft(win, axis=-1, workers=self.workers)
        return spec[..., self._m0:self._m1]

    # ------------------------------------------------------------- generation
    def _time_to_sample(self, t) -> int:
        if isinstance(t, UTCDateTime):
            return int(round((t - self.start) * self.sampling_rate))
        return int(round(float(t) * self.sampling_rate))

    def iter_batches(self, starttime=0.0, endtime=3600.0, stations=None,
                     output: str = "COUNTS") -> Iterator[SynthBatch]:
        """Yield the data in batches of chunks, station block by station block.

        Parameters
        ----------
        starttime, endtime : UTCDateTime or float
            Span [starttime, endtime); floats are seconds after ``start``.
            Both are rounded to the sample grid.
        stations : sequence of int, optional
            Station indices (default all).
        output : {"COUNTS", "VEL"}
            Counts (ground velocity convolved with the response) or ground
            velocity in m/s.
        """
        output = output.upper()
        if output not in ("COUNTS", "VEL"):
            raise ValueError(f"output must be 'COUNTS' or 'VEL', got {output!r}")
        idx_all = np.arange(len(self.stations)) if stations is None else np.asarray(stations, int)
        na, nb_ = self._time_to_sample(starttime), self._time_to_sample(endtime)
        if nb_ <= na:
            return
        n = self.chunk_samples
        c_first, c_last = na // n, (nb_ - 1) // n
        for c0 in range(c_first, c_last + 1, self.chunks_per_batch):
            g = min(self.chunks_per_batch, c_last + 1 - c0)
            spec_s = self._source_spectra(c0, g)
            lo = max(na, c0 * n)
            hi = min(nb_, (c0 + g) * n)
            for b0 in range(0, len(idx_all), self.station_block):
                idx = idx_all[b0:b0 + self.station_block]
                data = self._station_block(idx, c0, g, spec_s, output)
                yield SynthBatch(self.start + lo / self.sampling_rate,
                                 [self.stations[i] for i in idx], self.channels,
                                 data[:, :, lo - c0 * n:hi - c0 * n])

    def generate(self, starttime=0.0, endtime=3600.0, stations=None,
                 output: str = "COUNTS") -> np.ndarray:
        """All requested data at once, shape (n_stations, n_components, n_samples).

        Convenience for small requests; use :meth:`iter_batches` to stream.
        """
        idx_all = np.arange(len(self.stations)) if stations is None else np.asarray(stations, int)
        # batches come time-major, station blocks within one batch
        out_t = []
        block_rows = []
        current = None
        for batch in self.iter_batches(starttime, endtime, idx_all, output):
            if current is not None and batch.starttime != current:
                out_t.append(np.concatenate(block_rows, axis=0))
                block_rows = []
            current = batch.starttime
            block_rows.append(batch.data)
        if block_rows:
            out_t.append(np.concatenate(block_rows, axis=0))
        if not out_t:
            return np.zeros((len(idx_all), len(self.channels), 0), np.float32)
        return np.concatenate(out_t, axis=-1)

    def _source_spectra(self, c0: int, g: int) -> np.ndarray:
        """Band spectra of all sources for chunks c0..c0+g-1:
        (n_band, n_sources, g) complex64, scaled."""
        n, L = self.chunk_samples, self.block_samples
        s0 = c0 * n - self.pad_before
        s1 = (c0 + g - 1) * n - self.pad_before + L
        nbnd = self._m1 - self._m0
        out = np.empty((nbnd, self.n_sources, g), dtype=np.complex64)
        scale = np.float32(self._noise_scale * self.amplitude / np.sqrt(self.n_sources))
        step = 16
        for k0 in range(0, self.n_sources, step):
            k1 = min(k0 + step, self.n_sources)
            series = np.stack([self._white(_KIND_SOURCE_NOISE, (k,), s0, s1)
                               for k in range(k0, k1)])
            spec = self._band_spectra(series, g)  # (rows, g, nbnd)
            out[:, k0:k1, :] = spec.transpose(2, 0, 1) * scale
        return out

    def _station_block(self, idx, c0, g, spec_s, output) -> np.ndarray:
        n, L = self.chunk_samples, self.block_samples
        nst, ncomp = len(idx), len(self.components)
        nbnd = self._m1 - self._m0
        delta, amp, prop_az = self._delays(idx)
        # polarisation factors per component: (ncomp, nst, nsrc)
        pol = [np.ones_like(delta, dtype=complex)]
        if ncomp == 3:
            rad = np.radians(prop_az)
            pol.append(-1j * self.ellipticity * np.cos(rad))
            pol.append(-1j * self.ellipticity * np.sin(rad))
        pol = np.stack(pol) * amp[None]
        xb = np.empty((nbnd, ncomp * nst, g), dtype=np.complex64)
        if self.dvv is None:
            self._propagate(delta, pol, spec_s, xb)
        else:
            # each chunk at its day's velocity: delays / (1 + dv/v); chunks of one day share it
            t = float(self.start.timestamp) + (c0 + np.arange(g)) * n / self.sampling_rate
            v = self.dvv.at(t)
            if np.abs(v).max() >= _MAX_DVV:
                raise ValueError(f"synthetic dv/v {v[np.argmax(np.abs(v))]:g} is beyond the "
                                 f"generator's +-{_MAX_DVV:g} (--dvv {self.dvv.describe()})")
            for val in np.unique(v):
                sel = np.nonzero(v == val)[0]
                part = np.empty((nbnd, ncomp * nst, sel.size), dtype=np.complex64)
                self._propagate(delta / (1.0 + val), pol, np.ascontiguousarray(spec_s[:, :, sel]), part)
                xb[:, :, sel] = part
        spec = np.zeros((ncomp * nst, g, L // 2 + 1), dtype=np.complex64)
        spec[..., self._m0:self._m1] = xb.transpose(1, 2, 0)
        return self._finish(spec, idx, c0, g, amp, output)

    def _propagate(self, delta, pol, spec_s, xb):
        """Station band spectra ``xb`` (n_band, ncomp * nst, g) from the source spectra
        ``spec_s`` (n_band, n_sources, g) with delays ``delta`` (nst, n_sources), s.

        One small complex product per frequency, ``(ncomp nst, n_sources) @ (n_sources,
        g)``: BLAS runs each on one thread (a threaded BLAS split these small products and
        spent 2.5x the CPU on a busy 2-core machine) and ``workers`` threads share the
        frequency slabs (numpy releases the GIL in the products)."""
        from concurrent.futures import ThreadPoolExecutor

        from threadpoolctl import threadpool_limits

        L = self.block_samples
        nbnd = self._m1 - self._m0
        ncomp, nst = pol.shape[0], delta.shape[0]
        df = self.sampling_rate / L
        jj = np.arange(_FREQ_SLAB)
        # B[j, k, s] = exp(-2 pi i j df delta_ks), shared by all slabs
        bmat = (np.exp(-2j * np.pi * df * jj[:, None, None] * delta[None]).astype(np.complex64)
                if self.dispersion is None else None)
        slabs = [(j0, min(j0 + _FREQ_SLAB, nbnd)) for j0 in range(0, nbnd, _FREQ_SLAB)]
        n_threads = max(1, min(self.workers, len(slabs)))

        def run(first):
            ebuf = np.empty((_FREQ_SLAB, ncomp, nst, self.n_sources), dtype=np.complex64)
            for j0, j1 in slabs[first::n_threads]:
                f0 = (self._m0 + j0) * df
                e = ebuf[:j1 - j0]
                if self.dispersion is None:
                    a = (pol * np.exp(-2j * np.pi * f0 * delta)[None]).astype(np.complex64)
                    np.multiply(bmat[:j1 - j0, None], a[None], out=e)
                else:  # each frequency at its phase velocity: exp(-2 pi i f dr / c(f))
                    fj = (self._m0 + j0 + jj[:j1 - j0]) * df
                    k = 2 * np.pi * fj / self.dispersion.phase_velocity(fj)  # rad/km
                    dr = delta * self.velocity  # r - r_ref, km (a dv/v scaling of delta included)
                    np.multiply(pol[None], np.exp(-1j * k[:, None, None] * dr[None])[:, None], out=e)
                np.matmul(e.reshape(j1 - j0, ncomp * nst, self.n_sources), spec_s[j0:j1],
                          out=xb[j0:j1])

        with threadpool_limits(1, user_api="blas"):
            if n_threads == 1:
                run(0)
            else:
                with ThreadPoolExecutor(n_threads) as pool:
                    list(pool.map(run, range(n_threads)))

    def _finish(self, spec, idx, c0, g, amp, output):
        n, L = self.chunk_samples, self.block_samples
        nst, ncomp = len(idx), len(self.components)
        if np.isfinite(self.snr):
            coh_rms = self.amplitude * np.sqrt(np.mean(amp ** 2, axis=1))  # (nst,)
            s0 = c0 * n - self.pad_before
            s1 = (c0 + g - 1) * n - self.pad_before + L
            series = np.stack([self._white(_KIND_LOCAL_NOISE, (int(i), c), s0, s1)
                               for c in range(ncomp) for i in idx])
            local = self._band_spectra(series, g)
            a_k = np.tile(coh_rms / self.snr * self._noise_scale, ncomp).astype(np.float32)
            spec[..., self._m0:self._m1] += local * a_k[:, None, None]
        filt = self._w * (self._r if output == "COUNTS" else 1.0)
        spec[..., self._m0:self._m1] *= filt.astype(np.complex64)
        y = scipy.fft.irfft(spec, n=L, axis=-1, workers=self.workers)
        y = y[..., self.pad_before:self.pad_before + n].reshape(ncomp, nst, g * n)
        return np.ascontiguousarray(y.transpose(1, 0, 2), dtype=np.float32)
