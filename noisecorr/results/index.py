"""The ``/index`` table of a results file: one row per stored stack, as columns.

Format version 2 keeps every per-pair metadata item here (one dataset per
column) rather than as HDF5 attributes of the pair's dataset: creating
attributes dominated the cost of writing 500,000 pairs. Rows are sorted by
``(source, receiver, component)``, so one pair's row is found by a binary
search that reads about ``3 * log2(n)`` single values (no scan).

See :mod:`noisecorr.results` for the columns.
"""

from __future__ import annotations

import json

import h5py
import numpy as np

#: Numeric columns and their fill value for "unknown".
NUMERIC = {"complete": (np.bool_, True), "n_windows": (np.int64, -1),
           "sampling_rate": (np.float64, np.nan), "maxlag": (np.float64, np.nan),
           "distance_km": (np.float64, np.nan), "azimuth": (np.float64, np.nan),
           "back_azimuth": (np.float64, np.nan)}
#: Text columns (fixed-length bytes; ``b""`` is "unknown" / None).
TEXT = ("source", "receiver", "component", "starttime", "endtime")
#: Optional text column of other metadata, one JSON object per row (``b""`` if none).
EXTRA = "extra"
#: Columns of checkpoint parts only: where the stack is in ``/blocks``.
BLOCK = ("block", "block_row")
KEYS = ("source", "receiver", "component")


def text_column(values) -> np.ndarray:
    """Fixed-length UTF-8 bytes (``None`` becomes ``b""``)."""
    out = [b"" if v is None else (v if isinstance(v, bytes) else str(v).encode()) for v in values]
    return np.array(out, dtype=f"S{max([1, *map(len, out)])}")


def read_index(f: h5py.File) -> list:
    """``[(source, receiver, component, complete)]`` from a file's /index."""
    if "index" not in f:
        return []
    g = f["index"]
    src = g["source"].asstr()[()]
    rcv = g["receiver"].asstr()[()]
    cmp_ = g["component"].asstr()[()]
    done = g["complete"][()]
    return list(zip(src.tolist(), rcv.tolist(), cmp_.tolist(), done.astype(bool).tolist()))


def read_columns(f: h5py.File) -> dict:
    """Every /index column as a numpy array (text as bytes)."""
    if "index" not in f:
        return {}
    out = {}
    for name, ds in f["index"].items():
        arr = ds[()]
        if arr.dtype.kind == "O":  # version-1 variable-length strings
            arr = text_column(arr)
        out[name] = arr
    return out


def write_columns(f: h5py.File, cols: dict, sort: bool = True) -> np.ndarray:
    """Replace /index with ``cols`` (sorted by key unless ``sort`` is false);
    returns the order applied."""
    n = len(cols["source"])
    order = np.lexsort((cols["component"], cols["receiver"], cols["source"])) if sort and n \
        else np.arange(n)
    if "index" in f:
        del f["index"]
    g = f.create_group("index", track_order=False)
    for name, arr in cols.items():
        arr = np.asarray(arr)[order]
        g.create_dataset(name, data=arr if arr.size else arr.reshape(0))
    g.attrs["sorted"] = bool(sort)
    return order


def concat(columns: list) -> dict:
    """Concatenate column dicts; missing columns get their fill value."""
    names = []
    for c in columns:
        names += [k for k in c if k not in names]
    out = {}
    for name in names:
        parts = []
        for c in columns:
            n = len(c["source"])
            if name in c:
                parts.append(np.asarray(c[name]))
            elif name in NUMERIC:
                parts.append(np.full(n, NUMERIC[name][1], dtype=NUMERIC[name][0]))
            else:
                parts.append(np.zeros(n, dtype="S1") if name not in BLOCK
                             else np.full(n, -1, dtype=np.int64))
        if parts and parts[0].dtype.kind == "S":
            width = max(p.dtype.itemsize for p in parts)
            parts = [p.astype(f"S{width}") for p in parts]
        out[name] = np.concatenate(parts) if parts else np.zeros(0)
    return out


def last_wins(cols: dict) -> np.ndarray:
    """Rows to keep so that each key appears once, the last occurrence winning."""
    n = len(cols["source"])
    if not n:
        return np.zeros(0, dtype=np.int64)
    keys = np.char.add(np.char.add(np.char.add(cols["source"], b"/"),
                                   np.char.add(cols["receiver"], b"/")), cols["component"])
    _, first_of_reversed = np.unique(keys[::-1], return_index=True)
    return np.sort(n - 1 - first_of_reversed)


class _Column:
    """Single values of a 1-D dataset read through the low-level API (a few
    microseconds each, against tens for ``ds[i]``)."""

    def __init__(self, ds: h5py.Dataset):
        self.id = ds.id
        self.dtype = ds.dtype
        self.n = ds.shape[0]
        self.mspace = h5py.h5s.create_simple((1,))

    def __getitem__(self, i: int):
        fspace = self.id.get_space()
        fspace.select_hyperslab((int(i),), (1,))
        out = np.empty(1, dtype=self.dtype)
        self.id.read(self.mspace, fspace, out)
        return out


def columns_of(f: h5py.File) -> dict:
    """``{name: _Column}`` of a file's /index (opens the datasets, reads no data)."""
    return {name: _Column(ds) for name, ds in f["index"].items()}


def find_row(f: h5py.File, source: str, receiver: str, component: str, cols=None):
    """Row of a key in a sorted /index by binary search (``None`` if absent).

    ``cols`` is :func:`columns_of` of ``f`` (made here if not given).
    """
    cols = cols or columns_of(f)
    keys = [cols["source"], cols["receiver"], cols["component"]]
    want = (source.encode(), receiver.encode(), component.encode())
    n = keys[0].n
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        got = _key(keys, mid, want)
        if got < want:
            lo = mid + 1
        else:
            hi = mid
    if lo < n and _key(keys, lo, want) == want:
        return lo
    return None


def _key(keys, i, want):
    # read the receiver and component only when the earlier parts are equal
    out = []
    for col, w in zip(keys, want):
        v = _as_bytes(col[i][0])
        out.append(v)
        if v != w:  # tuples compare on their first difference
            break
    return tuple(out)


def _as_bytes(v):
    return v if isinstance(v, bytes) else str(v).encode()


def row_meta(cols: dict, i: int) -> dict:
    """The metadata dict of row ``i`` of (in-memory) columns."""
    meta = {}
    for key in KEYS:
        meta[key] = cols[key][i].decode()
    for name, (kind, _) in NUMERIC.items():
        if name in cols:
            v = cols[name][i].item()
            if isinstance(v, float) and np.isnan(v) and name in ("distance_km", "azimuth",
                                                                   "back_azimuth"):
                continue
            meta[name] = v
    for name in ("starttime", "endtime"):
        if name in cols:
            v = cols[name][i]
            meta[name] = v.decode() if v else None
    if EXTRA in cols and cols[EXTRA][i]:
        meta.update(json.loads(cols[EXTRA][i].decode()))
    return meta


def read_row(f: h5py.File, i: int, cols=None) -> dict:
    """Columns of one row, read value by value (no full column read)."""
    cols = cols or columns_of(f)
    return {name: col[i] for name, col in cols.items()}
