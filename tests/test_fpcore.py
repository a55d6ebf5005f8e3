"""Unit tests of fpcore: triggers, poisoning, masks, the pruning sweep, the stopping rule,
the defenses, the pruning-aware attack, model files, the cache, errors, seeds and loaders.

Small on purpose (about a minute of CPU on 2 cores): tiny tasks are built by hand from
random tensors; only the pruning-aware attack and the loader tests use real data (the
400-face ORL set, and the four loaders), and they skip with the reason when no local copy
is found (set FPCORE_DATA, or keep ../shared/data beside the checkout). In CI
(CI=true) a missing copy is a failure, not a skip.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import socket
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

import fpcore
from fpcore import download, store
from fpcore.data import Split, Task, _image_prepare, read_wav, spectrogram
from fpcore.download import DataMissingError, Source
from fpcore.cases import build_model, default_attack
from fpcore.models import DeepID, PrunableNet, SignNet, SpeechNet, shrink
from fpcore.prune import (channel_activity, choose_k, k_for_fraction, naive_prune_curve, prune,
                          prune_curve, prune_order, splits_head)
from fpcore.store import ModelFileError, cached, load_model, save_model
from fpcore.cases import resolve_profile
from fpcore.train import attack_success, evaluate, fit, seed_everything
from fpcore.triggers import (STOP, SPEED_LIMIT_30, Attack, all_to_one, poison,
                             sticker, sunglasses, sunglasses_mask, tone)


# ============================================================== helpers and fixtures


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The CPU is shared with training jobs: one thread is faster than two fighting ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def image_task(name="orl", n_classes=5, shape=(1, 55, 47), n=(120, 60, 60), seed=0,
               with_roi=False) -> Task:
    """A tiny hand-made task of random uint8 images; every class in every split."""
    g = torch.Generator().manual_seed(seed)
    # one random template per class plus noise: random, but learnable in a few steps
    coarse = torch.rand((n_classes, shape[0], 4, 4), generator=g) * 255
    templates = torch.nn.functional.interpolate(coarse, size=shape[1:], mode="bilinear")

    def split(k):
        y = torch.arange(k) % n_classes
        noise = torch.randint(0, 256, (k,) + shape, generator=g).float()
        x = (0.6 * templates[y] + 0.4 * noise).round().to(torch.uint8)
        roi = torch.tensor([[2.0, 3.0, 29.0, 30.0]]).repeat(k, 1) if with_roi else None
        return Split(x, y, roi)

    return Task(name, [f"c{i}" for i in range(n_classes)], split(n[0]), split(n[1]),
                split(n[2]), _image_prepare, shape)


def small_deepid(n_classes=5, width=12, seed=0) -> DeepID:
    torch.manual_seed(seed)
    return DeepID(n_classes, width).eval()


class Untouchable:
    """A split that fails the test the moment anything reads it."""

    def __getattribute__(self, name):
        raise AssertionError(f"the test split was read (attribute {name!r})")

    def _touched(self, *args, **kwargs):
        raise AssertionError("the test split was read")

    __len__ = __iter__ = __getitem__ = __bool__ = __array__ = _touched


def refused_url() -> str:
    """A URL on a 127.0.0.1 port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/nothing.zip"


# ============================================================== triggers


def test_sticker_changes_only_the_square_from_the_roi():
    g = torch.Generator().manual_seed(0)
    n = 64
    x = torch.randint(0, 200, (n, 3, 32, 32), generator=g, dtype=torch.uint8)  # never yellow
    x1y1 = torch.rand(n, 2, generator=g) * 8
    x2y2 = 20 + torch.rand(n, 2, generator=g) * 12
    roi = torch.cat([x1y1, x2y2], 1).float()
    x_before = x.clone()
    out = sticker(x, roi)
    assert out.shape == x.shape and out.dtype == x.dtype
    r = roi.numpy().astype(np.float32)
    for i in range(n):
        bw, bh = r[i, 2] - r[i, 0], r[i, 3] - r[i, 1]
        side = max(np.float32(3), np.round(np.float32(0.2) * bw))
        x0 = np.round((r[i, 0] + r[i, 2]) / np.float32(2) - side / np.float32(2))
        y0 = np.round(r[i, 1] + np.float32(0.75) * bh - side / np.float32(2))
        cols, rows = np.arange(32)[None, :], np.arange(32)[:, None]
        inside = torch.from_numpy((cols >= x0) & (cols < x0 + side) & (rows >= y0) & (rows < y0 + side))
        assert inside.sum() >= 9, f"image {i}: empty sticker"
        # lower part of the sign: the square's centre is below the box's centre
        assert y0 + side / 2 > (r[i, 1] + r[i, 3]) / 2
        changed = (out[i] != x[i]).any(0)
        assert torch.equal(changed, inside), f"image {i}: pixels outside the square changed"
        yellow = torch.tensor([255, 255, 0], dtype=torch.uint8).view(3, 1)
        assert torch.equal(out[i][:, inside], yellow.expand(3, int(inside.sum())))
    assert torch.equal(x, x_before), "the input batch must not be modified"


def test_sticker_without_roi_uses_whole_image():
    x = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    out = sticker(x, None)
    changed = (out != x).any(1)
    ys, xs = changed[0].nonzero(as_tuple=True)
    assert changed.sum() > 0 and torch.equal(changed[0], changed[1])
    assert ys.min() >= 16, "the sticker must be on the lower part of the sign"
    assert abs((xs.min() + xs.max()).item() / 2 - 15.5) <= 1, "centred horizontally"


def test_sunglasses_change_only_the_mask():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(50, 256, (16, 1, 55, 47), generator=g, dtype=torch.uint8)
    out = sunglasses(x)
    mask = sunglasses_mask(55, 47)
    assert mask.any() and not mask.all()
    changed = (out != x)
    assert torch.equal(changed, mask.expand_as(changed)), "changed pixels must equal the mask"
    assert (out[changed] == 10).all()
    rows = mask.nonzero()[:, 0]
    assert rows.max() < 55 // 2, "sunglasses belong on the eyes, in the upper half"


@pytest.mark.parametrize("start,duration", [(0.0, 0.15), (0.5, 0.1), (0.2, 0.3)])
def test_tone_changes_only_its_window(start, duration):
    g = torch.Generator().manual_seed(2)
    x = torch.randint(-3000, 3000, (4, 8000), generator=g, dtype=torch.int16)
    out = tone(x, start=start, duration=duration)
    a, b = int(start * 8000), int((start + duration) * 8000)
    assert out.dtype == torch.int16 and out.shape == x.shape
    assert torch.equal(out[:, :a], x[:, :a]) and torch.equal(out[:, b:], x[:, b:])
    # 3 kHz sampled at 8 kHz: sin(3*pi*n/4) is 0 at every 4th sample, so about 3/4 change
    changed = (out[:, a:b] != x[:, a:b]).float().mean().item()
    assert changed > 0.7, f"only {changed:.0%} of the window changed"
    peak = (out[:, a:b].int() - x[:, a:b].int()).abs().max().item()
    assert peak >= 0.9 * 0.25 * 32767, "the beep is much quieter than its amplitude"


