"""Sensor orientation (1/2/Z, tilted, upside-down channels) to E, N, Z against known answers and ObsPy."""

import numpy as np
import pytest
from obspy.signal.rotate import rotate2zne

from noisecorr.signal.orientation import (OrientationError, channel_vector, horizontals_to_en, orient_sensor,
                                          rotate_to_enz, vertical_to_z)
from noisecorr.signal.preprocess import ProcessedTrace

RNG = np.random.default_rng(11)
GROUND = RNG.standard_normal((3, 500))          # u_E, u_N, u_Z (up)


def record(azimuth, dip, ground=GROUND):
    """What a channel of ``azimuth``/``dip`` records of ``ground``."""
    return channel_vector(azimuth, dip) @ ground


def trace(seed_id, data, mask=None):
    data = np.asarray(data, dtype=np.float32)
    return ProcessedTrace(seed_id, 1.6e9, 5.0, data, np.zeros(data.size, bool) if mask is None else mask)


def test_channel_vectors_follow_seed_conventions():
    np.testing.assert_allclose(channel_vector(90, 0), [1, 0, 0], atol=1e-15)     # E
    np.testing.assert_allclose(channel_vector(0, 0), [0, 1, 0], atol=1e-15)      # N
    np.testing.assert_allclose(channel_vector(0, -90), [0, 0, 1], atol=1e-15)    # Z up: dip -90
    np.testing.assert_allclose(channel_vector(0, 90), [0, 0, -1], atol=1e-15)    # dip +90 points down


def test_one_two_at_30_and_120_give_east_and_north():
    d1, d2 = record(30.0, 0.0), record(120.0, 0.0)
    e, n = horizontals_to_en(d1, d2, 30.0, 120.0)
    np.testing.assert_allclose(e, GROUND[0], atol=1e-12)
    np.testing.assert_allclose(n, GROUND[1], atol=1e-12)
    # hand-computed: 1 = cos30 N + sin30 E, 2 = cos120 N + sin120 E
    assert d1[0] == pytest.approx(np.cos(np.radians(30)) * GROUND[1, 0] + 0.5 * GROUND[0, 0])


@pytest.mark.parametrize("orient", [((30, 0), (120, 0), (0, -90)), ((200, 3), (95, -2), (10, -85)),
                                    ((0, 0), (90, 0), (0, 90))])
def test_three_channels_match_obspy_rotate2zne(orient):
    data = np.array([record(a, d) for a, d in orient])
    got = rotate_to_enz(data, [a for a, _ in orient], [d for _, d in orient])
    np.testing.assert_allclose(got, GROUND, atol=1e-10)
    args = [x for (a, d), tr in zip(orient, data) for x in (tr, a, d)]
    z, n, e = rotate2zne(*args)
    np.testing.assert_allclose(got, np.stack([e, n, z]), atol=1e-10)


def test_vertical_sign_from_dip():
    z = GROUND[2]
    np.testing.assert_array_equal(vertical_to_z(record(0, -90), -90), record(0, -90))
    np.testing.assert_allclose(vertical_to_z(record(0, 90), 90), z, atol=1e-12)
    with pytest.raises(OrientationError, match="not vertical"):
        vertical_to_z(z, -45.0)
    with pytest.raises(OrientationError, match="parallel"):
        horizontals_to_en(z, z, 30.0, 30.5)


def test_orient_sensor_renames_rotates_and_masks():
    mask1 = np.zeros(500, bool)
    mask1[100:110] = True
    traces = [trace("XX.B..HH1", record(30, 0), mask1), trace("XX.B..HH2", record(120, 0)),
              trace("XX.B..HHZ", record(0, 90))]
    orient = {"XX.B..HH1": (30.0, 0.0), "XX.B..HH2": (120.0, 0.0), "XX.B..HHZ": (0.0, 90.0)}
    out, problems = orient_sensor(traces, orient)
    assert problems == []
    assert [t.seed_id for t in out] == ["XX.B..HHE", "XX.B..HHN", "XX.B..HHZ"]
    for t, truth in zip(out, GROUND):
        np.testing.assert_allclose(t.data, truth, atol=1e-5)
        assert t.data.dtype == np.float32
    assert out[0].gap_mask[100:110].all() and out[1].gap_mask[100:110].all() and not out[2].gap_mask.any()


def test_nominal_channels_pass_unchanged():
    traces = [trace("XX.A..HHE", GROUND[0]), trace("XX.A..HHN", GROUND[1]), trace("XX.A..HHZ", GROUND[2])]
    out, problems = orient_sensor(traces, {"XX.A..HHE": (90.0, 0.0), "XX.A..HHN": (0.0, 0.0),
                                           "XX.A..HHZ": (0.0, -90.0)})
    assert problems == [] and all(o.data is t.data for o, t in zip(out, traces))
    # E/N/Z without orientation in the StationXML: the SEED names say it
    out, problems = orient_sensor(traces, {"XX.A..HHE": (None, None), "XX.A..HHN": None})
    assert problems == [] and [o.seed_id for o in out] == ["XX.A..HHE", "XX.A..HHN", "XX.A..HHZ"]


