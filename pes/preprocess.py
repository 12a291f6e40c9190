"""Preprocess one channel and chunk, then orient each sensor's channels to E, N, Z.

Thin over :func:`noisecorr.signal.preprocess.preprocess_chunk` and
:func:`noisecorr.signal.orientation.orient_sensor`.

Items
-----
PreprocessPE input : dict
    A :class:`pes.fetch.FetchPE` output (``seed_id``, ``starttime``, ``endtime``,
    ``stream``, ``inventory``).
PreprocessPE output : dict
    ``{"seed_id", "chunk": float start, "trace": ProcessedTrace, "sensor": seed id without
    its orientation letter (``NET.STA.LOC.HH``), "orientation": (azimuth, dip) in degrees
    from the StationXML (either None where it is missing) or None (channel not in it)}``.
rejected : dict
    ``{"seed_id", "chunk", "reason"}`` for data that cannot be processed (no data,
    NaN, missing response, unknown orientation, ...): written, logged, never silently
    dropped.
PreprocessPE absent : dict
    The same record, once per channel-chunk :class:`PreprocessPE` rejects, for consumers
    that must know a channel has nothing for a chunk (:class:`pes.tiles.TileRoutePE`
    ``absent``: the chunk's tiles need not wait for it).
OrientPE output : dict
    One channel ``{"seed_id" (``...E``, ``...N`` or ``...Z``), "chunk", "trace", "sensor"}``,
    or, for the channels :attr:`~noisecorr.signal.params.CorrelationParams.joint_mode`
    normalises together, one bundle ``{"sensor", "chunk", "channels": [channel, ...]}``
    that :class:`pes.normalise.NormalisePE`, ``SpectraPE`` and ``WhitenPE`` process
    jointly (``WhitenPE`` writes its channels one by one again).
"""

from __future__ import annotations

import logging

from noisecorr.engine import GenericPE
from noisecorr.signal.normalize import joint_groups
from noisecorr.signal.orientation import OrientationError, inventory_orientation, orient_sensor
from noisecorr.signal.params import CorrelationParams
from noisecorr.signal.preprocess import PreprocessError, preprocess_chunk

__all__ = ["PreprocessPE", "OrientPE", "sensor_of"]


def sensor_of(seed_id: str) -> str:
    """The sensor of a channel: its seed id without the orientation letter (``XX.A..HH1 -> XX.A..HH``)."""
    return seed_id[:-1]


class PreprocessPE(GenericPE):
    """Merge, detrend, taper, resample, remove response, bandpass, trim (Bensen et al. 2007).

    Parameters
    ----------
    params : CorrelationParams
    inventory : obspy.Inventory, optional
        Used when the item carries none.
    """

    def __init__(self, params: CorrelationParams, inventory=None, name: str | None = None):
        super().__init__()
        if name:
            self.name = name
        self._add_input("input")
        self._add_output("output")
        self._add_output("rejected")
        self._add_output("absent")
        self.params = params
        self.inventory = inventory

    def process(self, inputs):
        item = inputs["input"]
        inventory = item.get("inventory") or self.inventory
        try:
            trace = preprocess_chunk(item["stream"], item["starttime"], item["endtime"], self.params,
                                     inventory=inventory, seed_id=item["seed_id"])
        except PreprocessError as err:
            self.log("rejected %s: %s", item["seed_id"], err.reason, level=logging.WARNING)
            record = {"seed_id": item["seed_id"], "chunk": item["starttime"], "reason": err.reason}
            self.write("rejected", record)
            self.write("absent", dict(record))
            return None
        self.write("output", {"seed_id": item["seed_id"], "chunk": item["starttime"], "trace": trace,
                              "sensor": sensor_of(item["seed_id"]),
                              "orientation": inventory_orientation(inventory, item["seed_id"], item["starttime"])})
        return None


class OrientPE(GenericPE):
    """Gather the channels of each sensor and chunk and rotate them to E, N, Z (Z up).

    The StationXML azimuth and dip of every channel (carried by the
    :class:`PreprocessPE` items) give the rotation (:func:`noisecorr.signal.orientation.orient_sensor`):
    1/2 channels become E/N, a vertical with dip +90 changes sign, channels already at
    their conventional orientation pass unchanged. A channel that cannot be oriented (a
    1/2 horizontal whose azimuth is missing: the sensor's horizontals; a horizontal
    without its partner) is written to ``rejected`` naming it and why, and logged.
    The channels normalised together (``params.joint_mode``) leave as one bundle.

    Parameters
    ----------
    params : CorrelationParams
    channels : iterable of str, optional
        Every seed id the run requests. A sensor's chunk is passed on as soon as all its
        requested channels have arrived; without ``channels`` (or when one of them was
        rejected upstream) it waits until the upstream has finished.

    Inputs arrive grouped by ``("sensor", "chunk")`` so that a sensor's channels meet in
    one instance under every mapping.
    """

    def __init__(self, params: CorrelationParams, channels=None, name: str | None = None):
        super().__init__()
        if name:
            self.name = name
        self._add_input("input", grouping=["sensor", "chunk"])
        self._add_output("output")
        self._add_output("rejected")
        self.params = params
        self.expected = None
        if channels is not None:
            expected = {}
            for sid in channels:
                expected.setdefault(sensor_of(sid), set()).add(sid)
            self.expected = {k: tuple(sorted(v)) for k, v in expected.items()}
        self.pending = {}

    def process(self, inputs):
        item = inputs["input"]
        key = (item.get("sensor") or sensor_of(item["seed_id"]), item["chunk"])
        group = self.pending.setdefault(key, {})
        if item["seed_id"] in group:
            raise ValueError(f"{item['seed_id']}: chunk {item['chunk']} received twice")
        group[item["seed_id"]] = item
        if self.expected is not None and set(group) >= set(self.expected.get(key[0], ())):
            self._flush(key)

    def postprocess(self):
        for key in sorted(self.pending):
            self._flush(key)

    # Provenance: what leaves for a sensor and chunk derives from all its channels of that chunk.
    def provenance_input_keys(self, port, item):
        return ((item["chunk"], item.get("sensor") or sensor_of(item["seed_id"])),)

    def provenance_output_keys(self, port, item):
        return ((item["chunk"], item.get("sensor") or sensor_of(item["seed_id"])),)

    def _flush(self, key):
        sensor, chunk = key
        items = self.pending.pop(key)
        try:
            traces, problems = orient_sensor([it["trace"] for it in items.values()],
                                             {sid: it.get("orientation") for sid, it in items.items()})
        except OrientationError as err:
            traces, problems = [], [(sid, str(err)) for sid in sorted(items)]
        for sid, reason in problems:
            self.log("rejected %s chunk %s: %s", sid, chunk, reason, level=logging.WARNING)
            self.write("rejected", {"seed_id": sid, "chunk": chunk, "reason": reason})
        by_letter = {tr.seed_id[-1]: {"seed_id": tr.seed_id, "chunk": chunk, "trace": tr, "sensor": sensor}
                     for tr in traces}
        for group in joint_groups(by_letter, self.params.joint_mode):
            if len(group) == 1:
                self.write("output", by_letter[group[0]])
            else:
                self.write("output", {"sensor": sensor, "chunk": chunk,
                                      "channels": [by_letter[c] for c in group]})