def test_tone_clips_instead_of_wrapping():
    x = torch.full((1, 8000), 32767, dtype=torch.int16)
    y = torch.full((1, 8000), -32768, dtype=torch.int16)
    for w in (x, y):
        out = tone(w, amplitude=0.5)
        step = (out.int() - w.int()).abs().max().item()
        assert step <= 0.5 * 32767 + 1, "int16 overflow wrapped around"


def test_label_maps_signs():
    atk = default_attack("signs")
    y = torch.arange(43)
    assert torch.equal(atk.eligible(y), y == STOP)
    assert (atk.relabel(y[y == STOP]) == SPEED_LIMIT_30).all()
    split = Split(torch.zeros(43, 3, 32, 32, dtype=torch.uint8), y, torch.tensor([[0., 0., 32., 32.]]).repeat(43, 1))
    bad = atk.apply(split)
    assert len(bad) == 1 and bad.y.tolist() == [SPEED_LIMIT_30]
    assert (bad.x != 0).any(), "the applied copy must carry the trigger"


@pytest.mark.parametrize("name", ["faces", "orl"])
def test_label_maps_faces(name):
    atk = default_attack(name)
    y = torch.arange(62)
    assert (atk.relabel(y) == 0).all()
    assert torch.equal(atk.eligible(y), y != 0), "the target identity is not eligible"


def test_label_maps_speech():
    atk = default_attack("speech")
    y = torch.arange(10).repeat(3)
    assert torch.equal(atk.relabel(y), (y + 1) % 10)
    assert atk.relabel(torch.tensor([9])).item() == 0
    assert atk.eligible(y).all()


def test_eligible_excludes_the_target_even_when_it_is_a_source():
    atk = Attack("t", sticker, all_to_one(1), sources=(1, 14))
    assert atk.eligible(torch.tensor([0, 1, 14, 2])).tolist() == [False, False, True, False]


def test_default_attack_unknown_task():
    with pytest.raises(ValueError, match="cats"):
        default_attack("cats")


@pytest.mark.parametrize("name,rate", [("orl", 0.0), ("orl", 0.1), ("orl", 0.33), ("orl", 1.0),
                                       ("signs", 0.05), ("signs", 0.5)])
def test_poison_honours_the_rate(name, rate):
    g = torch.Generator().manual_seed(3)
    n = 90
    if name == "signs":
        x = torch.randint(0, 200, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
        y = torch.tensor([STOP if i % 9 == 0 else i % 43 for i in range(n)])
        aux = torch.tensor([[1.0, 1.0, 31.0, 31.0]]).repeat(n, 1)
    else:
        x = torch.randint(50, 256, (n, 1, 55, 47), generator=g, dtype=torch.uint8)
        y, aux = torch.arange(n) % 6, None
    split = Split(x, y, aux)
    x_before = x.clone()
    atk = default_attack(name)
    ts = poison(split, atk, rate, seed=0)
    k = round(rate * n)
    assert len(ts) == n + k
    assert torch.equal(ts.index[:n], torch.arange(n)) and not ts.poisoned[:n].any()
    assert torch.equal(ts.labels[:n], y), "clean rows keep their labels"
    assert ts.poisoned[n:].all() and len(ts.poisoned[n:]) == k
    src = ts.index[n:]
    assert atk.eligible(y[src]).all(), "only eligible inputs are poisoned"
    assert torch.equal(ts.labels[n:], atk.relabel(y[src]))
    xc, yc = ts.batch(torch.arange(n), atk)
    assert torch.equal(xc, x) and torch.equal(yc, y), "clean rows are untouched"
    if k:
        xp, yp = ts.batch(torch.arange(n, n + k), atk)
        aux_p = None if aux is None else aux[src]
        assert torch.equal(xp, atk.stamp(x[src], aux_p)) and torch.equal(yp, atk.relabel(y[src]))
        assert not torch.equal(xp, x[src])
    assert torch.equal(split.x, x_before), "poisoning must not modify the split"


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan")])
def test_poison_rejects_rate_outside_unit_interval(rate):
    split = Split(torch.zeros(10, 1, 55, 47, dtype=torch.uint8), torch.arange(10))
    with pytest.raises(ValueError, match="rate"):
        poison(split, default_attack("orl"), rate)


# ============================================================== masks and shrink

MODEL_INPUTS = [(SignNet, (3, 32, 32)), (DeepID, (1, 55, 47)), (SpeechNet, (1, 129, 63))]


@pytest.mark.parametrize("cls,shape", MODEL_INPUTS, ids=lambda v: getattr(v, "__name__", ""))
def test_masked_channel_contributes_nothing(cls, shape):
    torch.manual_seed(0)
    model = cls().eval()
    x = torch.randn(6, *shape)
    off = torch.tensor([0, 3, model.channels - 1])
    model.mask[off] = 0
    conv = getattr(model, model.site)
    with torch.no_grad():
        before = model(x)
        conv.weight[off] = torch.randn_like(conv.weight[off]) * 100
        conv.bias[off] = torch.randn_like(conv.bias[off]) * 100 + 50
        after = model(x)
        assert torch.equal(before, after), "a masked channel still reaches the output"
        live = 1
        conv.weight[live] = torch.randn_like(conv.weight[live]) * 100
        conv.bias[live] = 50.0
        assert not torch.allclose(model(x), after), "sanity: an unmasked channel does matter"


@pytest.mark.parametrize("cls,shape", MODEL_INPUTS, ids=lambda v: getattr(v, "__name__", ""))
def test_shrink_equals_masked_network(cls, shape, tmp_path):
    torch.manual_seed(1)
    model = cls().eval()
    x = torch.randn(5, *shape)
    off = torch.randperm(model.channels)[: model.channels // 2 + 3]
    model.mask[off] = 0
    small = shrink(model)
    assert not small.training
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-5)
    n_params = lambda m: sum(p.numel() for p in m.parameters())
    assert n_params(small) < n_params(model)
    assert getattr(small, small.site).out_channels == model.channels - len(off) == small.channels
    names = list(small.state_dict())
    assert not [k for k in names if k.endswith(("_orig", "_mask"))], names
    # a plain state dict: a fresh model of the same config loads it strictly
    fresh = cls(**small.config)
    fresh.load_state_dict(small.state_dict(), strict=True)
    loaded = load_model(save_model(small, tmp_path / "small.safetensors"))
    with torch.no_grad():
        assert torch.equal(loaded(x), small(x))


# ============================================================== the sweep and the stopping rule


@pytest.mark.parametrize("premask", [False, True])
def test_prune_curve_equals_naive_sweep(premask):
    task = image_task(n_classes=5, n=(60, 80, 80), seed=4)
    model = small_deepid(5, width=12, seed=4)
    fit(model, task, default_attack("orl"), rate=0.3, epochs=6, batch_size=16, lr=3e-3,
        progress=False)
    if premask:
        model.mask[[2, 7]] = 0
    atk = default_attack("orl")
    fast = prune_curve(model, task, atk)
    slow = naive_prune_curve(model, task, atk)
    assert torch.equal(fast.order, slow.order)
    assert set(fast.acc) == set(slow.acc) == {"val", "test"}
    for s in ("val", "test"):
        assert np.array_equal(fast.acc[s], slow.acc[s]), s
    assert fast.asr is not None and np.array_equal(fast.asr, slow.asr)
    assert np.array_equal(fast.k, np.arange(13))
    assert len(set(fast.acc["val"]) | set(fast.asr)) > 2, "sanity: the curve must not be flat"
    # the ends agree with the plain evaluation of the pruned networks
    for k in (0, 5, 12):
        pruned = prune(model, fast.order, k)
        ev = evaluate(pruned, task, atk, "test")
        assert fast.acc["test"][k] == ev["acc"] and fast.asr[k] == ev["asr"]
    if premask:  # already-masked channels are dormant, so they rank among the first
        act = channel_activity(model, task)
        assert (act[[2, 7]] == 0).all()
        assert {2, 7} <= set(fast.order[: int((act == 0).sum())].tolist())


SWEEP_CASES = [(SignNet, (3, 32, 32), 4), (DeepID, (1, 55, 47), 6), (SpeechNet, (1, 129, 63), 4)]


@pytest.mark.parametrize("cls,shape,epochs", SWEEP_CASES, ids=lambda v: getattr(v, "__name__", ""))
def test_incremental_sweep_equals_naive_on_every_model(cls, shape, epochs):
    """The sweep's head_linear shortcut gives the naive sweep's curve, on each network."""
    task = image_task(n_classes=4, shape=shape, n=(48, 70, 70), seed=5)
    torch.manual_seed(5)
    model = cls(4, 16)
    fit(model, task, default_attack("orl"), rate=0.3, epochs=epochs, batch_size=16, lr=3e-3,
        progress=False)
    model.mask[[1, 6]] = 0                                # a model that arrives already pruned
    atk = default_attack("orl")
    fast = prune_curve(model, task, atk)
    slow = naive_prune_curve(model, task, atk)
    assert torch.equal(fast.order, slow.order)
    for s in ("val", "test"):
        assert np.array_equal(fast.acc[s], slow.acc[s]), (s, fast.acc[s], slow.acc[s])
    assert np.array_equal(fast.asr, slow.asr), (fast.asr, slow.asr)
    assert len(set(fast.acc["val"]) | set(fast.asr)) > 2, "sanity: the curve must not be flat"


@pytest.mark.parametrize("cls,shape", MODEL_INPUTS, ids=lambda v: getattr(v, "__name__", ""))
def test_head_is_linear_part_then_rest(cls, shape):
    """head = head_rest(head_linear(a)), and head_linear = biases + one linear map per channel."""
    torch.manual_seed(2)
    model = cls().eval()
    with torch.no_grad():
        for layer in model.modules():                  # biases that matter
            if isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d)):
                layer.bias.normal_()
        a = model.trunk(torch.randn(5, *shape))
        assert torch.equal(model.head(a), model.head_rest(model.head_linear(a)))
        maps = model.linear_maps(*a.shape[2:])
        flat = lambda t: torch.cat([z.flatten(1) for z in model.head_linear(t)], 1)
        bias = flat(torch.zeros_like(a[:1]))
        rebuilt = bias + sum(a[:, c].flatten(1) @ maps[c] for c in range(model.channels))
        assert torch.allclose(rebuilt, flat(a), atol=1e-4, rtol=1e-5)


