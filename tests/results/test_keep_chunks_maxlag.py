"""``keep_chunks: {maxlag: S}``: the per-chunk rows keep only the central lags |lag| <= S.

Ground truth: the same stationary synthetic network (3 hours, chunks of one hour) run
without the restriction. Cutting a row changes no number, so every reader of the series
(``series``, ``series_many``, ``series_array``, ``series_at``, ``to_xarray``, moving stacks)
must give exactly the central part of the unrestricted run's, on the central lag axis,
while the full stacks keep every lag, bit for bit; an append of the last chunk must give
the one-shot file, and the disk planner must count the shorter rows.
"""

import h5py
import numpy as np
import pytest

from noisecorr import open_results
from noisecorr.results.append import AppendError
from noisecorr.results.moving import moving_stacks
from noisecorr.results.substacks import central
from noisecorr.synth import write_network
from noisecorr.workflow import build_workflow, load_config, run_workflow
from noisecorr.workflow.config import ConfigError
from noisecorr.workflow.runner import append_workflow

T0 = "2024-01-01T00:00:00"
T2 = "2024-01-01T02:00:00"
T3 = "2024-01-01T03:00:00"
BASE = dict(chunk_length=3600.0, sampling_rate=10.0, cc_len=600.0, step=300.0, maxlag=20.0,
            freqmin=0.1, freqmax=2.0, start=T0, end=T3, keep="chunks")
S = 5.0
N_FULL, W = 2 * 200 + 1, 2 * 50 + 1   # maxlag 20 s and S = 5 s at 10 Hz
TOL = 1e-5


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("maxlag_data")
    write_network(root, n_stations=4, hours=3, seed=7, sampling_rate=10.0, band=(0.1, 0.2, 3.0, 4.0))
    return str(root)


def config(data, out, **kw):
    return load_config(overrides=dict(BASE, data=data, out=str(out), **kw))


@pytest.fixture(scope="module")
def full(data, tmp_path_factory):
    """keep: chunks without the restriction."""
    return run_workflow(config(data, tmp_path_factory.mktemp("full"))).results


@pytest.fixture(scope="module")
def short(data, tmp_path_factory):
    """The same run keeping |lag| <= S per chunk."""
    return run_workflow(config(data, tmp_path_factory.mktemp("short"), keep_chunks={"maxlag": S})).results


def same(got, want, exact):
    if exact:
        np.testing.assert_array_equal(got, want)
    else:  # another path (per pair vs tiled): float32 rounding of the sums
        assert np.abs(got - want).max() <= TOL * np.abs(want).max()


def assert_central(want_path, got_path, exact=True):
    """``got`` has the full stacks of ``want`` and the central W lags of its chunk rows."""
    with open_results(want_path) as want, open_results(got_path) as got:
        assert got.pairs("ZZ") == want.pairs("ZZ") and len(want.pairs("ZZ")) == 6
        for a, b in want.pairs("ZZ"):
            lw, sw = want.stack(a, b, "ZZ")
            lg, sg = got.stack(a, b, "ZZ")
            assert sg.shape == (N_FULL,)
            np.testing.assert_array_equal(lg, lw)
            same(sg, sw, exact)
            tw, lagw, aw, nw = want.series(a, b, "ZZ")
            tg, lagg, ag, ng = got.series(a, b, "ZZ")
            assert ag.shape == (3, W) and lagg[0] == -S and lagg[-1] == S
            np.testing.assert_array_equal(lagg, central(lagw, W))
            same(ag, central(aw, W), exact)
            np.testing.assert_array_equal(tg, tw)
            np.testing.assert_array_equal(ng, nw)
            assert np.abs(aw[:, :200 - 50]).max() > 0  # the full run has lags beyond S
            assert got.meta(a, b, "ZZ")["series_maxlag"] == S


