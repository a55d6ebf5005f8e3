"""Download the real data sets and lay them out the way `fpcore.data` reads them.

The loaders read one local layout only (the offline copy described in
data/README.md). When that layout is missing, the `ensure_*` functions fetch the
public archives, check them, and build the same layout, so a laptop or Colab gets
the same tensors as a machine with the offline copy:

    <root>/gtsrb32/gtsrb32_subset.npz
    <root>/lfw20/lfw/<Person_Name>/<Person_Name>_NNNN.jpg
    <root>/fsdd/recordings/{digit}_{speaker}_{index}.wav

Archives go to <root>/_downloads and are deleted once the layout is built. The
layout is built in a temporary file or folder and renamed into place at the end,
so an interrupted run never leaves half a layout behind.

Tests point `SOURCES` at a local server; nothing else needs patching.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import http.client
import io
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import wave
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image
from tqdm import tqdm


@dataclass(frozen=True)
class Source:
    """One public archive: where it lives, the name we save it under, its checksum."""

    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None


# GTSRB, official archives on the INI / ERDA public archive. URL and md5s as in
# torchvision/datasets/gtsrb.py (test images, test GT) and google-deepmind/dm_nevis
# dm_nevis/datasets_storage/handlers/german_tsr.py (final training set).
# We use GTSRB_Final_Training_Images.zip (39,209 images, 1,307 tracks), not
# torchvision's GTSRB-Training_fixed.zip: that one is the smaller IJCNN online
# training set (26,640 images; torchvision's prototype GTSRB has __len__ 26_640),
# and the offline copy (7,842 = 1,307 tracks x 6 frames) was built from the full set.
GTSRB_BASE_URL = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/"

# LFW, funneled variant, from scikit-learn's sklearn/datasets/_lfw.py (FUNNELED_ARCHIVE).
LFW_URL = "https://ndownloader.figshare.com/files/5976015"

# FSDD: GitHub's archive of the commit the offline copy was taken from. GitHub
# publishes no checksum, so the zip is checked by its structure instead.
FSDD_COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
FSDD_URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/{FSDD_COMMIT}.zip"

SOURCES: dict[str, Source] = {
    "gtsrb_train": Source(
        GTSRB_BASE_URL + "GTSRB_Final_Training_Images.zip",
        "GTSRB_Final_Training_Images.zip",
        md5="f33fd80ac59bff73c82d25ab499e03a3",
    ),
    "gtsrb_test": Source(
        GTSRB_BASE_URL + "GTSRB_Final_Test_Images.zip",
        "GTSRB_Final_Test_Images.zip",
        md5="c7e4e6327067d32654124b0fe9e82185",
    ),
    "gtsrb_test_gt": Source(
        GTSRB_BASE_URL + "GTSRB_Final_Test_GT.zip",
        "GTSRB_Final_Test_GT.zip",
        md5="fe31e9c9270bbcd7b84b7f21a9d9d9e5",
    ),
    "lfw": Source(
        LFW_URL,
        "lfw-funneled.tgz",
        sha256="b47c8422c8cded889dc5a13418c4bc2abbda121092b3533a83306f90d900100a",
    ),
    "fsdd": Source(FSDD_URL, f"free-spoken-digit-dataset-{FSDD_COMMIT}.zip"),
}

# What the offline copy holds (see the NOTE.md of each folder).
GTSRB_SIZE = 32
GTSRB_FRAMES = (0, 5, 10, 15, 20, 25)  # frames kept from each 30-frame track
GTSRB_TEST_STEP = 3  # every 3rd row of GT-final_test.csv
LFW_MIN_IMAGES = 20
FSDD_N_RECORDINGS = 3000
FSDD_WAV_FORMAT = (8000, 1, 2)  # frame rate, channels, bytes per sample

TIMEOUT = 60  # seconds without data before a download gives up
CHUNK = 1 << 16

HOW_TO = (
    "To work without a network, set the environment variable FPCORE_DATA to a folder "
    "that holds the offline layout (gtsrb32/, lfw20/, fsdd/; see data/README.md), "
    "or run again while online."
)


class DataMissingError(FileNotFoundError):
    """A data set is neither on disk nor downloadable; the message says what to do."""


class _Broken(Exception):
    """A downloaded file is corrupted, truncated or not what we expected (internal)."""


# ---------------------------------------------------------------- downloads


def fetch(url: str, dest: Path, *, md5: str | None = None,
          sha256: str | None = None, desc: str = "") -> Path:
    """Download `url` to `dest` unless a good copy is already there.

    The bytes go to `dest.part` first and are renamed only after the length,
    the checksum and (for .zip / .tgz) the archive itself check out, so `dest`
    is always a complete file. A bad download is deleted rather than kept,
    because a later run would otherwise trust it.
    """
    dest = Path(dest)
    what = desc or dest.name
    if dest.is_file():
        if _problem(dest, dest.name, md5, sha256) is None:
            return dest
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        _download(url, part, what)
        problem = _problem(part, dest.name, md5, sha256)
        if problem:
            raise _Broken(problem)
    except _Broken as err:
        part.unlink(missing_ok=True)
        raise DataMissingError(_broken_message(what, url, str(err))) from None
    except (OSError, http.client.HTTPException) as err:  # URLError is an OSError
        had_part = part.exists()
        part.unlink(missing_ok=True)
        raise DataMissingError(_offline_message(what, url, err, had_part)) from err
    os.replace(part, dest)
    return dest


def _download(url: str, part: Path, desc: str) -> None:
    """Stream `url` into `part` with a progress bar; insist on the announced length."""
    request = urllib.request.Request(url, headers={"User-Agent": "fpcore"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response, open(part, "wb") as out:
        total = response.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        got = 0
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc) as bar:
            try:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            except http.client.IncompleteRead:
                pass  # reported below as a length mismatch
    if total is not None and got != total:
        raise _Broken(f"truncated: received {got:,} of {total:,} bytes")


def _problem(path: Path, name: str, md5: str | None, sha256: str | None) -> str | None:
    """Say what is wrong with a downloaded file, or None when it is fine."""
    for algo, expected in (("md5", md5), ("sha256", sha256)):
        if expected:
            actual = _hash(path, algo)
            if actual != expected.lower():
                return f"{algo} is {actual}, expected {expected}"
    return _archive_problem(path, name)


def _hash(path: Path, algo: str) -> str:
    digest = hashlib.new(algo)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _archive_problem(path: Path, name: str) -> str | None:
    """Read a .zip or .tar(.gz) to its end: a cut or damaged archive fails here."""
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
            return f"bad zip member {bad}" if bad else None
        if name.endswith((".tgz", ".tar.gz", ".tar")):
            with tarfile.open(path, "r:*") as tar:
                for member in tar:
                    if member.isfile():
                        with tar.extractfile(member) as f:
                            while f.read(1 << 20):
                                pass
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as err:
        return f"unreadable archive: {err}"
    return None


def _broken_message(what: str, url: str, problem: str) -> str:
    return (f"The download of {what} from {url} was corrupted or truncated ({problem}). "
            f"The bad file was removed; please retry. {HOW_TO}")


def _offline_message(what: str, url: str, err: Exception, had_part: bool) -> str:
    if isinstance(err, urllib.error.HTTPError):
        reason = f"HTTP error {err.code}: {err.reason}"
    else:
        reason = getattr(err, "reason", None) or err
    removed = " The partial download was removed." if had_part else ""
    return f"Could not download {what} from {url} ({reason}).{removed} {HOW_TO}"


def _fetch_source(key: str, root: Path, desc: str) -> Path:
    source = SOURCES[key]
    return fetch(source.url, Path(root) / "_downloads" / source.filename,
                 md5=source.md5, sha256=source.sha256, desc=desc)


def _discard(archive: Path, what: str, problem: str) -> DataMissingError:
    """Delete an archive whose contents are wrong and build the error to raise."""
    archive.unlink(missing_ok=True)
    url = next((s.url for s in SOURCES.values() if s.filename == archive.name), str(archive))
    return DataMissingError(_broken_message(what, url, problem))


def _reading(archive: Path, what: str, read, *args):
    """Return `read(archive, *args)`; if the contents are wrong, delete the archive."""
    try:
        return read(archive, *args)
    except _Broken as err:
        raise _discard(archive, what, str(err)) from None


def _clean_up(root: Path, *archives: Path) -> None:
    """Drop archives once their layout exists; they are large and no longer read."""
    for archive in archives:
        archive.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        (Path(root) / "_downloads").rmdir()  # only if empty


@contextlib.contextmanager
def _building(target: Path):
    """Yield a temporary folder next to `target`; rename it to `target` on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield tmp
        try:
            os.replace(tmp, target)
        except OSError as err:  # `target` is a non-empty folder that failed the check
            raise DataMissingError(f"{target} exists but looks incomplete ({err}); "
                                   "remove it and retry.") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- GTSRB


