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
    """Load a safetensors model file written by `save_model`; never unpickles anything."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(
            f"{path} is not a safetensors model file ({e}). fpcore does not unpickle model "
            "files (.pt/.pth pickles can run code when loaded). Ask for a .safetensors file, "
            "or convert a state dict you trust with fpcore.save_model.") from None
    classes = model_classes()
    cls = classes.get(header.get("class", ""))
    if cls is None or "config" not in header:
        raise ModelFileError(f"{path} does not say which fpcore model it holds "
                             f"(header class {header.get('class')!r}; known: {', '.join(classes)})")
    try:
        config = json.loads(header["config"])
        if not (isinstance(config, dict) and set(config) == {"num_classes", "width"}
                and all(isinstance(v, int) and v > 0 for v in config.values())):
            raise ValueError("config must be {'num_classes': int, 'width': int}")
        model = cls(**config)
        model.load_state_dict(state)
        model.meta = {k: json.loads(v) for k, v in header.items() if k not in ("class", "config")}
    except (TypeError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{path}: header says {cls.__name__} {header['config']}, "
                             f"but the file does not match it ({str(e).splitlines()[0]})") from None
    return model.to(device or "cpu").eval()


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


def cache_key(task: Task) -> str:
    """Code, data, settings and precision in one short hash: any change to one retrains.

    The precision (`fpcore.train.precision`: float32, or bfloat16 autocast and
    channels_last) is part of it, so FPCORE_FAST=0 never loads a fast-path model.
    """
    parts = (code_hash(), task.fingerprint(), case_study(task).settings(), str(precision(task)))
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def cache_dir() -> Path:
    """$FPCORE_CACHE, else the checkout's data/cache, else ~/.cache/fpcore/models."""
    if os.environ.get("FPCORE_CACHE"):
        return Path(os.environ["FPCORE_CACHE"]).expanduser()
    root = project_root()
    return root / "data" / "cache" if root else Path.home() / ".cache" / "fpcore" / "models"


def cache_path(task: Task, kind: str, profile: str, seed: int) -> Path:
    return cache_dir() / f"{task.name}-{kind}-{profile}-s{seed}-{cache_key(task)}.safetensors"


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
