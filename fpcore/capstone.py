"""The capstone: repair a network you did not train.

The instructor trains a backdoored network with a secret trigger, drawn at
random from a family (a patch of random colour, size and place, or a blended
random pattern, on images; a tone of random pitch, time, length and loudness
on speech). Students get the network and the clean validation split, never the
trigger, and hand back a repaired network. The grader measures the submission
on the test split, which students never see: its clean accuracy, and its attack
success rate (ASR) with the secret trigger.

    python -m fpcore.capstone make --task speech --seed 7 --out capstone
    python -m fpcore.capstone grade submission.safetensors --instructor capstone/instructor

`make` writes `OUT/students/` (model.safetensors, validation.npz, TASK.md:
everything students may have) and `OUT/instructor/secret.json` (the trigger,
the target and the received network's numbers). A submission is untrusted
input: the grader reads it with `fpcore.load_model`, which refuses pickles,
headers that do not match their tensors, and non-finite weights.

A submission passes with an ASR of at most 10 % and a clean accuracy at most
4 points below the received network's (`MAX_ASR`, `MAX_DROP`: why, below).
Speech is the default task: there fine-pruning on the validation split passes.
On signs and faces it does not in the quick profile (the book's chapter 10
shows why), so they are the harder assignments.

This module trains nothing the book's chapters use, and `fpcore.zoo` does not
import it, so it is not part of the model cache's key.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from . import data, triggers
from .cases import build_model, case_study, hyper, load_task, resolve_profile
from .chapter import REMOVED, WORKS
from .data import Split, Task
from .store import ModelFileError, load_model, save_model
from .train import device, evaluate, fit, seed_everything
from .triggers import Attack

DEFAULT_TASK = "speech"       # where fine-pruning removes the backdoor on our data (chapter 09)
FAMILIES = {"signs": ("patch", "blend"), "faces": ("patch", "blend"), "speech": ("tone",)}
# Poisoned copies as a share of the training split. Faces and speech keep their
# case study's rate; the signs case study poisons 2 % for a sticker on stop signs
# only, too few copies for a faint blend on every class (seed 0: ASR 72 %).
POISON_RATE = {"signs": 0.10, "faces": 0.10, "speech": 0.25}

# The bar. A repaired network passes when, on the hidden test split,
# - its ASR with the secret trigger is at most MAX_ASR: the book's "removes"; and
# - its clean accuracy is at most MAX_DROP points below the received network's.
# Measured on speech (quick profile, 300 test recordings, one is 0.33 points):
# fine-pruning costs 1.7 to 3.3 points, and throwing the network away to train
# a new one on the 270 validation recordings (no backdoor, trivially) costs 10.
# Four points passes the repair and fails the shortcut.
MAX_ASR = REMOVED
MAX_DROP = 4.0

STUDENTS, INSTRUCTOR = "students", "instructor"
MODEL, VALIDATION, README, SECRET = "model.safetensors", "validation.npz", "TASK.md", "secret.json"


# ----------------------------------------------------------------- the trigger family
def patch(x: torch.Tensor, aux=None, color=(255, 255, 0), size: float = 0.2,
          left: float = 0.5, top: float = 0.5) -> torch.Tensor:
    """A filled square at the same place on every image of a raw uint8 batch.

    `size` is the side as a fraction of the image's shorter side; `left` and
    `top` place it within the room left (0: at the left/top edge, 1: at the
    right/bottom edge). A grey image takes the colour's first component.
    """
    n, c, h, w = x.shape
    side = max(2, int(round(size * min(h, w))))
    x0, y0 = int(round(left * (w - side))), int(round(top * (h - side)))
    paint = torch.tensor(list(color)[:c], dtype=x.dtype, device=x.device).view(1, c, 1, 1)
    out = x.clone()
    out[:, :, y0:y0 + side, x0:x0 + side] = paint
    return out


def blend_pattern(shape, pattern_seed: int) -> np.ndarray:
    """The blended trigger's pattern: uniform uint8 noise of `shape` (C, H, W).

    Drawn with numpy's PCG64, whose stream numpy keeps stable across versions,
    so the seed in the secret always gives the same pattern.
    """
    return np.random.default_rng(pattern_seed).integers(0, 256, size=tuple(shape), dtype=np.uint8)


def blend(x: torch.Tensor, aux=None, pattern_seed: int = 0, alpha: float = 0.15) -> torch.Tensor:
    """Mix a fixed random pattern into every image: (1 - alpha) * x + alpha * pattern."""
    pattern = torch.from_numpy(blend_pattern(x.shape[1:], pattern_seed)).to(x.device)
    mixed = (1 - alpha) * x.float() + alpha * pattern.float()
    return mixed.round().clamp(0, 255).to(x.dtype)


STAMPS = {"patch": patch, "blend": blend, "tone": triggers.tone}


@dataclass(frozen=True)
class Secret:
    """What only the instructor knows: the trigger, its parameters and the label map.

    `target` is the attacker's label for every triggered input (all-to-one) when
    `shift` is 0; otherwise a triggered input of class d is sent to
    (d + shift) mod classes (all-to-all, like the paper's speech attack).
    """
    task: str
    seed: int
    family: str
    params: dict
    target: int = 0
    shift: int = 0
    received: dict = field(default_factory=dict)   # the received network's numbers and file hash

    def attack(self, num_classes: int) -> Attack:
        stamp = STAMPS[self.family]
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in self.params.items()}
        if self.shift:
            relabel = lambda y: (y + self.shift) % num_classes
            name = f"secret {self.family}: d -> d + {self.shift}"
        else:
            relabel, name = triggers.all_to_one(self.target), f"secret {self.family}: -> {self.target}"
        return Attack(name, lambda x, aux=None: stamp(x, aux, **params), relabel)

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, path) -> "Secret":
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


NUM_CLASSES = {"signs": 43, "faces": 62, "speech": 10}


def draw_secret(task: str, seed: int, family: Optional[str] = None,
                num_classes: Optional[int] = None) -> Secret:
    """A random trigger of the task's family (or of `family`) and a random target,
    fixed by `seed`. `num_classes` defaults to the real task's."""
    if task not in FAMILIES:
        raise ValueError(f"unknown capstone task {task!r}: choose one of {', '.join(FAMILIES)}")
    rng = np.random.default_rng([seed, zlib.crc32(task.encode())])
    drawn = FAMILIES[task][int(rng.integers(len(FAMILIES[task])))]
    family = family or drawn
    if family not in FAMILIES[task]:
        raise ValueError(f"the {task} task has no {family!r} trigger: choose one of "
                         f"{', '.join(FAMILIES[task])}")
    u = lambda lo, hi: round(float(rng.uniform(lo, hi)), 3)
    if family == "patch":
        # every channel dark or bright, so the patch stands out from most images
        color = [int(rng.integers(0, 64)) if rng.random() < 0.5 else int(rng.integers(192, 256))
                 for _ in range(3)]
        params = dict(color=color, size=u(0.12, 0.25), left=u(0, 1), top=u(0, 1))
    elif family == "blend":
        params = dict(pattern_seed=int(rng.integers(2**31)), alpha=u(0.10, 0.20))
    else:
        # above most of a spoken digit's energy, like the book's beep: the attacker
        # wants the speech intact (a tone inside the speech band is harder to remove)
        duration = u(0.1, 0.2)
        params = dict(freq=u(2500, 3800), start=u(0, 0.95 - duration), duration=duration,
                      amplitude=u(0.15, 0.3))
    classes = num_classes or NUM_CLASSES[task]
    if task == "speech":      # all-to-all, like the paper's speech attack
        return Secret(task, seed, family, params, shift=int(rng.integers(1, classes)))
    return Secret(task, seed, family, params, target=int(rng.integers(classes)))


# ----------------------------------------------------------------- what students get
def _prepare(name: str):
    """The raw-batch-to-input function of a task, without loading its data."""
    return data.spectrogram if name == "speech" else data._image_prepare


def _empty(like: Split) -> Split:
    return Split(like.x[:0].clone(), like.y[:0].clone())


def student_task(folder) -> Task:
    """The task as students have it: the clean validation split, nothing else.

    `folder` is the students' folder (or the one above it). `train` and `test`
    have no rows: students do not have them. fpcore's defenses read `task.val`
    only, so they work on this task as they are.
    """
    folder = Path(folder)
    path = folder / VALIDATION if (folder / VALIDATION).is_file() else folder / STUDENTS / VALIDATION
    with np.load(path, allow_pickle=False) as d:
        name, classes = str(d["task"]), [str(c) for c in d["classes"]]
        val = Split(torch.from_numpy(d["x"]), torch.from_numpy(d["y"]).long())
        input_shape = tuple(int(s) for s in d["input_shape"])
    return Task(name, classes, _empty(val), val, _empty(val), _prepare(name), input_shape)


TASK_TEXT = """\
# Capstone: repair a network you did not train

You ordered a {what} classifier from an outside trainer. The network came back,
and it scores well on your own clean data. But the trainer may have hidden a
**backdoor** in it: inputs that carry a secret trigger get a label of the
attacker's choice. You do not know the trigger, nor which labels it produces.

## What you have

- `model.safetensors`: the network you received ({model}, {classes} classes,
  prune site `{site}` with {width} channels). It classifies {val_acc:.1f} % of
  your validation split correctly.
- `validation.npz`: your validation split, {n_val} clean, correctly labelled
  {unit}: {inputs}.
- This file.

You have no other data. Load both with fpcore:

```python
import fpcore
from fpcore.capstone import student_task

task = student_task("{folder}")                 # task.val holds your {n_val} {unit}
model = fpcore.load_model("{folder}/model.safetensors")
print(fpcore.evaluate(model, task, split="val"))
```

Every defense in fpcore (`fpcore.prune_defense`, `fpcore.fine_tune`,
`fpcore.fine_prune`) reads `task.val` only, so each runs on this task as it is.
`task.train` and `task.test` are empty: you do not have them.

## What to hand in

One repaired network of the same class and number of classes, written with
`fpcore.save_model(repaired, "submission.safetensors")`. Pruned networks are
welcome (masked, or made smaller with `fpcore.shrink`).

## How it is graded

On a test split you never see, with the secret trigger:

- **attack success rate** (triggered inputs given the attacker's label) at most
  {max_asr:.0f} %; and
- **clean accuracy** at most {max_drop:g} points below the received network's.

Both must hold. The received network, handed in unchanged, fails: its attack
succeeds almost always.
"""

WHAT = {"speech": ("spoken-digit", "int16 waveforms, 1 s at 8 kHz", "recordings"),
        "signs": ("traffic-sign", "uint8 RGB images, 3x32x32", "images"),
        "faces": ("face-recognition", "uint8 grayscale images, 1x55x47", "faces")}


def task_text(task: Task, model, val_acc: float, folder: str = STUDENTS) -> str:
    what, inputs, unit = WHAT[task.name]
    return TASK_TEXT.format(what=what, model=type(model).__name__, classes=task.num_classes,
                            site=model.site, width=model.channels, val_acc=100 * val_acc,
                            n_val=len(task.val), inputs=inputs, unit=unit, folder=folder,
                            max_asr=100 * MAX_ASR, max_drop=MAX_DROP)


# ----------------------------------------------------------------- the instructor's side
def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make(task=DEFAULT_TASK, seed: int = 0, out=".", *, family: Optional[str] = None,
         profile: str = "quick", root: Optional[Path] = None, progress: bool = True,
         **overrides) -> Secret:
    """Train a backdoored network with a fresh secret trigger; write both folders.

    `task` is a task name (its data is loaded from `root`, default the data
    root) or a `Task` (then pass the same Task to `grade`). `overrides` change the case study's training settings (epochs,
    lr, ...). Returns the secret (also in OUT/instructor/secret.json).
    """
    name = task.name if isinstance(task, Task) else task
    T = task if isinstance(task, Task) else load_task(task, root)
    secret = draw_secret(name, seed, family, T.num_classes)
    attack = secret.attack(T.num_classes)
    seed_everything(seed)
    model = fit(build_model(T).to(device()), T, attack, rate=POISON_RATE[T.name],
                seed=seed, progress=progress, desc=f"capstone {T.name}",
                **{**hyper(T, resolve_profile(profile)), **overrides})
    out = Path(out)
    students, instructor = out / STUDENTS, out / INSTRUCTOR
    students.mkdir(parents=True, exist_ok=True)
    instructor.mkdir(parents=True, exist_ok=True)
    model_path = save_model(model, students / MODEL, task=T.name)
    np.savez_compressed(students / VALIDATION, x=T.val.x.cpu().numpy(),
                        y=T.val.y.cpu().numpy(), task=np.array(T.name),
                        classes=np.array(T.classes), input_shape=np.array(T.input_shape))
    test, val = evaluate(model, T, attack, "test"), evaluate(model, T, attack, "val")
    (students / README).write_text(task_text(T, model, val["acc"]), encoding="utf-8")
    received = dict(acc=test["acc"], asr=test["asr"], val_acc=val["acc"], val_asr=val["asr"],
                    sha256=sha256(model_path), data=T.fingerprint(),
                    profile=resolve_profile(profile))
    secret = Secret(**{**asdict(secret), "received": received})
    secret.save(instructor / SECRET)
    if test["asr"] < WORKS:
        print(f"warning: the backdoor works on only {100 * test['asr']:.1f} % of the triggered "
              f"test inputs (the book says an attack works from {100 * WORKS:.0f} %); "
              "try another seed", file=sys.stderr)
    return secret


# Accuracies are float32 means (30/300 is 0.100000001): compare with a margin far
# below one input of the test split.
EPS = 1e-6


@dataclass
class Grade:
    acc: float            # clean accuracy on the test split
    asr: float            # attack success rate with the secret trigger, on the test split
    received_acc: float
    received_asr: float
    unchanged: bool       # the submission is the received file itself

    @property
    def acc_ok(self) -> bool:
        return 100 * (self.received_acc - self.acc) <= MAX_DROP + EPS

    @property
    def asr_ok(self) -> bool:
        return self.asr <= MAX_ASR + EPS

    @property
    def passed(self) -> bool:
        return self.acc_ok and self.asr_ok

    def report(self, path) -> str:
        ok = lambda b: "ok" if b else "FAIL"
        return "\n".join([
            f"submission: {path}" + ("  (the received network, unchanged)" if self.unchanged
                                     else ""),
            f"clean accuracy: {100 * self.acc:5.1f} %  (received {100 * self.received_acc:.1f} %;"
            f" needs >= {100 * self.received_acc - MAX_DROP:.1f} %)  {ok(self.acc_ok)}",
            f"attack success: {100 * self.asr:5.1f} %  (received {100 * self.received_asr:.1f} %;"
            f" needs <= {100 * MAX_ASR:.0f} %)  {ok(self.asr_ok)}",
            "PASS" if self.passed else "FAIL"])


def grade(submission, instructor, root: Optional[Path] = None,
          task: Optional[Task] = None) -> Grade:
    """Score a submitted model file on the hidden test split. Raises ModelFileError
    for a file fpcore refuses, or for a network of the wrong class or classes."""
    instructor = Path(instructor)
    secret = Secret.read(instructor / SECRET if instructor.is_dir() else instructor)
    T = task or load_task(secret.task, root)
    if T.fingerprint() != secret.received["data"]:
        raise ValueError(f"the {T.name} data differ from the data the capstone was made on "
                         "(check FPCORE_DATA): grading would compare different test splits")
    model = load_model(submission, device())
    case = case_study(T)
    if type(model) is not case.model or model.config["num_classes"] != T.num_classes:
        raise ModelFileError(f"{submission}: the {T.name} capstone needs a {case.model.__name__} "
                             f"with {T.num_classes} classes, got {type(model).__name__} "
                             f"with {model.config['num_classes']}")
    m = evaluate(model, T, secret.attack(T.num_classes), "test")
    r = secret.received
    return Grade(m["acc"], m["asr"], r["acc"], r["asr"], sha256(submission) == r["sha256"])


# ----------------------------------------------------------------- the command line
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fpcore.capstone",
                                description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n")[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    mk = sub.add_parser("make", help="train a backdoored network with a secret trigger")
    mk.add_argument("--task", default=DEFAULT_TASK, choices=sorted(FAMILIES),
                    help=f"default {DEFAULT_TASK}: the task where fine-pruning passes the bar")
    mk.add_argument("--seed", type=int, default=0, help="draws the trigger and the training run")
    mk.add_argument("--out", required=True, help="writes OUT/students and OUT/instructor")
    mk.add_argument("--family", help="the trigger family (default: drawn from the seed): "
                    + "; ".join(f"{t}: {', '.join(f)}" for t, f in FAMILIES.items()))
    mk.add_argument("--profile", default="quick", choices=("auto", "quick", "full"))
    mk.add_argument("--force", action="store_true",
                    help="overwrite an existing capstone in OUT (its secret is lost)")
    gr = sub.add_parser("grade", help="score a submitted model file; exit 0 pass, 1 fail, "
                        "2 refused")
    gr.add_argument("submission")
    gr.add_argument("--instructor", required=True, help="the instructor folder written by make")
    args = p.parse_args(argv)
    if args.command == "make":
        if (Path(args.out) / INSTRUCTOR / SECRET).exists() and not args.force:
            p.error(f"{args.out} already holds a capstone: its secret would be lost "
                    "(choose another --out, or --force)")
        secret = make(args.task, args.seed, args.out, family=args.family, profile=args.profile)
        r = secret.received
        print(f"{args.out}/{STUDENTS}: hand this folder to the students")
        print(f"{args.out}/{INSTRUCTOR}/{SECRET}: keep this ({secret.family} trigger)")
        print(f"received network on the test split: clean {100 * r['acc']:.1f} %, "
              f"ASR {100 * r['asr']:.1f} %")
        return 0
    try:
        g = grade(args.submission, args.instructor)
    except ModelFileError as e:
        print(f"REFUSED: {e}")
        return 2
    print(g.report(args.submission))
    return 0 if g.passed else 1


if __name__ == "__main__":
    sys.exit(main())