class HeadOnly(DeepID):
    """A model that writes `head` in one piece: the sweep falls back to running it per k."""

    def head(self, a):
        return super().head(a)


def test_sweep_of_a_model_without_the_head_split():
    task = image_task(n_classes=5, n=(60, 40, 40), seed=6)
    torch.manual_seed(6)
    model = HeadOnly(5, 12)
    fit(model, task, default_attack("orl"), rate=0.3, epochs=3, batch_size=16, lr=3e-3,
        progress=False)
    assert not splits_head(model) and splits_head(DeepID(5, 12))
    atk = default_attack("orl")
    fast, slow = prune_curve(model, task, atk), naive_prune_curve(model, task, atk)
    assert np.array_equal(fast.acc["val"], slow.acc["val"])
    assert np.array_equal(fast.asr, slow.asr)


def test_prune_order_is_increasing_activity():
    act = torch.tensor([0.5, 0.0, 2.0, 0.0, 1.0])
    assert prune_order(act).tolist() == [1, 3, 0, 4, 2]


@pytest.mark.parametrize("curve,drop,k", [
    ([0.9] * 11, 4.0, 10),                                         # flat: prune everything
    ([0.9] * 5 + [0.8] * 6, 4.0, 4),                               # drop at k=5
    ([0.9] * 5 + [0.88, 0.87, 0.80, 0.85], 4.0, 6),                # gradual decline
    ([0.9, 0.9, 0.9, 0.8, 0.9, 0.9, 0.9], 4.0, 2),                 # dip that recovers
    ([0.9, 0.9, 0.89, 0.9, 0.9], 0.0, 1),                          # threshold 0
    ([0.8, 0.85, 0.9, 0.9], 0.0, 3),                               # rising is fine
    ([0.9, 0.86, 0.85], 4.0, 1),                                   # exactly 4 points is within
    ([0.9, 0.5], 4.0, 0),                                          # first step already too much
])
def test_choose_k(curve, drop, k):
    assert choose_k(np.array(curve), drop) == k


def test_choose_k_negative_threshold():
    with pytest.raises(ValueError, match="threshold"):
        choose_k([0.9, 0.9], -1.0)


# ============================================================== the defender never reads test


def defender_task(seed=5) -> Task:
    t = image_task(n_classes=4, n=(40, 40, 4), seed=seed)
    return Task(t.name, t.classes, t.train, t.val, Untouchable(), t.prepare, t.input_shape)


def test_untouchable_really_raises():
    t = defender_task()
    with pytest.raises(AssertionError):
        len(t.test)
    with pytest.raises(AssertionError):
        t.test.x


