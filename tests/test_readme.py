"""The README's quick start is the two commands it promises. Every other README block runs
(or is marked not-run with a reason) in tests/docs/test_readme_blocks.py."""

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_has_exactly_two_commands():
    section = README.read_text().split("## Quick start", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in section.splitlines() if line.strip()]
    assert len(commands) == 2
    assert commands[1] == "bash scripts/test.sh"
    assert commands[0].endswith("noisecorr run")
