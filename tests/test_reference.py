"""Every compiled cell equals its readable twin in ``minirnn.reference``.

The twin is the cell as the tutorial writes it: plain vectorized NumPy, one
timestep per Python call, the weight gradients summed step by step. The kernel
in ``minirnn/cells/`` is its optimization. For every cell and every option
(recurrent dropout at each place, per sequence or per step, shared or not; both
GRU conventions; both LN-LSTM flavours; BN-LSTM in training and in evaluation,
carrying the raw or the normalized cell; the VC thresholds and penalties), in
float64, the two agree to rounding: the outputs, the final state, the batch
statistics, the penalty, dx, every parameter gradient and the gradients of the
initial state, with and without a gradient of the final state. The twin takes its
dropout masks from the kernel's cache, so both see the same masks.

Finite differences are not needed here (tests/test_cells.py and the others check
the kernels' gradients): agreement of two independent computations to 1e-12 is a
sharper test of the algebra, with no step size to tune and no kinks to avoid,
except the jumps of the VC threshold, where rounding may decide a unit.
"""

import copy
import inspect

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minirnn.cells import CELLS, bnlstm
from minirnn.cells import _vc_mask as vc
from minirnn.reference import TWINS

# Kernel and twin round differently (the kernel sums x W + b + h U in another
# order, takes the weight gradients as one product over all steps, ...), so they
# agree to rounding: a max-norm error of at most RTOL times the larger max-norm of
# the two, or times 1 for tensors smaller than 1. Where an invariance makes a true
# gradient eps-sized (batch norm over two examples; layer norm of one number times
# a row of weights, as with input size 1 or after hidden dropout), both compute it
# as a difference of O(1) terms, and agree to the rounding of those terms.
RTOL = 1e-12
DROPOUT_OPTIONS = ("recurrent_dropout", "dropout_where", "dropout_per", "dropout_shared")
VC_CELLS = ("vcrnn", "vcgru", "vclstm")


def dropout(places):
    """No dropout, or a rate at one of ``places``, per sequence or per step, shared or not."""
    return st.one_of(
        st.just({}),
        st.fixed_dictionaries(
            {
                "recurrent_dropout": st.sampled_from([0.3, 0.6]),
                "dropout_where": st.sampled_from(places),
                "dropout_per": st.sampled_from(["sequence", "step"]),
                "dropout_shared": st.booleans(),
            }
        ),
    )


def merged(*strategies):
    return st.tuples(*strategies).map(lambda dicts: {k: v for d in dicts for k, v in d.items()})


EPS = st.sampled_from([1e-5, 1e-3, 1e-2])
VC_OPTIONS = st.fixed_dictionaries(
    {
        "threshold": st.sampled_from(["soft", "hard"]),
        "sharpness": st.sampled_from([1.0, 3.0]),
        "eps": st.sampled_from([0.1, 0.05]),
        "alpha": st.sampled_from([0.0, 0.5]),
        "m_target": st.sampled_from([0.3, 0.6]),
        "penalty": st.sampled_from(["l1", "l2"]),
    }
)
OPTIONS = {
    "rnn": dropout(("hidden",)),
    "lstm": dropout(("update", "hidden", "cell")),
    "gru": merged(
        st.fixed_dictionaries({"reset_after": st.booleans()}), dropout(("update", "hidden"))
    ),
    # statistics of the batch, of the population (t_max rows) or renormalized, in
    # training and in evaluation; dropout draws its masks in training only
    "bnlstm": merged(
        st.fixed_dictionaries(
            {
                "training": st.booleans(),
                "eps": EPS,
                "carry_normalized_c": st.booleans(),
                "x_stats": st.sampled_from(["step", "shared", "none"]),
                "train_stats": st.sampled_from(["batch", "renorm", "population"]),
                "eval_stats": st.sampled_from(["population", "batch"]),
                "renorm_rmax": st.sampled_from([1.0, 1.5, 3.0]),
                "renorm_dmax": st.sampled_from([0.0, 0.5, 5.0]),
                "t_max": st.integers(1, 5),
            }
        ),
        dropout(("update", "hidden", "cell")),
    ),
    "lnlstm": merged(
        st.fixed_dictionaries({"flavour": st.sampled_from(["paper", "tensorflow"]), "eps": EPS}),
        dropout(("update", "hidden", "cell")),
    ),
    "lngru": merged(st.fixed_dictionaries({"eps": EPS}), dropout(("update", "hidden"))),
    **{name: VC_OPTIONS for name in VC_CELLS},
}


