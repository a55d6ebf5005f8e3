"""The pruning defense: rank channels by how active they are on clean data, cut the dormant ones.

The ranking is computed once, so the activations at the prune site are too:
the sweep runs the trunk once per evaluation set, then walks k = C..0 putting
one channel back at a time. The head's first layers (the model's
`head_linear`) are affine in the activations, so putting a channel back only
adds its share to their output (`PrunableNet.linear_maps`); `head_rest` then
runs again, and only on the inputs where that channel is active. Public
toolkits re-run the whole network for every k; `naive_prune_curve` does
exactly that, for tests and benchmarks. The two round differently in float32,
which could only matter where the two largest logits nearly tie; those few
inputs are predicted again the naive way, so the curves are the same
(asserted by the tests and the benchmark).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from .data import Task
from .models import PrunableNet, require_prunable
from .train import EVAL_BATCH, eval_input
from .triggers import Attack


@torch.no_grad()
def site_activations(model: PrunableNet, task: Task, x: torch.Tensor) -> torch.Tensor:
    """Unmasked activations at the prune site for a raw batch, in fixed-size chunks."""
    model.eval()
    dev = model.mask.device
    return torch.cat([model.trunk(eval_input(task, c.to(dev))) for c in x.split(EVAL_BATCH)])


def channel_activity(model: PrunableNet, task: Task, split: str = "val",
                     attack: Optional[Attack] = None) -> torch.Tensor:
    """Mean activation of every channel at the prune site, over images and positions.

    The defender calls this on the clean validation split. With `attack`, the
    triggered copy of the split is used instead (to *look* at the backdoor).
    """
    require_prunable(model)
    s = getattr(task, split)
    if len(s) == 0:
        raise ValueError(f"the {split} split of task {task.name!r} is empty: cannot rank channels")
    if attack is not None:
        s = attack.apply(s)
    a = site_activations(model, task, s.x) * model.mask.view(1, -1, 1, 1)
    return a.mean(dim=(0, 2, 3)).cpu()


def prune_order(activity: torch.Tensor) -> torch.Tensor:
    """Channels from least to most active (ties keep channel order)."""
    return torch.sort(activity, stable=True).indices


def mask_after(model: PrunableNet, order: torch.Tensor, k: int) -> torch.Tensor:
    """The model's mask with the first k channels of `order` also switched off."""
    if not 0 <= k <= model.channels:
        raise ValueError(f"k must be in [0, {model.channels}], got {k}")
    m = model.mask.clone()
    m[order[:k].to(m.device)] = 0
    return m


def prune(model: PrunableNet, order: torch.Tensor, k: int) -> PrunableNet:
    """A copy of `model` with the k least active channels masked."""
    pruned = copy.deepcopy(require_prunable(model))
    pruned.mask.copy_(mask_after(model, order, k))
    return pruned


def k_for_fraction(model: PrunableNet, fraction: float) -> int:
    """Number of channels for a fraction of the prune site."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"pruning fraction must be in [0, 1], got {fraction}")
    return int(round(fraction * require_prunable(model).channels))


@dataclass
class PruneCurve:
    """Accuracy (and ASR) for every number of pruned channels k = 0..C, as fractions."""
    order: torch.Tensor
    k: np.ndarray
    acc: dict = field(default_factory=dict)   # split name -> array over k
    asr: Optional[np.ndarray] = None          # on the triggered test split

    @property
    def fraction(self) -> np.ndarray:
        return self.k / self.k[-1]


def _eval_sets(task: Task, attack: Optional[Attack], splits) -> dict:
    sets = {s: getattr(task, s) for s in splits}
    if attack is not None and "test" in splits:
        sets["asr"] = attack.apply(task.test)
        if len(sets["asr"]) == 0:
            raise ValueError(f"no test input is eligible for attack {attack.name!r}: ASR is undefined")
    return sets


def _curve(order, n, results) -> PruneCurve:
    acc = {s: np.array(v) for s, v in results.items() if s != "asr"}
    asr = np.array(results["asr"]) if "asr" in results else None
    return PruneCurve(order.cpu(), np.arange(n + 1), acc, asr)


def splits_head(model: PrunableNet) -> bool:
    """True when the model's head is `head_rest(head_linear(a))` (every fpcore model)."""
    cls = type(model)
    return cls.head is PrunableNet.head and cls.head_rest is not PrunableNet.head_rest


def _unflatten(z: torch.Tensor, shapes) -> tuple:
    out, i = [], 0
    for s in shapes:
        out.append(z[:, i:i + s.numel()].view(-1, *s))
        i += s.numel()
    return tuple(out)


NEAR_TIE = 1e-4   # relative gap of the two largest logits below which a prediction is redone
                  # (the shortcut's logits differ from the naive ones by < 4e-6 relative, measured)