def ensure_gtsrb(root: Path) -> Path:
    """Return root/gtsrb32/gtsrb32_subset.npz, building it from the official archives.

    The offline copy was resized by OpenCV (cv2.resize, bilinear without
    antialiasing); here PIL's bilinear resize is used, so pixel values may
    differ by a little. Labels, tracks, frames, boxes and order are the same.
    """
    target = Path(root) / "gtsrb32" / "gtsrb32_subset.npz"
    if target.is_file():
        return target
    train = _fetch_source("gtsrb_train", root, "GTSRB training images")
    test = _fetch_source("gtsrb_test", root, "GTSRB test images")
    truth = _fetch_source("gtsrb_test_gt", root, "GTSRB test labels")
    rows = _reading(truth, "GTSRB test labels", _gtsrb_test_rows)
    arrays = {**_reading(train, "GTSRB training images", _gtsrb_train),
              **_reading(test, "GTSRB test images", _gtsrb_test, rows)}
    _save_npz(target, arrays)
    _clean_up(root, train, test, truth)
    return target


def _gtsrb_train(archive: Path) -> dict[str, np.ndarray]:
    """Frames 0, 5, ..., 25 of every training track, sorted by class, track, frame."""
    with zipfile.ZipFile(archive) as zf:
        rows = []
        for name in zf.namelist():
            if re.search(r"(^|/)GT-\d{5}\.csv$", name):
                folder = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
                rows += [(folder, row) for row in _read_csv(zf, name)]
        kept = []
        for folder, row in rows:
            match = re.fullmatch(r"(\d{5})_(\d{5})\.ppm", row["Filename"])
            if match and int(match[2]) in GTSRB_FRAMES:
                key = (int(row["ClassId"]), int(match[1]), int(match[2]))
                kept.append((key, folder + row["Filename"], row))
        if not kept:
            raise _Broken("no GT-*.csv listing track images inside")
        kept.sort(key=lambda item: item[0])
        keys = np.array([key for key, _, _ in kept])
        return {
            "x_train": np.stack([_sign(zf.read(path)) for _, path, _ in kept]),
            "y_train": keys[:, 0].astype(np.uint8),
            "track_train": keys[:, 1].astype(np.int16),
            "frame_train": keys[:, 2].astype(np.int8),
            "roi_train": _rois([row for _, _, row in kept]),
        }


