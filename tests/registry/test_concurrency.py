"""Several processes adding to one registry at the same time: unique versions, nothing lost."""

import subprocess
import sys
import textwrap
import time

from noisecorr.registry import Registry
from noisecorr.registry.loader import sha256_text
from noisecorr.registry.store import latest_schema_version

from conftest import ROOT

WRITERS = 4
ADDS = 5

CHILD = textwrap.dedent('''
    import os, sys, time
    from pathlib import Path
    from noisecorr.registry import Registry

    url, go, files = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    while not go.exists():
        time.sleep(0.005)
    registry = Registry(url)  # a fresh registry: the schema is created concurrently too
    for f in files:
        for added in registry.add(f, workspace="race"):
            print(added.entry.ref, added.entry.sha256, added.status)
''')


def module_source(writer, i):
    return textwrap.dedent(f'''
        from noisecorr.engine import IterativePE


        class Shared(IterativePE):
            """Added by every writer."""

            def _process(self, x):
                return x + {writer * 100 + i}


        class Own{writer}(IterativePE):
            """Added by writer {writer} only."""

            def _process(self, x):
                return x + {i}
    ''')


def test_concurrent_writers(registry_url, tmp_path):
    go = tmp_path / "go"
    procs, expected = [], set()
    for w in range(WRITERS):
        files = []
        for i in range(ADDS):
            path = tmp_path / f"writer{w}_{i}.py"
            path.write_text(module_source(w, i))
            files.append(str(path))
            expected.add(sha256_text(path.read_text()))
        procs.append(subprocess.Popen([sys.executable, "-c", CHILD, registry_url, str(go), *files], cwd=ROOT,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    time.sleep(0.3)
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
    printed = [line.split() for out, _ in outputs for line in out.splitlines()]
    assert len(printed) == WRITERS * ADDS * 2 and {s for _, _, s in printed} == {"added"}

    registry = Registry(registry_url)
    shared = registry.versions("race.Shared")
    assert [e.version for e in shared] == list(range(1, WRITERS * ADDS + 1))  # unique, no gaps
    assert {e.sha256 for e in shared} == expected  # every writer's every add is there
    for w in range(WRITERS):
        own = registry.versions(f"race.Own{w}")
        assert [e.version for e in own] == list(range(1, ADDS + 1))
        # each writer's own versions are in the order it added them
        assert [registry.load_pe(e.ref)()._process(0) for e in own] == list(range(ADDS))
    assert registry.info()["schema_version"] == latest_schema_version()
