"""The README's examples run as written."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_engine_example_runs(tmp_path):
    code = next(b for b in python_blocks() if "class Count(GenericPE)" in b)
    script = tmp_path / "example.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    expected = sorted({w: "the quick brown fox jumps over the lazy dog".split().count(w)
                       for w in "the quick brown fox jumps over the lazy dog".split()}.items())
    assert str(expected) in proc.stdout


def test_quick_start_has_exactly_two_commands():
    section = README.read_text().split("## Quick start", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in section.splitlines() if line.strip()]
    assert len(commands) == 2
    assert commands[1] == "bash scripts/test.sh"
    assert commands[0].endswith("noisecorr run")


def test_library_example_runs(tmp_path):
    code = next(b for b in python_blocks() if "class Clip(IterativePE)" in b)
    script = tmp_path / "clip.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [line.split() for line in proc.stdout.strip().splitlines()]
    assert len(lines) == 6 and all(line[0].startswith("XS.S000") for line in lines)
    assert (tmp_path / "clipped" / "results.h5").exists()