def _gtsrb_test_rows(truth: Path) -> list[dict[str, str]]:
    """Every 3rd row of GT-final_test.csv, the test images the offline copy kept."""
    with zipfile.ZipFile(truth) as zf:
        names = [n for n in zf.namelist() if PurePosixPath(n).name == "GT-final_test.csv"]
        if not names:
            raise _Broken("no GT-final_test.csv inside")
        return _read_csv(zf, names[0])[::GTSRB_TEST_STEP]


def _gtsrb_test(images: Path, rows: list[dict[str, str]]) -> dict[str, np.ndarray]:
    """The test images named in `rows`, in that order."""
    with zipfile.ZipFile(images) as zf:
        by_name = {PurePosixPath(n).name: n for n in zf.namelist() if n.endswith(".ppm")}
        missing = [r["Filename"] for r in rows if r["Filename"] not in by_name]
        if missing:
            raise _Broken(f"{len(missing)} test images missing, e.g. {missing[0]}")
        x = np.stack([_sign(zf.read(by_name[r["Filename"]])) for r in rows])
    return {
        "x_test": x,
        "y_test": np.array([int(r["ClassId"]) for r in rows], dtype=np.uint8),
        "test_file": np.array([r["Filename"] for r in rows]),
        "roi_test": _rois(rows),
    }


def _read_csv(zf: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    """Rows of a GTSRB annotation file (semicolon separated, with a header)."""
    with zf.open(name) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.DictReader(text, delimiter=";", skipinitialspace=True)
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]


