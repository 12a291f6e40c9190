"""Where a tile worker keeps the station factors it has received: memory or a scratch file.

A tile ``(I, J)`` can only be computed once every station of blocks ``I`` and ``J`` has
arrived, and block ``I`` is needed again by the last block's tiles, so a single pass over
the stations of a chunk must keep every station's factors until the end. In memory that is
``n_stations * n_windows * n_band * 8`` bytes per worker (2.7 GB for 1,000 stations x 48
windows x 7,021 bins), growing with the network. :class:`FactorStore` with ``where="disk"``
writes each array once to an *unlinked* scratch file (``tempfile.TemporaryFile``: nothing is
left behind even if the process is killed) and reads it back when a tile needs it; the
worker's memory is then set by the tile alone. The operating system's page cache keeps
recently written data, so on a machine with free memory the reads rarely reach the disk.

Arrays are stored frequency-major, ``(n_band, n_windows)`` complex64, the layout of the
tile blocks (:func:`noisecorr.tiles.kernel.assemble_block`).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

__all__ = ["FactorStore"]

#: Largest single read or write (Linux moves at most about 2 GiB per call).
_IO_CHUNK = 1 << 30


class FactorStore:
    """Arrays by key, in memory or in an unlinked scratch file.

    Parameters
    ----------
    where : {"memory", "disk"}
    scratch : path, optional
        Folder of the scratch file (``disk``); default: the system's temporary folder
        (``TMPDIR``). On a cluster, prefer node-local disk.
    label : str
        Named in error messages (e.g. the PE instance and chunk).
    """

    def __init__(self, where: str = "memory", scratch=None, label: str = "tile worker"):
        if where not in ("memory", "disk"):
            raise ValueError(f"factor store must be 'memory' or 'disk', got {where!r}")
        self.where = where
        self.scratch = str(scratch) if scratch else tempfile.gettempdir()
        self.label = label
        self._arrays = {}
        self._index = {}
        self._file = None
        self._end = 0
        self.bytes_written = 0
        self.bytes_read = 0

    def __len__(self):
        return len(self._arrays) + len(self._index)

    def __contains__(self, key):
        return key in self._arrays or key in self._index

    def _fd(self):
        if self._file is None:
            try:
                self._file = tempfile.TemporaryFile(dir=self.scratch, prefix="noisecorr-factors-")
            except OSError as exc:
                raise OSError(f"{self.label}: cannot create a scratch file for spectra in "
                              f"{self.scratch}: {exc}") from exc
        return self._file.fileno()

    def put(self, key, array: np.ndarray) -> None:
        """Store ``array`` (copied to disk, or kept as is in memory) under ``key``."""
        if key in self:
            raise KeyError(f"{self.label}: {key!r} stored twice")
        if self.where == "memory":
            self._arrays[key] = array
            return
        a = np.ascontiguousarray(array)
        fd, view, off = self._fd(), memoryview(a).cast("B"), self._end
        try:
            done = 0
            while done < len(view):
                done += os.pwrite(fd, view[done:done + _IO_CHUNK], off + done)
        except OSError as exc:
            raise OSError(f"{self.label}: cannot write spectra to the scratch folder "
                          f"{self.scratch} ({exc}); free space there or choose another "
                          f"folder (scratch: in the configuration)") from exc
        self._index[key] = (off, a.shape, a.dtype)
        self._end += len(view)
        self.bytes_written += len(view)

    def get(self, key, default=None):
        """The array stored under ``key`` (read back from the scratch file), or ``default``."""
        if key in self._arrays:
            return self._arrays[key]
        entry = self._index.get(key)
        if entry is None:
            return default
        off, shape, dtype = entry
        out = np.empty(shape, dtype)
        view = memoryview(out).cast("B")
        done = 0
        while done < len(view):
            n = os.preadv(self._file.fileno(), [view[done:done + _IO_CHUNK]], off + done)
            if n == 0:
                raise OSError(f"{self.label}: scratch file truncated reading {key!r}")
            done += n
        self.bytes_read += len(view)
        return out

    def drop(self, key) -> None:
        """Forget ``key`` (on disk the space is returned when the store closes)."""
        self._arrays.pop(key, None)
        self._index.pop(key, None)

    def close(self) -> None:
        """Release everything (deletes the scratch file)."""
        self._arrays.clear()
        self._index.clear()
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
