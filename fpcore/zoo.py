"""Trained models by name: the clean model, the backdoored one, the pruning-aware one,
and each of them after each defense.

Each is trained once per (task, profile, seed, code version) and cached, so
every chapter can ask for what it needs and runs alone in a fresh runtime.
"""
from __future__ import annotations

from .adaptive import pruning_aware_attack
from .data import Task
from .defenses import fine_prune, fine_tune, prune_defense
from .models import PrunableNet, build_model
from .store import cached
from .train import POISON_RATE, device, fit, hyper, resolve_profile, seed_everything
from .triggers import default_attack

KINDS = ("clean", "badnet", "pruning_aware")
DEFENSES = ("pruning", "fine_tuning", "fine_pruning")
# Share of channels the pruning-aware attacker turns into decoys (authors' faces: 50 of 60).
DECOY_FRACTION = {"signs": 0.75, "faces": 0.8, "orl": 0.8, "speech": 0.8}


def trained_model(task: Task, kind: str = "badnet", profile: str = "auto", seed: int = 0,
                  progress: bool = True) -> PrunableNet:
    """The `kind` model of a task: from the cache, or trained now and cached."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}: choose one of {', '.join(KINDS)}")
    profile = resolve_profile(profile)
    h = hyper(task.name, profile)
    attack = default_attack(task)

    def train():
        if kind == "pruning_aware":
            clean = trained_model(task, "clean", profile, seed, progress)
            return pruning_aware_attack(clean, task, attack, fraction=DECOY_FRACTION[task.name],
                                        rate=POISON_RATE[task.name], seed=seed,
                                        progress=progress, **h)[0]
        seed_everything(seed)
        model = build_model(task).to(device())
        return fit(model, task, attack if kind == "badnet" else None,
                   rate=POISON_RATE[task.name], seed=seed, progress=progress,
                   desc=f"{kind} {task.name}", **h)

    return cached(task.name, kind, profile, seed, train, device()).to(device())


def defended_model(task: Task, kind: str = "badnet", defense: str = "fine_pruning",
                   profile: str = "auto", seed: int = 0, progress: bool = True) -> PrunableNet:
    """The `kind` model of a task after a defense with the default settings, cached.

    Chapters 08, 09 and 10 all report the same defended networks; the cache
    makes the second and third ask free. `model.pruned` is the channels pruned.
    Defenses with other settings: call `fine_tune`, `prune_defense` or `fine_prune`.
    """
    if defense not in DEFENSES:
        raise ValueError(f"unknown defense {defense!r}: choose one of {', '.join(DEFENSES)}")
    profile = resolve_profile(profile)
    received = trained_model(task, kind, profile, seed, progress)

    def defend():
        if defense == "pruning":
            return prune_defense(received, task).model
        if defense == "fine_tuning":
            return fine_tune(received, task, profile=profile, seed=seed, progress=progress)
        return fine_prune(received, task, profile=profile, seed=seed, progress=progress).model

    return cached(task.name, f"{kind}+{defense}", profile, seed, defend, device()).to(device())
