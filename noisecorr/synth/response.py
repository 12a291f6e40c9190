"""Instrument response and StationXML inventory for the synthetic network.

Every channel carries the same two-stage response, in the standard form that
ObsPy's ``Trace.remove_response`` and evalresp understand:

1. ``PolesZerosResponseStage`` (M/S -> V): a Streckeisen STS-2 broadband
   seismometer, using the widely published poles and zeros (120 s natural
   period, damping 0.707), Laplace transform in rad/s, normalised to 1 at
   1 Hz (``normalization_factor`` is computed, about 6.0077e7), stage gain
   1500 V/(m/s).
2. ``CoefficientsTypeResponseStage`` (V -> COUNTS): a 24-bit digitizer with
   2**23 counts per 5 V, i.e. 1,677,721.6 counts/V, no filter coefficients,
   decimation factor 1 at the channel's sampling rate.

The overall ``InstrumentSensitivity`` is recomputed by ObsPy at 1 Hz: about
2.5166e9 counts/(m/s).
"""

from __future__ import annotations

import numpy as np
from obspy import UTCDateTime
from obspy.core.inventory import (Channel, Inventory, Network, Response,
                                  Site, Station)
from obspy.core.inventory.response import (CoefficientsTypeResponseStage,
                                           InstrumentSensitivity,
                                           PolesZerosResponseStage)

#: STS-2 zeros (rad/s) for velocity output.
STS2_ZEROS = (0j, 0j)
#: STS-2 poles (rad/s), the standard published set.
STS2_POLES = (-0.037004 + 0.037016j, -0.037004 - 0.037016j, -251.33 + 0j,
              -131.04 - 467.29j, -131.04 + 467.29j)
#: STS-2 generator constant, V/(m/s).
STS2_GAIN = 1500.0
#: Digitizer gain, counts/V (2**23 counts for 5 V).
DIGITIZER_GAIN = 2.0 ** 23 / 5.0
#: Frequency (Hz) at which gains and the sensitivity are given.
NORMALIZATION_FREQUENCY = 1.0


def _normalization_factor(zeros, poles, frequency):
    s = 2j * np.pi * frequency
    h = np.prod([s - z for z in zeros]) / np.prod([s - p for p in poles])
    return float(1.0 / abs(h))


def sts2_response(sampling_rate: float) -> Response:
    """Two-stage STS-2 + 24-bit digitizer response, input M/S, output COUNTS."""
    a0 = _normalization_factor(STS2_ZEROS, STS2_POLES, NORMALIZATION_FREQUENCY)
    stage1 = PolesZerosResponseStage(
        stage_sequence_number=1, stage_gain=STS2_GAIN,
        stage_gain_frequency=NORMALIZATION_FREQUENCY,
        input_units="M/S", output_units="V",
        input_units_description="Velocity in meters per second",
        output_units_description="Volts",
        pz_transfer_function_type="LAPLACE (RADIANS/SECOND)",
        normalization_frequency=NORMALIZATION_FREQUENCY,
        normalization_factor=a0, zeros=list(STS2_ZEROS), poles=list(STS2_POLES),
        description="Streckeisen STS-2 (synthetic)")
    stage2 = CoefficientsTypeResponseStage(
        stage_sequence_number=2, stage_gain=DIGITIZER_GAIN,
        stage_gain_frequency=NORMALIZATION_FREQUENCY,
        input_units="V", output_units="COUNTS",
        input_units_description="Volts", output_units_description="Digital counts",
        cf_transfer_function_type="DIGITAL", numerator=[], denominator=[],
        decimation_input_sample_rate=float(sampling_rate), decimation_factor=1,
        decimation_offset=0, decimation_delay=0.0, decimation_correction=0.0,
        description="24-bit digitizer (synthetic)")
    sens = InstrumentSensitivity(
        value=STS2_GAIN * DIGITIZER_GAIN, frequency=NORMALIZATION_FREQUENCY,
        input_units="M/S", output_units="COUNTS")
    resp = Response(instrument_sensitivity=sens, response_stages=[stage1, stage2])
    resp.recalculate_overall_sensitivity(NORMALIZATION_FREQUENCY)
    return resp


def velocity_to_counts(response: Response, frequencies) -> np.ndarray:
    """Complex response (counts per m/s) at ``frequencies`` (Hz), via evalresp.

    This is the very function ``remove_response`` inverts, so data made with
    it are recovered exactly in band (up to quantisation and water level).
    """
    f = np.asarray(frequencies, dtype=float)
    return response.get_evalresp_response_for_frequencies(f, output="VEL")


def build_inventory(stations, channels, sampling_rate: float,
                    start: UTCDateTime, end: UTCDateTime | None = None,
                    source: str = "noisecorr.synth") -> Inventory:
    """StationXML inventory for ``stations`` (objects with ``network``,
    ``station``, ``latitude``, ``longitude``, ``elevation``).

    ``channels`` are channel codes such as ``("BHZ", "BHN", "BHE")``; their
    orientation follows the last letter (Z: dip -90, N: azimuth 0, E: 90).
    """
    resp = sts2_response(sampling_rate)
    orient = {"Z": (0.0, -90.0), "N": (0.0, 0.0), "E": (90.0, 0.0)}
    by_net: dict[str, list[Station]] = {}
    for st in stations:
        chans = []
        for cha in channels:
            az, dip = orient[cha[-1]]
            chans.append(Channel(
                code=cha, location_code="", latitude=st.latitude,
                longitude=st.longitude, elevation=st.elevation, depth=0.0,
                azimuth=az, dip=dip, sample_rate=float(sampling_rate),
                start_date=start, end_date=end, response=resp,
                types=["CONTINUOUS", "GEOPHYSICAL"]))
        by_net.setdefault(st.network, []).append(Station(
            code=st.station, latitude=st.latitude, longitude=st.longitude,
            elevation=st.elevation, channels=chans, start_date=start, end_date=end,
            creation_date=start, site=Site(name=f"Synthetic station {st.station}")))
    nets = [Network(code=code, stations=sts, start_date=start, end_date=end,
                    description="noisecorr synthetic network")
            for code, sts in sorted(by_net.items())]
    # created = start, not now(): regenerating gives identical bytes
    return Inventory(networks=nets, source=source, created=start)
