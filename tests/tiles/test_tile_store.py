"""The factor store: memory or an unlinked scratch file, same arrays back."""

import os

import numpy as np
import pytest

from noisecorr.tiles.store import FactorStore


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_round_trip(where, tmp_path):
    rng = np.random.default_rng(1)
    arrays = {(k, "Z", "rcv"): (rng.standard_normal((70, 5 + k)) + 1j).astype(np.complex64)
              for k in range(6)}
    with FactorStore(where, tmp_path) as store:
        for key, a in arrays.items():
            store.put(key, a)
        assert len(store) == 6 and (3, "Z", "rcv") in store
        for key, a in reversed(list(arrays.items())):
            np.testing.assert_array_equal(store.get(key), a)
        store.drop((0, "Z", "rcv"))
        assert store.get((0, "Z", "rcv")) is None and len(store) == 5
        if where == "disk":
            assert store.bytes_written == sum(a.nbytes for a in arrays.values())
            assert store.bytes_read == sum(a.nbytes for a in arrays.values())
            # the array came back from the file, not a reference to the original
            assert store.get((1, "Z", "rcv")) is not arrays[(1, "Z", "rcv")]
        else:
            assert store.get((1, "Z", "rcv")) is arrays[(1, "Z", "rcv")]


def test_scratch_file_is_unlinked(tmp_path):
    store = FactorStore("disk", tmp_path)
    store.put("a", np.ones((10, 3), np.complex64))
    assert os.listdir(tmp_path) == []  # nothing to clean up, even after a crash
    assert os.fstat(store._file.fileno()).st_size == 240
    store.close()


def test_twice_is_an_error(tmp_path):
    store = FactorStore("disk", tmp_path, label="TileCorrelatePE instance 1 chunk 0")
    store.put("a", np.ones(3, np.complex64))
    with pytest.raises(KeyError, match="TileCorrelatePE instance 1 chunk 0"):
        store.put("a", np.ones(3, np.complex64))


def test_missing_scratch_folder_is_named(tmp_path):
    store = FactorStore("disk", tmp_path / "nope", label="TileCorrelatePE instance 0 chunk 0")
    with pytest.raises(OSError, match="cannot create a scratch file for spectra in .*nope"):
        store.put("a", np.ones(3, np.complex64))


def test_full_disk_message_names_folder_and_setting(tmp_path):
    """A write that fails (here: /dev/full's ENOSPC through a store whose file is /dev/full)."""
    store = FactorStore("disk", tmp_path, label="w")
    store._file = open("/dev/full", "r+b")
    with pytest.raises(OSError, match=r"cannot write spectra to the scratch folder .*scratch: in the"):
        store.put("a", np.ones(1000, np.complex64))
    store.close()


def test_unknown_store():
    with pytest.raises(ValueError, match="'memory' or 'disk'"):
        FactorStore("tape")