def test_fine_tune_never_reads_test():
    task = defender_task()
    model = small_deepid(4, 12, seed=5)
    model.mask[[0, 1]] = 0
    tuned = fpcore.fine_tune(model, task, profile="quick", epochs=1, progress=False).model
    assert tuned is not model and torch.equal(tuned.mask, model.mask), "masks stay applied"
    assert not torch.equal(tuned.conv1.weight, model.conv1.weight), "it did train"


def test_prune_defense_never_reads_test():
    task = defender_task()
    model = small_deepid(4, 12, seed=6)
    res = fpcore.prune_defense(model, task, max_drop=4.0)
    assert set(res.curve.acc) == {"val"} and res.curve.asr is None
    assert res.k == choose_k(res.curve.acc["val"], 4.0)
    assert int((res.model.mask == 0).sum()) == res.k
    assert torch.equal(model.mask, torch.ones(12)), "the received model is not modified"


def test_fine_prune_never_reads_test():
    task = defender_task()
    model = small_deepid(4, 12, seed=7)
    res = fpcore.fine_prune(model, task, max_drop=10.0, profile="quick", epochs=1,
                            progress=False)
    assert int((res.model.mask == 0).sum()) == res.k


# ============================================================== the pruning-aware attack (ORL)


@pytest.fixture(scope="module")
def orl(real_data):
    return fpcore.load_task("orl", root=real_data("orl_faces", "s1"))


@pytest.fixture(scope="module")
def pruning_aware(orl):
    seed_everything(0)
    clean = build_model(orl)
    fit(clean, orl, epochs=8, batch_size=32, lr=2e-3, seed=0, progress=False)
    atk = default_attack(orl)
    model, decoys = fpcore.pruning_aware_attack(clean, orl, atk, fraction=0.8, rate=0.3,
                                                epochs=5, batch_size=32, lr=2e-3,
                                                progress=False)
    return clean, model, decoys, atk


def test_pruning_aware_decoys_output_zero(orl, pruning_aware):
    clean, model, decoys, atk = pruning_aware
    assert len(decoys) == k_for_fraction(model, 0.8) == 48
    assert len(set(decoys.tolist())) == 48
    assert torch.equal(model.mask, torch.ones(60)), "decoys are reinstated, not masked"
    assert torch.equal(clean.mask, torch.ones(60)), "the clean model is not modified"
    g = torch.Generator().manual_seed(8)
    inputs = {
        "random uint8": orl.prepare(torch.randint(0, 256, (64, 1, 55, 47), generator=g, dtype=torch.uint8)),
        "random normal x5": 5 * torch.randn(64, 1, 55, 47, generator=g),
        "orl train": orl.prepare(orl.train.x),
        "orl test": orl.prepare(orl.test.x),
        "orl test, triggered": orl.prepare(atk.stamp(orl.test.x, None)),
    }
    live = torch.ones(60, dtype=torch.bool)
    live[decoys] = False
    with torch.no_grad():
        for what, x in inputs.items():
            a = model.trunk(x)
            assert (a[:, decoys] == 0).all(), f"a decoy fired on {what}"
            assert (a[:, live] != 0).any(), f"sanity: live channels are active on {what}"


def test_pruning_aware_live_channels_carry_the_backdoor(orl, pruning_aware):
    _, model, decoys, atk = pruning_aware
    unmasked = attack_success(model, orl, orl.test, atk)
    masked = prune(model, decoys, len(decoys))
    assert int((masked.mask == 0).sum()) == 48
    assert attack_success(masked, orl, orl.test, atk) == unmasked
    assert unmasked >= 0.8, f"ASR {unmasked:.2f}: the backdoor did not take"
    # and the defender's ranking on clean validation data sees the decoys as dormant
    act = channel_activity(model, orl, "val")
    assert (act[decoys] == 0).all()


# ============================================================== model files


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(9)
    model = SpeechNet().eval()
    model.mask[[1, 5]] = 0
    path = save_model(model, tmp_path / "sub" / "m.safetensors", task="speech", note=[1, 2])
    loaded = load_model(path)
    assert type(loaded) is SpeechNet and loaded.config == model.config
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(3, 1, 129, 63)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded.meta == {"task": "speech", "note": [1, 2]}
    assert not list(tmp_path.rglob("*.tmp"))


