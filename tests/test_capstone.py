"""The capstone (fpcore.capstone) and the hardened model loader it grades with.

Fast tests use tiny hand-made tasks and hand-written model files. The one test
on real data (marked `realdata`) makes a speech capstone on a shrunk task,
repairs it the way a student would (fine-pruning on the validation split only)
and grades both the repair and the unrepaired network.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import fpcore
from fpcore import capstone, store
from fpcore.adaptive import DECOY_BIAS
from fpcore.data import Split, Task, _image_prepare
from fpcore.models import DeepID, SignNet, SpeechNet
from fpcore.store import ModelFileError, load_model, save_model


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The CPU is shared with training jobs: one thread is faster than two fighting ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ============================================================== the loader: untrusted files

CLASSES = {"SignNet": SignNet, "DeepID": DeepID, "SpeechNet": SpeechNet}


@pytest.mark.parametrize("name", list(CLASSES))
def test_a_header_larger_than_the_file_is_refused_before_allocating(tmp_path, monkeypatch,
                                                                    name):
    """One small tensor, a header claiming width 10,000,000: refused, nothing real built."""
    built = []

    class Spy(CLASSES[name]):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self.mask.device.type)

    monkeypatch.setattr(store, "model_classes", lambda: {name: Spy})
    path = tmp_path / "huge.safetensors"
    save_file({"mask": torch.ones(4)}, str(path),
              metadata={"class": name, "config": '{"num_classes": 10, "width": 10000000}'})
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match="Nothing was allocated") as err:
        load_model(path)
    assert time.perf_counter() - start < 5, "the check should be instant"
    assert built == ["meta"], f"a network was built off the meta device: {built}"
    assert "mask is [4], needs [10000000]" in str(err.value)
    assert "missing" in str(err.value)


def test_the_shape_check_reads_names_and_dtypes_too(tmp_path):
    state = {k: v.contiguous() for k, v in SignNet(5, 8).state_dict().items()}
    header = {"class": "SignNet", "config": '{"num_classes": 5, "width": 8}'}
    path = tmp_path / "m.safetensors"
    save_file({**state, "extra": torch.zeros(1)}, str(path), metadata=header)
    with pytest.raises(ModelFileError, match="extra unexpected"):
        load_model(path)
    save_file({**state, "fc2.bias": torch.zeros(5, dtype=torch.int32)}, str(path),
              metadata=header)
    with pytest.raises(ModelFileError, match="fc2.bias is I32"):
        load_model(path)
    save_file({**state, "mask": torch.ones(8, dtype=torch.float64)}, str(path), metadata=header)
    assert load_model(path).mask.dtype == torch.float32, "a float64 weight is cast, not refused"
    header["config"] = '{"num_classes": 5, "width": true}'
    save_file(state, str(path), metadata=header)
    with pytest.raises(ModelFileError, match="is not"):
        load_model(path)


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "float64 overflow"])
def test_non_finite_weights_are_refused(tmp_path, bad):
    torch.manual_seed(0)
    state = {k: v.clone().contiguous() for k, v in SpeechNet().state_dict().items()}
    if bad == "float64 overflow":    # finite in the file, infinite once cast to float32
        state["fc1.weight"] = state["fc1.weight"].double()
        state["fc1.weight"][3, 7] = 1e300
    else:
        state["fc1.weight"][3, 7] = float(bad)
    path = tmp_path / "m.safetensors"
    save_file(state, str(path),
              metadata={"class": "SpeechNet", "config": '{"num_classes": 10, "width": 64}'})
    with pytest.raises(ModelFileError, match=r"fc1.weight holds 1 non-finite"):
        load_model(path)


def test_decoy_biases_are_finite_and_load(tmp_path):
    """The pruning-aware attack's decoys (bias -1e20, finite in float32) still load."""
    torch.manual_seed(0)
    model = SpeechNet().eval()
    with torch.no_grad():
        model.conv5.bias[:40] = DECOY_BIAS
    loaded = load_model(save_model(model, tmp_path / "decoys.safetensors"))
    assert torch.equal(loaded.conv5.bias, model.conv5.bias)
    assert loaded.conv5.bias[0].item() == pytest.approx(-1e20, rel=1e-6)


def test_a_shrunk_network_loads(tmp_path):
    """Students may hand in a physically smaller network: the width comes from the file."""
    torch.manual_seed(0)
    model = SpeechNet().eval()
    model.mask[:20] = 0
    small = load_model(save_model(fpcore.shrink(model), tmp_path / "small.safetensors"))
    assert small.channels == 44
    x = torch.randn(2, 1, 129, 63)
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-5)


# ============================================================== the trigger family


