"""The results files through HDF5's supported I/O: written (tiled blocks and single pairs,
with and without gzip/LZF), merged from several writers' parts in memory and on disk, and
read back without noisecorr: with plain h5py and with HDF5's own ``h5dump``. The merge keeps
to its memory budget (peak of traced allocations) and fails cleanly on a full disk.

``h5dump`` comes from Debian's hdf5-tools: ``scripts/services/hdf5tools.sh`` installs it,
sourced by ``scripts/test.sh``. HDF5 has no LZF built in and Debian's hdf5-plugin-lzf (3.7)
does not decompress h5py's LZF chunks under its h5dump (1.10.8), not even those of a file
h5py writes directly: LZF values are checked with h5py, h5dump checks their header.
"""

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tracemalloc

import h5py
import numpy as np
import pytest

from noisecorr.results import ResultsWriter, merge_parts, open_results
from noisecorr.results.merge import list_parts

FS = 10.0
MAXLAG = 20.0
N_LAGS = 2 * int(MAXLAG * FS) + 1
PARAMS = {"cc_len": 1800}
CODES = [f"XS.S{i:03d}" for i in range(14)]
STATIONS = [{"code": c, "latitude": 45 + 0.1 * i, "longitude": 8 + 0.07 * i, "elevation": 0.0}
            for i, c in enumerate(CODES)]
PAIRS = [(a, b) for i, a in enumerate(CODES) for b in CODES[i + 1:]]  # 91 pairs


def expected(k):
    """The stack of ``PAIRS[k]`` (distinct per pair, compressible but not constant)."""
    return (np.sin(np.arange(N_LAGS) * 0.05 * (1 + k % 7)) * (k + 1)).astype(np.float32)


# RT: 3 sub-stacks
SUB = np.stack([np.cos(np.arange(N_LAGS) * 0.03 * (s + 1)) for s in range(3)]).astype(np.float32)


