"""Reading a pair the other way round: every RTZ component against a direct computation
(issue 18, part 3)."""

import numpy as np
import pytest

from noisecorr.results import ResultsWriter, open_results
from noisecorr.signal.components import RTZ_PAIRS, pair_index, rotate_to_rtz

FS = 20.0
PARAMS = {"cc_len": 1800, "step": 900, "freqmin": 0.1, "freqmax": 2.0}


@pytest.mark.parametrize("azimuth,back_azimuth", [(30.0, 211.0), (123.0, 300.5), (265.0, 84.0)])
def test_each_rtz_component_reversed_matches_the_direct_computation(tmp_path, azimuth, back_azimuth):
    rng = np.random.default_rng(int(azimuth))
    L = 40
    c_ab = rng.standard_normal((3, 3, 2 * L + 1))                # ENZ tensor, A source, B receiver
    # the same correlations with B as the source: C_BA^ji(t) = C_AB^ij(-t)
    c_ba = np.transpose(c_ab, (1, 0, 2))[..., ::-1]
    rtz_ab = rotate_to_rtz(c_ab, azimuth, back_azimuth)
    rtz_ba = rotate_to_rtz(c_ba, back_azimuth, azimuth)           # direct computation of B -> A
    path = tmp_path / "r.h5"
    with ResultsWriter(path, PARAMS, sampling_rate=FS) as w:
        for comp in RTZ_PAIRS:
            p, q = pair_index(comp)
            w.write_pair("XS.A", "XS.B", comp, L / FS, rtz_ab[p, q].astype(np.float32), {})
    with open_results(path) as res:
        for comp in RTZ_PAIRS:
            p, q = pair_index(comp)
            _, got = res.stack("XS.B", "XS.A", comp)
            np.testing.assert_allclose(got, rtz_ba[p, q], rtol=1e-5, atol=1e-5, err_msg=comp)
        assert res.meta("XS.B", "XS.A", "RZ")["reversed_from"] == "XS.A->XS.B"


def test_reversed_deconvolution_is_refused(tmp_path):
    path = tmp_path / "d.h5"
    with ResultsWriter(path, {"processing": {**PARAMS, "cc_method": "deconv"}}, sampling_rate=FS) as w:
        w.write_pair("XS.A", "XS.B", "ZZ", 1.0, np.ones(41, np.float32), {})
    with open_results(path) as res:
        assert np.all(res.stack("XS.A", "XS.B", "ZZ")[1] == 1)
        with pytest.raises(ValueError, match="deconvolution cannot be reversed"):
            res.stack("XS.B", "XS.A", "ZZ")
