"""RTZ leakage from normalisation: a purely radial (or transverse) wave stays in RR (or TT).

Leakage of a pair component ``XY`` is the peak ratio ``max|C_XY(lag)| / max|C_RR(lag)|``
over all lags (``C_TT`` in the denominator for a transverse wave). Normalising E and N
each on its own leaks tens of percent (the control case); common weights
(``joint_normalisation``) must keep it below 1 % at every source-receiver azimuth.
Everything runs through the real chain (Fetch .. Stack), see ``rtz_synthetic``.
"""

import numpy as np
import pytest

from rtz_synthetic import DELAY, PARAMS, correlate_network, polarised_network

PARAMS_SMALL = {**PARAMS, "cc_len": 40.0, "step": 20.0, "maxlag": 10.0}

AZIMUTHS = (0.0, 30.0, 77.0, 135.0, 250.0)
#: (time_norm, freq_norm): rma whitening, phase-only whitening, one-bit, running absolute mean,
#: and the one-bit + rma combination.
NORMS = [("none", "rma"), ("none", "phase_only"), ("one_bit", "none"), ("rma", "none"), ("one_bit", "rma")]
COMPONENTS = ("RR", "RT", "TR", "TT", "ZZ")


def leakage(stacks, main):
    peak = np.abs(stacks[main]["stack"]).max()
    return {c: float(np.abs(stacks[c]["stack"]).max() / peak) for c in ("RR", "RT", "TR", "TT") if c != main}


@pytest.mark.parametrize("time_norm,freq_norm", NORMS)
@pytest.mark.parametrize("azimuth", AZIMUTHS)
def test_radial_wave_does_not_leak_with_joint_normalisation(azimuth, time_norm, freq_norm):
    stream, inv = polarised_network(azimuth, "R")
    stacks, _ = correlate_network(stream, inv, components=COMPONENTS, time_norm=time_norm,
                                  freq_norm=freq_norm)   # joint_normalisation "auto": horizontal (RTZ asked)
    rr = stacks["RR"]
    assert rr["azimuth"] == pytest.approx(azimuth, abs=0.5)   # flat-earth placement of B
    assert rr["lags"][np.argmax(rr["stack"])] == pytest.approx(DELAY)
    leak = leakage(stacks, "RR")
    assert max(leak.values()) < 0.01, leak


@pytest.mark.parametrize("time_norm,freq_norm", NORMS[:3])
@pytest.mark.parametrize("azimuth", AZIMUTHS)
def test_transverse_wave_does_not_leak_with_joint_normalisation(azimuth, time_norm, freq_norm):
    stream, inv = polarised_network(azimuth, "T")
    stacks, _ = correlate_network(stream, inv, components=COMPONENTS, time_norm=time_norm,
                                  freq_norm=freq_norm, joint_normalisation="horizontal")
    tt = stacks["TT"]
    assert tt["lags"][np.argmax(tt["stack"])] == pytest.approx(DELAY)
    leak = leakage(stacks, "TT")
    assert max(leak.values()) < 0.01, leak


@pytest.mark.parametrize("time_norm,freq_norm", NORMS[:3])
def test_per_channel_normalisation_leaks(time_norm, freq_norm):
    """The control: without common weights the synthetic does leak (so the tests above can fail)."""
    stream, inv = polarised_network(30.0, "R")
    stacks, _ = correlate_network(stream, inv, components=COMPONENTS, time_norm=time_norm,
                                  freq_norm=freq_norm, joint_normalisation="none")
    leak = leakage(stacks, "RR")
    assert leak["TT"] > 0.03 and leak["RT"] > 0.1, leak


def test_all_channels_joint_keeps_rr_and_zz():
    """``joint_normalisation: all``: E, N and Z share one weight; still no R->T leakage, ZZ still there."""
    stream, inv = polarised_network(77.0, "R")
    stacks, result = correlate_network(stream, inv, components=COMPONENTS, time_norm="one_bit",
                                       freq_norm="rma", joint_normalisation="all")
    assert max(leakage(stacks, "RR").values()) < 0.01
    zz = stacks["ZZ"]
    assert zz["lags"][np.argmax(zz["stack"])] == pytest.approx(DELAY)
    stats = result.outputs[("WhitenPE", "stats")]
    assert sorted(s["seed_id"] for s in stats) == sorted(f"XX.{s}..HH{c}" for s in "AB" for c in "ENZ")


def _pe_outputs(pe):
    out = []
    pe.write = lambda port, item: out.append((port, item))
    return out


def _item(seed_id, n=1000):
    from noisecorr.signal.preprocess import ProcessedTrace

    rng = np.random.default_rng(len(seed_id))
    tr = ProcessedTrace(seed_id, 1.6e9, 5.0, rng.standard_normal(n).astype(np.float32), np.zeros(n, bool))
    return {"seed_id": seed_id, "chunk": 1.6e9, "trace": tr, "sensor": seed_id[:-1],
            "orientation": {"E": (90.0, 0.0), "N": (0.0, 0.0), "Z": (0.0, -90.0)}[seed_id[-1]]}


def test_orient_pe_passes_a_sensor_on_when_complete_and_the_rest_at_the_end():
    from noisecorr.signal.params import CorrelationParams
    from pes.preprocess import OrientPE

    params = CorrelationParams(**{**PARAMS_SMALL, "components": ("RR",)})
    pe = OrientPE(params, channels=["XX.A..HHE", "XX.A..HHN", "XX.A..HHZ", "XX.B..HHE", "XX.B..HHN", "XX.B..HHZ"])
    out = _pe_outputs(pe)
    for sid in ("XX.A..HHE", "XX.B..HHE", "XX.A..HHZ", "XX.B..HHZ"):
        pe.process({"input": _item(sid)})
    assert out == []                                  # both sensors still miss N
    pe.process({"input": _item("XX.A..HHN")})         # A complete: E+N bundle and Z
    assert [(p, sorted(ch["seed_id"] for ch in i["channels"]) if "channels" in i else i["seed_id"])
            for p, i in out] == [("output", ["XX.A..HHE", "XX.A..HHN"]), ("output", "XX.A..HHZ")]
    out.clear()
    pe.postprocess()                                  # B's N never came (rejected upstream)
    assert [(p, i["seed_id"]) for p, i in out] == [("output", "XX.B..HHE"), ("output", "XX.B..HHZ")]


def test_normalise_pe_warns_when_a_horizontal_bypasses_orient(caplog):
    from noisecorr.signal.params import CorrelationParams
    from pes.normalise import NormalisePE

    params = CorrelationParams(**{**PARAMS_SMALL, "components": ("RR",)})
    item = {k: v for k, v in _item("XX.A..HHE").items() if k not in ("sensor", "orientation")}
    with caplog.at_level("WARNING"):
        NormalisePE(params)._process(item)
    assert "XX.A..HHE arrived on its own" in caplog.text and "joint_normalisation=horizontal" in caplog.text
