"""Population statistics of the recurrent batch norm (``cells/bnlstm.py``): making
them, checking them, moving them towards a training batch's, and pooling several
batches' exactly. The BN-LSTM keeps one mean and one variance per timestep for each
of its three normalizations (of x_t W, h_{t-1} U and c_t), as arrays of shape
(T_max, size) under the keys ``STAT_KEYS``; nothing lives in module globals.
"""

import numpy as np

from ..functional.batchnorm import update_running_stats

STAT_KEYS = ("mean_x", "var_x", "mean_h", "var_h", "mean_c", "var_c")


def init_statistics(hidden_size, max_time, dtype=np.float32):
    """Population statistics for ``max_time`` timesteps: means 0, variances 1."""
    H4, H = 4 * hidden_size, hidden_size
    size = {"x": H4, "h": H4, "c": H}
    stats = {}
    for part, n in size.items():
        stats[f"mean_{part}"] = np.zeros((max_time, n), dtype=dtype)
        stats[f"var_{part}"] = np.ones((max_time, n), dtype=dtype)
    return stats


def evaluation_options(hidden_size, time, rng):
    """Forward options for a gradient check in evaluation mode: random population
    statistics one step shorter than the sequence, so the rule "t >= T_max uses
    the last statistics" is exercised too."""
    stats = init_statistics(hidden_size, max(1, time - 1), np.float64)
    for key in STAT_KEYS:
        stats[key] = (
            rng.uniform(0.5, 2.0, stats[key].shape)
            if key.startswith("var")
            else 0.3 * rng.standard_normal(stats[key].shape)
        )
    return {"stats": stats}


def update_statistics(stats, cache, momentum=None):
    """New population statistics: ``stats`` moved towards the per-timestep batch
    statistics of a training forward (``cache["batch_stats"]``), by the moving
    average of ``functional.batchnorm`` (PyTorch's convention: ``momentum`` is the
    weight of the new value; None: the forward's option ``stats_momentum``). A
    batch longer than ``stats`` extends them. The statistics of x W have one row
    with ``x_stats="shared"`` and are left alone with "none"; a training forward
    with ``train_stats="population"`` computed no batch statistics and leaves all
    of them alone (they are frozen).

    A batch of one example has no variance to contribute (PyTorch's convention
    divides by M - 1): its statistics are left out and ``stats`` comes back
    unchanged, so a last batch of one in an epoch does not stop training."""
    if not cache.get("training", False):
        raise ValueError(
            "update_statistics: expected the cache of a training forward "
            "(training=True), whose batch statistics training moves the "
            "population's towards; got the cache of an evaluation forward"
        )
    if cache["batch_size"] < 2 or "batch_stats" not in cache:
        return {key: stats[key].copy() for key in STAT_KEYS}
    momentum = cache["stats_momentum"] if momentum is None else momentum
    batch = cache["batch_stats"]
    new = {key: stats[key].copy() for key in STAT_KEYS}
    for part in ("x", "h", "c"):
        if f"mean_{part}" not in batch:
            continue
        T = batch[f"mean_{part}"].shape[0]
        # rows each batch statistic was taken over: B, or T * B when shared over time
        count = cache["batch_size"] * (cache["hs"].shape[0] - 1) // T
        for key in (f"mean_{part}", f"var_{part}"):
            old = new[key]
            if T > old.shape[0]:  # the new timesteps start from their last known statistics
                new[key] = np.concatenate([old, np.repeat(old[-1:], T - old.shape[0], axis=0)])
        m, v = update_running_stats(
            new[f"mean_{part}"][:T],
            new[f"var_{part}"][:T],
            batch[f"mean_{part}"],
            batch[f"var_{part}"],
            momentum=momentum,
            count=count,
            convention="pytorch",
        )
        new[f"mean_{part}"][:T], new[f"var_{part}"][:T] = m, v
    return new


def pooled_statistics(stats, batches):
    """``stats`` with every row a list of training batches measured replaced by
    those batches' statistics pooled exactly: ``batches`` is a list of
    (batch size, ``cache["batch_stats"]``); means weighted by batch size, the
    variance of the union made unbiased. Rows beyond the longest batch are kept."""
    total, first, second = 0, {}, {}
    for B, batch_stats in batches:
        for key, value in batch_stats.items():
            if key.startswith("mean"):
                var = batch_stats["var" + key[4:]]
                first[key] = first.get(key, 0) + B * value.astype(np.float64)
                second[key] = second.get(key, 0) + B * (var + value.astype(np.float64) ** 2)
        total += B
    if total < 2:
        raise ValueError(
            f"inputs: expected at least 2 sequences to estimate a variance, got {total}"
        )
    new = {key: stats[key].copy() for key in STAT_KEYS}
    for key in first:
        part = key[5:]
        mean = first[key] / total
        var = (second[key] / total - mean**2) * (total / (total - 1))
        T = mean.shape[0]
        for name, value in ((key, mean), (f"var_{part}", np.maximum(var, 0))):
            old = new[name]
            if T > old.shape[0]:
                old = np.concatenate([old, np.repeat(old[-1:], T - old.shape[0], axis=0)])
            old[:T] = value
            new[name] = old
    return new


def check_statistics(stats, H, dtype, x_stats):
    if stats is None:
        raise ValueError(
            "stats: evaluation (training=False) needs the population statistics "
            "from init_statistics/update_statistics, and so does training with "
            "train_stats='renorm' or 'population'; got None"
        )
    for key in STAT_KEYS:
        if key not in stats:
            raise KeyError(f"stats: expected keys {list(STAT_KEYS)}, got {sorted(stats)}")
        size = H if key.endswith("_c") else 4 * H
        a = stats[key]
        if a.ndim != 2 or a.shape[1] != size or a.shape[0] < 1:
            raise ValueError(f"stats['{key}']: expected shape (T_max, {size}), got {a.shape}")
    lengths = {key: stats[key].shape[0] for key in STAT_KEYS}
    if (
        len({lengths[k] for k in STAT_KEYS if not k.endswith("_x")}) > 1
        or lengths["mean_x"] != lengths["var_x"]
    ):
        raise ValueError(
            f"stats: expected one T_max for the statistics of h U and c, and one "
            f"for those of x W, got lengths {lengths}"
        )
    if x_stats == "shared" and lengths["mean_x"] != 1:
        raise ValueError(
            f"stats['mean_x']: x_stats='shared' uses one set of statistics for "
            f"all timesteps, expected shape (1, {4 * H}), got "
            f"{stats['mean_x'].shape}"
        )
    return {k: np.ascontiguousarray(stats[k], dtype=dtype) for k in STAT_KEYS}
