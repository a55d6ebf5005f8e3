"""fpcore.download against a local HTTP server that serves tiny look-alike archives.

No internet: every test points `download.SOURCES` at 127.0.0.1. The archives copy
the public sources' folder layouts and file formats, with a handful of files each.
"""
from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
import wave
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fpcore import download
from fpcore.download import DataMissingError, Source

# ---------------------------------------------------------------- local server


class Server:
    """Serves `files[path] = bytes`; counts requests; can cut a response short."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in server.truncate:
                    body = body[: len(body) // 2]  # promise more than we send
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    def add(self, path: str, body: bytes) -> str:
        self.files[path] = body
        return self.base + path


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def refused_url() -> str:
    """A URL on a port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/nothing.zip"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# ---------------------------------------------------------------- look-alike archives


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def wav_bytes(rate=8000, channels=1, width=2, n=400) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        tone = (3000 * np.sin(np.arange(n * channels) / 5)).astype("<i2")
        w.writeframes(tone.tobytes()[: n * channels * width])
    return buf.getvalue()


FSDD_NAMES = ["0_jackson_0.wav", "1_theo_12.wav", "7_george_3.wav", "9_lucas_49.wav"]


def fsdd_zip(bad: dict[str, bytes] | None = None) -> bytes:
    """GitHub's archive layout: free-spoken-digit-dataset-<commit>/recordings/*.wav."""
    top = f"free-spoken-digit-dataset-{download.FSDD_COMMIT}/"
    members = {top + "README.md": b"# FSDD\n", top + "utils/noise.wav": wav_bytes(rate=16000)}
    members.update({top + "recordings/" + n: wav_bytes() for n in FSDD_NAMES})
    members.update({top + "recordings/" + n: d for n, d in (bad or {}).items()})
    return zip_bytes(members)


