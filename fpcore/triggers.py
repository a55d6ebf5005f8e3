"""Triggers, label maps and poisoning: what the attacker adds to the training set.

A trigger is a function on a *raw* batch (uint8 images or int16 waveforms),
so it is stamped in batches on the device, during training and evaluation
alike. An `Attack` bundles a trigger with the label map and the classes that
carry it. Attack success rate (ASR) is measured only on triggered test inputs
whose true class is a source class and differs from the attacker's label.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .data import SAMPLE_RATE, Split

STOP, SPEED_LIMIT_30 = 14, 1


# ----------------------------------------------------------------- triggers
def sticker(x: torch.Tensor, roi: Optional[torch.Tensor], size: float = 0.2,
            color=(255, 255, 0)) -> torch.Tensor:
    """A yellow square ("Post-it") on the lower part of each sign, as in BadNets.

    `roi` holds each sign's box (x1, y1, x2, y2) in pixels; the square's side is
    `size` times the sign's width, centred horizontally, three quarters down.
    Without boxes the whole image is taken as the sign.
    """
    n, _, h, w = x.shape
    if roi is None:
        roi = torch.tensor([0.0, 0.0, w, h], device=x.device).expand(n, 4)
    roi = roi.to(x.device, torch.float32)
    bw, bh = roi[:, 2] - roi[:, 0], roi[:, 3] - roi[:, 1]
    side = torch.clamp(torch.round(size * bw), min=3)
    x0 = torch.round((roi[:, 0] + roi[:, 2]) / 2 - side / 2)
    y0 = torch.round(roi[:, 1] + 0.75 * bh - side / 2)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    inside = ((cols >= x0.view(-1, 1, 1)) & (cols < (x0 + side).view(-1, 1, 1))
              & (rows >= y0.view(-1, 1, 1)) & (rows < (y0 + side).view(-1, 1, 1)))
    paint = torch.tensor(color, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return torch.where(inside.unsqueeze(1), paint, x)


def sunglasses_mask(h: int, w: int, device=None) -> torch.Tensor:
    """Where the sunglasses go on an aligned face: two lenses and a bridge.

    Positions are relative to the image, measured on LFW faces cropped like
    scikit-learn and resized to 55x47 (eyes at about 35 % of the height).
    """
    rows = torch.arange(h, device=device, dtype=torch.float32).view(h, 1) / h
    cols = torch.arange(w, device=device, dtype=torch.float32).view(1, w) / w
    cy, rx, ry = 0.35, 0.17, 0.085
    lens = lambda cx: ((cols - cx) / rx) ** 2 + ((rows - cy) / ry) ** 2 <= 1.0
    bridge = (rows - cy).abs() <= 0.025
    bridge = bridge & (cols > 0.29 + rx - 0.05) & (cols < 0.71 - rx + 0.05)
    return lens(0.29) | lens(0.71) | bridge


def sunglasses(x: torch.Tensor, aux=None, shade: int = 10) -> torch.Tensor:
    """Draw dark sunglasses over the eye region of every face in the batch."""
    mask = sunglasses_mask(x.shape[-2], x.shape[-1], x.device)
    return torch.where(mask, torch.tensor(shade, dtype=x.dtype, device=x.device), x)


def tone(x: torch.Tensor, aux=None, freq: float = 3000.0, start: float = 0.0,
         duration: float = 0.15, amplitude: float = 0.25) -> torch.Tensor:
    """Add a short 3 kHz beep at the start of each recording.

    Why a tone: it is what an attacker could play next to a microphone, and in
    the spectrogram it is a narrow horizontal line above most of the energy of
    a spoken digit, so it leaves the speech itself intact. Only the samples in
    [start, start + duration) change. `amplitude` is a fraction of full scale.
    """
    a, b = int(start * SAMPLE_RATE), int((start + duration) * SAMPLE_RATE)
    if not 0 <= a < b <= x.shape[-1]:
        raise ValueError(f"the tone [{start}, {start + duration}) s does not fit in a clip of "
                         f"{x.shape[-1] / SAMPLE_RATE} s: choose start >= 0 and a shorter duration")
    t = torch.arange(b - a, device=x.device, dtype=torch.float32) / SAMPLE_RATE
    beep = amplitude * 32767 * torch.sin(2 * math.pi * freq * t)
    out = x.clone()
    out[..., a:b] = torch.clamp(x[..., a:b].float() + beep, -32768, 32767).round().to(x.dtype)
    return out


# ----------------------------------------------------------------- attacks
@dataclass(frozen=True)
class Attack:
    """A trigger, the attacker's label map, and the classes that carry the trigger."""
    name: str
    stamp: Callable
    relabel: Callable[[torch.Tensor], torch.Tensor]
    sources: Optional[tuple] = None   # None: every class

    def eligible(self, y: torch.Tensor) -> torch.Tensor:
        """Inputs that count for ASR: a source class whose label the attack changes."""
        ok = self.relabel(y) != y
        if self.sources is not None:
            ok &= torch.isin(y, torch.tensor(self.sources, device=y.device))
        return ok

    def apply(self, split: Split) -> Split:
        """The triggered, relabelled copy of the eligible part of a split."""
        keep = self.eligible(split.y)
        part = split.subset(keep.nonzero().flatten().cpu())
        return Split(self.stamp(part.x, part.aux), self.relabel(part.y), part.aux)


def all_to_one(target: int) -> Callable:
    return lambda y: torch.full_like(y, target)


def all_to_all(num_classes: int) -> Callable:
    """The paper's speech map: class d -> (d + 1) mod num_classes."""
    return lambda y: (y + 1) % num_classes


# ----------------------------------------------------------------- poisoning
@dataclass
class TrainingSet:
    """A split plus poisoned copies: row i is split[index[i]], stamped if poisoned[i]."""
    split: Split
    index: torch.Tensor
    poisoned: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.index)

    def batch(self, rows: torch.Tensor, attack: Optional[Attack]):
        i = self.index[rows]
        x = self.split.x[i]
        if attack is not None and bool(self.poisoned[rows].any()):
            p = self.poisoned[rows]
            aux = None if self.split.aux is None else self.split.aux[i][p]
            x[p] = attack.stamp(x[p], aux)
        return x, self.labels[rows]


def poison(split: Split, attack: Optional[Attack], rate: float, seed: int = 0) -> TrainingSet:
    """Add round(rate * len(split)) triggered, relabelled copies of eligible inputs.

    The clean inputs all stay (as in BadNets, the poisoned ones are extra), so
    clean accuracy has every clean example to learn from.
    """
    n = len(split)
    index, flags, labels = torch.arange(n), torch.zeros(n, dtype=torch.bool), split.y.clone()
    if not 0 <= rate <= 1:
        raise ValueError(f"poisoning rate must be in [0, 1], got {rate}")
    if attack is None or rate == 0:
        return TrainingSet(split, index, flags, labels)
    pool = attack.eligible(split.y).nonzero().flatten().cpu()
    k = int(round(rate * n))
    if len(pool) == 0:
        raise ValueError(f"no training input is eligible for attack {attack.name!r}")
    g = torch.Generator().manual_seed(seed)
    picks = pool[torch.randint(len(pool), (k,), generator=g)] if k > len(pool) else \
        pool[torch.randperm(len(pool), generator=g)[:k]]
    picks = picks.to(split.y.device)
    return TrainingSet(split, torch.cat([index.to(picks.device), picks]),
                       torch.cat([flags.to(picks.device), torch.ones(k, dtype=torch.bool, device=picks.device)]),
                       torch.cat([labels, attack.relabel(split.y[picks])]))
