"""The defender's three moves: prune, fine-tune, and fine-prune (prune, then fine-tune).

The defender holds the received network and the clean validation split, and
nothing else: ranking, the stopping point and fine-tuning all read `task.val`
only. The test split is for the final report, by the caller.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

from .data import Task
from .models import PrunableNet, require_prunable
from .prune import PruneCurve, channel_activity, choose_k, prune, prune_curve, prune_order
from .train import fit, resolve_profile

# Fine-tuning is cheap on purpose: a few epochs of SGD on the small validation
# split. Weight decay pulls toward zero the weights that clean data does not
# support, which is where a backdoor hides; the measured trade-offs are in the book.
FINE_TUNE = {"quick": dict(epochs=20, lr=0.01, batch_size=32, optimizer="sgd", weight_decay=0.02),
             "full": dict(epochs=30, lr=0.01, batch_size=32, optimizer="sgd", weight_decay=0.02)}
# Points of validation accuracy pruning may cost before fine-tuning wins them back.
MAX_DROP = 10.0


@dataclass
class Pruned:
    """The result of the pruning defense: the network, k, and the validation curve."""
    model: PrunableNet
    k: int
    curve: PruneCurve


def prune_defense(model: PrunableNet, task: Task, max_drop: float = MAX_DROP) -> Pruned:
    """Rank on clean validation data, prune while validation accuracy holds."""
    order = prune_order(channel_activity(require_prunable(model), task, "val"))
    curve = prune_curve(model, task, order=order, splits=("val",))
    k = choose_k(curve.acc["val"], max_drop)
    return Pruned(prune(model, order, k), k, curve)


def fine_tune(model: PrunableNet, task: Task, *, profile: str = "auto", seed: int = 0,
              progress: bool = True, **overrides) -> PrunableNet:
    """Continue training a copy of `model` on the validation split, with a small step.

    Masks stay applied, so a fine-tuned pruned network stays pruned. Keyword
    arguments override the profile's settings (epochs, lr, optimizer, ...).
    """
    settings = {**FINE_TUNE[resolve_profile(profile)], **overrides}
    tuned = copy.deepcopy(model)
    return fit(tuned, task, split="val", seed=seed, progress=progress,
               desc=f"fine-tune {task.name}", **settings)


def fine_prune(model: PrunableNet, task: Task, max_drop: float = MAX_DROP, *,
               profile: str = "auto", seed: int = 0, progress: bool = True, **overrides) -> Pruned:
    """Fine-pruning: prune to the threshold, then fine-tune the pruned network."""
    pruned = prune_defense(model, task, max_drop)
    tuned = fine_tune(pruned.model, task, profile=profile, seed=seed, progress=progress, **overrides)
    return Pruned(tuned, pruned.k, pruned.curve)
