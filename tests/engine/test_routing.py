"""Group-by routing is stable (same key -> same instance, in every process) and complete."""

import json
import os
import subprocess
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from noisecorr.engine.routing import canonical_bytes, make_router, stable_hash, target_instance

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)
keys = st.recursive(scalars, lambda inner: st.tuples(inner, inner) | st.lists(inner, max_size=3).map(tuple), max_leaves=6)


@settings(max_examples=300, deadline=None)
@given(items=st.lists(st.tuples(keys, st.integers()), max_size=60), n=st.integers(min_value=1, max_value=17))
def test_group_by_is_complete_and_consistent(items, n):
    received = [[] for _ in range(n)]
    route = make_router(("group", (0,)), [r.append for r in received])
    for item in items:
        route(item)
    # complete: every item delivered exactly once
    assert sorted(map(repr, (x for r in received for x in r))) == sorted(map(repr, items))
    # consistent: each key at exactly one instance, the one target_instance names
    for idx, got in enumerate(received):
        for item in got:
            assert target_instance(item, (0,), n) == idx


@settings(max_examples=200, deadline=None)
@given(key=keys)
def test_equal_python_values_route_together(key):
    assert stable_hash(key) == stable_hash(key)
    if isinstance(key, bool):
        assert stable_hash(key) == stable_hash(int(key))
    if isinstance(key, int) and not isinstance(key, bool) and abs(key) < 2**53:
        assert stable_hash(key) == stable_hash(float(key))
        assert stable_hash(key) == stable_hash(np.int64(key))
    if isinstance(key, float):
        assert stable_hash(key) == stable_hash(np.float64(key))


def test_str_and_int_keys_do_not_collide_by_type():
    assert canonical_bytes("1") != canonical_bytes(1)
    assert canonical_bytes(("a", "b")) != canonical_bytes("ab")


@settings(max_examples=50, deadline=None)
@given(n=st.integers(min_value=1, max_value=9), items=st.lists(st.integers(), max_size=50))
def test_shuffle_is_balanced_and_complete(n, items):
    received = [[] for _ in range(n)]
    route = make_router(("shuffle",), [r.append for r in received])
    for item in items:
        route(item)
    sizes = [len(r) for r in received]
    assert sum(sizes) == len(items)
    assert max(sizes) - min(sizes) <= 1


def test_routing_is_identical_in_processes_with_different_hash_seeds():
    """Builtin hash() of str differs between these processes; our routing must not."""
    codes = [f"XS.S{i:04d}" for i in range(200)] + ["ÄÖ.ünicode", ("IU", "ANMO", "00", "BHZ")]
    script = (
        "import json,sys; from noisecorr.engine.routing import target_instance;"
        "codes=[tuple(c) if isinstance(c, list) else c for c in json.load(sys.stdin)];"
        "print(json.dumps([[target_instance((c,), (0,), n) for n in (2,3,7)] for c in codes] + [[hash(str(codes[0]))]]))"
    )
    outs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run([sys.executable, "-c", script], input=json.dumps(codes), capture_output=True,
                              text=True, env=env, check=True)
        outs.append(json.loads(proc.stdout))
    assert outs[0][-1] != outs[1][-1], "the two processes should have different builtin str hashes"
    assert outs[0][:-1] == outs[1][:-1]
    local = [[target_instance((c,), (0,), n) for n in (2, 3, 7)] for c in codes]
    assert local == outs[0][:-1]