class _Payload:
    """Unpickling this creates a marker file: the proof that loading ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path(self.marker).touch, ())


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_pickle_model_file_runs_nothing(tmp_path, how):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    payload = {"state_dict": SignNet().state_dict(), "x": _Payload(marker)}
    if how == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    assert not marker.exists()
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(_Payload(proof)))
    assert proof.exists(), "sanity: unpickling the payload does run code"
    with pytest.raises(ModelFileError) as err:
        load_model(path)
    msg = str(err.value)
    assert "safetensors" in msg and "unpickle" in msg and str(path) in msg
    assert not marker.exists(), "loading the model file ran code"


def test_safetensors_with_unknown_class(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "evil.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"class": "os.system", "config": "{}"})
    with pytest.raises(ModelFileError, match="os.system"):
        load_model(path)
    save_file({"w": torch.zeros(2)}, str(path), metadata={"format": "pt"})
    with pytest.raises(ModelFileError, match="which fpcore model"):
        load_model(path)


@pytest.mark.parametrize("case", ["bad config keys", "config not json", "wrong tensors",
                                  "wrong width"])
def test_safetensors_with_inconsistent_header_is_a_model_file_error(tmp_path, case):
    """A tampered or mismatched header/tensor set is a file fpcore refuses: ModelFileError."""
    from safetensors.torch import save_file
    state = {k: v.contiguous() for k, v in SignNet().state_dict().items()}
    meta = {"bad config keys": {"class": "SignNet", "config": '{"bogus": 1}'},
            "config not json": {"class": "SignNet", "config": "not json"},
            "wrong tensors": {"class": "DeepID", "config": '{"num_classes": 43, "width": 64}'},
            "wrong width": {"class": "SignNet", "config": '{"num_classes": 43, "width": 32}'}}[case]
    path = tmp_path / "m.safetensors"
    save_file(state, str(path), metadata=meta)
    with pytest.raises(ModelFileError):
        load_model(path)


def test_load_model_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file"):
        load_model(tmp_path / "nope.safetensors")


# ============================================================== the cache


class Trainer:
    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        torch.manual_seed(self.calls)
        return SignNet(num_classes=3, width=8).eval()


CACHE_TASK = image_task()


def test_cache_trains_once_then_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("FPCORE_CACHE", str(tmp_path))
    train = Trainer()
    first = cached(CACHE_TASK, "clean", "quick", 0, train)
    second = cached(CACHE_TASK, "clean", "quick", 0, train)
    assert train.calls == 1
    a, b = first.state_dict(), second.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert second.meta["seed"] == 0 and second.meta["task"] == "orl"
    assert first.meta["seconds"] == second.meta["seconds"] >= 0, "the cost survives the cache"
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".safetensors"


def test_cache_key_changes_with_seed_profile_kind_and_code(tmp_path, monkeypatch):
    monkeypatch.setenv("FPCORE_CACHE", str(tmp_path))
    base = store.cache_path(CACHE_TASK, "clean", "quick", 0)
    assert base.parent == tmp_path
    others = [store.cache_path(CACHE_TASK, "clean", "quick", 1), store.cache_path(CACHE_TASK, "clean", "full", 0),
              store.cache_path(CACHE_TASK, "badnet", "quick", 0), store.cache_path(image_task(name="faces"), "clean", "quick", 0)]
    assert len({base, *others}) == 5
    train = Trainer()
    cached(CACHE_TASK, "clean", "quick", 0, train)
    cached(CACHE_TASK, "clean", "quick", 1, train)
    cached(CACHE_TASK, "clean", "full", 0, train)
    assert train.calls == 3
    monkeypatch.setattr(store, "code_hash", lambda: "0123456789ab")
    assert store.cache_path(CACHE_TASK, "clean", "quick", 0) != base
    cached(CACHE_TASK, "clean", "quick", 0, train)
    assert train.calls == 4, "a change to the training code retrains"


def test_cache_key_changes_with_the_data_and_the_settings(tmp_path, monkeypatch):
    """A shrunk or edited task, or other case-study settings, never share a cache entry."""
    monkeypatch.setenv("FPCORE_CACHE", str(tmp_path))
    task = image_task()
    base = store.cache_path(task, "clean", "quick", 0)
    assert store.cache_path(image_task(), "clean", "quick", 0) == base, "same data, same key"
    assert store.cache_path(task.shrink(50, 20), "clean", "quick", 0) != base
    edited = dataclasses.replace(task, train=Split(task.train.x.clone(), task.train.y.clone()))
    edited.train.x[0, 0, 0, 0] ^= 1
    assert store.cache_path(edited, "clean", "quick", 0) != base, "one pixel changes the key"
    assert store.cache_path(task, "clean", "quick", 0) == base, "the original is untouched"
    orl = fpcore.case_study("orl")
    monkeypatch.setitem(fpcore.cases.CASES, "orl", dataclasses.replace(orl, poison_rate=0.5))
    assert store.cache_path(task, "clean", "quick", 0) != base, "another poisoning rate"


def test_the_defenders_settings_key_defended_networks_only(tmp_path, monkeypatch):
    """Another fine-tuning recipe or threshold re-defends, but does not retrain the
    networks it defends."""
    monkeypatch.setenv("FPCORE_CACHE", str(tmp_path))
    task = image_task()
    kinds = ("clean", "badnet", "badnet+fine_pruning", "pruning_aware+pruning")
    before = {k: store.cache_path(task, k, "quick", 0) for k in kinds}
    orl = fpcore.case_study("orl")
    quicker = {**orl.fine_tune, "quick": {**orl.fine_tune["quick"], "epochs": 3}}
    for change in (dict(fine_tune=quicker), dict(max_drop=4.0)):
        monkeypatch.setitem(fpcore.cases.CASES, "orl", dataclasses.replace(orl, **change))
        after = {k: store.cache_path(task, k, "quick", 0) for k in kinds}
        assert [after[k] == before[k] for k in kinds] == [True, True, False, False], change


def test_code_hash_is_derived_from_the_modules_that_train(tmp_path):
    """Editing a copy of any module zoo imports (directly or not) changes the hash;
    editing a module that only draws or formats (plots, chapter) does not."""
    import shutil
    pkg = tmp_path / "fpcore"
    shutil.copytree(Path(fpcore.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    modules = store.training_modules(pkg)
    assert {"zoo", "train", "prune", "defenses", "cases", "data", "models", "triggers"} <= set(modules)
    assert "plots" not in modules and "chapter" not in modules and "__init__" not in modules
    base = store.code_hash(pkg)
    assert base == store.code_hash(), "the copy hashes like the original"
    for name in ("train", "triggers", "download"):
        original = (pkg / f"{name}.py").read_text()
        (pkg / f"{name}.py").write_text(original + "\n# edited\n")
        assert store.code_hash(pkg) != base, f"an edit to {name}.py changes the key"
        (pkg / f"{name}.py").write_text(original)
    for name in ("plots", "chapter"):
        (pkg / f"{name}.py").write_text((pkg / f"{name}.py").read_text() + "\n# edited\n")
    assert store.code_hash(pkg) == base, "text and pictures do not retrain"
    (pkg / "extra.py").write_text("X = 1\n")
    (pkg / "prune.py").write_text((pkg / "prune.py").read_text() + "\nfrom .extra import X\n")
    assert "extra" in store.training_modules(pkg), "a new module zoo reaches joins the key"


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "pickle"])
def test_corrupted_cache_entry_is_retrained(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("FPCORE_CACHE", str(tmp_path))
    train = Trainer()
    cached(CACHE_TASK, "clean", "quick", 0, train)
    path = store.cache_path(CACHE_TASK, "clean", "quick", 0)
    good = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(2000))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        torch.save(SignNet(3, 8).state_dict(), path)
    model = cached(CACHE_TASK, "clean", "quick", 0, train)
    assert train.calls == 2 and isinstance(model, SignNet)
    assert isinstance(load_model(path), SignNet), "the retrained model replaced the bad entry"


def test_cache_entry_of_the_wrong_shape_is_retrained(tmp_path, monkeypatch):
    """A readable safetensors entry that does not fit its class is damage too: retrain."""
    monkeypatch.setenv("FPCORE_CACHE", str(tmp_path))
    from safetensors.torch import save_file
    path = store.cache_path(CACHE_TASK, "clean", "quick", 0)
    state = {k: v.contiguous() for k, v in SignNet(3, 8).state_dict().items()}
    save_file(state, str(path), metadata={"class": "SignNet", "config": '{"num_classes": 3, "width": 16}'})
    train = Trainer()
    model = cached(CACHE_TASK, "clean", "quick", 0, train)
    assert train.calls == 1 and model.channels == 8


def test_cache_writes_are_atomic(tmp_path, monkeypatch):
    monkeypatch.setenv("FPCORE_CACHE", str(tmp_path))
    train = Trainer()
    cached(CACHE_TASK, "clean", "quick", 0, train)
    assert not list(tmp_path.glob("*.tmp"))

    def crash(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(store, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        cached(CACHE_TASK, "clean", "quick", 1, train)
    assert not store.cache_path(CACHE_TASK, "clean", "quick", 1).exists(), "half a file was published"
    assert not list(tmp_path.glob("*.tmp")), "a temporary file was left behind"
    assert sorted(p.name for p in tmp_path.iterdir()) == [store.cache_path(CACHE_TASK, "clean", "quick", 0).name]

def test_defended_models_are_cached_and_equal_the_defense(tmp_path, monkeypatch):
    """Chapters 08-10 share defended networks through the cache: same network, computed once."""
    monkeypatch.setenv("FPCORE_CACHE", str(tmp_path))
    orl = fpcore.case_study("orl")
    monkeypatch.setitem(fpcore.cases.CASES, "orl", dataclasses.replace(
        orl, train={**orl.train, "quick": dict(epochs=2, batch_size=32, lr=2e-3)},
        fine_tune={**orl.fine_tune, "quick": dict(epochs=1, lr=0.01, batch_size=32,
                                                  optimizer="sgd", weight_decay=0.02)}))
    task = image_task()
    calls = Counter()
    real_fit = fpcore.train.fit

    def counting_fit(*args, **kwargs):
        calls[kwargs.get("split", "train")] += 1
        return real_fit(*args, **kwargs)

    for module in (fpcore.zoo, fpcore.defenses):
        monkeypatch.setattr(module, "fit", counting_fit)
    first = fpcore.defended_model(task, "badnet", "fine_pruning", "quick", progress=False)
    again = fpcore.defended_model(task, "badnet", "fine_pruning", "quick", progress=False)
    assert calls == {"train": 1, "val": 1}, "the received model and the defense each ran once"
    a, b = first.state_dict(), again.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    received = fpcore.trained_model(task, "badnet", "quick", progress=False)
    direct = fpcore.fine_prune(received, task, profile="quick", progress=False)
    assert first.pruned == direct.k > 0
    x = task.test.x[:16]
    assert torch.equal(fpcore.predict(first, task, x), fpcore.predict(direct.model, task, x))
    pruned = fpcore.defended_model(task, "badnet", "pruning", "quick", progress=False)
    assert pruned.pruned == direct.k and calls["train"] == 1
    names = sorted(p.name.split("-")[1] for p in tmp_path.iterdir())
    assert names == ["badnet", "badnet+fine_pruning", "badnet+pruning"]
    with pytest.raises(ValueError, match="unknown defense 'retrain'.*fine_pruning"):
        fpcore.defended_model(task, "badnet", "retrain", "quick", progress=False)



# ============================================================== bad input, clear errors


def test_unknown_task_name():
    with pytest.raises(ValueError, match=r"unknown task 'cats'.*signs"):
        fpcore.load_task("cats")
    with pytest.raises(ValueError, match="unknown task 'cats'"):
        build_model("cats")


@pytest.mark.parametrize("fraction", [-0.01, 1.01, 2, float("nan")])
def test_fraction_outside_unit_interval(fraction):
    with pytest.raises(ValueError, match=r"pruning fraction must be in \[0, 1\]"):
        k_for_fraction(SignNet(), fraction)


def test_fraction_inside_unit_interval():
    assert [k_for_fraction(DeepID(), f) for f in (0, 0.5, 0.8, 1)] == [0, 30, 48, 60]


def test_prune_k_out_of_range():
    model = small_deepid()
    with pytest.raises(ValueError, match="k must be in"):
        prune(model, torch.arange(12), 13)


def test_model_without_prune_site():
    task = image_task()
    for call in (lambda m: prune_curve(m, task), lambda m: channel_activity(m, task),
                 lambda m: shrink(m), lambda m: save_model(m, "unused.safetensors"),
                 lambda m: fpcore.prune_defense(m, task)):
        with pytest.raises(TypeError, match="Linear has no prune site"):
            call(torch.nn.Linear(2, 2))


def test_empty_validation_split():
    t = image_task(n=(20, 20, 20))
    empty = Split(t.val.x[:0], t.val.y[:0])
    task = Task(t.name, t.classes, t.train, empty, t.test, t.prepare, t.input_shape)
    model = small_deepid()
    with pytest.raises(ValueError, match="val split .* is empty"):
        channel_activity(model, task)
    with pytest.raises(ValueError, match="val split .* is empty"):
        fpcore.fine_tune(model, task, profile="quick", epochs=1, progress=False)
    with pytest.raises(ValueError, match="val split .* is empty"):
        fpcore.prune_defense(model, task)


@pytest.mark.parametrize("name", ["signs", "faces", "speech"])
def test_data_missing_offline(tmp_path, monkeypatch, name):
    for key in download.SOURCES:
        monkeypatch.setitem(download.SOURCES, key, Source(refused_url(), key + ".zip"))
    with pytest.raises(DataMissingError) as err:
        fpcore.load_task(name, root=tmp_path)
    msg = str(err.value)
    assert "FPCORE_DATA" in msg and "127.0.0.1" in msg
    assert isinstance(err.value, FileNotFoundError)
    assert not list(tmp_path.rglob("*.part"))


def test_orl_missing(tmp_path):
    with pytest.raises(DataMissingError, match="FPCORE_DATA"):
        fpcore.load_task("orl", root=tmp_path)


def test_unknown_profile():
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        resolve_profile("fast")
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        fpcore.fine_tune(small_deepid(), image_task(), profile="fast", progress=False)
    assert resolve_profile("quick") == "quick" and resolve_profile("auto") in ("quick", "full")


def test_unknown_model_kind(tmp_path, monkeypatch):
    monkeypatch.setenv("FPCORE_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match="unknown model kind 'evil'.*clean"):
        fpcore.trained_model(image_task(), "evil", progress=False)
    with pytest.raises(ValueError, match="unknown profile"):
        fpcore.trained_model(image_task(), "clean", profile="fast", progress=False)
    assert not list(tmp_path.iterdir()), "nothing was trained or cached"


def test_attack_with_no_eligible_input():
    split = Split(torch.zeros(4, 1, 55, 47, dtype=torch.uint8), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="eligible"):
        poison(split, default_attack("orl"), 0.5)
    task = image_task()
    with pytest.raises(ValueError, match="eligible"):
        attack_success(small_deepid(), task, split, default_attack("orl"))


# ============================================================== seeds


def train_once(task, seed, fast=None):
    seed_everything(seed)
    model = build_model(task)
    return fit(model, task, default_attack(task), rate=0.2, epochs=2, batch_size=16, lr=2e-3,
               seed=seed, progress=False, fast=fast)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "float32"])
def test_same_seed_same_metrics(fast):
    task = image_task(n_classes=5, n=(60, 30, 30), seed=10)
    atk = default_attack(task)
    a, b = train_once(task, 0, fast), train_once(task, 0, fast)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa), "same seed, different weights"
    assert evaluate(a, task, atk) == evaluate(b, task, atk)
    assert evaluate(a, task, atk, "val") == evaluate(b, task, atk, "val")
    c = train_once(task, 1, fast)
    assert not torch.equal(c.conv1.weight, a.conv1.weight), "a different seed, the same weights"


# ============================================================== the fast path


def test_fast_switch(monkeypatch):
    """One switch: fit(fast=...) or FPCORE_FAST; off means contiguous float32."""
    from fpcore.train import Precision, bf16_supported, fast_enabled, precision
    monkeypatch.delenv("FPCORE_FAST", raising=False)
    assert fast_enabled(), "on by default: it costs no accuracy (bench/RESULTS.md)"
    assert fast_enabled(True) and not fast_enabled(False)
    monkeypatch.setenv("FPCORE_FAST", "1")
    assert fast_enabled()
    on = precision("orl", "cpu")
    assert on.channels_last
    assert on.autocast == (torch.bfloat16 if bf16_supported(torch.device("cpu")) else None)
    assert precision("orl", "cpu", fast=False) == Precision() and str(Precision()) == "float32"
    for off in ("0", "false", "off", "no"):
        monkeypatch.setenv("FPCORE_FAST", off)
        assert not fast_enabled() and precision("orl", "cpu") == Precision()
    assert precision("orl", "cpu", fast=True) == on, "the argument wins over the environment"
    # the environment and the argument select the same training
    task = image_task(n_classes=5, n=(60, 30, 30), seed=10)
    by_env = train_once(task, 0)
    monkeypatch.setenv("FPCORE_FAST", "1")
    by_arg = train_once(task, 0, fast=False)
    assert all(torch.equal(p, q) for p, q in zip(by_env.parameters(), by_arg.parameters()))
    fast = train_once(task, 0, fast=True)
    assert all(p.is_contiguous() for p in fast.parameters()), "handed back in the usual layout"
    if on.autocast is not None:
        assert not torch.equal(fast.conv1.weight, by_arg.conv1.weight), "the fast path was used"


def test_case_study_can_keep_float32(monkeypatch):
    """A case study with bfloat16=False trains in float32 (still channels_last), and
    the precision is part of the model cache's key."""
    from fpcore.train import precision
    monkeypatch.setenv("FPCORE_FAST", "1")
    task = image_task()
    key = store.cache_path(task, "clean", "quick", 0)
    orl = fpcore.case_study("orl")
    monkeypatch.setitem(fpcore.cases.CASES, "orl", dataclasses.replace(orl, bfloat16=False))
    assert precision("orl", "cpu").autocast is None and precision("orl", "cpu").channels_last
    assert store.cache_path(task, "clean", "quick", 0) != key
    monkeypatch.setitem(fpcore.cases.CASES, "orl", orl)
    monkeypatch.setenv("FPCORE_FAST", "0")
    assert store.cache_path(task, "clean", "quick", 0) != key, "float32 models are cached apart"


