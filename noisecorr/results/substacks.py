"""How a pair's full stack and its sub-stacks share one dataset of the results file.

With ``substack: true`` the dataset ``/pairs/<SRC>/<RCV>/<COMP>`` is 2-D, float32, one
block of rows after the other, named in order by the pair's ``substack_rows`` metadata
(``extra`` column):

=============  ======  =====================================================
block          rows    content
=============  ======  =====================================================
``stack``      1       the stack over every window (what exports and plots use)
``substacks``  K       the stack of each sub-stack span, in time order
``linear``     K       pws only: the linear mean of each span
``phasor_re``  K       pws only: real part of the mean unit phasor of each span
``phasor_im``  K       pws only: imaginary part of it
=============  ======  =====================================================

with ``substack_starts`` (K span starts, POSIX s), ``substack_counts`` (K window counts),
``substack_len`` (s) and ``substack_origin`` (ISO UTC) beside it: span ``k`` covers
``[start_k, start_k + substack_len)`` on a grid shared by every pair. The pws blocks make
sub-stacks mergeable: the PWS of any set of spans is ``linear * |phasor| ** pws_power`` of
their window-weighted linear and phasor means (Schimmel & Paulssen 1997), which a mean of
PWS sub-stacks is not.

With a shorter per-chunk maxlag (``keep_chunks: {maxlag: S}``, :mod:`noisecorr.results.series`)
the sub-stack rows keep only the central lags ``|lag| <= S``: the dataset is ``w = 2 *
round(S * fs) + 1`` samples wide and the full stack (``n = 2 * round(maxlag * fs) + 1``
samples, ``maxlag`` of the index) fills the ``ceil(n / w)`` rows of the ``stack`` block
in order, zero-padded at the end; ``series_maxlag`` (S, seconds) beside the other items
says so. The lag axis of the rows is then the central ``w`` lags of the stack's.

Files written before this layout kept only the K sub-stacks (2-D, with
``substack_counts``); their full stack is recovered as the window-weighted mean of the
sub-stacks (exact for linear stacks; for pws and robust an approximation, logged).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from noisecorr.signal.stack import robust_weights

from .layout import SERIES_MAXLAG, lag_count

__all__ = ["ROWS_KEY", "SERIES_MAXLAG", "Substacks", "central", "combine", "full_stack", "pack",
           "stack_rows", "unpack"]

log = logging.getLogger(__name__)

#: Metadata item naming the row blocks of a dataset written with this layout.
ROWS_KEY = "substack_rows"
_PWS_BLOCKS = ("linear", "phasor_re", "phasor_im")


@dataclass(frozen=True)
class Substacks:
    """The sub-stacks of one pair and component (:meth:`noisecorr.results.Results.substacks`).

    Attributes
    ----------
    lags : ndarray (n_lags,), seconds
        The lag axis of the sub-stack rows.
    stack : ndarray or None
        The stored full stack (None in files written before it was stored): ``(n_lags,)``,
        or longer (the run's whole lag axis, of which ``lags`` are the central part) when
        the rows keep a shorter maxlag (``keep_chunks.maxlag``).
    stacks : ndarray (K, n_lags)
        One stack per span, in time order.
    starts : ndarray (K,) or None
        Span start times, POSIX seconds (UTC).
    counts : ndarray of int (K,) or None
        Windows per span; 0 for a gap (a chunk of a ``keep: chunks`` run without windows:
        stored as zero rows, read as NaN rows).
    substack_len : float or None
        Span length, seconds.
    origin : str or None
        The grid's origin (ISO 8601 UTC).
    stack_method : str
    linear, phasor : ndarray (K, n_lags) or None
        pws only: linear mean (float) and mean unit phasor (complex) per span.
    """

    @property
    def times(self) -> np.ndarray | None:
        """Span start times (POSIX s), the time axis of the series (same as ``starts``)."""
        return self.starts

    @property
    def gaps(self) -> np.ndarray:
        """Start times (POSIX s) of the spans without windows (missing data)."""
        if self.counts is None or self.starts is None:
            return np.zeros(0)
        return self.starts[self.counts == 0]

    lags: np.ndarray
    stack: np.ndarray | None
    stacks: np.ndarray
    starts: np.ndarray | None
    counts: np.ndarray | None
    substack_len: float | None
    origin: str | None
    stack_method: str
    linear: np.ndarray | None = None
    phasor: np.ndarray | None = None


def central(a: np.ndarray, width: int) -> np.ndarray:
    """The central ``width`` samples of the last axis of ``a`` (odd lengths, lag 0 at the
    centre of both): the lags ``|lag| <= (width // 2) / fs`` of a lag axis or a stack.

    Examples
    --------
    >>> central(np.arange(7), 3).tolist()
    [2, 3, 4]
    """
    n = a.shape[-1]
    if width > n or (n - width) % 2:
        raise ValueError(f"cannot take the central {width} of {n} lags")
    lo = (n - width) // 2
    return a[..., lo:lo + width]


def pack(item: dict, series_maxlag: float | None = None) -> tuple[np.ndarray, dict]:
    """The dataset rows and metadata items of a :class:`pes.stack.StackPE` output with
    sub-stacks (see the module notes for the layout).

    ``series_maxlag`` (s, or ``None``: every lag of the stack): the sub-stack rows keep the
    lags ``|lag| <= series_maxlag`` only (cut here from longer rows, with
    ``item["sampling_rate"]``); the full stack is then folded into the ``stack`` block.

    Examples
    --------
    >>> rows, meta = pack({"stack": np.arange(5.0), "substacks": np.ones((2, 5)),
    ...                    "substack_starts": [0.0, 10.0], "substack_counts": [1, 1],
    ...                    "sampling_rate": 1.0}, series_maxlag=1.0)
    >>> rows.tolist(), meta["series_maxlag"]
    ([[0.0, 1.0, 2.0], [3.0, 4.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], 1.0)
    """
    full = np.asarray(item["stack"], dtype=np.float32)
    subs = np.asarray(item["substacks"], dtype=np.float32)
    subs = subs.reshape(-1, subs.shape[-1] if subs.ndim == 2 else full.shape[-1])
    width = full.shape[-1]
    if series_maxlag is not None:
        width = lag_count(series_maxlag, float(item["sampling_rate"]))
    if width > full.shape[-1]:
        raise ValueError(f"series_maxlag {series_maxlag} s gives rows of {width} lags, longer "
                         f"than the stack's {full.shape[-1]}")
    subs = central(subs, width)
    head = full[None]
    if width < full.shape[-1]:  # the full stack fills the first rows, zero-padded
        head = np.zeros(-(-full.shape[-1] // width) * width, dtype=np.float32)
        head[:full.shape[-1]] = full
        head = head.reshape(-1, width)
    blocks, names = [head, subs], ["stack", "substacks"]
    if item.get("substack_phasor") is not None:
        phasor = central(np.asarray(item["substack_phasor"]), width)
        blocks += [central(np.asarray(item["substack_linear"], dtype=np.float32), width).reshape(subs.shape),
                   phasor.real.astype(np.float32).reshape(subs.shape),
                   phasor.imag.astype(np.float32).reshape(subs.shape)]
        names += list(_PWS_BLOCKS)
    meta = {ROWS_KEY: names,
            "substack_starts": [float(t) for t in item["substack_starts"]],
            "substack_counts": [int(n) for n in item["substack_counts"]],
            "substack_len": None if item.get("substack_len") is None else float(item["substack_len"]),
            "substack_origin": item.get("substack_origin")}
    if width < full.shape[-1]:
        meta[SERIES_MAXLAG] = float(series_maxlag)
    return np.concatenate(blocks), meta


def stack_rows(meta: dict) -> int:
    """Rows of the ``stack`` block of a dataset with the sub-stack layout: 1, or
    ``ceil(n / w)`` when its rows keep a shorter maxlag (``series_maxlag``; ``meta`` then
    gives ``maxlag`` and ``sampling_rate``, as the index does)."""
    n, w = _lengths(meta)
    return 1 if n is None else -(-n // w)


def _lengths(meta: dict) -> tuple[int | None, int | None]:
    """``(n, w)``: samples of the full stack and of a row when the rows keep a shorter
    maxlag, else ``(None, None)``."""
    if meta.get(SERIES_MAXLAG) is None:
        return None, None
    fs = float(meta["sampling_rate"])
    n = lag_count(float(meta["maxlag"]), fs)
    w = lag_count(float(meta[SERIES_MAXLAG]), fs)
    return (n, w) if n > w else (None, None)


def _stack_of(data: np.ndarray, meta: dict, where: str = "") -> np.ndarray:
    """The full stack of a dataset with the sub-stack layout (row 0, or its first rows
    unfolded)."""
    n, w = _lengths(meta)
    if n is None:
        return data[0]
    if data.shape[-1] != w:
        raise ValueError(f"{where}: rows of {data.shape[-1]} lags, but series_maxlag "
                         f"{meta[SERIES_MAXLAG]} s says {w}")
    return data[:-(-n // w)].reshape(-1)[:n]


def _method(meta: dict, params: dict | None) -> str:
    if meta.get("stack_method"):
        return str(meta["stack_method"])
    proc = (params or {}).get("processing") or params or {}
    return str(proc.get("stack_method", "linear"))


def unpack(lags, data: np.ndarray, meta: dict, params: dict | None = None) -> Substacks:
    """The :class:`Substacks` of a stored dataset and its metadata.

    Raises
    ------
    ValueError
        The dataset is not 2-D, or its rows do not match ``substack_rows`` and the counts.
    """
    where = f"{meta.get('source')} -> {meta.get('receiver')} {meta.get('component')}"
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"{where}: no sub-stacks stored (a 1-D stack); run with substack: true")
    starts = meta.get("substack_starts")
    counts = meta.get("substack_counts")
    starts = None if starts is None else np.asarray(starts, dtype=np.float64)
    counts = None if counts is None else np.asarray(counts, dtype=np.int64)
    names = meta.get(ROWS_KEY)
    full, linear, phasor = None, None, None
    lags = np.asarray(lags)
    if lags.shape[-1] != data.shape[-1]:  # rows of a shorter maxlag: their central lags
        lags = central(lags, data.shape[-1])
    if names is None:  # sub-stacks only (older files, or a 2-D array given to the writer)
        stacks = data
    else:
        k = len(counts) if counts is not None else None
        head = stack_rows(meta)
        want = head + (len(names) - 1) * (k or 0)
        if names[:2] != ["stack", "substacks"] or k is None or data.shape[0] != want:
            raise ValueError(f"{where}: stored with {data.shape[0]} rows but {ROWS_KEY}={names} and "
                             f"{k} sub-stacks say {want}")
        blocks = {"stack": _stack_of(data, meta, where)}
        for i, name in enumerate(names[1:]):
            blocks[name] = data[head + i * k:head + (i + 1) * k]
        full, stacks = blocks["stack"], blocks["substacks"]
        if all(b in blocks for b in _PWS_BLOCKS):
            linear = blocks["linear"]
            phasor = blocks["phasor_re"].astype(np.complex64) + 1j * blocks["phasor_im"]
    if counts is not None and counts.shape != (stacks.shape[0],):
        raise ValueError(f"{where}: {stacks.shape[0]} sub-stacks but {counts.size} substack_counts")
    if counts is not None and (counts == 0).any():  # gaps (keep: chunks): stored as zeros
        gap = counts == 0
        stacks = np.where(gap[:, None], np.float32(np.nan), stacks)
        if linear is not None:
            linear = np.where(gap[:, None], np.float32(np.nan), linear)
            phasor = np.where(gap[:, None], np.complex64(np.nan), phasor)
    return Substacks(lags, full, stacks, starts, counts, meta.get("substack_len"),
                     meta.get("substack_origin"), _method(meta, params), linear, phasor)


def combine(sub: Substacks, pws_power: float = 2.0, start: float | None = None,
            end: float | None = None) -> tuple[np.ndarray, int]:
    """Stack of the spans starting in ``[start, end)`` (POSIX s; default all), weighted by
    their window counts: ``(stack float64, n_windows)``. Spans without windows (gaps, NaN
    rows) are left out.

    * linear: ``sum_k n_k s_k / sum_k n_k``, exactly the linear stack of their windows;
    * pws: ``L * |P| ** pws_power`` with ``L`` and ``P`` the window-weighted means of the
      spans' linear means and mean unit phasors, exactly the PWS of their windows
      (Schimmel & Paulssen 1997); a file without the phasor blocks cannot give it;
    * robust: the robust stack (Pavlis & Vernon 2010) of the span stacks, each weight
      multiplied by the span's window count (the two-level robust stack of
      :class:`noisecorr.signal.stack.StackState`).

    Raises
    ------
    ValueError
        No window counts, no span in the range, or a pws without phasor blocks.

    Examples
    --------
    >>> lags = np.zeros(2)
    >>> sub = Substacks(lags, None, np.array([[1., 0.], [4., 1.]]), np.array([0., 3600.]),
    ...                 np.array([1, 3]), 3600.0, None, "linear")
    >>> combine(sub)
    (array([3.25, 0.75]), 4)
    """
    if sub.counts is None:
        raise ValueError("sub-stacks without window counts cannot be weighted")
    keep = np.ones(len(sub.counts), dtype=bool)
    if start is not None or end is not None:
        if sub.starts is None:
            raise ValueError("sub-stacks without start times cannot be selected by time")
        lo = -np.inf if start is None else float(start)
        hi = np.inf if end is None else float(end)
        keep = (sub.starts >= lo) & (sub.starts < hi)
    keep &= sub.counts > 0  # gaps (count 0, NaN rows: keep: chunks) weigh nothing
    n = sub.counts[keep].astype(np.float64)
    total = int(n.sum())
    if not total:
        raise ValueError(f"no windows in the sub-stacks starting in [{start}, {end})")
    w = n / n.sum()
    if sub.stack_method == "linear":
        return w @ sub.stacks[keep].astype(np.float64), total
    if sub.stack_method == "pws":
        if sub.phasor is None:
            raise ValueError("phase-weighted sub-stacks stored without their linear means and "
                             "phasors (an older file): their PWS cannot be combined exactly; "
                             "read the full stack instead")
        linear = w @ sub.linear[keep].astype(np.float64)
        phasor = w @ sub.phasor[keep].astype(np.complex128)
        return linear * np.abs(phasor) ** pws_power, total
    rows = np.flatnonzero(keep)
    if len(rows) == 1:
        return sub.stacks[rows[0]].astype(np.float64), total
    stacked, _, _ = robust_weights(sub.stacks[rows], counts=sub.counts[rows])
    return stacked, total


def full_stack(data: np.ndarray, meta: dict, params: dict | None = None) -> np.ndarray:
    """The full stack of a stored dataset: itself if 1-D, row 0 with the sub-stack layout
    (its first rows, unfolded, when the rows keep a shorter maxlag: ``meta`` then needs
    ``maxlag`` and ``sampling_rate``),
    the window-weighted mean of the sub-stacks of an older file (exact for linear; for pws
    and robust an approximation, logged), else the 2-D array unchanged (rows whose meaning
    the file does not say)."""
    data = np.asarray(data)
    if data.ndim == 1:
        return data
    if meta.get(ROWS_KEY) is not None:
        return _stack_of(data, meta, f"{meta.get('source')} -> {meta.get('receiver')} {meta.get('component')}")
    counts = meta.get("substack_counts")
    if counts is None or len(counts) != data.shape[0] or not sum(counts):
        return data
    method = _method(meta, params)
    if method != "linear":
        log.warning("%s -> %s %s: file stores %s sub-stacks only; its full stack is approximated "
                    "by their window-weighted mean", meta.get("source"), meta.get("receiver"),
                    meta.get("component"), method)
    w = np.asarray(counts, dtype=np.float64)
    return (w / w.sum() @ data.astype(np.float64)).astype(data.dtype)
