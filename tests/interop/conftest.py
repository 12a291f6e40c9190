import numpy as np
import pytest

from noisecorr.results.writer import ResultsWriter

STATIONS = [dict(code="XS.A", latitude=45.0, longitude=7.0, elevation=120.0),
            dict(code="XS.B", latitude=45.5, longitude=7.8, elevation=340.5),
            dict(code="XS.C", latitude=44.2, longitude=6.1, elevation=15.0),
            dict(code="YY.DD", latitude=46.9, longitude=9.3, elevation=1500.0)]
FS, MAXLAG = 5.0, 4.0


def make_stacks(n, n_lags, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_lags)).astype(np.float32)


@pytest.fixture
def results_file(tmp_path):
    """Six pairs of four stations, components ZZ and RZ, known windows and stacks."""
    path = tmp_path / "r.h5"
    codes = [s["code"] for s in STATIONS]
    pairs = [(a, b) for i, a in enumerate(codes) for b in codes[i + 1:]]
    n_lags = 2 * int(MAXLAG * FS) + 1
    with ResultsWriter(path, {"processing": {"stack_method": "linear", "cc_method": "xcorr"}},
                       stations=STATIONS, starttime="2021-03-01T00:00:00",
                       endtime="2021-03-02T00:00:00", sampling_rate=FS) as w:
        for k, comp in enumerate(("ZZ", "RZ")):
            w.write_block([p[0] for p in pairs], [p[1] for p in pairs], comp, MAXLAG,
                          make_stacks(len(pairs), n_lags, k),
                          {"n_windows": np.arange(len(pairs)) + 10 * (k + 1)})
    return path
