"""The README's dispersion example runs as written and recovers U within 2 %."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_dispersion_example_runs(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    code = next(b for b in blocks if "diffuse_ccf(distances" in b)
    script = tmp_path / "dispersion.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    err = float(proc.stdout.split("largest U error")[1])
    assert err < 0.02
    assert "trusted per pair [1 4 4]" in proc.stdout  # 50 km: only 4 s holds 3 wavelengths
