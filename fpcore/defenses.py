"""The defender's three moves: prune, fine-tune, and fine-prune (prune, then fine-tune).

The defender holds the received network and the clean validation split, and
nothing else: ranking, the stopping point and fine-tuning all read `task.val`
only. The test split is for the final report, by the caller. Every defense
returns a `Defended`: the network, the channels pruned, the validation sweep.
The settings (fine-tuning recipe, pruning threshold) come from the task's
case study in `fpcore.cases`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

from .cases import case_study, resolve_profile
from .data import Task
from .models import PrunableNet, require_prunable
from .prune import PruneCurve, channel_activity, choose_k, prune, prune_curve, prune_order
from .train import fit


@dataclass
class Defended:
    """What a defense returns: the network, how many channels it pruned, and the
    validation sweep that chose that number (None when nothing was swept)."""
    model: PrunableNet
    k: int
    curve: Optional[PruneCurve] = None


def prune_defense(model: PrunableNet, task: Task, max_drop: Optional[float] = None) -> Defended:
    """Rank on clean validation data, prune while validation accuracy holds.

    `max_drop` (points) defaults to the case study's threshold.
    """
    max_drop = case_study(task).max_drop if max_drop is None else max_drop
    order = prune_order(channel_activity(require_prunable(model), task, "val"))
    curve = prune_curve(model, task, order=order, splits=("val",))
    k = choose_k(curve.acc["val"], max_drop)
    return Defended(prune(model, order, k), k, curve)


def fine_tune(model: PrunableNet, task: Task, *, profile: str = "auto", seed: int = 0,
              progress: bool = True, **overrides) -> Defended:
    """Continue training a copy of `model` on the validation split, with a small step.

    Masks stay applied, so a fine-tuned pruned network stays pruned. Keyword
    arguments override the case study's settings (epochs, lr, optimizer, ...).
    """
    settings = {**case_study(task).fine_tune[resolve_profile(profile)], **overrides}
    tuned = fit(copy.deepcopy(require_prunable(model)), task, split="val", seed=seed,
                progress=progress, desc=f"fine-tune {task.name}", **settings)
    return Defended(tuned, tuned.pruned)


def fine_prune(model: PrunableNet, task: Task, max_drop: Optional[float] = None, *,
               profile: str = "auto", seed: int = 0, progress: bool = True,
               **overrides) -> Defended:
    """Fine-pruning: prune to the threshold, then fine-tune the pruned network."""
    pruned = prune_defense(model, task, max_drop)
    tuned = fine_tune(pruned.model, task, profile=profile, seed=seed, progress=progress,
                      **overrides)
    return Defended(tuned.model, pruned.k, pruned.curve)