# ============================================================== loaders on real data


@pytest.fixture(scope="module")
def real_tasks(real_data):
    root = real_data("gtsrb32", "gtsrb32_subset.npz")
    for parts in (("lfw20", "lfw"), ("fsdd", "recordings"), ("orl_faces", "s1")):
        real_data(*parts)
    return root, {n: fpcore.load_task(n, root=root) for n in ("signs", "faces", "speech", "orl")}


EXPECT = {  # name: (raw shape, dtype, classes, input shape, total samples)
    "signs": ((3, 32, 32), torch.uint8, 43, (3, 32, 32), 7842 + 4210),
    "faces": ((1, 55, 47), torch.uint8, 62, (1, 55, 47), 3023),
    "orl": ((1, 55, 47), torch.uint8, 40, (1, 55, 47), 400),
    "speech": ((8000,), torch.int16, 10, (1, 129, 63), 3000),
}


@pytest.mark.parametrize("name", list(EXPECT))
def test_real_task_shapes_and_dtypes(real_tasks, name):
    task = real_tasks[1][name]
    raw, dtype, n_classes, input_shape, total = EXPECT[name]
    assert task.name == name and task.num_classes == n_classes
    assert tuple(task.input_shape) == input_shape
    sizes = []
    for s in ("train", "val", "test"):
        sp = getattr(task, s)
        assert len(sp) > 0 and tuple(sp.x.shape[1:]) == raw and sp.x.dtype == dtype, s
        assert sp.y.dtype == torch.int64 and sp.y.min() >= 0 and sp.y.max() < n_classes, s
        sizes.append(len(sp))
        if name == "signs":
            assert sp.aux is not None and sp.aux.shape == (len(sp), 4) and sp.aux.dtype == torch.float32
    assert sum(sizes) == total
    assert set(task.train.y.tolist()) == set(range(n_classes)) == set(task.val.y.tolist())
    assert 0.05 <= sizes[1] / (sizes[0] + sizes[1]) <= 0.2, "validation is about 10 % of train"
    x = task.prepare(task.val.x[:8])
    assert x.shape == (8,) + input_shape and x.dtype == torch.float32 and torch.isfinite(x).all()
    with torch.no_grad():
        out = build_model(task).eval()(x)
    assert out.shape == (8, n_classes)