def _predict_rows(model, z, shapes, a, order, k, rows=None):
    """Predictions from head_linear's outputs `z` with k channels pruned (of `rows`, or all).

    Where the two largest logits nearly tie, the rounding of the shortcut
    could decide: those inputs are predicted again the naive way,
    head(a * mask), so the curve is the naive sweep's.
    """
    logits = model.head_rest(_unflatten(z, shapes))
    top, pred = logits.max(1)
    second = logits.scatter(1, pred[:, None], float("-inf")).max(1).values     # (faster than topk)
    near = ((top - second) <= NEAR_TIE * (1 + top.abs())).nonzero().flatten()
    if len(near):
        which = near if rows is None else rows[near]
        m = mask_after(model, order, k).view(1, -1, 1, 1)
        pred[near] = model.head(a[which] * m).argmax(1)
    return pred


def _correct_per_k(model: PrunableNet, a: torch.Tensor, y: torch.Tensor, order: torch.Tensor,
                   maps=None) -> torch.Tensor:
    """Correct predictions for every k = 0..C on unmasked activations `a`, labels `y`.

    Walks k = C..0, putting channel order[k] back at each step: head_linear's
    output gains that channel's share (`maps`), and only the inputs on which
    the channel is active (not exactly zero) get new predictions.
    """
    n = model.channels
    right = torch.zeros(n + 1, dtype=torch.long, device=a.device)
    if maps is None:                      # a model that only writes `head`: run it for every k
        for k in range(n + 1):
            m = mask_after(model, order, k).view(1, -1, 1, 1)
            right[k] = (model.head(a * m).argmax(1) == y).sum()
        return right
    maps, shapes = maps
    mask, back = model.mask.tolist(), order[:n].tolist()
    # k = C: head_linear on the fully pruned activations, exactly as the naive sweep computes it
    z = torch.cat([t.flatten(1) for t in
                   model.head_linear(a * mask_after(model, order, n).view(1, -1, 1, 1))], 1)
    pred = _predict_rows(model, z, shapes, a, order, n)
    right[n] = (pred == y).sum()
    acts = a.transpose(0, 1).reshape(n, len(a), -1)            # channel, input, position
    for k in range(n - 1, -1, -1):
        c = back[k]
        rows = acts[c].ne(0).any(1).nonzero().flatten() if mask[c] else ()
        if len(rows) == len(a):
            z.addmm_(acts[c], maps[c], alpha=mask[c])
            pred = _predict_rows(model, z, shapes, a, order, k)
        elif len(rows):
            zr = z[rows].addmm_(acts[c][rows], maps[c], alpha=mask[c])
            z[rows] = zr
            pred[rows] = _predict_rows(model, zr, shapes, a, order, k, rows)
        right[k] = (pred == y).sum()
    return right


@torch.no_grad()
def prune_curve(model: PrunableNet, task: Task, attack: Optional[Attack] = None,
                order: Optional[torch.Tensor] = None, splits=("val", "test")) -> PruneCurve:
    """Sweep k = 0..C: trunk once per evaluation set, then one channel's share per k.

    `order` defaults to the ranking on the clean validation split. ASR is
    measured on the triggered test split when `attack` is given and "test"
    is among `splits` (the defender's own sweep uses splits=("val",)).
    """
    require_prunable(model).eval()
    order = prune_order(channel_activity(model, task)) if order is None else order
    order = order.to(model.mask.device)
    sets = _eval_sets(task, attack, splits)
    results, maps = {}, None
    for name, s in sets.items():
        right = torch.zeros(model.channels + 1, dtype=torch.long, device=model.mask.device)
        for x, y in zip(s.x.split(EVAL_BATCH), s.y.split(EVAL_BATCH)):
            a = site_activations(model, task, x)
            if maps is None and splits_head(model):
                maps = (model.linear_maps(*a.shape[2:]),
                        [t.shape[1:] for t in model.head_linear(a[:1])])
            right += _correct_per_k(model, a, y.to(a.device), order, maps)
        results[name] = (right.float() / len(s)).tolist()     # as (pred == y).float().mean()
    return _curve(order, model.channels, results)


@torch.no_grad()
def naive_prune_curve(model: PrunableNet, task: Task, attack: Optional[Attack] = None,
                      order: Optional[torch.Tensor] = None, splits=("val", "test")) -> PruneCurve:
    """The usual way: mask k channels and re-run the whole network, for every k."""
    from .train import predict
    order = prune_order(channel_activity(model, task)) if order is None else order
    sets = _eval_sets(task, attack, splits)
    results = {name: [] for name in sets}
    for k in range(model.channels + 1):
        pruned = prune(model, order, k)
        for name, s in sets.items():
            results[name].append((predict(pruned, task, s.x) == s.y.to(model.mask.device)).float().mean().item())
    return _curve(order, model.channels, results)


def choose_k(val_acc, max_drop: float) -> int:
    """Prune until validation accuracy falls more than `max_drop` points below its start.

    Returns the largest k such that no k' <= k dropped more than the threshold:
    the defender prunes one channel at a time and stops at the first violation,
    so the returned network never violates it.
    """
    if max_drop < 0:
        raise ValueError(f"the accuracy-drop threshold must be >= 0 points, got {max_drop}")
    acc = np.asarray(val_acc, dtype=float)
    if acc.size == 0:
        raise ValueError("empty validation-accuracy curve")
    bad = np.nonzero((acc[0] - acc) * 100 > max_drop + 1e-9)[0]
    return int(bad[0] - 1) if bad.size else int(acc.size - 1)
