"""RTZ leakage from normalisation: a purely radial (or transverse) wave stays in RR (or TT).

Leakage of a pair component ``XY`` is the peak ratio ``max|C_XY(lag)| / max|C_RR(lag)|``
over all lags (``C_TT`` in the denominator for a transverse wave). Normalising E and N
each on its own leaks tens of percent (the control case); common weights
(``joint_normalisation``) must keep it below 1 % at every source-receiver azimuth.
Everything runs through the real chain (Fetch .. Stack), see ``rtz_synthetic``.
"""

import numpy as np
import pytest

from rtz_synthetic import DELAY, correlate_network, polarised_network

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
