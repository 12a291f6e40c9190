"""Joint (common-weight) time normalisation and whitening, against hand-computed cases and
the properties they must have: one channel is the per-channel operation, rotation commutes."""

import numpy as np
import pytest

from noisecorr.signal.normalize import (common_amplitude, joint_groups, joint_time_normalize,
                                        joint_whiten, joint_whiten_with, time_normalize, whiten)


def test_joint_of_one_channel_is_the_per_channel_operation():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 256)).astype(np.float32)
    for norm in ("one_bit", "rma", "none"):
        np.testing.assert_array_equal(joint_time_normalize(x[None], norm, 7)[0], time_normalize(x, norm, 7))
    spec = np.fft.rfft(x, 512).astype(np.complex64)
    for norm in ("rma", "phase_only", "none"):
        ref = whiten(spec, 10.0, 512, 0.5, 4.0, norm, 5)
        np.testing.assert_array_equal(joint_whiten(spec[None], 10.0, 512, 0.5, 4.0, norm, 5)[0], ref)


def test_common_weights_commute_with_rotation():
    """Normalising E, N jointly then rotating by any angle equals rotating then normalising."""
    rng = np.random.default_rng(4)
    en = rng.standard_normal((2, 3, 400)).astype(np.float64)
    a = np.radians(37.0)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    turned = np.einsum("ij,jwn->iwn", rot, en)
    for norm in ("one_bit", "rma"):
        y1 = np.einsum("ij,jwn->iwn", rot, joint_time_normalize(en, norm, 5))
        np.testing.assert_allclose(joint_time_normalize(turned, norm, 5), y1, atol=2e-5)
    spec = np.fft.rfft(en, 800).astype(np.complex64)
    spec_turned = np.einsum("ij,jwf->iwf", rot, spec)
    for norm in ("rma", "phase_only"):
        w1 = np.einsum("ij,jwf->iwf", rot, joint_whiten(spec, 10.0, 800, 0.5, 4.0, norm, 5))
        np.testing.assert_allclose(joint_whiten(spec_turned, 10.0, 800, 0.5, 4.0, norm, 5), w1, atol=2e-5)


def test_hand_computed_joint_weights():
    # E = 3, N = 4 at one sample: quadratic mean sqrt((9 + 16) / 2); one-bit keeps 3:4
    x = np.array([[[3.0, -1.0]], [[4.0, 0.0]]])
    y = joint_time_normalize(x, "one_bit")
    a = np.sqrt(12.5)
    np.testing.assert_allclose(y[:, 0, 0], [3 / a, 4 / a], rtol=1e-6)
    np.testing.assert_allclose(y[:, 0, 1], [-np.sqrt(2), 0.0], rtol=1e-6)   # a = sqrt(1 / 2)
    assert common_amplitude(np.array([[3 + 4j], [0j]])).tolist() == pytest.approx([np.sqrt(12.5)])


def test_joint_whiten_with_matches_joint_whiten():
    rng = np.random.default_rng(5)
    spec = np.fft.rfft(rng.standard_normal((3, 2, 300)), 600).astype(np.complex64)
    for norm in ("rma", "phase_only"):
        ref = joint_whiten(spec, 10.0, 600, 0.5, 4.0, norm, 5)
        got = joint_whiten_with(spec, lambda s: whiten(s, 10.0, 600, 0.5, 4.0, norm, 5))
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


def test_joint_groups():
    assert joint_groups("ZNE", "horizontal") == [("E", "N"), ("Z",)]
    assert joint_groups("ZNE", "all") == [("E", "N", "Z")]
    assert joint_groups("ZNE", "none") == [("E",), ("N",), ("Z",)]
    assert joint_groups("Z", "horizontal") == [("Z",)]
    with pytest.raises(ValueError, match="resolve 'auto'"):
        joint_groups("EN", "auto")
