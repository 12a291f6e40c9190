"""The ``noisepy`` preset reproduces NoisePy 0.9.93's stacks; the defaults differ as documented.

``tests/data/noisepy_reference.npz`` holds NoisePy's stacks of the 5-station synthetic
line network of :mod:`noisecorr.testing.noisepy_reference`, computed by NoisePy itself in
its own environment (``scripts/compare_noisepy.py --write-reference``). The synthetic is
regenerated here from its seed (its checksum is stored), and noisecorr's stacks are compared
pair by pair after undoing NoisePy's one-sample lag shift. ``scripts/compare_noisepy.py``
prints the step-by-step comparison these figures come from.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from noisecorr.signal.params import CorrelationParams
from noisecorr.testing.noisepy_reference import (PARAMS, line_network, noisecorr_stages,
                                                 stack_coefficients)
from noisecorr.workflow.config import load_yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reference():
    ref = np.load(ROOT / "tests" / "data" / "noisepy_reference.npz")
    meta = json.loads(str(ref["meta"]))
    net = line_network(meta["stations"], meta["hours"], PARAMS["sampling_rate"], meta["seed"],
                       pad=meta["pad"])
    assert net.checksum() == pytest.approx(float(ref["checksum"]), rel=1e-9), (
        "the synthetic no longer matches the one NoisePy was run on: rerun "
        "scripts/compare_noisepy.py --write-reference")
    assert meta["params"] == PARAMS and meta["noisepy"] == "0.9.93"
    noisepy = {f"ccf_{i}_{j}": c for (i, j), c in zip(ref["pairs"], ref["ccf"])}
    ngood = {(int(i), int(j)): int(n) for (i, j), n in zip(ref["pairs"], ref["ngood"])}
    return net, noisepy, ngood


def coefficients(reference, **processing):
    net, noisepy, ngood = reference
    p = CorrelationParams(**{**PARAMS, **processing})
    stacks = noisecorr_stages(net, p)["stacks"]
    return stack_coefficients(stacks, noisepy), stacks, ngood


def test_preset_matches_noisepy(reference):
    preset = load_yaml(ROOT / "configs" / "noisepy.yaml")["processing"]
    coef, stacks, ngood = coefficients(reference, **preset)
    assert len(coef) == 10
    assert np.median(list(coef.values())) >= 0.99, coef
    assert min(coef.values()) >= 0.98, coef
    for k, r in stacks.items():
        # NoisePy tapers the chunk's first samples and correlates them; noisecorr masks
        # that ramp and so rejects the first window (the only difference left)
        assert r.n_windows == ngood[k] - 1, (k, r.n_windows, ngood[k])
        # the arrivals: the Green's function peaks at the same lag in both
        ref = reference[1][f"ccf_{k[0]}_{k[1]}"][1:]
        assert abs(int(np.argmax(r.stack[:-1])) - int(np.argmax(ref))) <= 1, k


def test_defaults_differ_by_the_whitening(reference):
    """noisecorr's own whitening (ramps inside the band) is what sets the defaults apart."""
    default, _, _ = coefficients(reference)
    only_whitening, _, _ = coefficients(reference, whitening_style="noisepy",
                                        spectral_water_level=1e-7)
    assert np.median(list(default.values())) < 0.95
    assert np.median(list(only_whitening.values())) > 0.97
