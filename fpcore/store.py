"""Model files and the cache of trained models.

A model file from someone else is exactly the threat this course is about, so
model files are safetensors: tensors plus a JSON header, nothing that runs.
The class comes from a fixed list of fpcore models, never from the file.

Trained models are cached under a key of task, kind, profile, seed and a hash
of everything that decides them: the code, the task's data and its case study's
settings. Later chapters reuse what earlier ones trained, and a change to any of
those retrains instead of reusing.
"""
from __future__ import annotations

import ast
import hashlib
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Optional

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .cases import case_study, model_classes
from .data import Task, project_root
from .models import PrunableNet, require_prunable
from .release import fetch_published
from .train import precision


class ModelFileError(ValueError):
    """A model file that fpcore refuses to load."""


def save_model(model: PrunableNet, path, **meta) -> Path:
    """Write a model as safetensors (atomically: a crash never leaves half a file)."""
    require_prunable(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"class": type(model).__name__, "config": json.dumps(model.config),
              **{k: json.dumps(v) for k, v in meta.items()}}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=header)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_model(path, device=None) -> PrunableNet:
    """Load a safetensors model file written by `save_model`; never unpickles anything.

    The file is untrusted input, so it is checked before memory is spent on it:
    the header names one of fpcore's classes and a config; that network is
    built on the `meta` device (shapes only, no memory), and its tensor names,
    shapes and dtypes must be exactly the file's. Only then is it materialised,
    so a header that claims a larger network than the file carries is refused
    without allocating it. Weights must be finite (NaN or inf is refused).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            found = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype())
                     for k in f.keys()}
            cls, config = _model_class(path, header)
            skeleton = _skeleton(path, cls, config)           # shapes only, no memory
            _check_tensors(path, cls, config, skeleton, found)
            model = skeleton.to_empty(device="cpu")           # now as large as the file
            state = {k: f.get_tensor(k) for k in found}
    except ModelFileError:
        raise
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(
            f"{path} is not a safetensors model file ({e}). fpcore does not unpickle model "
            "files (.pt/.pth pickles can run code when loaded). Ask for a .safetensors file, "
            "or convert a state dict you trust with fpcore.save_model.") from None
    try:
        model.load_state_dict(state)
        model.meta = {k: json.loads(v) for k, v in header.items() if k not in ("class", "config")}
    except (TypeError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{path}: header says {cls.__name__} {header['config']}, "
                             f"but the file does not match it ({str(e).splitlines()[0]})") from None
    _check_finite(path, model)
    return model.to(device or "cpu").eval()


# safetensors' names of the floating-point dtypes: a weight may be stored in any of
# them (load_state_dict casts it to the model's float32). Other tensors (BatchNorm's
# batch counter) must have exactly the model's dtype.
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
OTHER_DTYPES = {torch.int64: "I64", torch.int32: "I32", torch.bool: "BOOL"}


def _model_class(path: Path, header: dict) -> tuple:
    """The class and config a file's header names, checked against fpcore's own list."""
    classes = model_classes()
    cls = classes.get(header.get("class", ""))
    if cls is None or "config" not in header:
        raise ModelFileError(f"{path} does not say which fpcore model it holds "
                             f"(header class {header.get('class')!r}; known: {', '.join(classes)})")
    try:
        config = json.loads(header["config"])
    except ValueError:
        config = None
    if not (isinstance(config, dict) and set(config) == {"num_classes", "width"}
            and all(type(v) is int and v > 0 for v in config.values())):
        raise ModelFileError(f"{path}: header config {header['config']!r} is not "
                             "{'num_classes': int > 0, 'width': int > 0}")
    return cls, config


def _skeleton(path: Path, cls: type, config: dict) -> PrunableNet:
    """The network a header names, built on the `meta` device: shapes without memory."""
    try:
        with torch.device("meta"):
            return cls(**config)
    except (RuntimeError, ValueError, OverflowError, MemoryError) as e:
        raise ModelFileError(f"{path}: fpcore cannot build {cls.__name__} {config} "
                             f"({str(e).splitlines()[0]})") from None


def _check_tensors(path: Path, cls: type, config: dict, skeleton: PrunableNet,
                   found: dict) -> None:
    """Refuse a file whose tensors are not exactly those of the network its header names.

    This is what stops a small file from making fpcore allocate a huge network:
    when names and shapes match, the network is no larger than the file.
    """
    state = skeleton.state_dict()
    expected = {k: tuple(v.shape) for k, v in state.items()}
    dtypes = {k: FLOAT_DTYPES if v.is_floating_point() else (OTHER_DTYPES.get(v.dtype),)
              for k, v in state.items()}
    problems = [f"{k} is {list(found[k][0])}, needs {list(shape)}"
                for k, shape in expected.items() if k in found and found[k][0] != shape]
    problems += [f"{k} is {found[k][1]}, needs {' or '.join(map(str, dtypes[k]))}"
                 for k in expected if k in found and found[k][1] not in dtypes[k]]
    problems += [f"{k} missing" for k in expected if k not in found]
    problems += [f"{k} unexpected" for k in found if k not in expected]
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4
                                           else "")
        claimed = sum(v.numel() for v in state.values())
        held = sum(math.prod(shape) for shape, _ in found.values())
        raise ModelFileError(f"{path}: header says {cls.__name__} {json.dumps(config)} "
                             f"({claimed:,} values), but the file's tensors ({held:,} values) "
                             f"are not that network's: {shown}. Nothing was allocated.")


def _check_finite(path: Path, model: PrunableNet) -> None:
    """Refuse NaN and infinite weights (a huge finite value, like a decoy's bias, is fine)."""
    for name, t in model.state_dict().items():
        bad = int((~torch.isfinite(t)).sum())
        if bad:
            raise ModelFileError(f"{path}: tensor {name} holds {bad} non-finite values "
                                 "(NaN or infinity); a model file must hold finite weights")


# ----------------------------------------------------------------- the cache
PACKAGE = Path(__file__).resolve().parent
CACHED_ENTRY = "zoo"   # the module that trains, defends and caches models


def training_modules(package: Path = PACKAGE) -> list[str]:
    """The fpcore modules a cached model depends on: `zoo` and all it imports, transitively.

    Derived from the import statements, never listed by hand. What zoo does not
    import (plots, the chapter helpers: pictures and text only) cannot change a
    model, so it stays out of the key and editing it retrains nothing.
    """
    todo, seen = [CACHED_ENTRY], set()
    while todo:
        name = todo.pop()
        if name in seen or not (package / f"{name}.py").is_file():
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((package / f"{name}.py").read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                todo += [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fpcore."):
                todo.append(node.module.split(".")[1])
    return sorted(seen)


def code_hash(package: Path = PACKAGE) -> str:
    """A short hash of the source of every module in `training_modules`."""
    h = hashlib.sha256()
    for name in training_modules(package):
        h.update(name.encode() + b"\0" + (package / f"{name}.py").read_bytes())
    return h.hexdigest()[:12]


def cache_key(task: Task, defended: bool = True) -> str:
    """Code, data, settings and precision in one short hash: any change to one retrains.

    The precision (`fpcore.train.precision`: float32, or bfloat16 autocast and
    channels_last) is part of it, so FPCORE_FAST=0 never loads a fast-path model.
    The defender's settings count for defended networks only (`defended`).
    """
    parts = (code_hash(), task.fingerprint(), case_study(task).settings(defended),
             str(precision(task)))
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def cache_dir() -> Path:
    """$FPCORE_CACHE, else the checkout's data/cache, else ~/.cache/fpcore/models."""
    if os.environ.get("FPCORE_CACHE"):
        return Path(os.environ["FPCORE_CACHE"]).expanduser()
    root = project_root()
    return root / "data" / "cache" if root else Path.home() / ".cache" / "fpcore" / "models"


def cache_path(task: Task, kind: str, profile: str, seed: int) -> Path:
    key = cache_key(task, defended="+" in kind)        # "badnet+fine_pruning" is defended
    return cache_dir() / f"{task.name}-{kind}-{profile}-s{seed}-{key}.safetensors"


def cached(task: Task, kind: str, profile: str, seed: int, train_fn, device=None) -> PrunableNet:
    """Load a trained model from the cache, else download its published file
    (`fpcore.release`), else train it with `train_fn()` and store it.

    `model.meta["seconds"]` is how long `train_fn` took when it ran, so the cost
    of a model is known even when it comes from the cache.
    """
    path = cache_path(task, kind, profile, seed)
    if path.exists() or fetch_published(path):
        try:
            return load_model(path, device)
        except ModelFileError:
            path.unlink()          # a damaged entry: train again
    start = time.perf_counter()
    model = train_fn()
    meta = dict(task=task.name, kind=kind, profile=profile, seed=seed,
                seconds=round(time.perf_counter() - start, 2))   # what it cost, for the book
    save_model(model, path, **meta)
    model.meta = meta
    return model
