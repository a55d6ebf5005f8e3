"""The three case studies as tensors: traffic signs, faces and spoken digits.

Every task has three splits. `train` is what the (possibly malicious) trainer
uses, `val` is the defender's small clean validation set, and `test` is only
for the final report. Raw data stays resident as compact tensors (uint8 images,
int16 waveforms); `Task.prepare` turns a raw batch into the network's input on
the device, so triggers can be stamped on raw batches first.

Loaders read a local copy in the layout of `data/README.md` (the same layout as
the course's offline copy). When it is missing they download it from the
public source (see `fpcore.download`), or raise an error that says how to
provide it. `fpcore.cases` says which loader belongs to which case study.
"""
from __future__ import annotations

import hashlib
import os
import wave
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from PIL import Image

from . import download

FACE_SIZE = (55, 47)          # height, width: DeepID's input
LFW_CROP = (78, 70, 172, 195)  # scikit-learn's default box for funneled LFW
SAMPLE_RATE = 8000
CLIP_SAMPLES = 8000           # one second; 99 % of FSDD recordings are shorter
SPLIT_SEED = 1234             # the splits are part of the data, not of a run
# The defender's budget: the share of the pool (everything but the test split)
# held out as the clean validation split; the trainer gets the rest. 10 % is
# what the book uses (data/README.md says why); fpcore.study varies it.
BUDGET = 0.1


def project_root() -> Optional[Path]:
    """The repository checkout fpcore lives in, or None when pip-installed."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "_toc.yml").exists() else None


def data_root() -> Path:
    """Where data sets live: $FPCORE_DATA, else the checkout's data/, else ~/.cache."""
    if os.environ.get("FPCORE_DATA"):
        return Path(os.environ["FPCORE_DATA"]).expanduser()
    root = project_root()
    return root / "data" if root else Path.home() / ".cache" / "fpcore" / "data"


@dataclass
class Split:
    """Raw inputs `x`, labels `y` and optional per-sample trigger info `aux`."""
    x: torch.Tensor
    y: torch.Tensor
    aux: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx) -> "Split":
        idx = torch.as_tensor(idx, dtype=torch.long)
        return Split(self.x[idx], self.y[idx], None if self.aux is None else self.aux[idx])

    def to(self, device) -> "Split":
        return Split(self.x.to(device), self.y.to(device),
                     None if self.aux is None else self.aux.to(device))


@dataclass
class Task:
    name: str
    classes: list
    train: Split
    val: Split
    test: Split
    prepare: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)
    input_shape: tuple = ()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def fingerprint(self) -> str:
        """A short hash of the task's data (every split's tensors and the class names).

        Part of the model cache's key: a shrunk or edited task never shares
        cached models with the full one. Hashed once per set of split tensors.
        """
        splits = (self.train, self.val, self.test)
        tensors = [t for s in splits for t in (s.x, s.y, s.aux) if t is not None]
        ident = tuple((id(t), t.data_ptr(), tuple(t.shape)) for t in tensors)
        memo = self.__dict__.get("_fingerprint")
        if memo and memo[0] == ident:
            return memo[1]
        h = hashlib.sha256(repr((self.name, list(self.classes), self.input_shape)).encode())
        for t in tensors:
            t = t.detach().cpu().contiguous()
            h.update(repr((str(t.dtype), tuple(t.shape))).encode())
            h.update(t.view(torch.uint8).numpy() if t.numel() else b"")
        self.__dict__["_fingerprint"] = (ident, h.hexdigest()[:12])
        return self.__dict__["_fingerprint"][1]

    def shrink(self, n_train: int, n_eval: int, seed: int = 0) -> "Task":
        """A smaller copy for tests and demos (random, fixed by `seed`)."""
        g = torch.Generator().manual_seed(seed)
        pick = lambda s, n: s.subset(torch.randperm(len(s), generator=g)[:n])
        return replace(self, train=pick(self.train, n_train),
                       val=pick(self.val, n_eval), test=pick(self.test, n_eval))


