"""Parameter validation: every bad value raises ValueError naming the field."""

import math

import pytest

from noisecorr.signal.params import CorrelationParams


def test_defaults_are_consistent_and_derived_values():
    p = CorrelationParams()
    assert p.cc_len_samples == 36000 and p.step_samples == 9000 and p.maxlag_samples == 4000
    assert p.nfft >= 2 * 36000 - 1
    assert CorrelationParams(zero_pad=False, maxlag=100.0).nfft >= 36000


def test_round_trip_through_dict():
    p = CorrelationParams(cc_method="deconv", pre_filt=(0.01, 0.02, 8.0, 9.0), components=("ZZ", "RT"))
    d = p.to_dict()
    assert isinstance(d["components"], list)
    assert CorrelationParams.from_dict(d) == p


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['cc_lenght', 'foo'\]"):
        CorrelationParams.from_dict({"cc_lenght": 10, "foo": 1, "cc_len": 100.0})


@pytest.mark.parametrize("changes,field", [
    ({"freqmax": 10.0}, "freqmax"),                       # == Nyquist of 20 Hz
    ({"freqmax": 12.0}, "freqmax"),
    ({"freqmin": 3.0, "freqmax": 2.0}, "freqmin"),
    ({"freqmin": 0.0}, "freqmin"),
    ({"step": 2000.0}, "step"),
    ({"step": 0.0}, "step"),
    ({"maxlag": 2000.0}, "maxlag"),
    ({"maxlag": 1000.0, "zero_pad": False}, "maxlag"),
    ({"cc_method": "xcorrr"}, "cc_method"),
    ({"time_norm": "onebit"}, "time_norm"),
    ({"freq_norm": "whiten"}, "freq_norm"),
    ({"stack_method": "nroot"}, "stack_method"),
    ({"response_output": "VELOCITY"}, "response_output"),
    ({"smooth_N": -1}, "smooth_N"),
    ({"smoothspect_N": 2.5}, "smoothspect_N"),
    ({"substack_len": 900.0, "substack": True}, "substack_len"),
    ({"substack_len": 2000.0, "substack": True}, "substack_len"),
    ({"pws_power": -1.0}, "pws_power"),
    ({"max_over_std": 0.0}, "max_over_std"),
    ({"pre_filt": (0.1, 0.05, 1.0, 2.0)}, "pre_filt"),
    ({"pre_filt": (0.01, 0.02, 8.0, 11.0)}, "pre_filt"),
    ({"pre_filt": (0.01, 0.02, 8.0)}, "pre_filt"),
    ({"components": ("ZX",)}, "components"),
    ({"components": ()}, "components"),
    ({"cc_len": 100.03}, "cc_len"),                        # not a whole number of samples at 20 Hz
    ({"sampling_rate": -1.0}, "sampling_rate"),
    ({"sampling_rate": "20"}, "sampling_rate"),
    ({"zero_pad": "yes"}, "zero_pad"),
    ({"spectral_water_level": 0.0}, "spectral_water_level"),
    ({"cc_len": math.nan}, "cc_len"),
])
def test_bad_values_name_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        CorrelationParams(**changes)


def test_substack_len_is_checked_only_with_substack_on():
    # an hour window with the default configuration's substack_len of 1800 s: nothing to stack
    p = CorrelationParams(cc_len=3600.0, step=3600.0, substack_len=1800.0)
    assert not p.substack and p.cc_len == 3600.0
    with pytest.raises(ValueError, match="substack_len .* when substack is on"):
        CorrelationParams(cc_len=3600.0, step=3600.0, substack_len=1800.0, substack=True)


def test_allowed_values_are_listed():
    with pytest.raises(ValueError, match=r"\['xcorr', 'coherency', 'deconv'\]"):
        CorrelationParams(cc_method="pcc")


def test_normalisation_of_spelling():
    p = CorrelationParams(response_output="disp", components=["zz", "rt"])
    assert p.response_output == "DISP" and p.components == ("ZZ", "RT")


def test_frozen_and_replace_validates():
    p = CorrelationParams()
    with pytest.raises(AttributeError):
        p.cc_len = 10.0
    with pytest.raises(ValueError, match="maxlag"):
        p.replace(maxlag=5000.0)