@pytest.mark.parametrize("task", ["signs", "faces", "speech"])
def test_secrets_are_drawn_from_the_family_and_fixed_by_the_seed(task):
    secrets = [capstone.draw_secret(task, s) for s in range(6)]
    assert secrets == [capstone.draw_secret(task, s) for s in range(6)]
    assert all(s.family in capstone.FAMILIES[task] for s in secrets)
    assert len({json.dumps(s.params, sort_keys=True) for s in secrets}) == 6
    if task == "speech":
        assert all(1 <= s.shift <= 9 for s in secrets), "all-to-all, never the identity"
    else:
        assert all(s.shift == 0 for s in secrets)
        assert len({s.family for s in secrets}) == 2, "six seeds should draw both families"
    other = "patch" if task == "speech" else "tone"
    with pytest.raises(ValueError, match=f"no '{other}' trigger"):
        capstone.draw_secret(task, 0, family=other)


def test_patch_paints_only_its_square():
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    y = capstone.patch(x, None, color=(10, 250, 30), size=0.25, left=1.0, top=0.0)
    changed = (y != x).any(1)
    assert not changed[:, 8:, :].any() and not changed[:, :, :24].any()
    assert (y[:, :, :8, 24:] == torch.tensor([10, 250, 30]).view(1, 3, 1, 1)).all()
    grey = capstone.patch(x[:, :1], None, color=(10, 250, 30), size=0.25)
    assert (grey[:, 0, 12:20, 12:20] == 10).all(), "a grey image takes the first component"


def test_blend_mixes_a_fixed_pattern():
    x = torch.full((2, 1, 55, 47), 100, dtype=torch.uint8)
    a = capstone.blend(x, None, pattern_seed=5, alpha=0.2)
    assert torch.equal(a, capstone.blend(x, None, pattern_seed=5, alpha=0.2))
    assert not torch.equal(a, capstone.blend(x, None, pattern_seed=6, alpha=0.2))
    assert a.dtype == torch.uint8 and ((a.int() - 100).abs() <= 31).all()
    assert torch.equal(a[0], a[1]), "the same pattern on every image"


def test_secret_attack_and_round_trip(tmp_path):
    s = capstone.draw_secret("speech", 3)
    again = capstone.Secret.read(s.save(tmp_path / "secret.json"))
    assert again == s
    y = torch.arange(10)
    attack = again.attack(10)
    assert torch.equal(attack.relabel(y), (y + s.shift) % 10)
    assert bool(attack.eligible(y).all())
    wave = torch.zeros(3, 8000, dtype=torch.int16)
    assert torch.equal(attack.stamp(wave, None), fpcore.tone(wave, None, **s.params))
    faces = capstone.draw_secret("faces", 0)
    assert torch.equal(faces.attack(62).relabel(y), torch.full_like(y, faces.target))


# ============================================================== make, student_task, grade