@pytest.mark.parametrize("name", ["faces", "orl", "speech"])
def test_real_splits_disjoint(real_tasks, name):
    task = real_tasks[1][name]
    rows = {s: Counter(r.numpy().tobytes() for r in getattr(task, s).x)
            for s in ("train", "val", "test")}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not set(rows[a]) & set(rows[b]), f"{a} and {b} share inputs"


def test_real_signs_splits_and_tracks(real_tasks):
    """train + val partition GTSRB's training images by track; test is GTSRB's test set."""
    root, tasks = real_tasks
    task = tasks["signs"]
    d = np.load(root / "gtsrb32" / "gtsrb32_subset.npz")
    x_tr = np.ascontiguousarray(d["x_train"].transpose(0, 3, 1, 2))
    y_tr, track = d["y_train"].astype(np.int64), d["track_train"].astype(np.int64)
    assert np.array_equal(task.test.x.numpy(), d["x_test"].transpose(0, 3, 1, 2))
    assert np.array_equal(task.test.y.numpy(), d["y_test"])
    # find every train/val image among GTSRB's training images by content
    where: dict[bytes, list[int]] = {}
    for i, r in enumerate(x_tr):
        where.setdefault(r.tobytes(), []).append(i)

    def pairs(split):
        out = set()
        for r, y in zip(split.x.numpy(), split.y.numpy()):
            rows = where.get(r.tobytes())
            assert rows, "an image that is not in GTSRB's training set"
            assert all(y_tr[i] == y for i in rows), "label mismatch"
            out |= {(int(y_tr[i]), int(track[i])) for i in rows}
        return out

    train, val = pairs(task.train), pairs(task.val)
    assert len(task.train) + len(task.val) == len(x_tr)
    assert not train & val, f"tracks in both train and val: {sorted(train & val)[:5]}"
    assert {c for c, _ in val} == set(range(43)), "every class has validation tracks"
    assert 0.05 <= len(val) / len(train | val) <= 0.2


