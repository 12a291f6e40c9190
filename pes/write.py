"""Write stacks to the run's HDF5 results file (thin over :class:`noisecorr.results.ResultsWriter`).

Items
-----
input : dict (grouping ``"global"``: one writer instance owns the file)
    A :class:`pes.stack.StackPE` output: ``source``, ``receiver``, ``component``, ``lags``,
    ``stack``, ``n_windows``, ``sampling_rate``, optional ``substacks``... (stored with the
    full stack in one dataset, :mod:`noisecorr.results.substacks`); or a batched
    :class:`pes.tiles.TileStackPE` output (``keys``, per-pair lists and a 2-D ``stack``).
output : tuple
    ``("written", n_pairs)`` once, after the file is complete.

The writer buffers pairs and checkpoints them into part files written under a temporary
name and renamed, so a crash loses at most the unfinished batch and ``resume`` continues;
``postprocess`` merges everything into the final file atomically.
"""

from __future__ import annotations

from noisecorr.engine import GenericPE
from noisecorr.results.substacks import pack as pack_substacks
from pes.correlate import net_sta

__all__ = ["WriteResultsPE"]

_SKIP_META = {"key", "source", "receiver", "component", "lags", "stack", "params", "substacks",
              "substack_starts", "substack_counts", "substack_len", "substack_origin",
              "substack_linear", "substack_phasor", "source_id", "receiver_id"}


class WriteResultsPE(GenericPE):
    """Write every stack it receives to ``path``; skip pairs listed in ``skip``.

    Parameters
    ----------
    path : str
        The results file (``results.h5``).
    params : dict
        Processing parameters stored in the file (a resumed file must match them).
    stations : dict
        ``{"NET.STA": {"latitude", "longitude", "elevation"}}``; keys may be
        ``NET.STA.LOC`` (every location a station of its own): a correlator key
        ``NET.STA.LOC`` is written under that code when it is one of these keys, else under
        ``NET.STA``.
    starttime, endtime : str
        Span of the input data.
    compression : None, "gzip" or "lzf"
    skip : set of (source, receiver, component)
        Already complete (``--resume``): not written again.
    series_maxlag : float, optional
        Seconds (``keep_chunks.maxlag``): the sub-stack rows of an item keep only the lags
        ``|lag| <= series_maxlag`` (the full stack keeps all of them), see
        :func:`noisecorr.results.substacks.pack`.

    With ``parallel = True`` several instances write at once (give the PE ``numprocesses``
    and connect it with the ``"local"`` grouping so stacks are written where they are made):
    each writes its own part files and the caller merges them with
    :func:`noisecorr.results.merge_parts` after the run.
    """

    def __init__(self, path, params, stations, starttime, endtime, compression=None, skip=(),
                 name=None, series_maxlag=None):
        super().__init__()
        if name:
            self.name = name
        self._add_input("input", grouping="global")
        self._add_output("output")
        self.path = str(path)
        self.params = params
        self.stations = stations
        self.starttime, self.endtime = str(starttime), str(endtime)
        self.compression = compression
        self.skip = set(skip)
        self.series_maxlag = None if series_maxlag is None else float(series_maxlag)
        self.parallel = False
        self.writer = None
        self.written = 0

    def preprocess(self):
        from noisecorr.results import ResultsWriter

        stations = [{"code": code, **coords} for code, coords in sorted(self.stations.items())]
        self.writer = ResultsWriter(self.path, self.params, stations=stations, starttime=self.starttime,
                                    writer_id=self.instance if self.parallel else None,
                                    endtime=self.endtime, compression=self.compression, resume=True)

    def process(self, inputs):
        item = inputs["input"]
        if "keys" in item:  # a pes.tiles.TileStackPE batch: one row per pair of a tile
            self._write_batch(item)
        else:
            self._write_one(item)

    def _write_batch(self, item):
        comp = item["component"]
        rows = [i for i, (a, b) in enumerate(zip(item["source"], item["receiver"]))
                if (self._code(a), self._code(b), comp) not in self.skip]
        if not rows:
            return
        # one bulk call per tile: validation, geometry and buffering run on whole arrays
        stack = item["stack"] if len(rows) == len(item["stack"]) else item["stack"][rows]  # no copy
        self.writer.write_block([self._code(item["source"][i]) for i in rows],
                                [self._code(item["receiver"][i]) for i in rows], comp, item["lags"],
                                stack,
                                {"sampling_rate": item["sampling_rate"],
                                 "n_windows": [int(item["n_windows"][i]) for i in rows],
                                 "stack_method": item.get("stack_method")})
        self.written += len(rows)

    def _write_one(self, item):
        # results are keyed by "NET.STA" (the correlator's keys may carry ".LOC")
        key = (self._code(item["source"]), self._code(item["receiver"]), item["component"])
        if key in self.skip:
            return
        meta = {k: v for k, v in item.items() if k not in _SKIP_META and v is not None}
        data = item["stack"]
        if item.get("substacks") is not None:
            # the full stack and the sub-stacks (pws: with their phasors), one dataset
            data, layout = pack_substacks(item, self.series_maxlag)
            meta.update(layout)
        self.writer.write_pair(*key, item["lags"], data, meta)
        self.written += 1

    def _code(self, key: str) -> str:
        """Results code of a correlator key: ``NET.STA.LOC`` if it is a station of the run
        (every location its own station), else ``NET.STA``."""
        return key if key in self.stations else net_sta(key)

    def postprocess(self):
        # parallel writers leave their parts; whoever ran the graph merges them at the end
        self.writer.close(merge=not self.parallel)
        self.write("output", ("written", self.written))