def tiny_faces(seed=0, n=(320, 60, 60), n_classes=4) -> Task:
    """Random 55x47 'faces' (a template per class plus noise): learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((n_classes, 1, 4, 4), generator=g) * 255
    templates = torch.nn.functional.interpolate(coarse, size=(55, 47), mode="bilinear")

    def split(k):
        y = torch.arange(k) % n_classes
        noise = torch.randint(0, 256, (k, 1, 55, 47), generator=g).float()
        return Split((0.6 * templates[y] + 0.4 * noise).round().to(torch.uint8), y)

    return Task("faces", [f"person {i}" for i in range(n_classes)], split(n[0]), split(n[1]),
                split(n[2]), _image_prepare, (1, 55, 47))


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    task = tiny_faces()
    out = tmp_path_factory.mktemp("capstone")
    secret = capstone.make(task, seed=0, out=out, family="patch", progress=False,
                           epochs=8, batch_size=32, lr=3e-3)
    return task, out, secret


def test_make_writes_what_students_may_have_and_nothing_else(made):
    task, out, secret = made
    students = out / "students"
    assert sorted(p.name for p in students.iterdir()) == ["TASK.md", "model.safetensors",
                                                           "validation.npz"]
    assert sorted(p.name for p in (out / "instructor").iterdir()) == ["secret.json"]
    with safe_open(str(students / "model.safetensors"), "pt") as f:
        assert set(f.metadata()) == {"class", "config", "task"}
    with np.load(students / "validation.npz", allow_pickle=False) as d:
        assert sorted(d.files) == ["classes", "input_shape", "task", "x", "y"]
        assert np.array_equal(d["x"], task.val.x.numpy()), "the validation split is clean"
    # no parameter of the trigger appears in the text or in the model file's header
    with safe_open(str(students / "model.safetensors"), "pt") as f:
        header = json.dumps(f.metadata())
    text = (students / "TASK.md").read_text() + header
    for key, value in secret.params.items():
        assert json.dumps(value) not in text, f"the trigger's {key} leaked: {value}"
    assert "secret.json" not in text and '"shift"' not in text


def test_student_task_holds_the_validation_split_only(made):
    task, out, _ = made
    for folder in (out, out / "students"):
        st = capstone.student_task(folder)
        assert st.name == "faces" and st.classes == task.classes
        assert torch.equal(st.val.x, task.val.x) and torch.equal(st.val.y, task.val.y)
        assert len(st.train) == len(st.test) == 0
        assert st.input_shape == task.input_shape
    model = load_model(out / "students" / "model.safetensors")
    fixed = fpcore.prune_defense(model, st)
    assert 0 <= fixed.k <= model.channels


def test_grade_unchanged_repaired_and_refused(made, tmp_path, capsys):
    task, out, secret = made
    received = out / "students" / "model.safetensors"
    g = capstone.grade(received, out / "instructor", task=task)
    assert g.unchanged and g.acc == secret.received["acc"] and g.asr == secret.received["asr"]
    assert g.asr >= 0.9, f"sanity: the tiny backdoor took (ASR {g.asr:.2f})"
    assert not g.passed
    # a network that ignores its input: no backdoor, but no accuracy either
    dead = load_model(received)
    dead.mask.zero_()
    g = capstone.grade(save_model(dead, tmp_path / "dead.safetensors"), out / "instructor",
                       task=task)
    assert not g.unchanged and not g.passed
    # the wrong network, and a pickle: refused
    wrong = save_model(SignNet(4, 8), tmp_path / "wrong.safetensors")
    with pytest.raises(ModelFileError, match="needs a DeepID"):
        capstone.grade(wrong, out / "instructor", task=task)
    pickle = tmp_path / "model.pt"
    torch.save(DeepID(4).state_dict(), pickle)
    with pytest.raises(ModelFileError, match="unpickle"):
        capstone.grade(pickle, out / "instructor", task=task)
    # other data than the capstone was made on: an error, not a grade
    with pytest.raises(ValueError, match="data differ"):
        capstone.grade(received, out / "instructor", task=tiny_faces(seed=1))


def test_the_command_line(made, tmp_path, monkeypatch, capsys):
    task, out, secret = made
    calls = []
    monkeypatch.setattr(capstone, "make", lambda *a, **k: calls.append((a, k)) or secret)
    assert capstone.main(["make", "--task", "faces", "--seed", "3", "--out", str(tmp_path)]) == 0
    assert calls == [(("faces", 3, str(tmp_path)), {"family": None, "profile": "quick"})]
    assert "hand this folder to the students" in capsys.readouterr().out
    with pytest.raises(SystemExit):     # a capstone is there: its secret would be lost
        capstone.main(["make", "--out", str(out)])
    assert "already holds a capstone" in capsys.readouterr().err
    monkeypatch.setattr(capstone, "load_task", lambda name, root=None: task)
    args = ["--instructor", str(out / "instructor")]
    assert capstone.main(["grade", str(out / "students" / "model.safetensors")] + args) == 1
    assert "FAIL" in capsys.readouterr().out
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    assert capstone.main(["grade", str(bad)] + args) == 2
    assert "REFUSED" in capsys.readouterr().out


# ============================================================== on real data


def need_speech() -> None:
    try:
        fpcore.load_task("speech")
    except fpcore.DataMissingError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no local copy of the speech data and no network: {e}")


# The instructor's network trains for 8 epochs instead of the quick profile's 15
# (half the time; the backdoor still works). The student fine-tunes for 30 epochs
# instead of 20: on speech the longer fine-tuning wins back a point or two of clean
# accuracy. Seed 0 with the fast path (bf16): received 100 % clean / 91 % ASR,
# repaired 96.7 % / 6.7 % against a bar of >= 96.0 % and <= 10 %.
INSTRUCTOR_EPOCHS, STUDENT_EPOCHS = 8, 30


@pytest.mark.realdata
def test_student_fine_pruning_passes_and_the_received_network_fails(tmp_path, capsys):
    need_speech()
    out = tmp_path / "capstone"
    secret = capstone.make("speech", seed=0, out=out, progress=False, epochs=INSTRUCTOR_EPOCHS)
    assert secret.received["asr"] >= capstone.WORKS, secret.received

    # the student's side: the folder, public fpcore functions, nothing else
    task = capstone.student_task(out / "students")
    model = fpcore.load_model(out / "students" / "model.safetensors")
    fixed = fpcore.fine_prune(model, task, profile="quick", progress=False,
                              epochs=STUDENT_EPOCHS).model
    submission = fpcore.save_model(fixed, tmp_path / "submission.safetensors")

    instructor = ["--instructor", str(out / "instructor")]
    assert capstone.main(["grade", str(submission)] + instructor) == 0
    assert capstone.main(["grade", str(out / "students" / "model.safetensors")] + instructor) == 1
    report = capsys.readouterr().out
    assert report.count("PASS") == 1 and "the received network, unchanged" in report
    print(report)
