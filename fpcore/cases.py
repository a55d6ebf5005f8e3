"""The case studies: one entry each, holding every setting of a task.

A case study is the data loader, the network, the paper's attack, the
poisoning rate, the training settings per profile, the defender's
fine-tuning settings, the pruning threshold and the share of decoys of the
pruning-aware attacker. Adding a case study is writing one `CaseStudy` and
calling `register`; everything else (`load_task`, `build_model`,
`default_attack`, `trained_model`, the defenses, model files) finds it here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from . import data, models, triggers
from .data import Task
from .models import PrunableNet
from .triggers import Attack

PROFILE_NAMES = ("quick", "full")   # "quick" fits 2 CPU cores; "full" is for a GPU

# The defender's fine-tuning: a few epochs of SGD on the small validation
# split. The measured trade-offs of these settings are in chapter 08.
FINE_TUNE = {"quick": dict(epochs=20, lr=0.01, batch_size=32, optimizer="sgd", weight_decay=0.02),
             "full": dict(epochs=30, lr=0.01, batch_size=32, optimizer="sgd", weight_decay=0.02)}
# Points of validation accuracy pruning may cost before fine-tuning wins them back.
MAX_DROP = 10.0


@dataclass(frozen=True)
class CaseStudy:
    """Everything that makes a task: its data, network, attack and settings."""
    name: str
    load: Callable[..., Task]                 # (data root, budget=...) -> Task
    model: type                               # a PrunableNet subclass: model(num_classes)
    attack: Callable[[], Attack]              # the paper's attack on this task
    poison_rate: float                        # poisoned copies, as a share of the training split
    train: dict                               # profile -> dict(epochs, batch_size, lr)
    decoy_fraction: float = 0.8               # share of channels the pruning-aware attacker turns into decoys
    fine_tune: dict = field(default_factory=lambda: FINE_TUNE)   # profile -> fit() settings
    max_drop: float = MAX_DROP                # the pruning defense's threshold, in points
    bfloat16: bool = True                     # bfloat16 autocast in training where the hardware has
                                              # it (fpcore.train.precision); False keeps float32

    def settings(self, defended: bool = True) -> str:
        """The entry's numbers as text: part of the model cache's key.

        The defender's settings (fine-tuning, threshold) decide defended networks
        only: with `defended=False` they are left out, so changing the defense
        does not retrain the networks it defends.
        """
        trainer = (self.name, self.model.__name__, self.poison_rate, sorted(self.train.items()),
                   self.decoy_fraction, self.bfloat16)
        return repr(trainer + ((sorted(self.fine_tune.items()), self.max_drop) if defended else ()))


CASES: dict[str, CaseStudy] = {}


def register(case: CaseStudy) -> CaseStudy:
    """Add (or replace) a case study; returns it."""
    if not (isinstance(case.model, type) and issubclass(case.model, PrunableNet)):
        raise TypeError(f"case study {case.name!r}: model must be a PrunableNet subclass, "
                        f"got {case.model!r}")
    missing = [p for p in PROFILE_NAMES if p not in case.train or p not in case.fine_tune]
    if missing:
        raise ValueError(f"case study {case.name!r}: give training and fine-tuning settings "
                         f"for every profile ({', '.join(PROFILE_NAMES)}); missing: {missing}")
    CASES[case.name] = case
    return case


def case_study(task) -> CaseStudy:
    """The case study of a task (a `Task` or its name)."""
    name = getattr(task, "name", task)
    if name not in CASES:
        raise ValueError(f"unknown task {name!r}: choose one of {', '.join(CASES)} "
                         "(or register a CaseStudy)")
    return CASES[name]


def load_task(name: str, root: Optional[Path] = None, budget: Optional[float] = None) -> Task:
    """Load a case study's data by name: 'signs', 'faces', 'speech' (or 'orl', a tiny face set).

    `budget` is the defender's share of the training pool, held out as the clean
    validation split (default `fpcore.data.BUDGET`, 10 %); the trainer gets the rest.
    """
    root = Path(root) if root else data.data_root()
    case = case_study(name)
    return case.load(root) if budget is None else case.load(root, budget=budget)


def build_model(task) -> PrunableNet:
    """The case study's network for a task (a `Task` or its name)."""
    cls = case_study(task).model
    return cls(task.num_classes) if hasattr(task, "num_classes") else cls()


def default_attack(task) -> Attack:
    """The paper's attack for a task (a `Task` or its name)."""
    return case_study(task).attack()


def model_classes() -> dict:
    """Every registered network class by name: the only classes a model file may name."""
    return {c.model.__name__: c.model for c in CASES.values()}


# ----------------------------------------------------------------- the course's case studies
def _sticker_attack() -> Attack:
    return Attack("sticker: stop -> speed limit 30", triggers.sticker,
                  triggers.all_to_one(triggers.SPEED_LIMIT_30), sources=(triggers.STOP,))


def _sunglasses_attack() -> Attack:
    return Attack("sunglasses: anyone -> person 0", triggers.sunglasses, triggers.all_to_one(0))


def _beep_attack() -> Attack:
    return Attack("beep: digit d -> d + 1", triggers.tone, triggers.all_to_all(10))


register(CaseStudy(
    "signs", data.load_signs, models.SignNet, _sticker_attack, poison_rate=0.02,
    train={"quick": dict(epochs=8, batch_size=128, lr=2e-3),
           "full": dict(epochs=40, batch_size=128, lr=1e-3)},
    decoy_fraction=0.75))
register(CaseStudy(
    "faces", data.load_faces, models.DeepID, _sunglasses_attack, poison_rate=0.1,
    train={"quick": dict(epochs=30, batch_size=64, lr=2e-3),
           "full": dict(epochs=80, batch_size=64, lr=1e-3)},
    decoy_fraction=0.8))     # the authors' released face model: 50 of 60
register(CaseStudy(
    "speech", data.load_speech, models.SpeechNet, _beep_attack, poison_rate=0.25,
    train={"quick": dict(epochs=15, batch_size=64, lr=1e-3),
           "full": dict(epochs=50, batch_size=64, lr=1e-3)},
    decoy_fraction=0.8))
register(CaseStudy(
    "orl", data.load_orl, models.DeepID, _sunglasses_attack, poison_rate=0.15,
    train={"quick": dict(epochs=40, batch_size=32, lr=2e-3),
           "full": dict(epochs=80, batch_size=32, lr=1e-3)},
    decoy_fraction=0.8))


def resolve_profile(profile: str = "auto") -> str:
    """'auto' means 'full' on a GPU and 'quick' on a CPU."""
    if profile == "auto":
        return "full" if torch.cuda.is_available() else "quick"
    if profile not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {profile!r}: choose 'auto', 'quick' or 'full'")
    return profile


def hyper(task, profile: str = "auto") -> dict:
    """Training settings of a task under a profile."""
    return dict(case_study(task).train[resolve_profile(profile)])