@pytest.mark.parametrize("tiled", [True, False])
def test_rows_are_the_central_lags_of_the_full_run(data, full, short, tmp_path, tiled):
    got = short if tiled else run_workflow(config(data, tmp_path, tiled=False,
                                                  keep_chunks={"maxlag": S})).results
    assert_central(full, got, exact=tiled)
    with h5py.File(got, "r") as f:  # stored short: 4 rows of the folded stack + 3 chunks
        ds = f["pairs/XS.S0001/XS.S0002/ZZ"]
        assert ds.shape == (-(-N_FULL // W) + 3, W)


def test_many_pair_readers_give_the_central_lags(full, short):
    with open_results(full) as want, open_results(short) as got:
        many_w = {(a, b): s for a, b, s in want.series_many("ZZ")}
        many_g = list(got.series_many("ZZ"))
        assert [(a, b) for a, b, _ in many_g] == list(many_w)
        for a, b, s in many_g:
            np.testing.assert_array_equal(s.lags, central(many_w[a, b].lags, W))
            np.testing.assert_array_equal(s.stacks, central(many_w[a, b].stacks, W))
            np.testing.assert_array_equal(s.stack, many_w[a, b].stack)  # all lags
        pw, tw, lw, aw, cw = want.series_array("ZZ")
        pg, tg, lg, ag, cg = got.series_array("ZZ")
        assert pg == pw and ag.shape == (6, 3, W)
        np.testing.assert_array_equal(lg, central(lw, W))
        np.testing.assert_array_equal(ag, central(aw, W))
        np.testing.assert_array_equal(cg, cw)
        t1 = tw[1]
        pw, lw, aw, cw = want.series_at(t1)
        pg, lg, ag, cg = got.series_at(t1)
        assert pg == pw
        np.testing.assert_array_equal(lg, central(lw, W))
        np.testing.assert_array_equal(ag, central(aw, W))
        np.testing.assert_array_equal(cg, cw)
        xw, xg = want.to_xarray("ZZ", series=True), got.to_xarray("ZZ", series=True)
        assert xg["stack"].shape == (6, 3, W)
        np.testing.assert_array_equal(xg["lag"].values, central(xw["lag"].values, W))
        np.testing.assert_array_equal(xg["stack"].values, central(xw["stack"].values, W))
        np.testing.assert_array_equal(got.to_xarray("ZZ")["stack"].values, want.to_xarray("ZZ")["stack"].values)


def test_moving_stacks_over_the_central_lags(full, short):
    with open_results(full) as want, open_results(short) as got:
        mw, mg = moving_stacks(want, "2h", "1h"), moving_stacks(got, "2h", "1h")
        np.testing.assert_array_equal(mg.lags, central(mw.lags, W))
        assert mg.data.shape == (6, 2, W)
        np.testing.assert_allclose(mg.data, central(mw.data, W), rtol=0, atol=TOL * np.abs(mw.data).max())
        np.testing.assert_allclose(mg.reference, central(mw.reference, W), rtol=0,
                                   atol=TOL * np.abs(mw.reference).max())


def test_append_equals_the_one_shot_run(data, short, tmp_path):
    out = tmp_path / "survey"
    run_workflow(config(data, out, end=T2, keep_chunks={"maxlag": S}))
    report = append_workflow(config(data, out, keep_chunks={"maxlag": S}))
    assert report.updated == 6
    with open_results(short) as want, open_results(report.results) as got:
        for a, b in want.pairs("ZZ"):
            tw, lw, aw, nw = want.series(a, b, "ZZ")
            tg, lg, ag, ng = got.series(a, b, "ZZ")
            np.testing.assert_array_equal(tg, tw)
            np.testing.assert_array_equal(lg, lw)
            np.testing.assert_array_equal(ag, aw)   # the same chunks, computed the same way
            np.testing.assert_array_equal(ng, nw)
            sw, sg = want.stack(a, b, "ZZ")[1], got.stack(a, b, "ZZ")[1]
            assert sg.shape == (N_FULL,) and np.abs(sg - sw).max() <= TOL * np.abs(sw).max()
            assert got.meta(a, b, "ZZ")["n_windows"] == want.meta(a, b, "ZZ")["n_windows"]


def test_append_with_another_per_chunk_maxlag_is_refused_by_name(data, tmp_path):
    out = tmp_path / "survey"
    run_workflow(config(data, out, end=T2, keep_chunks={"maxlag": S}))
    before = (out / "results.h5").read_bytes()
    with pytest.raises(AppendError, match=r"keep_chunks\.maxlag: file 5\.0, this run 8\.0"):
        append_workflow(config(data, out, keep_chunks={"maxlag": 8.0}))
    with pytest.raises(AppendError, match=r"keep_chunks\.maxlag: file 5\.0, this run \(absent\)"):
        append_workflow(config(data, out))
    assert (out / "results.h5").read_bytes() == before


def test_disk_plan_counts_the_shorter_rows(data, tmp_path):
    d = build_workflow(config(data, tmp_path, keep_chunks={"maxlag": S})).disk
    plain = build_workflow(config(data, tmp_path)).disk
    assert d["chunks"] == 3 and d["pairs_keeping_chunks"] == 6 and d["chunk_lags"] == W
    assert d["estimate_bytes"] == 4 * (N_FULL * 6 + 6 * 3 * W)
    assert plain["estimate_bytes"] == 4 * N_FULL * (6 + 6 * 3) > d["estimate_bytes"]


def stored_bytes(path):
    sizes = []
    with h5py.File(path, "r") as f:
        f["pairs"].visititems(lambda n, o: sizes.append(o.id.get_storage_size())
                              if isinstance(o, h5py.Dataset) else None)
    return sum(sizes)


def test_stored_series_are_smaller_as_planned(full, short):
    assert stored_bytes(full) == 4 * N_FULL * 6 * (1 + 3)
    assert stored_bytes(short) == 4 * W * 6 * (-(-N_FULL // W) + 3)   # the plan + padding


@pytest.mark.parametrize("bad, why", [(25.0, "longer than processing.maxlag 20 s"), (0, "positive"),
                                      (-1.0, "positive"), ("5", "positive"), (True, "positive")])
def test_bad_maxlag_is_refused_naming_the_field(bad, why):
    with pytest.raises(ConfigError, match=f"keep_chunks.maxlag: .*{why}"):
        load_config(overrides=dict(BASE, keep_chunks={"maxlag": bad}))


def test_maxlag_needs_linear_stacks():
    for method in ("pws", "robust"):
        with pytest.raises(ConfigError, match="keep_chunks.maxlag: needs processing.stack_method linear"):
            load_config(overrides=dict(BASE, stack_method=method, keep_chunks={"maxlag": S}))
    assert load_config(overrides=dict(BASE, keep_chunks={"maxlag": 20.0})).series_maxlag == 20.0
