"""Per-chunk results (``keep: chunks``): which pairs keep their chunks, and the disk they need.

With ``keep: chunks`` the correlation of every chunk of a pair and component is its time
series, stored in the sub-stack layout of :mod:`noisecorr.results.substacks` with one span
per chunk (``substack_len = chunk_length``, ``substack_origin`` = the run's start): row 0
the full stack, then one row per chunk of the run's span in time order. A chunk without
windows (missing data) is a recorded gap: window count 0 and a zero row in the file (the
reader gives NaN), never absent.

``keep_chunks`` restricts which pair components keep their chunk rows
(:class:`ChunkSelection`); the others keep their full stack only (a 1-D dataset). Its
``maxlag`` keeps only the central lags ``|lag| <= maxlag`` of every chunk row (the full
stack keeps the run's ``processing.maxlag``); the series then has its own lag axis
(``series_maxlag`` in the pair's metadata, see :mod:`noisecorr.results.substacks`).
:func:`disk_estimate` is the planner's figure of what the run writes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ChunkSelection", "disk_estimate", "parse_pair"]

_KEYS = ("components", "pairs", "distance_km", "maxlag")


def parse_pair(text: str, where: str = "keep_chunks.pairs") -> tuple[str, str]:
    """``(source, receiver)`` of ``"SRC-RCV"`` (station codes ``NET.STA`` or ``NET.STA.LOC``).

    Raises
    ------
    ValueError
        Not two codes joined by one ``-``.
    """
    parts = [p.strip() for p in str(text).split("-")]
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"{where}: {text!r} is not a pair SRC-RCV (e.g. XS.S0001-XS.S0002)")
    return parts[0], parts[1]


@dataclass(frozen=True)
class ChunkSelection:
    """Which pair components keep their per-chunk rows (``keep_chunks``).

    Attributes
    ----------
    components : frozenset of str or None
        Component pairs kept (``None``: all).
    pairs : frozenset of (str, str) or None
        Unordered station pairs kept (``None``: all).
    distance_km : (float, float) or None
        Inclusive interstation distance range, km (``None``: any; a pair of unknown
        distance is kept only without this restriction).
    maxlag : float or None
        Seconds: the chunk rows keep the lags ``-maxlag..+maxlag`` only, the central part
        of the run's lag axis (``None``: the run's ``processing.maxlag``). It restricts
        what every kept row holds, not which pairs keep rows (:attr:`everything`).
    """

    components: frozenset | None = None
    pairs: frozenset | None = None
    distance_km: tuple | None = None
    maxlag: float | None = None

    @classmethod
    def from_config(cls, values: dict | None, base: Path | None = None,
                    run_maxlag: float | None = None) -> "ChunkSelection":
        """From the ``keep_chunks`` mapping; ``pairs`` a list of ``SRC-RCV`` or a file of
        them (one a line, ``#`` comments), relative to ``base`` (default: current folder);
        ``maxlag`` (s) a positive number no larger than ``run_maxlag`` (the run's
        ``processing.maxlag``, s; unchecked if ``None``).

        Raises
        ------
        ValueError
            Unknown sub-key, bad component, pair, file, distance range or maxlag (named;
            a bad maxlag as ``keep_chunks.maxlag``).
        """
        if values is None:
            return cls()
        if not isinstance(values, dict):
            raise ValueError(f"expected a mapping with {', '.join(_KEYS)}, got {values!r}")
        unknown = sorted(set(values) - set(_KEYS))
        if unknown:
            raise ValueError(f"unknown key(s) {unknown}; known: {list(_KEYS)}")
        comps = values.get("components")
        if comps is not None:
            from noisecorr.results.layout import check_component

            if isinstance(comps, str):
                comps = [c.strip() for c in comps.split(",")]
            try:
                comps = frozenset(check_component(str(c)) for c in comps)
            except ValueError as exc:
                raise ValueError(f"components: {exc}") from None
        pairs = values.get("pairs")
        if pairs is not None:
            if isinstance(pairs, str):
                path = Path(pairs) if base is None or Path(pairs).is_absolute() else Path(base) / pairs
                try:
                    lines = path.read_text().splitlines()
                except OSError as exc:
                    raise ValueError(f"pairs: cannot read pair file {path}: {exc.strerror}") from None
                pairs = [ln.split("#")[0].strip() for ln in lines]
                pairs = [ln for ln in pairs if ln]
                where = f"pairs (file {path})"
            else:
                where = "pairs"
            pairs = frozenset(frozenset(parse_pair(p, where)) for p in pairs)
        dist = values.get("distance_km")
        if dist is not None:
            ok = (isinstance(dist, (list, tuple)) and len(dist) == 2
                  and all(isinstance(d, (int, float)) and not isinstance(d, bool) for d in dist))
            if not ok or not (0 <= dist[0] <= dist[1]) or not math.isfinite(dist[0]):
                raise ValueError(f"distance_km: must be [min, max] km with 0 <= min <= max, got {dist!r}")
            dist = (float(dist[0]), float(dist[1]))
        maxlag = values.get("maxlag")
        if maxlag is not None:
            maxlag = _check_maxlag(maxlag, run_maxlag)
        return cls(comps, pairs, dist, maxlag)

    @property
    def everything(self) -> bool:
        return self.components is None and self.pairs is None and self.distance_km is None

    def keeps(self, source: str, receiver: str, component: str, distance_km=None) -> bool:
        """Whether this pair component keeps its per-chunk rows (stations as results name
        them, ``NET.STA``, or as station keys ``NET.STA.LOC``)."""
        if self.components is not None and component not in self.components:
            return False
        if self.pairs is not None and not any(frozenset(c) in self.pairs
                                              for c in zip(_names(source), _names(receiver))):
            return False
        if self.distance_km is not None:
            if distance_km is None or not math.isfinite(float(distance_km)):
                return False
            return self.distance_km[0] <= float(distance_km) <= self.distance_km[1]
        return True


def _check_maxlag(value, run_maxlag) -> float:
    """``keep_chunks.maxlag`` as float seconds, ``0 < value <= run_maxlag``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value <= 0:
        raise ValueError(f"keep_chunks.maxlag: must be a positive number of seconds, got {value!r}")
    if run_maxlag is not None and value > float(run_maxlag) + 1e-9:
        raise ValueError(f"keep_chunks.maxlag: {value:g} s is longer than processing.maxlag "
                         f"{float(run_maxlag):g} s (the chunk rows keep the central lags of "
                         "the stack's); give at most processing.maxlag")
    return float(value)


def _names(code: str) -> tuple[str, str]:
    """The names a station goes by in a pair list: as given without an empty location's
    trailing dot (``NET.STA.LOC``, ``NET.STA``), and ``NET.STA``."""
    code = str(code).rstrip(".")
    return code, ".".join(code.split(".")[:2])


def disk_estimate(n_pairs: int, n_kept: int, n_chunks: int, n_lags: int, pws: bool = False,
                  chunk_lags: int | None = None) -> int:
    """Bytes the results file needs, compression ignored: every pair component's full stack
    (``n_pairs x n_lags x 4`` B, float32) plus the per-chunk rows of the ``n_kept`` pair
    components that keep them (``n_kept x n_chunks x chunk_lags x 4`` B, four times that
    for pws, which also keeps each chunk's linear mean and unit phasor). ``chunk_lags``
    (default ``n_lags``) is the length of a chunk row: ``2 * round(keep_chunks.maxlag * fs)
    + 1`` with a shorter per-chunk maxlag. Metadata (a few hundred bytes a pair) and the
    padding of a full stack folded into shorter rows (under one row a pair) are left out.

    Examples
    --------
    >>> disk_estimate(n_pairs=10, n_kept=4, n_chunks=3, n_lags=101)
    8888
    >>> disk_estimate(n_pairs=10, n_kept=4, n_chunks=3, n_lags=101, chunk_lags=21)
    5048
    """
    per_chunk = 4 if pws else 1
    chunk_lags = n_lags if chunk_lags is None else int(chunk_lags)
    return 4 * (n_lags * n_pairs + n_kept * n_chunks * per_chunk * chunk_lags)
