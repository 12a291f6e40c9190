"""What the bundled sample's run imports: none of the slow modules it does not need."""

import subprocess
import sys
import textwrap


def test_the_sample_run_loads_neither_scipy_signal_nor_pyplot(tmp_path):
    """A sequential linear run on the sample (response removal, bandpass, windows, stack,
    record section) needs none of scipy.signal (0.7 s to import), obspy.signal's
    __init__ (PPSD, 0.7 s) or matplotlib.pyplot: a fixed cost of issue 26, pinned."""
    code = textwrap.dedent(f"""
        import sys
        from noisecorr.cli import main
        try:
            main(["-q", "run", "--out", {str(tmp_path / 'out')!r}])
        except SystemExit as e:
            assert e.code in (0, None), e.code
        print(sorted(m for m in ("scipy.signal", "scipy.stats", "obspy.signal.spectral_estimation",
                                 "matplotlib.pyplot") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "out" / "results.h5").exists()
    assert out.stdout.strip().splitlines()[-1] == "[]"
