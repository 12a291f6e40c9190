#!/usr/bin/env python
"""Regenerate tests/data/sample_reference.npz: the stacks of a sequential run on station_data/.

Run it after a deliberate change of the science (and say why in the commit):

    .venv/bin/python scripts/make_sample_reference.py

The regression tests compare every mapping's run on the sample stations with these stacks.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main():
    from noisecorr import open_results
    from noisecorr.workflow import load_config, run_workflow

    with tempfile.TemporaryDirectory() as tmp:
        report = run_workflow(load_config(overrides={"out": str(Path(tmp) / "out")}))
        with open_results(report.results) as res:
            data = {}
            for a, b in res.pairs("ZZ"):
                lags, ccf = res.stack(a, b, "ZZ")
                data[f"{a}|{b}|ZZ"] = ccf
            data["__lags__"] = lags
    out = ROOT / "tests" / "data" / "sample_reference.npz"
    np.savez_compressed(out, **data)
    print(f"{len(data) - 1} stacks -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
