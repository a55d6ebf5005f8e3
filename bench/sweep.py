"""The pruning sweep: fpcore's cached sweep against the naive one, and the floor.

fpcore.prune_curve runs the layers up to the prune site (the trunk) once per
evaluation set, then only the head for every k = 0..C. fpcore.naive_prune_curve
is the way public toolkits do it: mask k channels and re-run the whole network
on every evaluation set, for every k. Both get the same ranking (computed once
on the clean validation split, outside the timings) and evaluate the same sets:
validation, test and the triggered test inputs (for ASR). The floor is one pass
of the trunk over those same sets: no sweep can cost less.
"""
from __future__ import annotations

import numpy as np
import torch

import fpcore
from fpcore.prune import site_activations
from fpcore.train import EVAL_BATCH

from .machine import median, timed, timed_cpu


def eval_inputs(task, attack):
    """The raw inputs both sweeps evaluate: validation, test, triggered test."""
    return {"val": task.val.x, "test": task.test.x, "triggered": attack.apply(task.test).x}


def assert_same_curve(a, b, where: str) -> None:
    """The two sweeps must agree exactly: same order, same accuracies, same ASR, every k."""
    assert torch.equal(a.order, b.order), f"{where}: the two sweeps used different channel orders"
    assert np.array_equal(a.k, b.k), f"{where}: different k ranges"
    assert a.acc.keys() == b.acc.keys(), f"{where}: different splits {a.acc.keys()} vs {b.acc.keys()}"
    for s in a.acc:
        diff = np.nonzero(a.acc[s] != b.acc[s])[0]
        assert diff.size == 0, (f"{where}: {s} accuracy differs at k = {diff.tolist()[:10]}: "
                                f"{a.acc[s][diff[:5]]} vs {b.acc[s][diff[:5]]}")
    assert (a.asr is None) == (b.asr is None), f"{where}: only one sweep has an ASR curve"
    if a.asr is not None:
        diff = np.nonzero(a.asr != b.asr)[0]
        assert diff.size == 0, f"{where}: ASR differs at k = {diff.tolist()[:10]}"


def bench_sweep(task, model, repeats: int, log=print) -> dict:
    """Time both sweeps and the floor `repeats` times, interleaved; assert equal curves."""
    attack = fpcore.default_attack(task)
    model.eval()
    order = fpcore.prune_order(fpcore.channel_activity(model, task))
    inputs = eval_inputs(task, attack)

    def floor():
        return [site_activations(model, task, x) for x in inputs.values()]

    floor()                                   # warm-up: first calls allocate and pick kernels
    fast_t, naive_t, floor_t, ratios, fast_c, naive_c = [], [], [], [], [], []
    curve = None
    for r in range(repeats):
        tf, cf, fast = timed_cpu(lambda: fpcore.prune_curve(model, task, attack, order=order))
        tn, cn, naive = timed_cpu(lambda: fpcore.naive_prune_curve(model, task, attack, order=order))
        fast_c.append(cf), naive_c.append(cn)
        t0, _ = timed(floor)
        assert_same_curve(fast, naive, f"{task.name}, repeat {r + 1}")
        if curve is not None:
            assert_same_curve(fast, curve, f"{task.name}, repeat {r + 1} vs repeat 1")
        curve = fast
        fast_t.append(tf), naive_t.append(tn), floor_t.append(t0), ratios.append(tn / tf)
        log(f"  {task.name} repeat {r + 1}/{repeats}: fpcore {tf:.2f} s, naive {tn:.1f} s "
            f"({tn / tf:.1f}x), floor {t0:.2f} s")
    stop = fpcore.choose_k(curve.acc["val"], 10.0)
    layer, chunk_mb = largest_chunk_activation(model, task)
    return {
        "task": task.name,
        "model": type(model).__name__,
        "site": f"{model.site}, {model.channels} channels",
        "k_values": model.channels + 1,
        "sizes": {k: len(v) for k, v in inputs.items()},
        "fast": median(fast_t), "naive": median(naive_t), "floor": median(floor_t),
        "fast_all": fast_t, "naive_all": naive_t, "floor_all": floor_t,
        # ratios are paired: each repeat times both sweeps in turn; the median of those ratios
        "ratio": median(ratios),
        "ratio_range": (min(ratios), max(ratios)),
        "ratio_cpu": median([n / f for n, f in zip(naive_c, fast_c)]),
        "over_floor": median([f / t0 for f, t0 in zip(fast_t, floor_t)]),
        "identical": True,
        "chunk": (layer, chunk_mb),   # reaching here means every assertion held
        "curve_k0": {"val": curve.acc["val"][0], "test": curve.acc["test"][0], "asr": curve.asr[0]},
        "stop_10pt": {"k": stop, "test": curve.acc["test"][stop], "asr": curve.asr[stop]},
    }


@torch.no_grad()
def largest_chunk_activation(model, task):
    """The trunk layer with the largest output, and that output's size (MB) for one evaluation chunk."""
    sizes = {}
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: sizes.__setitem__(name, o.numel()))
             for name, m in model.named_modules() if not list(m.children())]
    try:
        model.trunk(task.prepare(task.val.x[:1]))
    finally:
        for h in hooks:
            h.remove()
    name = max(sizes, key=sizes.get)
    return name, sizes[name] * 4 * EVAL_BATCH / 2**20