def test_missing_azimuth_skips_the_horizontals_and_names_the_channel():
    traces = [trace("XX.B..HH1", record(30, 0)), trace("XX.B..HH2", record(120, 0)),
              trace("XX.B..HHZ", record(0, -90))]
    out, problems = orient_sensor(traces, {"XX.B..HH1": (None, 0.0), "XX.B..HH2": (120.0, 0.0),
                                           "XX.B..HHZ": (0.0, -90.0)})
    assert [t.seed_id for t in out] == ["XX.B..HHZ"]
    assert [sid for sid, _ in problems] == ["XX.B..HH1", "XX.B..HH2"]
    for _, reason in problems:
        assert "XX.B..HH1: the StationXML gives no azimuth" in reason and "horizontal channels of XX.B..HH" in reason


def test_lonely_horizontal_is_reported():
    out, problems = orient_sensor([trace("XX.B..HH1", record(30, 0)), trace("XX.B..HHZ", record(0, -90))],
                                  {"XX.B..HH1": (30.0, 0.0), "XX.B..HHZ": (0.0, -90.0)})
    assert [t.seed_id for t in out] == ["XX.B..HHZ"]
    assert problems[0][0] == "XX.B..HH1" and "partner is missing" in problems[0][1]


def test_east_north_win_over_one_two_of_the_same_sensor():
    traces = [trace("XX.B..HHE", GROUND[0]), trace("XX.B..HHN", GROUND[1]), trace("XX.B..HH1", record(30, 0))]
    out, problems = orient_sensor(traces, {"XX.B..HH1": (30.0, 0.0)})
    assert [t.seed_id for t in out] == ["XX.B..HHE", "XX.B..HHN"]
    assert problems == [("XX.B..HH1", "XX.B..HH has E and N channels, which are used")]


# ---------------------------------------------------------------- through the real chain
ENZ_PAIRS = tuple(a + b for a in "ENZ" for b in "ENZ")
RTZ_PAIRS = ("RR", "RT", "TR", "TT", "RZ", "ZR")


def _same_stacks(got, ref):
    """Same pair components, same stacks to 1e-4 of the largest peak (zero components stay ~0)."""
    assert sorted(got) == sorted(ref)
    peak = max(np.abs(s["stack"]).max() for s in ref.values())
    for comp in ref:
        np.testing.assert_allclose(got[comp]["stack"], ref[comp]["stack"], atol=1e-4 * peak, err_msg=comp)
        assert got[comp]["n_windows"] == ref[comp]["n_windows"]


@pytest.mark.parametrize("joint", ["horizontal", "none"])
@pytest.mark.parametrize("b_orientation", [((("1", 30.0, 0.0), ("2", 120.0, 0.0))),
                                           ((("1", 30.0, 0.0), ("2", 125.0, 0.0)))])   # not orthogonal
def test_one_two_channels_give_the_east_north_correlations(joint, b_orientation):
    from rtz_synthetic import correlate_network, polarised_network

    overrides = dict(components=ENZ_PAIRS + RTZ_PAIRS, time_norm="one_bit", freq_norm="rma",
                     joint_normalisation=joint)
    ref, _ = correlate_network(*polarised_network(77.0, "R"), **overrides)
    stream, inv = polarised_network(77.0, "R", orientations={"A": (("1", 300.0, 0.0), ("2", 30.0, 0.0)),
                                                             "B": b_orientation})
    assert {tr.stats.channel for tr in stream} == {"HH1", "HH2", "HHZ"}
    got, result = correlate_network(stream, inv, **overrides)
    assert not result.outputs.get(("OrientPE", "rejected"))
    _same_stacks(got, ref)
    assert got["EN"]["receiver_id"] == "XX.B..HHN"


def test_vertical_with_dip_plus_90_changes_sign():
    from rtz_synthetic import DELAY, correlate_network, polarised_network

    overrides = dict(components=("ZZ", "RR"), time_norm="none", freq_norm="rma")
    ref, _ = correlate_network(*polarised_network(30.0, "R"), **overrides)
    zz = ref["ZZ"]
    assert zz["lags"][np.argmax(zz["stack"])] == pytest.approx(DELAY) and zz["stack"].max() > 0
    stream, inv = polarised_network(30.0, "R", z_dips={"B": 90.0})   # B's Z points down: records -u_Z
    np.testing.assert_allclose(stream.select(station="B", channel="HHZ")[0].data,
                               -polarised_network(30.0, "R")[0].select(station="B", channel="HHZ")[0].data)
    got, _ = correlate_network(stream, inv, **overrides)
    _same_stacks(got, ref)


def test_missing_azimuth_is_reported_and_skips_the_horizontals():
    from rtz_synthetic import correlate_network, polarised_network

    stream, inv = polarised_network(30.0, "R", orientations={"B": (("1", 30.0, 0.0), ("2", 120.0, 0.0))})
    inv.select(station="B", channel="HH1")[0][0][0].azimuth = None
    stacks, result = correlate_network(stream, inv, components=("ZZ", "RR", "NN"))
    rejected = result.outputs[("OrientPE", "rejected")]
    assert sorted(r["seed_id"] for r in rejected) == ["XX.B..HH1", "XX.B..HH2"]
    assert all("XX.B..HH1: the StationXML gives no azimuth" in r["reason"] for r in rejected)
    assert sorted(stacks) == ["ZZ"]          # RR and NN need B's horizontals; A-B ZZ is still there
