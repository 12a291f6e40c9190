"""One channel group per station: priorities, orientation coverage, data availability.

Each case is hand-made: the expected choice follows from the documented order (data, then
orientations, then channel_priority, then location_priority) and nothing else.
"""

import numpy as np
import pytest
from obspy import Trace, UTCDateTime
from obspy.clients.filesystem.sds import Client as SDSClient

from noisecorr.synth.response import build_inventory
from noisecorr.workflow.config import (DEFAULT_CHANNEL_PRIORITY, DEFAULT_LOCATION_PRIORITY, ConfigError,
                                       from_mapping, load_config)
from noisecorr.workflow.sources import resolve
from pes.fetch import FileClient, has_data, select_channels, station_code

CP, LP = DEFAULT_CHANNEL_PRIORITY, DEFAULT_LOCATION_PRIORITY
T0 = UTCDateTime(2024, 1, 1)


def _dropped(sel):
    return {d["seed_id"]: (d["chosen"], d["reason"]) for d in sel.dropped}


def test_default_order_is_hh_bh_eh_sh_mh_lh():
    codes = ["LHZ", "MHZ", "SHZ", "EHZ", "BHZ", "HHZ"]
    for best, rest in ((codes[i], codes[:i]) for i in range(len(codes) - 1, 0, -1)):
        sel = select_channels([f"XX.A..{c}" for c in [best, *rest]], CP, LP)
        assert sel.chosen == (f"XX.A..{best}",), best
        assert sorted(_dropped(sel)) == sorted(f"XX.A..{c}" for c in rest)


def test_high_gain_seismometer_before_low_gain_geophone_and_accelerometer():
    sel = select_channels(["XX.A..HNZ", "XX.A..HLZ", "XX.A..DPZ", "XX.A..CHZ"], CP, LP)
    assert sel.chosen == ("XX.A..CHZ",)   # "?H?": any other high-gain seismometer
    sel = select_channels(["XX.A..HNZ", "XX.A..HLZ", "XX.A..DPZ"], CP, LP)
    assert sel.chosen == ("XX.A..HLZ",)
    sel = select_channels(["XX.A..HNZ", "XX.A..DPZ"], CP, LP)
    assert sel.chosen == ("XX.A..DPZ",)


def test_band_order_breaks_ties_within_one_pattern():
    # CH (250-1000 Hz) and DH both match "?H?": the broadband code of the higher rate first
    sel = select_channels(["XX.A..DHZ", "XX.A..CHZ", "XX.A..FHZ"], ["?H?"], LP)
    assert sel.chosen == ("XX.A..FHZ",)
    assert set(_dropped(sel)) == {"XX.A..DHZ", "XX.A..CHZ"}


def test_unmatched_channels_are_dropped_with_the_reason():
    sel = select_channels(["XX.A..VMZ", "XX.A..BHZ", "XX.B..VMZ"], CP, LP)
    assert sel.chosen == ("XX.A..BHZ",)
    chosen, reason = _dropped(sel)["XX.B..VMZ"]
    assert chosen is None and "VMZ matches no channel_priority pattern" in reason


def test_location_order_then_lexical_and_dashes_mean_empty():
    ids = ["XX.A.20.HHZ", "XX.A.10.HHZ", "XX.A.00.HHZ", "XX.A..HHZ"]
    assert select_channels(ids, CP, LP).chosen == ("XX.A..HHZ",)
    assert select_channels(ids[:3], CP, LP).chosen == ("XX.A.00.HHZ",)
    assert select_channels(ids[:2], CP, LP).chosen == ("XX.A.10.HHZ",)  # not listed: lexical
    assert select_channels(ids, CP, ["20", "--"]).chosen == ("XX.A.20.HHZ",)
    assert select_channels(ids[1:], CP, ["--", "20"]).chosen == ("XX.A..HHZ",)


def test_channel_decides_before_location():
    sel = select_channels(["XX.A.00.LHZ", "XX.A.10.HHZ"], CP, LP)
    assert sel.chosen == ("XX.A.10.HHZ",)
    assert _dropped(sel)["XX.A.00.LHZ"] == ("XX.A.10.HH?", "XX.A.10.HH? is earlier in channel_priority")


def test_a_group_is_kept_whole_and_must_cover_the_orientations():
    ids = ["XX.A..HHZ", "XX.A..BHZ", "XX.A..BHN", "XX.A..BHE"]
    sel = select_channels(ids, CP, LP, needed={"E", "N", "Z"})
    assert sel.chosen == ("XX.A..BHE", "XX.A..BHN", "XX.A..BHZ")
    assert _dropped(sel)["XX.A..HHZ"][1] == "XX.A..BH? covers more of the orientations needed"
    # a vertical-only run prefers the HH vertical; the horizontals of BH go with their group
    sel = select_channels(ids, CP, LP, needed={"Z"})
    assert sel.chosen == ("XX.A..HHZ",) and len(sel.dropped) == 3


def test_a_group_without_data_loses_and_unknown_availability_does_not():
    ids = ["XX.A..HHZ", "XX.A..BHZ"]
    sel = select_channels(ids, CP, LP, has_data=lambda sid: ".BH" in sid)
    assert sel.chosen == ("XX.A..BHZ",)
    assert _dropped(sel)["XX.A..HHZ"][1] == "XX.A..BH? has data in the archive"
    assert select_channels(ids, CP, LP, has_data=lambda sid: None).chosen == ("XX.A..HHZ",)
    # nothing has data: the priority still decides (the fetch then reports the missing data)
    assert select_channels(ids, CP, LP, has_data=lambda sid: False).chosen == ("XX.A..HHZ",)


