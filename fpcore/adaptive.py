"""The pruning-aware attack: an attacker who knows the defender will prune.

1. Train on clean data. 2. Prune the channels that are dormant on clean data.
3. Retrain the pruned network on poisoned data, so the backdoor has to live in
the channels clean inputs use. 4. Put the pruned channels back as decoys with
a bias so negative they never fire. Pruning then removes the harmless decoys
first and reaches clean accuracy before it touches the backdoor.
"""
from __future__ import annotations

import copy

import torch

from .data import Task
from .models import PrunableNet, site_conv
from .prune import channel_activity, k_for_fraction, mask_after, prune_order
from .triggers import Attack
from .train import fit

DECOY_BIAS = -1e20   # the authors' released face model uses the same value


def pruning_aware_attack(clean_model: PrunableNet, task: Task, attack: Attack, *,
                         fraction: float = 0.8, rate: float = 0.1, epochs: int = 10,
                         batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                         progress: bool = True) -> tuple[PrunableNet, torch.Tensor]:
    """Return the backdoored network and the indices of its decoy channels.

    The attacker ranks channels on its own clean training data and prunes
    `fraction` of them before retraining on poisoned data.
    """
    model = copy.deepcopy(clean_model)
    order = prune_order(channel_activity(model, task, "train"))
    decoys = order[: k_for_fraction(model, fraction)]
    model.mask.copy_(mask_after(model, order, len(decoys)))
    fit(model, task, attack, rate=rate, epochs=epochs, batch_size=batch_size, lr=lr,
        seed=seed, progress=progress, desc=f"pruning-aware {task.name}")
    return make_decoys(model, decoys), decoys


@torch.no_grad()
def make_decoys(model: PrunableNet, channels: torch.Tensor) -> PrunableNet:
    """Unmask `channels` and give them a bias so negative that ReLU always outputs 0."""
    site_conv(model).bias[channels.to(model.mask.device)] = DECOY_BIAS
    model.mask.fill_(1.0)
    return model
