"""One training loop and one evaluation, with the data kept on the device.

Raw tensors go to the device once; each batch is gathered by index, stamped
with the trigger where poisoned, and turned into network input there. No
Dataset objects, no worker processes (the airbench idea). On these small
networks the data path is a small share of an epoch; the time is in the
model's arithmetic, so that is what the fast path speeds up
(bench/RESULTS.md):

- channels_last: images are stored pixel by pixel with their channels
  together, the layout the CPU's (and GPU's) convolution kernels prefer.
- bfloat16 autocast in training, where the hardware has bfloat16 (CPUs with
  AVX512-BF16 or AMX, GPUs that support it), unless the task's case study
  says `bfloat16=False`. The weights stay float32; evaluation is always
  float32, so a model's metrics do not depend on the machine that scores it.
- the fused optimizer step (one kernel for all parameters; a few % of a step).
- not torch.compile: on the course's CPUs it costs about a minute and a half
  per model to compile and trains no faster afterwards.

One switch: FPCORE_FAST=0 in the environment (or `fit(..., fast=False)`)
turns the fast path off and fpcore computes exactly as before it existed
(contiguous float32). It is on by default: over three seeds per model, its
clean accuracy and ASR matched float32's within the seed-to-seed spread on
every task (bench/RESULTS.md, "Accuracy"). `precision(task)` says what is used.
"""
from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import Split, Task
from .triggers import Attack, TrainingSet, poison

EVAL_BATCH = 1024
FAST_ENV = "FPCORE_FAST"       # FPCORE_FAST=0 turns the fast path off


def device() -> torch.device:
    """`cuda` when there is a GPU, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fast_enabled(fast: Optional[bool] = None) -> bool:
    """The fast path's one switch: `fast` when given, else $FPCORE_FAST (default on)."""
    if fast is not None:
        return bool(fast)
    return os.environ.get(FAST_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def bf16_supported(dev: torch.device) -> bool:
    """Does this device compute bfloat16 natively (so that autocast to it pays)?"""
    dev = torch.device(dev)
    if dev.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if dev.type == "cpu":      # AVX512-BF16 or AMX; elsewhere CPU bfloat16 is emulated and slow
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, c, lambda: False)() for c in checks)
    return False


@dataclass(frozen=True)
class Precision:
    """How fpcore computes: the memory layout of images and the autocast type of training."""
    channels_last: bool = False
    autocast: Optional[torch.dtype] = None       # None: float32
    fused: bool = False                          # the optimizer's fused step

    def __str__(self) -> str:
        kind = "float32" if self.autocast is None else f"{str(self.autocast)[6:]} autocast"
        return (kind + (", channels_last" if self.channels_last else "")
                + (", fused optimizer" if self.fused else ""))

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """A batch of network input in this layout."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def context(self, dev: torch.device):
        """The autocast region of a training step (a no-op for float32)."""
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(dev).type, dtype=self.autocast)


def precision(task, dev=None, fast: Optional[bool] = None) -> Precision:
    """What `fit` uses for `task` on `dev` (default: `device()`): the one place that decides.

    Fast path off: contiguous float32. On: channels_last and the fused
    optimizer step, plus bfloat16 autocast where the device has bfloat16 and
    the task's case study allows it.
    """
    if not fast_enabled(fast):
        return Precision()
    from .cases import CASES          # tasks made by hand (tests) have no case study
    case = CASES.get(getattr(task, "name", task))
    allowed = case.bfloat16 if case is not None else True
    dev = torch.device(device() if dev is None else dev)
    return Precision(True, torch.bfloat16 if allowed and bf16_supported(dev) else None,
                     fused=dev.type in ("cpu", "cuda"))


def eval_input(task: Task, x: torch.Tensor) -> torch.Tensor:
    """A raw batch as network input for evaluation: float32, channels_last on the fast path."""
    return Precision(channels_last=fast_enabled()).input(task.prepare(x))


def seed_everything(seed: int) -> None:
    """Same seed, same weights and same batches: CPU runs are reproducible."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fit(model: torch.nn.Module, task: Task, attack: Optional[Attack] = None, *,
        split: str = "train", rate: float = 0.0, epochs: int = 10, batch_size: int = 128,
        lr: float = 1e-3, weight_decay: float = 5e-4, optimizer: str = "adam", seed: int = 0,
        progress: bool = True, desc: str = "", fast: Optional[bool] = None) -> torch.nn.Module:
    """Train `model` in place on one split of `task`, poisoned at `rate` by `attack`.

    Adam (or SGD with Nesterov momentum) with a cosine decay to zero. A pruning mask on the model stays as it
    is: masked channels get no gradient through the masked activations. `fast=False` (or
    FPCORE_FAST=0) trains in contiguous float32; see `precision`.
    """
    dev = next(model.parameters()).device
    prec = precision(task, dev, fast)
    data = getattr(task, split).to(dev)
    if len(data) == 0:
        raise ValueError(f"the {split} split of task {task.name!r} is empty: nothing to train on")
    train_set = poison(data, attack, rate, seed=seed)
    seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    fused = {"fused": True} if prec.fused else {}
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True,
                              weight_decay=weight_decay, **fused)
    elif optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, **fused)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}: choose 'adam' or 'sgd'")
    steps = epochs * ((len(train_set) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
    if prec.channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    bar = tqdm(range(epochs), desc=desc or f"train {task.name}", disable=not progress, leave=False)
    try:
        for _ in bar:
            order = torch.randperm(len(train_set), generator=g).to(dev)
            total, count = 0.0, 0
            for rows in order.split(batch_size):
                x, y = train_set.batch(rows, attack)
                x = prec.input(task.prepare(x))          # input conversion stays float32
                with prec.context(dev):
                    loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total, count = total + loss.item() * len(rows), count + len(rows)
            bar.set_postfix(loss=f"{total / count:.3f}")
    finally:
        if prec.channels_last:      # hand the model back in the usual layout
            model.to(memory_format=torch.contiguous_format)
    return model.eval()


@torch.no_grad()
def predict(model: torch.nn.Module, task: Task, x: torch.Tensor) -> torch.Tensor:
    """Predicted labels for a raw batch, computed in fixed-size chunks."""
    model.eval()
    dev = next(model.parameters()).device
    out = [model(eval_input(task, c.to(dev))).argmax(1) for c in x.split(EVAL_BATCH)]
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