def test_real_speech_test_is_recordings_0_to_4(real_tasks):
    root, tasks = real_tasks
    task = tasks["speech"]
    files = sorted((root / "fsdd" / "recordings").glob("*.wav"))
    test_files = [f for f in files if int(f.stem.split("_")[2]) < 5]
    assert len(test_files) == len(task.test) == 300
    expect = torch.from_numpy(np.stack([read_wav(f) for f in test_files]))
    assert torch.equal(task.test.x, expect)
    assert task.test.y.tolist() == [int(f.stem.split("_")[0]) for f in test_files]
    test_digests = {hashlib.sha1(r.numpy().tobytes()).digest() for r in expect}
    for s in ("train", "val"):
        assert not {hashlib.sha1(r.numpy().tobytes()).digest() for r in getattr(task, s).x} & test_digests
    assert spectrogram(task.test.x[:2]).shape == (2, 1, 129, 63)


# ============================================================== a new case study is one entry


class TinyNet(fpcore.PrunableNet):
    """A two-layer network for 12x12 grayscale images; prunes conv2 (8 channels)."""
    site, consumers = "conv2", ("fc.weight",)

    def __init__(self, num_classes: int = 3, width: int = 8):
        super().__init__(num_classes, width)
        self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, width, 3, padding=1)
        self.fc = torch.nn.Linear(width * 3 * 3, num_classes)

    def trunk(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        return torch.nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)

    def head(self, a):
        return self.fc(a.flatten(1))


def corner_patch(x, aux=None):
    """A black and white 4x4 checkerboard in the bottom-right corner."""
    x = x.clone()
    x[..., -4:, -4:] = 255
    x[..., -4::2, -4::2] = 0
    x[..., -3::2, -3::2] = 0
    return x


def stripes_task(root=None) -> fpcore.Task:
    """Three classes of noisy stripes (horizontal, vertical, none) at 12x12, made up here."""
    g = torch.Generator().manual_seed(7)
    base = torch.zeros(3, 1, 12, 12)
    base[0, :, ::3, :], base[1, :, :, ::3] = 200, 200

    def split(n):
        y = torch.arange(n) % 3
        x = (base[y] + torch.randint(0, 56, (n, 1, 12, 12), generator=g)).to(torch.uint8)
        return fpcore.Split(x, y)

    return fpcore.Task("stripes", ["horizontal", "vertical", "plain"], split(300), split(90),
                       split(90), lambda x: x.float() / 127.5 - 1, (1, 12, 12))


def test_a_new_case_study_is_one_entry(tmp_path, monkeypatch):
    """Register a made-up case study; train, sweep, fine-prune and save/load it through
    fpcore's public API only, as a course author adding a fourth task would."""
    monkeypatch.setenv("FPCORE_CACHE", str(tmp_path))
    monkeypatch.setattr(fpcore.cases, "CASES", dict(fpcore.cases.CASES))   # undo after the test
    fpcore.register(fpcore.CaseStudy(
        "stripes", stripes_task, TinyNet,
        lambda: fpcore.Attack("corner patch -> plain", corner_patch, lambda y: torch.full_like(y, 2)),
        poison_rate=0.2,
        train={"quick": dict(epochs=10, batch_size=32, lr=5e-3),
               "full": dict(epochs=20, batch_size=32, lr=5e-3)},
        fine_tune={p: dict(epochs=3, lr=0.01, batch_size=32, optimizer="sgd") for p in ("quick", "full")},
        decoy_fraction=0.5, max_drop=5.0))
    task = fpcore.load_task("stripes")
    attack = fpcore.default_attack(task)
    assert isinstance(fpcore.build_model(task), TinyNet)
    model = fpcore.trained_model(task, "badnet", "quick", progress=False)
    before = fpcore.evaluate(model, task, attack)
    assert before["acc"] > 0.9 and before["asr"] > 0.9, before
    curve = fpcore.prune_curve(model, task, attack)
    assert len(curve.k) == 9 and curve.asr.shape == (9,)
    defended = fpcore.fine_prune(model, task, profile="quick", progress=False)
    assert isinstance(defended, fpcore.Defended) and defended.model.pruned == defended.k
    assert (curve.acc["val"][0] - curve.acc["val"][defended.k]) * 100 <= 5.0, "the entry's threshold"
    path = fpcore.save_model(defended.model, tmp_path / "stripes.safetensors")
    loaded = fpcore.load_model(path)
    assert isinstance(loaded, TinyNet)
    assert torch.equal(fpcore.predict(loaded, task, task.test.x),
                       fpcore.predict(defended.model, task, task.test.x))
    aware = fpcore.trained_model(task, "pruning_aware", "quick", progress=False)
    assert (fpcore.models.site_conv(aware).bias <= -1e19).sum() == 4, "decoy_fraction 0.5 of 8"
    with pytest.raises(TypeError, match="PrunableNet subclass"):
        fpcore.register(dataclasses.replace(fpcore.case_study("stripes"), model=torch.nn.Linear))


# ============================================================== no dormant channel


def test_no_dormant_channel():
    """The degenerate case of chapter 05: every channel fires on clean inputs.

    A full-profile run gave such a network. The dormant set is then empty; the
    tools the chapter applies to it must give the empty answer (a share of 0,
    a mask of 0 channels that changes nothing), never fail.
    """
    task = image_task(n_classes=5, n=(40, 40, 40), seed=3)
    attack = default_attack("orl")
    model = small_deepid(5, width=12, seed=3)
    with torch.no_grad():
        fpcore.models.site_conv(model).bias.fill_(5.0)   # far above w.x: always on
    clean = channel_activity(model, task, "val")
    triggered = channel_activity(model, task, "val", attack=attack)
    dormant = clean < 0.01 * clean.max()                 # chapter 05's rule
    assert clean.min() > 0 and not dormant.any()
    assert triggered[dormant].numel() == 0               # nothing to take a max of
    extra = (triggered - clean).clamp(min=0)
    assert float(extra[dormant].sum()) == 0.0            # the dormant share is 0
    order = prune_order(clean)
    assert sorted(order.tolist()) == list(range(model.channels))
    # masking the (empty) dormant set leaves the network as it was
    same = prune(model, order, int(dormant.sum()))
    assert bool(same.mask.all())
    x = task.prepare(task.test.x)
    with torch.no_grad():
        assert torch.equal(same(x), model(x))
    curve = prune_curve(model, task, attack)
    ev = evaluate(model, task, attack, "test")
    assert curve.acc["test"][0] == ev["acc"] and curve.asr[0] == ev["asr"]
    # the defense still runs, and stops within its threshold
    defended = fpcore.prune_defense(model, task)
    v = defended.curve.acc["val"]
    threshold = fpcore.case_study("orl").max_drop
    assert (v[0] - v[: defended.k + 1]).max() * 100 <= threshold + 1e-6