# ----------------------------------------------------------------- splitting
def _split_groups(groups: np.ndarray, labels: np.ndarray, frac: float, seed: int) -> np.ndarray:
    """Pick about `frac` of the groups of every class (at least one) as held out.

    Returns a boolean mask over samples. Whole groups move together, so frames
    of one physical sign (one GTSRB track) never straddle two splits.
    """
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        gs = np.unique(groups[labels == c])
        n = max(1, int(round(frac * len(gs))))
        chosen = rng.choice(gs, size=n, replace=False)
        held |= (labels == c) & np.isin(groups, chosen)
    return held


def _three_splits(x, y, aux, test_mask, val_mask) -> tuple:
    def part(m):
        m = torch.from_numpy(m)
        return Split(x[m], y[m], None if aux is None else aux[m])
    return part(~test_mask & ~val_mask), part(val_mask & ~test_mask), part(test_mask)


def _image_prepare(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> floats in [-1, 1]."""
    return x.float().div_(127.5).sub_(1.0)


# ----------------------------------------------------------------- signs
GTSRB_CLASSES = [
    "Speed limit 20", "Speed limit 30", "Speed limit 50", "Speed limit 60", "Speed limit 70",
    "Speed limit 80", "End of speed limit 80", "Speed limit 100", "Speed limit 120", "No passing",
    "No passing over 3.5 t", "Right-of-way at next intersection", "Priority road", "Yield", "Stop",
    "No vehicles", "Over 3.5 t prohibited", "No entry", "General caution", "Dangerous curve left",
    "Dangerous curve right", "Double curve", "Bumpy road", "Slippery road", "Road narrows right",
    "Road work", "Traffic signals", "Pedestrians", "Children crossing", "Bicycles crossing",
    "Beware of ice/snow", "Wild animals crossing", "End of all limits", "Turn right ahead",
    "Turn left ahead", "Ahead only", "Go straight or right", "Go straight or left", "Keep right",
    "Keep left", "Roundabout mandatory", "End of no passing", "End of no passing over 3.5 t",
]


def _check_budget(budget: float) -> float:
    if not 0 < budget < 1:
        raise ValueError(f"budget={budget!r}: the defender's share of the training pool must be "
                         "a fraction between 0 and 1 (the book's default is 0.1)")
    return float(budget)


def load_signs(root: Path, budget: float = BUDGET) -> Task:
    """GTSRB at 32x32 RGB; validation = `budget` of the tracks of every class."""
    d = np.load(download.ensure_gtsrb(root))
    y_tr = d["y_train"].astype(np.int64)
    groups = d["track_train"].astype(np.int64)
    val = _split_groups(groups, y_tr, _check_budget(budget), SPLIT_SEED)
    img = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))
    x_tr, roi_tr = img(d["x_train"]), torch.from_numpy(d["roi_train"])
    train = Split(x_tr[torch.from_numpy(~val)], torch.from_numpy(y_tr[~val]), roi_tr[torch.from_numpy(~val)])
    valid = Split(x_tr[torch.from_numpy(val)], torch.from_numpy(y_tr[val]), roi_tr[torch.from_numpy(val)])
    test = Split(img(d["x_test"]), torch.from_numpy(d["y_test"].astype(np.int64)), torch.from_numpy(d["roi_test"]))
    return Task("signs", GTSRB_CLASSES, train, valid, test, _image_prepare, (3, 32, 32))


# ----------------------------------------------------------------- faces
def _face_task(name, images, labels, classes, test_frac, budget: float = BUDGET) -> Task:
    """Stratified per person: `test_frac` test, then `budget` of the rest validation."""
    x = torch.from_numpy(np.stack(images)[:, None])
    y = np.asarray(labels, dtype=np.int64)
    idx = np.arange(len(y))
    test = _split_groups(idx, y, test_frac, SPLIT_SEED)
    val = np.zeros_like(test)
    val[~test] = _split_groups(idx[~test], y[~test], _check_budget(budget), SPLIT_SEED + 1)
    train, valid, tst = _three_splits(x, torch.from_numpy(y), None, test, val)
    return Task(name, classes, train, valid, tst, _image_prepare, (1,) + FACE_SIZE)


def _face_pixels(img: Image.Image, box=None) -> np.ndarray:
    img = img.convert("L")
    if box:
        img = img.crop(box)
    return np.asarray(img.resize(FACE_SIZE[::-1], Image.BILINEAR), dtype=np.uint8)


def load_faces(root: Path, budget: float = BUDGET) -> Task:
    """LFW people with >= 20 images: grayscale, cropped like scikit-learn, 55x47."""
    folder = download.ensure_lfw(root)
    people = sorted(p.name for p in folder.iterdir() if p.is_dir())
    images, labels = [], []
    for i, person in enumerate(people):
        for f in sorted((folder / person).glob("*.jpg")):
            with Image.open(f) as im:
                images.append(_face_pixels(im, LFW_CROP))
            labels.append(i)
    return _face_task("faces", images, labels, [p.replace("_", " ") for p in people], 0.2, budget)


def load_orl(root: Path, budget: float = BUDGET) -> Task:
    """ORL / AT&T faces (40 people x 10), a tiny set for tests: local copy only."""
    folder = Path(root) / "orl_faces"
    if not (folder / "s1").is_dir():
        raise download.DataMissingError(
            f"ORL faces not found in {folder}. ORL has no stable public download; "
            "set FPCORE_DATA to a folder holding orl_faces/sNN/K.pgm (see data/README.md).")
    images, labels = [], []
    for i in range(1, 41):
        for k in range(1, 11):
            with Image.open(folder / f"s{i}" / f"{k}.pgm") as im:
                images.append(_face_pixels(im))
            labels.append(i - 1)
    return _face_task("orl", images, labels, [f"s{i}" for i in range(1, 41)], 0.2, budget)


# ----------------------------------------------------------------- speech
N_FFT, HOP = 256, 128


def read_wav(path: Path) -> np.ndarray:
    """A mono 16-bit WAV as int16 samples, peak-normalised to 90 % of full scale.

    FSDD speakers recorded at very different levels; normalising makes the
    trigger's loudness mean the same thing on every recording.
    """
    with wave.open(str(path)) as w:
        if w.getframerate() != SAMPLE_RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 8 kHz mono 16-bit PCM")
        a = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32)
    a = a[:CLIP_SAMPLES] * (0.9 * 32767 / max(1.0, np.abs(a).max()))
    out = np.zeros(CLIP_SAMPLES, dtype=np.int16)
    out[: len(a)] = np.round(a).astype(np.int16)
    return out


def spectrogram(wave_batch: torch.Tensor) -> torch.Tensor:
    """int16 waveforms (N, L) -> log-magnitude spectrograms (N, 1, 129, 63), roughly standardised."""
    w = wave_batch.float() / 32768.0
    window = torch.hann_window(N_FFT, device=w.device)
    s = torch.stft(w, N_FFT, HOP, window=window, return_complex=True).abs()
    return ((torch.log(s + 1e-3) + 4.0) / 2.5).unsqueeze(1)


def load_speech(root: Path, budget: float = BUDGET) -> Task:
    """FSDD: official test split (recording index 0-4); validation = `budget` of the rest."""
    folder = download.ensure_fsdd(root)
    files = sorted(folder.glob("*.wav"))
    meta = [f.stem.split("_") for f in files]
    x = torch.from_numpy(np.stack([read_wav(f) for f in files]))
    y = np.array([int(m[0]) for m in meta], dtype=np.int64)
    test = np.array([int(m[2]) < 5 for m in meta])
    idx = np.arange(len(y))
    val = np.zeros_like(test)
    val[~test] = _split_groups(idx[~test], y[~test], _check_budget(budget), SPLIT_SEED)
    train, valid, tst = _three_splits(x, torch.from_numpy(y), None, test, val)
    classes = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    return Task("speech", classes, train, valid, tst, spectrogram, (1, N_FFT // 2 + 1, CLIP_SAMPLES // HOP + 1))