def ppm(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PPM")
    return buf.getvalue()


def solid(color, size) -> Image.Image:
    return Image.new("RGB", size, color)


CSV_HEADER = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n"


def gtsrb_zips(train_rows, test_rows) -> tuple[bytes, bytes, bytes]:
    """GTSRB's three archives, from rows (class, track, frame, image, box) of the training
    set and rows (class, image, box) of the test set; a box is Roi.X1, Roi.Y1, Roi.X2,
    Roi.Y2 in the image's pixels. GTSRB_Final_Training_Images.zip holds
    GTSRB/Final_Training/Images/000CC/GT-000CC.csv and the .ppm files of class CC;
    GTSRB_Final_Test_Images.zip the test images and a CSV without ClassId;
    GTSRB_Final_Test_GT.zip the test labels (GT-final_test.csv)."""
    train, listings = {"GTSRB/Readme-Images.txt": b"readme"}, {}
    for cls, track, frame, image, box in train_rows:
        name = f"{track:05d}_{frame:05d}.ppm"
        train[f"GTSRB/Final_Training/Images/{cls:05d}/{name}"] = ppm(image)
        listings.setdefault(cls, [CSV_HEADER]).append(
            f"{name};{image.width};{image.height};{';'.join(map(str, box))};{cls}\r\n")
    for cls, lines in listings.items():
        train[f"GTSRB/Final_Training/Images/{cls:05d}/GT-{cls:05d}.csv"] = "".join(lines).encode()
    images = {"GTSRB/Readme-Images-Final-test.txt": b"readme"}
    truth, listing = [CSV_HEADER], [CSV_HEADER.replace(";ClassId", "")]
    for i, (cls, image, box) in enumerate(test_rows):
        name = f"{i:05d}.ppm"
        images["GTSRB/Final_Test/Images/" + name] = ppm(image)
        row = f"{name};{image.width};{image.height};{';'.join(map(str, box))}"
        truth.append(f"{row};{cls}\r\n")
        listing.append(row + "\r\n")
    images["GTSRB/Final_Test/Images/GT-final_test.test.csv"] = "".join(listing).encode()
    return zip_bytes(train), zip_bytes(images), zip_bytes({"GT-final_test.csv": "".join(truth).encode()})


def train_color(cls, track, frame):
    return (10 * cls + 1, 7 * track + 2, 3 * frame + 3)


# (class, track, number of frames); odd sizes per track
TRAIN_TRACKS = [(0, 0, 12), (0, 1, 7), (2, 0, 30)]
TRAIN_SIZES = {(0, 0): (53, 54), (0, 1): (31, 29), (2, 0): (100, 77)}
# (width, height, class) of the 7 test images 00000.ppm ... 00006.ppm
TEST_ROWS = [(53, 54, 16), (40, 41, 1), (33, 30, 2), (61, 59, 33), (45, 45, 5), (30, 31, 9), (90, 80, 14)]


def lookalike_gtsrb() -> tuple[bytes, bytes, bytes]:
    """A few solid-colour frames and test images of made-up sizes and boxes."""
    train = []
    for c, track, frames in TRAIN_TRACKS:
        w, h = TRAIN_SIZES[c, track]
        train += [(c, track, f, solid(train_color(c, track, f), (w, h)), (5, 6, w - 6, h - 5))
                  for f in range(frames)]
    test = [(cls, solid((cls * 5, i * 20, 200), (w, h)), (6, 5, w - 5, h - 5))
            for i, (w, h, cls) in enumerate(TEST_ROWS)]
    return gtsrb_zips(train, test)


LFW_PEOPLE = {"Alice_Smith": 3, "Bob_Jones": 1, "Jean-Pierre_Raffarin": 4}


def lfw_tgz() -> bytes:
    """lfw-funneled.tgz: lfw_funneled/<Name>/<Name>_NNNN.jpg in RGB, plus pairs files."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("lfw_funneled/pairs_01.txt", b"Alice_Smith 1 2\n")
        for person, n in LFW_PEOPLE.items():
            for k in range(1, n + 1):
                jpg = io.BytesIO()
                Image.new("RGB", (250, 250), (200, 30 * k, 10)).save(jpg, "JPEG")
                add(f"lfw_funneled/{person}/{person}_{k:04d}.jpg", jpg.getvalue())
    return buf.getvalue()


# ---------------------------------------------------------------- wiring


@pytest.fixture
def fsdd(server, monkeypatch):
    body = fsdd_zip()
    url = server.add("/fsdd.zip", body)
    monkeypatch.setitem(download.SOURCES, "fsdd", Source(url, "fsdd.zip"))
    monkeypatch.setattr(download, "FSDD_N_RECORDINGS", len(FSDD_NAMES))
    return server


def serve_gtsrb(server, monkeypatch, train: bytes, test: bytes, truth: bytes):
    for key, name, body in [("gtsrb_train", "train.zip", train), ("gtsrb_test", "test.zip", test),
                            ("gtsrb_test_gt", "gt.zip", truth)]:
        url = server.add("/" + name, body)
        monkeypatch.setitem(download.SOURCES, key, Source(url, name, md5=md5(body)))
    return server


@pytest.fixture
def gtsrb(server, monkeypatch):
    return serve_gtsrb(server, monkeypatch, *lookalike_gtsrb())


@pytest.fixture
def lfw(server, monkeypatch):
    body = lfw_tgz()
    url = server.add("/files/5976015", body)
    sha = hashlib.sha256(body).hexdigest()
    monkeypatch.setitem(download.SOURCES, "lfw", Source(url, "lfw-funneled.tgz", sha256=sha))
    monkeypatch.setattr(download, "LFW_MIN_IMAGES", 3)
    return server


def leftovers(root: Path) -> list[str]:
    """Files under root other than a finished layout: .part, temp folders, archives."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------- FSDD


def test_fsdd_layout(fsdd, tmp_path):
    out = download.ensure_fsdd(tmp_path)
    assert out == tmp_path / "fsdd" / "recordings"
    assert sorted(p.name for p in out.iterdir()) == sorted(FSDD_NAMES)
    with wave.open(str(out / "0_jackson_0.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
    assert not (tmp_path / "_downloads").exists()  # archive dropped after use


def test_fsdd_second_call_does_not_download(fsdd, tmp_path):
    download.ensure_fsdd(tmp_path)
    assert fsdd.requests == ["/fsdd.zip"]
    download.ensure_fsdd(tmp_path)
    assert fsdd.requests == ["/fsdd.zip"]


def test_layout_present_means_no_network(tmp_path, monkeypatch):
    for key in download.SOURCES:
        monkeypatch.setitem(download.SOURCES, key, Source(refused_url(), key))
    (tmp_path / "fsdd" / "recordings").mkdir(parents=True)
    (tmp_path / "fsdd" / "recordings" / "0_theo_0.wav").write_bytes(wav_bytes())
    (tmp_path / "lfw20" / "lfw" / "Someone").mkdir(parents=True)
    (tmp_path / "gtsrb32").mkdir()
    (tmp_path / "gtsrb32" / "gtsrb32_subset.npz").write_bytes(b"present")
    assert download.ensure_fsdd(tmp_path) == tmp_path / "fsdd" / "recordings"
    assert download.ensure_lfw(tmp_path) == tmp_path / "lfw20" / "lfw"
    assert download.ensure_gtsrb(tmp_path) == tmp_path / "gtsrb32" / "gtsrb32_subset.npz"


def test_fsdd_truncated_transfer(fsdd, tmp_path):
    fsdd.truncate.add("/fsdd.zip")
    with pytest.raises(DataMissingError) as err:
        download.ensure_fsdd(tmp_path)
    msg = str(err.value)
    assert "truncated" in msg and "removed" in msg and "retry" in msg
    assert fsdd.base + "/fsdd.zip" in msg
    assert leftovers(tmp_path) == []
    assert not (tmp_path / "fsdd").exists()


def test_fsdd_cut_zip_without_checksum(fsdd, tmp_path):
    body = fsdd.files["/fsdd.zip"]
    fsdd.files["/fsdd.zip"] = body[: len(body) - 200]  # honest length, broken zip
    with pytest.raises(DataMissingError, match="corrupted or truncated.*removed"):
        download.ensure_fsdd(tmp_path)
    assert leftovers(tmp_path) == []
    assert not (tmp_path / "fsdd" / "recordings").exists()


@pytest.mark.parametrize("bad", [{"5_nicolas_7.wav": wav_bytes(rate=16000)},
                                 {"5_nicolas_7.wav": wav_bytes(channels=2)},
                                 {"5_nicolas_7.wav": b"not a wav"}])
def test_fsdd_bad_recording(fsdd, tmp_path, monkeypatch, bad):
    monkeypatch.setattr(download, "FSDD_N_RECORDINGS", len(FSDD_NAMES) + 1)
    fsdd.files["/fsdd.zip"] = fsdd_zip(bad)
    with pytest.raises(DataMissingError, match="5_nicolas_7.wav.*removed"):
        download.ensure_fsdd(tmp_path)
    assert leftovers(tmp_path) == []
    assert not (tmp_path / "fsdd" / "recordings").exists()


def test_fsdd_wrong_count(fsdd, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "FSDD_N_RECORDINGS", 3000)
    with pytest.raises(DataMissingError, match="found 4 recordings, expected 3000"):
        download.ensure_fsdd(tmp_path)
    assert leftovers(tmp_path) == []
    assert not (tmp_path / "fsdd" / "recordings").exists()


def test_refused_connection(tmp_path, monkeypatch):
    url = refused_url()
    monkeypatch.setitem(download.SOURCES, "fsdd", Source(url, "fsdd.zip"))
    with pytest.raises(DataMissingError) as err:
        download.ensure_fsdd(tmp_path)
    msg = str(err.value)
    assert url in msg and "FPCORE_DATA" in msg and "data/README.md" in msg and "online" in msg
    assert "refused" in msg.lower()
    assert isinstance(err.value, FileNotFoundError)
    assert leftovers(tmp_path) == []
    assert not (tmp_path / "fsdd").exists()


def test_http_404(server, tmp_path, monkeypatch):
    monkeypatch.setitem(download.SOURCES, "fsdd", Source(server.base + "/gone.zip", "fsdd.zip"))
    with pytest.raises(DataMissingError, match="HTTP error 404: Not Found.*FPCORE_DATA"):
        download.ensure_fsdd(tmp_path)
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------- fetch


def test_fetch_checksums_and_reuse(server, tmp_path):
    body = b"hello" * 1000
    url = server.add("/hello.bin", body)
    dest = tmp_path / "d" / "hello.bin"
    assert download.fetch(url, dest, md5=md5(body), desc="hello") == dest
    assert dest.read_bytes() == body
    download.fetch(url, dest, sha256=hashlib.sha256(body).hexdigest())
    assert server.requests == ["/hello.bin"]  # a good copy is reused


def test_fetch_wrong_checksum(server, tmp_path):
    url = server.add("/hello.bin", b"hello")
    dest = tmp_path / "hello.bin"
    with pytest.raises(DataMissingError, match="corrupted.*md5 is .*expected 0+.*removed.*retry"):
        download.fetch(url, dest, md5="0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_fetch_replaces_bad_existing_file(server, tmp_path):
    body = b"good bytes"
    url = server.add("/f.bin", body)
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"stale")
    download.fetch(url, dest, md5=md5(body))
    assert dest.read_bytes() == body


# ---------------------------------------------------------------- GTSRB


def test_gtsrb_layout(gtsrb, tmp_path):
    out = download.ensure_gtsrb(tmp_path)
    assert out == tmp_path / "gtsrb32" / "gtsrb32_subset.npz"
    d = np.load(out)
    expected = [(c, t, f) for c, t, n in TRAIN_TRACKS for f in (0, 5, 10, 15, 20, 25) if f < n]
    assert len(expected) == 3 + 2 + 6
    assert d["x_train"].shape == (11, 32, 32, 3) and d["x_train"].dtype == np.uint8
    assert d["y_train"].dtype == np.uint8 and d["y_train"].tolist() == [c for c, _, _ in expected]
    assert d["track_train"].dtype == np.int16 and d["track_train"].tolist() == [t for _, t, _ in expected]
    assert d["frame_train"].dtype == np.int8 and d["frame_train"].tolist() == [f for _, _, f in expected]
    for img, key in zip(d["x_train"], expected):  # each image is the frame it claims to be
        assert (img == np.array(train_color(*key), np.uint8)).all()

    w, h = TRAIN_SIZES[0, 0]
    assert d["roi_train"].dtype == np.float32 and d["roi_train"].shape == (11, 4)
    np.testing.assert_allclose(d["roi_train"][0], [5 * 32 / w, 6 * 32 / h, (w - 6) * 32 / w, (h - 5) * 32 / h],
                               rtol=1e-6)

    assert d["x_test"].shape == (3, 32, 32, 3) and d["x_test"].dtype == np.uint8
    assert d["test_file"].tolist() == ["00000.ppm", "00003.ppm", "00006.ppm"]
    assert d["y_test"].dtype == np.uint8 and d["y_test"].tolist() == [16, 33, 14]
    assert (d["x_test"][1] == np.array([33 * 5, 60, 200], np.uint8)).all()
    # 00000.ppm is 53x54 with box (6, 5, 48, 49): the first row of the real GT-final_test.csv
    np.testing.assert_allclose(d["roi_test"][0], [3.6226416, 2.9629629, 28.981133, 29.037037], rtol=1e-6)
    assert d["roi_test"].dtype == np.float32
    assert leftovers(tmp_path) == ["gtsrb32/gtsrb32_subset.npz"]

    download.ensure_gtsrb(tmp_path)
    assert sorted(gtsrb.requests) == ["/gt.zip", "/test.zip", "/train.zip"]


# A sample of the offline copy: the first tracks of three classes, the first test images.
SAMPLE_CLASSES, SAMPLE_TRACKS, SAMPLE_TEST = (0, 21, 42), 2, 12


@pytest.fixture(scope="module")
def offline_gtsrb(real_data) -> dict:
    parts = ("gtsrb32", "gtsrb32_subset.npz")
    with np.load(real_data(*parts).joinpath(*parts)) as d:
        return {key: d[key] for key in d.files}


def enlarged(x: np.ndarray, roi) -> tuple[Image.Image, tuple]:
    """An offline 32x32 sign as a 64x64 download image, its box in that image's pixels
    (doubling is exact in floating point, so scaling back must give the offline box)."""
    return Image.fromarray(x).resize((64, 64), Image.NEAREST), tuple(2 * float(v) for v in roi)


def test_gtsrb_download_matches_offline_copy(offline_gtsrb, server, monkeypatch, tmp_path):
    """Archives laid out like GTSRB's around a sample of the offline copy, with the frames
    and test images the offline copy left out: the download keeps the same rows (frames
    0, 5, ..., 25 of each 30-frame track, every 3rd test image), in the same order, with
    the same labels, tracks, frames, file names and boxes."""
    d = offline_gtsrb
    rows = np.flatnonzero(np.isin(d["y_train"], SAMPLE_CLASSES) & (d["track_train"] < SAMPLE_TRACKS))
    kept = {(int(d["y_train"][i]), int(d["track_train"][i]), int(d["frame_train"][i])): i for i in rows}
    train = []
    for cls, track in sorted({key[:2] for key in kept}):
        for frame in range(30):
            i = kept.get((cls, track, frame))
            image, box = (enlarged(d["x_train"][i], d["roi_train"][i]) if i is not None
                          else (solid((90, 90, frame), (40, 44)), (4, 5, 36, 40)))
            train.append((cls, track, frame, image, box))
    test = []
    for i in range(SAMPLE_TEST * download.GTSRB_TEST_STEP):
        j, left_out = divmod(i, download.GTSRB_TEST_STEP)
        test.append((int(d["y_test"][j]), *enlarged(d["x_test"][j], d["roi_test"][j])) if not left_out
                    else ((int(d["y_test"][j]) + 1) % 43, solid((i, 0, 0), (41, 39)), (5, 4, 36, 35)))
    # the training rows in reverse order: the download sorts by class, track and frame
    serve_gtsrb(server, monkeypatch, *gtsrb_zips(train[::-1], test))

    ours = np.load(download.ensure_gtsrb(tmp_path))
    assert sorted(ours.files) == sorted(d)
    want = {key: d[key][rows] for key in ("x_train", "y_train", "track_train", "frame_train", "roi_train")}
    want.update({key: d[key][:SAMPLE_TEST] for key in ("x_test", "y_test", "test_file", "roi_test")})
    for key, expected in want.items():
        assert ours[key].dtype == expected.dtype and ours[key].shape == expected.shape, key
        if key.startswith("x_"):  # PIL's bilinear resize blurs the enlarged sign a little
            assert np.abs(ours[key].astype(int) - expected).mean() < 8, key
        else:
            np.testing.assert_array_equal(ours[key], expected, err_msg=key)


def test_gtsrb_failure_leaves_no_layout(gtsrb, tmp_path):
    del gtsrb.files["/gt.zip"]
    with pytest.raises(DataMissingError, match="GTSRB test labels.*404"):
        download.ensure_gtsrb(tmp_path)
    assert not (tmp_path / "gtsrb32").exists()
    # the archives that did arrive are kept, checked, for the next try
    assert leftovers(tmp_path) == ["_downloads/test.zip", "_downloads/train.zip"]


def test_gtsrb_corrupted(gtsrb, tmp_path):
    gtsrb.files["/test.zip"] = gtsrb.files["/test.zip"][:-1] + b"X"
    with pytest.raises(DataMissingError, match="GTSRB test images.*corrupted.*md5.*removed"):
        download.ensure_gtsrb(tmp_path)
    assert not (tmp_path / "gtsrb32").exists()
    assert "_downloads/test.zip" not in leftovers(tmp_path)
    assert not any(name.endswith(".part") for name in leftovers(tmp_path))


# ---------------------------------------------------------------- LFW


def test_lfw_layout(lfw, tmp_path):
    out = download.ensure_lfw(tmp_path)
    assert out == tmp_path / "lfw20" / "lfw"
    assert sorted(p.name for p in out.iterdir()) == ["Alice_Smith", "Jean-Pierre_Raffarin"]
    files = sorted(out.rglob("*.jpg"))
    assert len(files) == 3 + 4
    assert files[0].name == "Alice_Smith_0001.jpg"
    for path in files:
        with Image.open(path) as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "L", (250, 250))
    assert leftovers(tmp_path) == sorted(str(p.relative_to(tmp_path)) for p in files)

    download.ensure_lfw(tmp_path)
    assert lfw.requests == ["/files/5976015"]


def test_lfw_corrupted(lfw, tmp_path, monkeypatch):
    monkeypatch.setitem(download.SOURCES, "lfw", Source(lfw.base + "/files/5976015", "lfw-funneled.tgz",
                                                         sha256="f" * 64))
    with pytest.raises(DataMissingError) as err:
        download.ensure_lfw(tmp_path)
    msg = str(err.value)
    assert "corrupted" in msg and "sha256" in msg and "removed" in msg and "retry" in msg
    assert leftovers(tmp_path) == []
    assert not (tmp_path / "lfw20" / "lfw").exists()


def test_lfw_truncated(lfw, tmp_path):
    lfw.truncate.add("/files/5976015")
    with pytest.raises(DataMissingError, match="truncated.*removed"):
        download.ensure_lfw(tmp_path)
    assert leftovers(tmp_path) == []
    assert not (tmp_path / "lfw20" / "lfw").exists()


def test_cut_tgz_is_detected(server, tmp_path):
    body = lfw_tgz()
    url = server.add("/cut.tgz", body[: len(body) * 2 // 3])
    with pytest.raises(DataMissingError, match="unreadable archive.*removed"):
        download.fetch(url, tmp_path / "cut.tgz")
    assert list(tmp_path.iterdir()) == []
