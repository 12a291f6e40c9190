"""noisecorr.signal.obspy_light: ObsPy's signal submodules without obspy.signal's __init__."""

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_submodules_import_without_the_package_init_and_the_package_still_works():
    out = _run("""
        import sys
        from noisecorr.signal import obspy_light
        obspy_light.install()
        from obspy.signal.invsim import cosine_sac_taper
        from obspy.signal.util import _npts2nfft
        import obspy.signal.evrespwrapper
        print('matplotlib.pyplot' in sys.modules, 'obspy.signal.spectral_estimation' in sys.modules)
        # the documented uses of the package itself still work, loading it then
        from obspy.signal import PPSD
        import obspy.signal
        print(obspy.signal.PPSD is PPSD, obspy.signal.invsim.cosine_sac_taper is cosine_sac_taper,
              callable(obspy.signal.util._npts2nfft), 'matplotlib.pyplot' in sys.modules)
    """)
    assert out.splitlines() == ["False False", "True True True True"]


def test_a_response_removal_equals_obspys_with_the_package_deferred():
    out = _run("""
        import sys
        import numpy as np
        from noisecorr.signal import obspy_light
        obspy_light.install()
        import obspy
        from obspy.core.inventory.response import Response
        from obspy.core.inventory import Inventory
        inv = obspy.read_inventory()          # ObsPy's bundled example with full responses
        tr = obspy.read()[0]
        tr.data = np.random.default_rng(0).standard_normal(tr.stats.npts)
        got = tr.copy().remove_response(inventory=inv, output="VEL")
        print('matplotlib.pyplot' in sys.modules)
        import obspy.signal                   # now load the real package and compare
        obspy.signal.PPSD
        ref = tr.copy().remove_response(inventory=inv, output="VEL")
        print(np.array_equal(got.data, ref.data), float(np.abs(ref.data).max()) > 0)
    """)
    assert out.splitlines() == ["False", "True True"]


def test_nothing_happens_when_obspy_signal_is_already_imported():
    out = _run("""
        import obspy.signal
        real = obspy.signal
        from noisecorr.signal import obspy_light
        obspy_light.install()
        import sys
        print(sys.modules['obspy.signal'] is real, hasattr(real, 'PPSD'))
    """)
    assert out == "True True"


def test_restated_helpers_equal_obspys():
    import numpy as np
    from obspy.signal.invsim import cosine_sac_taper as taper_ref, invert_spectrum as invert_ref
    from obspy.signal.util import _npts2nfft

    from noisecorr.signal.obspy_light import cosine_sac_taper, invert_spectrum, npts2nfft

    for n in [1, 2, 999, 2500, 2501, 12345, 1800028, 1800029, 1800031, 1732000, 1728001, 72001]:
        assert npts2nfft(n) == int(_npts2nfft(n)), n
    freqs = np.linspace(0, 10, 10001)
    lim = (0.02, 0.05, 2.0, 4.0)
    np.testing.assert_array_equal(cosine_sac_taper(freqs, lim), taper_ref(freqs, flimit=lim))
    rng = np.random.default_rng(1)
    spec = (rng.standard_normal(5000) + 1j * rng.standard_normal(5000)) * np.logspace(-6, 0, 5000)
    spec[:3] = 0.0
    a, b = spec.copy(), spec.copy()
    assert invert_spectrum(a, 60.0) == invert_ref(b, 60.0) > 0
    np.testing.assert_array_equal(a, b)
