"""Random bytes and random traces into the readers and the preprocessing: only clear errors
come out (a named reason), never a crash, a different exception or a hang."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from obspy import Stream, Trace, UTCDateTime

from noisecorr.signal.params import CorrelationParams
from noisecorr.signal.preprocess import PreprocessError, preprocess_chunk
from pes.fetch import read_checked

pytestmark = pytest.mark.timeout(240)

T0 = UTCDateTime(2024, 1, 1)
PARAMS = CorrelationParams(sampling_rate=10.0, cc_len=60.0, step=30.0, freqmin=0.2, freqmax=2.0, maxlag=10.0,
                           response_output="NONE")


def _valid_mseed(tmp_path):
    path = tmp_path / "valid.mseed"
    Trace(np.arange(4000, dtype=np.int32), {"network": "XX", "station": "A", "channel": "HHZ",
                                            "sampling_rate": 20.0, "starttime": T0}).write(
        str(path), format="MSEED", reclen=512, encoding="STEIM2")
    return path.read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=3000))
def test_random_bytes_give_a_named_reason(tmp_path, data):
    path = tmp_path / "fuzz.mseed"
    path.write_bytes(data)
    stream, problem = read_checked(path)
    assert (stream is None) != (problem is None)
    if problem is not None:
        assert problem.startswith(str(path)) and ": " in problem


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=10_000), flips=st.lists(st.integers(0, 10_000), max_size=8),
       value=st.integers(0, 255))
def test_damaged_miniseed_is_read_or_refused_with_a_reason(tmp_path, cut, flips, value):
    raw = bytearray(_valid_mseed(tmp_path))
    for pos in flips:
        if pos < len(raw):
            raw[pos] = value
    path = tmp_path / "damaged.mseed"
    path.write_bytes(bytes(raw[: cut or len(raw)]))
    stream, problem = read_checked(path)
    if problem is None:
        assert all(np.issubdtype(tr.data.dtype, np.number) for tr in stream)
    else:
        assert str(path) in problem


def test_text_encoded_records_are_refused(tmp_path):
    """Encoding byte of blockette 1000 set to 0 (ASCII): ObsPy reads text, not samples."""
    raw = bytearray(_valid_mseed(tmp_path))
    assert raw[48:50] == b"\x03\xe8"  # blockette 1000 at offset 48; encoding at 52
    raw[52] = 0
    path = tmp_path / "text.mseed"
    path.write_bytes(bytes(raw))
    stream, problem = read_checked(path)
    assert stream is None
    assert problem.startswith(f"{path}: XX.A..HHZ holds") and "not numbers" in problem


samples = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.floats(min_value=-1e6, max_value=1e6, width=32),
)


@settings(max_examples=120, deadline=None)
@given(
    n=st.integers(min_value=0, max_value=3000),
    rate=st.sampled_from([1.0, 10.0, 20.0, 40.0, 50.0, 100.0, 7.3]),
    offset=st.floats(min_value=-500.0, max_value=500.0),
    fill=st.one_of(st.none(), samples),
    seed=st.integers(0, 2**16),
    segments=st.integers(min_value=1, max_value=3),
)
def test_random_traces_preprocess_or_fail_clearly(n, rate, offset, fill, seed, segments):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal(n).astype(np.float32) if fill is None else np.full(n, fill, dtype=np.float32)
    traces = []
    for k, part in enumerate(np.array_split(data, segments)):
        start = T0 + offset + k * (len(part) / rate + rng.uniform(-5, 5))
        traces.append(Trace(part, {"network": "XX", "station": "F", "channel": "HHZ",
                                   "sampling_rate": rate, "starttime": start}))
    try:
        out = preprocess_chunk(Stream(traces), T0, T0 + 300, PARAMS, seed_id="XX.F..HHZ")
    except PreprocessError as err:
        assert str(err).startswith("XX.F..HHZ: ") and len(str(err)) > len("XX.F..HHZ: ")
        return
    assert out.data.dtype == np.float32 and out.data.size == int(300 * PARAMS.sampling_rate)
    assert np.all(np.isfinite(out.data))


def test_yaml_is_loaded_safely(tmp_path):
    from noisecorr.workflow.config import ConfigError, load_config

    marker = tmp_path / "pwned"
    cfg = tmp_path / "evil.yaml"
    cfg.write_text(f'mapping: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(cfg)
    assert not marker.exists()