def test_all_locations_keeps_one_band_per_location_as_its_own_station():
    ids = ["XX.A..HHZ", "XX.A.00.HHZ", "XX.A.10.HHZ", "XX.A.10.BHZ"]
    sel = select_channels(ids, CP, LP, all_locations=True)
    assert sel.chosen == ("XX.A..HHZ", "XX.A.00.HHZ", "XX.A.10.HHZ")
    assert sel.stations == {"XX.A..HHZ": "XX.A", "XX.A.00.HHZ": "XX.A.00", "XX.A.10.HHZ": "XX.A.10"}
    assert list(_dropped(sel)) == ["XX.A.10.BHZ"]
    assert station_code("XX.A.10.HHZ") == "XX.A"


def _write(folder, sid, rate=20.0, seconds=600):
    net, sta, loc, cha = sid.split(".")
    Trace(np.arange(int(rate * seconds), dtype=np.int32) % 50, {
        "network": net, "station": sta, "location": loc, "channel": cha, "sampling_rate": rate,
        "starttime": T0}).write(str(folder / f"{sid}.mseed"), format="MSEED")


def test_has_data_reads_the_file_index_and_the_sds_tree(tmp_path):
    _write(tmp_path, "XX.A..BHZ")
    client = FileClient(tmp_path)
    assert has_data(client, "XX.A..BHZ", T0, T0 + 60) is True
    assert has_data(client, "XX.A..HHZ", T0, T0 + 60) is False
    assert has_data(client, "XX.A..BHZ", T0 + 3600, T0 + 7200) is False  # outside the span
    sds = tmp_path / "sds" / "2024" / "XX" / "A" / "BHZ.D"
    sds.mkdir(parents=True)
    _write(sds, "XX.A..BHZ")
    (sds / "XX.A..BHZ.mseed").rename(sds / "XX.A..BHZ.D.2024.001")
    assert has_data(SDSClient(str(tmp_path / "sds")), "XX.A..BHZ", T0, T0 + 60) is True
    assert has_data(SDSClient(str(tmp_path / "sds")), "XX.A..HHZ", T0, T0 + 60) is False
    assert has_data(object(), "XX.A..BHZ", T0, T0 + 60) is None  # cannot tell: FDSN, in memory


def test_resolve_prefers_the_channel_that_has_files(tmp_path):
    """StationXML lists HHZ and BHZ for A, but the folder only holds A's BHZ: BHZ is used."""
    from obspy.core.inventory import Inventory

    from noisecorr.synth.generator import SynthStation

    stations = [SynthStation("XX", "A", 47.0, 10.0, 0.0), SynthStation("XX", "B", 47.1, 10.1, 0.0)]
    inv = build_inventory(stations, ["BHZ"], 20.0, T0) + build_inventory(stations[:1], ["HHZ"], 100.0, T0)
    Inventory.write(inv, str(tmp_path / "stations.xml"), format="STATIONXML")
    data = tmp_path / "data"
    data.mkdir()
    for sid in ("XX.A..BHZ", "XX.B..BHZ"):
        _write(data, sid)
    config = load_config(overrides={"data": str(data), "inventory": str(tmp_path / "stations.xml"),
                                    "start": str(T0), "end": str(T0 + 600), "cc_len": 300.0, "step": 150.0,
                                    "chunk_length": 600.0})
    src = resolve(config)
    assert src.seed_ids == ["XX.A..BHZ", "XX.B..BHZ"]
    assert [(d["seed_id"], d["reason"]) for d in src.channels_dropped] == [
        ("XX.A..HHZ", "XX.A..BH? has data in the archive")]
    assert not src.skipped
    # a channel_priority that matches nothing of B leaves B out, named with the reason
    with pytest.raises(ConfigError, match="1 usable station"):
        resolve(config.replace(channel_priority=["HH?"]))


@pytest.mark.parametrize("values, message", [
    ({"channel_priority": []}, "channel_priority: must be a non-empty list"),
    ({"channel_priority": "HH?,,BH?"}, "channel_priority: must be a non-empty list"),
    ({"location_priority": [0, 10]}, 'quote location codes in YAML \\("00", not 00'),
    ({"location_priority": ["ABC"]}, "location_priority: 'ABC' is not a location code"),
    ({"all_locations": "yes"}, "all_locations: must be true or false"),
])
def test_bad_priorities_fail_naming_the_field(values, message):
    with pytest.raises(ConfigError, match=message):
        from_mapping(values)


def test_priorities_from_environment_as_comma_separated_lists():
    config = load_config(environ={"NOISECORR_CHANNEL_PRIORITY": "BH?, HH?", "NOISECORR_LOCATION_PRIORITY": "10,,00",
                                  "NOISECORR_ALL_LOCATIONS": "true"})
    assert config.channel_priority == ["BH?", "HH?"]
    assert config.location_priority == ["10", "", "00"]
    assert config.all_locations is True
    config = load_config(environ={"NOISECORR_CHANNEL_PRIORITY": '["EH?", "HH?"]'})
    assert config.channel_priority == ["EH?", "HH?"]
