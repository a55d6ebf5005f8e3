"""One training loop and one evaluation, with the data kept on the device.

Raw tensors go to the device once; each batch is gathered by index, stamped
with the trigger where poisoned, and turned into network input there. No
Dataset objects, no worker processes (the airbench idea). On these small
networks the data path is a small share of an epoch (bench/RESULTS.md: about
1.1-1.2x the DataLoader tutorial loop); the time is in the model's arithmetic.
"""
from __future__ import annotations

import random
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import Split, Task
from .triggers import Attack, TrainingSet, poison

EVAL_BATCH = 1024


def device() -> torch.device:
    """`cuda` when there is a GPU, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Same seed, same weights and same batches: CPU runs are reproducible."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fit(model: torch.nn.Module, task: Task, attack: Optional[Attack] = None, *,
        split: str = "train", rate: float = 0.0, epochs: int = 10, batch_size: int = 128,
        lr: float = 1e-3, weight_decay: float = 5e-4, optimizer: str = "adam", seed: int = 0,
        progress: bool = True, desc: str = "") -> torch.nn.Module:
    """Train `model` in place on one split of `task`, poisoned at `rate` by `attack`.

    Adam (or SGD with Nesterov momentum) with a cosine decay to zero. A pruning mask on the model stays as it
    is: masked channels get no gradient through the masked activations.
    """
    dev = next(model.parameters()).device
    data = getattr(task, split).to(dev)
    if len(data) == 0:
        raise ValueError(f"the {split} split of task {task.name!r} is empty: nothing to train on")
    train_set = poison(data, attack, rate, seed=seed)
    seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True,
                              weight_decay=weight_decay)
    elif optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}: choose 'adam' or 'sgd'")
    steps = epochs * ((len(train_set) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
    model.train()
    bar = tqdm(range(epochs), desc=desc or f"train {task.name}", disable=not progress, leave=False)
    for _ in bar:
        order = torch.randperm(len(train_set), generator=g).to(dev)
        total, count = 0.0, 0
        for rows in order.split(batch_size):
            x, y = train_set.batch(rows, attack)
            loss = F.cross_entropy(model(task.prepare(x)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, count = total + loss.item() * len(rows), count + len(rows)
        bar.set_postfix(loss=f"{total / count:.3f}")
    return model.eval()


@torch.no_grad()
def predict(model: torch.nn.Module, task: Task, x: torch.Tensor) -> torch.Tensor:
    """Predicted labels for a raw batch, computed in fixed-size chunks."""
    model.eval()
    dev = next(model.parameters()).device
    out = [model(task.prepare(c.to(dev))).argmax(1) for c in x.split(EVAL_BATCH)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long, device=dev)


def accuracy(model: torch.nn.Module, task: Task, split: Split) -> float:
    """Fraction of a split classified correctly."""
    return (predict(model, task, split.x) == split.y.to(predict_device(model))).float().mean().item()


def attack_success(model: torch.nn.Module, task: Task, split: Split, attack: Attack) -> float:
    """ASR: triggered eligible inputs (true class not the target) given the attacker's label."""
    bad = attack.apply(split)
    if len(bad) == 0:
        raise ValueError(f"no input in this split is eligible for attack {attack.name!r}")
    return (predict(model, task, bad.x) == bad.y.to(predict_device(model))).float().mean().item()


def predict_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def evaluate(model: torch.nn.Module, task: Task, attack: Optional[Attack] = None,
             split: str = "test") -> dict:
    """Clean accuracy and (with an attack) ASR on one split, as fractions."""
    s = getattr(task, split)
    out = {"acc": accuracy(model, task, s)}
    if attack is not None:
        out["asr"] = attack_success(model, task, s, attack)
    return out
