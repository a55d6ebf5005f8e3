"""Trained models by name: the clean model, the backdoored one, the pruning-aware one,
and each of them after each defense.

Each is trained once per (task, profile, seed, code, data and settings) and
cached, so every chapter can ask for what it needs and runs alone in a fresh
runtime. Every setting comes from the task's case study (`fpcore.cases`).
"""
from __future__ import annotations

from .adaptive import pruning_aware_attack
from .cases import build_model, case_study, default_attack, hyper, resolve_profile
from .data import Task
from .defenses import fine_prune, fine_tune, prune_defense
from .models import PrunableNet
from .store import cached
from .train import device, fit, seed_everything

KINDS = ("clean", "badnet", "pruning_aware")
DEFENSES = ("pruning", "fine_tuning", "fine_pruning")


def trained_model(task: Task, kind: str = "badnet", profile: str = "auto", seed: int = 0,
                  progress: bool = True) -> PrunableNet:
    """The `kind` model of a task: from the cache, or trained now and cached."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}: choose one of {', '.join(KINDS)}")
    profile = resolve_profile(profile)
    case, h = case_study(task), hyper(task, profile)
    attack = default_attack(task)

    def train():
        if kind == "pruning_aware":
            clean = trained_model(task, "clean", profile, seed, progress)
            return pruning_aware_attack(clean, task, attack, fraction=case.decoy_fraction,
                                        rate=case.poison_rate, seed=seed,
                                        progress=progress, **h)[0]
        seed_everything(seed)
        model = build_model(task).to(device())
        return fit(model, task, attack if kind == "badnet" else None,
                   rate=case.poison_rate, seed=seed, progress=progress,
                   desc=f"{kind} {task.name}", **h)

    return cached(task, kind, profile, seed, train, device()).to(device())


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
    run = {"pruning": lambda: prune_defense(received, task),
           "fine_tuning": lambda: fine_tune(received, task, profile=profile, seed=seed,
                                            progress=progress),
           "fine_pruning": lambda: fine_prune(received, task, profile=profile, seed=seed,
                                              progress=progress)}[defense]
    return cached(task, f"{kind}+{defense}", profile, seed, lambda: run().model,
                  device()).to(device())