def random_stats(H, t_max, rng, x_stats="step"):
    """BN-LSTM's population statistics: (t_max, size) each, one row for those of
    x W when they are shared over time."""
    stats = bnlstm.init_statistics(H, t_max, np.float64)
    for key in bnlstm.STAT_KEYS:
        rows = 1 if key.endswith("_x") and x_stats == "shared" else t_max
        shape = (rows, stats[key].shape[1])
        stats[key] = (
            rng.uniform(0.5, 2.0, shape)
            if key.startswith("var")
            else 0.3 * rng.standard_normal(shape)
        )
    return stats


def parts(state):
    return state if isinstance(state, tuple) else (state,)


def as_state(arrays):
    return arrays if len(arrays) > 1 else arrays[0]


def assert_equal_to_rounding(twin, kernel, what):
    twin, kernel = np.asarray(twin), np.asarray(kernel)
    assert twin.shape == kernel.shape and twin.dtype == kernel.dtype, (
        what,
        twin.shape,
        kernel.shape,
    )
    scale = max(np.abs(twin).max(), np.abs(kernel).max(), 1.0)
    err = np.abs(twin - kernel).max() / scale
    assert err <= RTOL, f"{what}: max-norm relative error {err:.2e}"


def edge_distance(cache):
    """How far the VC masks of a kernel's forward are from the threshold's jumps."""
    o = cache["options"]
    H, I = cache["e"].shape[2], cache["ex"].shape[2]
    return min(
        vc.distance_to_edges(cache["m"], H, o["sharpness"], o["eps"]),
        vc.distance_to_edges(cache["m"], I, o["sharpness"], o["eps"]),
    )


def run_both(
    name,
    opts,
    batch,
    time,
    input_size,
    hidden,
    seed,
    with_state,
    with_dstate,
    away_from_edges=assume,
):
    """Kernel and twin of cell ``name`` on the same random case; asserts they agree
    and that the twin changed none of its arguments. ``away_from_edges(ok)`` is
    called for the VC cells with whether no mask value is within 1e-9 of a jump
    of the threshold."""
    cell, twin = CELLS[name], TWINS[name]
    rng = np.random.default_rng(seed)
    opts = dict(opts)
    init_opts = {k: v for k, v in opts.items() if k in cell.INIT_OPTIONS}
    params = cell.init(input_size, hidden, rng=rng, dtype=np.float64, **init_opts)
    for p in params.values():
        p += 0.3 * rng.standard_normal(p.shape)
    x = rng.standard_normal((batch, time, input_size))
    n_state = cell.STATE_SIZE
    state = (
        as_state(tuple(0.5 * rng.standard_normal((batch, hidden)) for _ in range(n_state)))
        if with_state
        else None
    )
    if "t_max" in opts:
        opts["stats"] = random_stats(hidden, opts.pop("t_max"), rng, opts.get("x_stats", "step"))

    hs, cache = cell.forward(params, x, state, rng=np.random.default_rng(seed + 1), **opts)
    if name in VC_CELLS:
        away_from_edges(edge_distance(cache) > 1e-9)
    twin_opts = {k: v for k, v in opts.items() if k not in DROPOUT_OPTIONS}
    if hasattr(cell, "DROPOUT_PLACEMENTS"):
        twin_opts["masks"] = cache["masks"]
    arguments = (params, x, state, twin_opts)
    kept = copy.deepcopy(arguments)
    twin_hs, twin_cache = twin.forward(params, x, state, **twin_opts)

    assert_equal_to_rounding(twin_hs, hs, "hs")
    for k, (got, want) in enumerate(zip(parts(twin_cache["state"]), parts(cache["state"]))):
        assert_equal_to_rounding(got, want, f"final state part {k}")
    if "batch_stats" in cache:
        assert set(twin_cache["batch_stats"]) == set(cache["batch_stats"])
        for key, want in cache["batch_stats"].items():
            assert_equal_to_rounding(twin_cache["batch_stats"][key], want, key)
    else:
        assert "batch_stats" not in twin_cache
    if "penalty" in cache:
        assert_equal_to_rounding(twin_cache["penalty"], cache["penalty"], "penalty")

    dhs = rng.standard_normal(hs.shape)
    dstate = (
        as_state(tuple(rng.standard_normal((batch, hidden)) for _ in range(n_state)))
        if with_dstate
        else None
    )
    kept_upstream = copy.deepcopy((dhs, dstate))
    dx, grads = cell.backward(params, dhs, cache, dstate)
    twin_dx, twin_grads = twin.backward(params, dhs, twin_cache, dstate)
    assert_equal_to_rounding(twin_dx, dx, "dx")
    assert set(twin_grads) == set(grads)
    for key, want in grads.items():
        assert_equal_to_rounding(twin_grads[key], want, f"grads[{key!r}]")

    for before, after in ((kept, arguments), (kept_upstream, (dhs, dstate))):
        np.testing.assert_equal(after, before)  # nothing was modified in place
    return cache