def _sign(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    return np.asarray(image.resize((GTSRB_SIZE, GTSRB_SIZE), Image.BILINEAR), dtype=np.uint8)


def _rois(rows: list[dict[str, str]]) -> np.ndarray:
    """Scale the CSV's Roi.X1..Y2 from the image's own size to 32x32 pixels."""
    box = np.array([[float(r[k]) for k in ("Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2")]
                    for r in rows])
    size = np.array([[float(r["Width"]), float(r["Height"])] for r in rows])
    scale = GTSRB_SIZE / np.tile(size, 2)
    return (box * scale).astype(np.float32).reshape(-1, 4)


def _save_npz(target: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed to a temporary name, then rename into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------- LFW


def ensure_lfw(root: Path) -> Path:
    """Return root/lfw20/lfw, built from scikit-learn's copy of lfw-funneled.tgz.

    Keeps the people with at least LFW_MIN_IMAGES images and saves each image
    as a grayscale ('L') JPEG with PIL's default quality, as the offline copy is.
    """
    target = Path(root) / "lfw20" / "lfw"
    if _has_subfolder(target):
        return target
    archive = _fetch_source("lfw", root, "LFW (funneled)")
    _reading(archive, "LFW (funneled)", _build_lfw, target)
    _clean_up(root, archive)
    return target


def _build_lfw(archive: Path, target: Path) -> None:
    with tarfile.open(archive, "r:*") as tar:
        faces = [(m, person) for m in tar.getmembers() if (person := _lfw_person(m))]
        if not faces:
            raise _Broken("no <Name>/<Name>_NNNN.jpg inside")
        counts = Counter(person for _, person in faces)
        with _building(target) as tmp:
            for member, person in faces:
                if counts[person] >= LFW_MIN_IMAGES:
                    data = tar.extractfile(member).read()
                    _save_gray(data, tmp / person / PurePosixPath(member.name).name)


def _lfw_person(member: tarfile.TarInfo) -> str | None:
    """The person's name if `member` is <...>/<Name>/<Name>_NNNN.jpg, else None."""
    parts = PurePosixPath(member.name).parts
    if not member.isfile() or len(parts) < 2 or parts[-2] in (".", ".."):
        return None
    person = parts[-2]
    return person if re.fullmatch(re.escape(person) + r"_\d{4}\.jpg", parts[-1]) else None


def _save_gray(data: bytes, path: Path) -> None:
    path.parent.mkdir(exist_ok=True)
    Image.open(io.BytesIO(data)).convert("L").save(path, "JPEG")


def _has_subfolder(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_dir() for p in folder.iterdir())


# ---------------------------------------------------------------- FSDD


def ensure_fsdd(root: Path) -> Path:
    """Return root/fsdd/recordings, copied unchanged from the GitHub archive.

    With no published checksum, the archive is trusted only if it holds exactly
    FSDD_N_RECORDINGS recordings that are all 8 kHz mono 16-bit WAV files.
    """
    target = Path(root) / "fsdd" / "recordings"
    if target.is_dir() and any(target.glob("*.wav")):
        return target
    archive = _fetch_source("fsdd", root, "FSDD recordings")
    _reading(archive, "FSDD recordings", _build_fsdd, target)
    _clean_up(root, archive)
    return target


def _build_fsdd(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as zf, _building(target) as tmp:
        _copy_recordings(zf, tmp)


def _copy_recordings(zf: zipfile.ZipFile, dest: Path) -> None:
    """Copy <top>/recordings/*.wav into `dest`, checking each file and the count."""
    count = 0
    for name in zf.namelist():
        parts = PurePosixPath(name).parts
        if len(parts) == 3 and parts[1] == "recordings" and parts[2].endswith(".wav"):
            data = zf.read(name)
            _check_wav(data, parts[2])
            (dest / parts[2]).write_bytes(data)
            count += 1
    if count != FSDD_N_RECORDINGS:
        raise _Broken(f"found {count} recordings, expected {FSDD_N_RECORDINGS}")


def _check_wav(data: bytes, name: str) -> None:
    try:
        with wave.open(io.BytesIO(data)) as w:
            found = (w.getframerate(), w.getnchannels(), w.getsampwidth())
    except (wave.Error, EOFError) as err:
        raise _Broken(f"{name} is not a readable WAV file ({err})") from None
    if found != FSDD_WAV_FORMAT:
        raise _Broken(f"{name} is {found[0]} Hz, {found[1]} channel(s), "
                      f"{8 * found[2]}-bit; expected 8000 Hz mono 16-bit")