def write_parts(path, compression, api):
    """Two writers' parts of every pair: tiles of 10 (``block``) or one call per pair
    (``pair``), checkpoints of 25 pairs, plus RT sub-stacks from the second writer."""
    ws = [ResultsWriter(path, PARAMS, stations=STATIONS, sampling_rate=FS, writer_id=w,
                        compression=compression, checkpoint_pairs=25) for w in range(2)]
    for t in range(0, len(PAIRS), 10):
        w = ws[(t // 10) % 2]
        tile = range(t, min(t + 10, len(PAIRS)))
        if api == "block":
            w.write_block([PAIRS[k][0] for k in tile], [PAIRS[k][1] for k in tile], "ZZ", MAXLAG,
                          np.stack([expected(k) for k in tile]), {"n_windows": list(tile)})
        else:
            for k in tile:
                w.write_pair(*PAIRS[k], "ZZ", MAXLAG, expected(k), {"n_windows": k})
    ws[1].write_block(CODES[:2], CODES[2:4], "RT", MAXLAG, np.stack([SUB, SUB + 10]),
                      {"n_windows": 3})
    for w in ws:
        w.close(merge=False)
    assert len(list_parts(path)) >= 4


def h5dump():
    exe = shutil.which("h5dump")
    if exe is None:
        pytest.fail("h5dump is not on PATH: source scripts/services/hdf5tools.sh (Debian's "
                    "hdf5-tools and hdf5-plugin-lzf), as scripts/test.sh does")
    return exe


def dump_values(path, dataset, tmp_path):
    """The values of ``dataset`` as h5dump writes them (binary, little-endian float32)."""
    out = tmp_path / "dump.bin"
    proc = subprocess.run([h5dump(), "-d", dataset, "-b", "LE", "-o", str(out), str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return np.fromfile(out, dtype="<f4")


# a budget that holds the index of these merges but not the file in memory: built on disk
ON_DISK = 300 * 2**10
IN_MEMORY = 2**30


@pytest.mark.parametrize("compression", [None, "gzip", "lzf"])
@pytest.mark.parametrize("api", ["block", "pair"])
@pytest.mark.parametrize("memory", [IN_MEMORY, ON_DISK])
def test_merged_file_reads_back_with_plain_h5py_and_h5dump(tmp_path, compression, api, memory):
    path = tmp_path / "r.h5"
    write_parts(path, compression, api)
    report = merge_parts(path, memory=memory)
    assert report.in_memory == (memory == IN_MEMORY) and report.pairs == len(PAIRS) + 2
    if compression:  # compressed by the writers, copied as stored chunks
        assert report.chunks_copied == report.pairs and report.rows_written == 0
    else:
        assert report.rows_written == report.pairs and report.chunks_copied == 0
    with h5py.File(path, "r") as f:
        assert f.attrs["n_pairs"] == len(PAIRS) + 2
        src = f["index/source"][()].astype(str).tolist()
        rcv = f["index/receiver"][()].astype(str).tolist()
        comp = f["index/component"][()].astype(str).tolist()
        nwin = f["index/n_windows"][()].tolist()
        rows = {(s, r, c): n for s, r, c, n in zip(src, rcv, comp, nwin)}
        assert len(rows) == len(PAIRS) + 2
        for k, (s, r) in enumerate(PAIRS):
            ds = f[f"pairs/{s}/{r}/ZZ"]
            assert ds.compression == compression and ds.dtype == np.float32
            assert np.array_equal(ds[()], expected(k)), (s, r)
            assert rows[(s, r, "ZZ")] == k
        assert np.array_equal(f[f"pairs/{CODES[1]}/{CODES[3]}/RT"][()], SUB + 10)
    # HDF5's own tool: the header names the filter, the values are the stacks
    k = 17
    name = f"/pairs/{PAIRS[k][0]}/{PAIRS[k][1]}/ZZ"
    header = subprocess.run([h5dump(), "-H", "-p", "-d", name, str(path)], capture_output=True,
                            text=True, timeout=120)
    assert header.returncode == 0, header.stderr
    assert f"( {N_LAGS} )" in header.stdout
    filters = {None: None, "gzip": "DEFLATE", "lzf": "32000"}[compression]
    if filters:
        assert filters in header.stdout
    else:
        assert re.search(r"CONTIGUOUS", header.stdout)
    if compression != "lzf":  # (see the module docstring)
        assert np.array_equal(dump_values(path, name, tmp_path), expected(k))
        rt = dump_values(path, f"/pairs/{CODES[0]}/{CODES[2]}/RT", tmp_path)
        assert np.array_equal(rt.reshape(3, N_LAGS), SUB)
    # and the noisecorr reader gives the same (its stacks() too)
    with open_results(path) as res:
        got = dict(zip(res.pairs("ZZ"), (d for _, d in res.stacks("ZZ"))))
    assert all(np.array_equal(got[p], expected(k)) for k, p in enumerate(PAIRS))


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_parts_read_back_with_plain_h5py_and_h5dump(tmp_path, compression):
    """A part (what a crashed run leaves) is a plain HDF5 file: blocks of rows + index."""
    path = tmp_path / "r.h5"
    write_parts(path, compression, "block")
    part = list_parts(path)[0]
    with h5py.File(part, "r") as f:
        block = f["blocks/0"]
        assert block.compression == compression
        if compression:
            assert block.chunks == (1, N_LAGS)  # one chunk per row, for the merge to copy
        for row, s, r in zip(f["index/block_row"][()], f["index/source"][()].astype(str),
                             f["index/receiver"][()].astype(str)):
            assert np.array_equal(block[row], expected(PAIRS.index((s, r))))
        first = expected(PAIRS.index((f["index/source"][0].decode(),
                                      f["index/receiver"][0].decode())))
        row0 = int(f["index/block_row"][0])
    values = dump_values(part, "/blocks/0", tmp_path).reshape(-1, N_LAGS)
    assert np.array_equal(values[row0], first)


def _big_parts(path, n_lags=8001):
    """Two writers' parts of 200 pairs of ``n_lags`` samples (about 6 MB of stacks)."""
    codes = [f"XS.B{i:03d}" for i in range(21)]
    pairs = [(a, b) for i, a in enumerate(codes) for b in codes[i + 1:]][:200]
    ws = [ResultsWriter(path, PARAMS, sampling_rate=FS, writer_id=w, checkpoint_pairs=40)
          for w in range(2)]
    for t in range(0, len(pairs), 20):
        tile = pairs[t:t + 20]
        data = np.arange(t, t + len(tile), dtype=np.float32)[:, None] + np.zeros(n_lags, "f4")
        ws[(t // 20) % 2].write_block([p[0] for p in tile], [p[1] for p in tile], "ZZ",
                                      (n_lags // 2) / FS, data)
    for w in ws:
        w.close(merge=False)
    return pairs


def _traced_merge(path, budget):
    """``(report, peak bytes)`` of a merge: the peak of the allocations tracemalloc sees
    (numpy buffers, bytes, index columns, Python objects) above what was there before."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        report = merge_parts(path, memory=budget)
        return report, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_merge_stays_inside_its_memory_budget(tmp_path):
    """On disk under a budget 6 times smaller than the stacks: the stacks stream in batches
    and the traced peak stays under the budget. In memory (the budget holds twice the file):
    the image written out counts, and the peak stays under that budget too."""
    budget = 2**20
    disk = tmp_path / "disk" / "r.h5"
    disk.parent.mkdir()
    pairs = _big_parts(disk)
    stacks = sum(p.stat().st_size for p in list_parts(disk))
    assert stacks > 6 * budget
    report, peak = _traced_merge(disk, budget)
    assert not report.in_memory and report.rows_written == len(pairs)
    assert report.batch_rows * 8001 * 4 <= budget - report.index_bytes
    assert report.batches >= stacks / budget
    assert report.buffers == 1  # one batch buffer for every block of every part
    assert 0 < peak <= budget, (peak, budget)
    mem = tmp_path / "mem" / "r.h5"
    mem.parent.mkdir()
    _big_parts(mem)
    n_parts = len(list_parts(mem))
    budget = 3 * stacks
    report, peak = _traced_merge(mem, budget)
    assert report.in_memory and report.batches == n_parts  # a whole block of a part each
    assert stacks < peak <= budget, (peak, budget)  # (the image's copy is traced)
    with h5py.File(disk, "r") as a, h5py.File(mem, "r") as b:
        for k, (s, r) in enumerate(pairs):
            assert np.array_equal(a[f"pairs/{s}/{r}/ZZ"][()], np.full(8001, k, np.float32))
            assert np.array_equal(b[f"pairs/{s}/{r}/ZZ"][()], np.full(8001, k, np.float32))


_MERGE_UNDER_LIMIT = """
import sys
from noisecorr.results import merge_parts
merge_parts(sys.argv[1], memory=int(sys.argv[2]))
"""


def _limit_file_size(nbytes):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return apply


@pytest.mark.parametrize("memory", [IN_MEMORY, ON_DISK])
def test_merge_that_cannot_write_leaves_the_parts_and_the_main_file(tmp_path, memory):
    """A real write failure (the process's file-size limit, as a full disk) in a separate
    process: the merge fails, the parts stay whole and no main file appears; built in memory
    it fails with a clean error and leaves no ``.tmp``; built on disk HDF5 may even crash the
    process and leave ``.tmp`` behind, which the next merge replaces. That merge succeeds."""
    path = tmp_path / "r.h5"
    write_parts(path, None, "block")
    parts = list_parts(path)
    sizes = [p.stat().st_size for p in parts]
    proc = subprocess.run([sys.executable, "-c", _MERGE_UNDER_LIMIT, str(path), str(memory)],
                          capture_output=True, text=True, timeout=300,
                          preexec_fn=_limit_file_size(64 * 2**10))
    assert proc.returncode != 0
    assert "File too large" in proc.stderr, proc.stderr[-2000:]
    assert list_parts(path) == parts and [p.stat().st_size for p in parts] == sizes
    assert not path.exists()
    if memory == IN_MEMORY:
        assert "OSError: [Errno 27] File too large" in proc.stderr
        assert not path.with_name("r.h5.tmp").exists()
    report = merge_parts(path, memory=memory)
    assert report.pairs == len(PAIRS) + 2 and not path.with_name("r.h5.tmp").exists()
    assert not list_parts(path)
    with h5py.File(path, "r") as f:
        assert np.array_equal(f[f"pairs/{PAIRS[5][0]}/{PAIRS[5][1]}/ZZ"][()], expected(5))