@pytest.mark.parametrize("name", sorted(TWINS))
@settings(max_examples=20, deadline=None)
@given(
    data=st.data(),
    batch=st.integers(1, 3),
    time=st.integers(1, 4),
    input_size=st.integers(1, 3),
    hidden=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 2),
    with_state=st.booleans(),
    with_dstate=st.booleans(),
)
def test_kernel_equals_its_readable_twin(
    name, data, batch, time, input_size, hidden, seed, with_state, with_dstate
):
    opts = data.draw(OPTIONS[name], label="options")
    run_both(name, opts, batch, time, input_size, hidden, seed, with_state, with_dstate)


BNLSTM_STATISTICS = [
    {"x_stats": "shared"},
    {"x_stats": "none"},
    {"train_stats": "renorm"},
    {"train_stats": "renorm", "renorm_rmax": 1.2, "renorm_dmax": 0.1, "x_stats": "shared"},
    {"train_stats": "population", "carry_normalized_c": True},
    {"training": False, "eval_stats": "batch"},
    {"training": False, "x_stats": "shared", "carry_normalized_c": True},
    {"training": False, "x_stats": "none"},
]


def must_be_away(ok):
    assert ok, "this fixed case puts a VC mask on a threshold edge: change its seed"


@pytest.mark.parametrize("name", sorted(TWINS))
def test_every_option_combination_once(name):
    """Hypothesis draws options at random; this walks each cell's gradient-check
    cases (every dropout placement, both conventions and flavours, training and
    evaluation, both thresholds and penalties; for the BN-LSTM each kind of
    statistics too) at a batch large enough for batch norm, with a state and a
    gradient of the final state."""
    cell = CELLS[name]
    cases = list(cell.GRADCHECK_CASES)
    if name == "bnlstm":  # population statistics shorter than the input, and each
        cases = [dict(c, t_max=3) for c in cases + BNLSTM_STATISTICS]  # kind of statistics
    for k, opts in enumerate(cases):
        run_both(
            name,
            opts,
            batch=4,
            time=5,
            input_size=3,
            hidden=4,
            seed=k,
            with_state=True,
            with_dstate=True,
            away_from_edges=must_be_away,
        )


def test_every_cell_has_a_twin_with_the_contract():
    """Every cell has a twin, and the twin's forward takes every forward option of
    the cell (recurrent dropout's as the masks from the cell's cache): a new
    option of a kernel needs its twin too."""
    assert set(TWINS) == set(CELLS)
    for name, twin in TWINS.items():
        for function in ("step_forward", "step_backward", "forward", "backward"):
            assert callable(getattr(twin, function, None)), (name, function)
        taken = set(inspect.signature(twin.forward).parameters)
        missing = set(CELLS[name].FORWARD_OPTIONS) - set(DROPOUT_OPTIONS) - taken
        assert not missing, f"reference/{name}.py: forward does not take {sorted(missing)}"
        assert ("masks" in taken) == hasattr(CELLS[name], "DROPOUT_PLACEMENTS"), name


@pytest.mark.parametrize("name", sorted(TWINS))
def test_twin_keeps_float32(name):
    """The twins compute in the dtype they are given (the NumPy baseline of the
    benchmarks runs them in float32)."""
    cell, twin = CELLS[name], TWINS[name]
    rng = np.random.default_rng(0)
    params = cell.init(3, 4, rng=rng, dtype=np.float32)
    x = rng.standard_normal((2, 3, 3), dtype=np.float32)
    hs, cache = twin.forward(params, x)
    dx, grads = twin.backward(params, rng.standard_normal(hs.shape, dtype=np.float32), cache)
    assert hs.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values()), name
