"""Code blocks of the tutorials (MyST markdown) and of README.md, in document order.

A fenced block ```` ```bash ```` or ```` ```python ```` runs; a block directly preceded by a
line ``<!-- not-run: REASON -->`` is shown but not run (the reason says why: it needs a
batch system or data that is not here). Every other fence language is text.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "docs" / "tutorials"

_FENCE = re.compile(r"(?:<!-- not-run: (?P<reason>[^>]*?) -->\n)?^```(?P<lang>[a-z]*)\n(?P<code>.*?)^```$",
                    re.S | re.M)


def code_blocks(path):
    """``[(language, code, line, not_run_reason), ...]`` of one markdown file."""
    text = Path(path).read_text()
    out = []
    for m in _FENCE.finditer(text):
        line = text.count("\n", 0, m.start("code"))
        out.append((m.group("lang"), m.group("code"), line, m.group("reason")))
    return out


def tutorial_files():
    return sorted(TUTORIALS.glob("*.md"))
