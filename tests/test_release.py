"""Published model files (fpcore.release): a good file is used instead of training, a
tampered one is refused and the network retrained, offline falls back to training, and a
file made by other code is never used. A local HTTP server on 127.0.0.1 stands in for
the release; nothing leaves the machine.
"""
from __future__ import annotations

import json
import socket
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

import fpcore
from fpcore import release, store
from fpcore.models import SignNet


class Trainer:
    """A stand-in for training: counts its calls, returns a fresh small network."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        torch.manual_seed(100 + self.calls)
        return SignNet(num_classes=3, width=8).eval()


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def published(tmp_path, monkeypatch):
    """A release folder served on 127.0.0.1, an empty manifest, and an empty cache."""
    folder = tmp_path / "release"
    folder.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True).start()
    monkeypatch.setenv("FPCORE_RELEASE_URL", f"http://127.0.0.1:{httpd.server_address[1]}")
    monkeypatch.setattr(release, "MANIFEST", tmp_path / "manifest.json")
    monkeypatch.setenv("FPCORE_CACHE", str(tmp_path / "cache"))
    yield folder
    httpd.shutdown()
    httpd.server_close()


def tiny_task():
    g = torch.Generator().manual_seed(0)
    split = lambda n: fpcore.Split(torch.randint(0, 256, (n, 3, 32, 32), generator=g,
                                                 dtype=torch.uint8), torch.arange(n) % 3)
    return fpcore.Task("signs", ["a", "b", "c"], split(30), split(9), split(9),
                       lambda x: x.float() / 127.5 - 1, (3, 32, 32))


def publish(folder, task, model, kind="clean"):
    """What `make release` does for one network: the file, and its manifest line."""
    path = store.cache_path(task, kind, "quick", 0)
    store.save_model(model, folder / path.name, seconds=12.5)
    files = release.manifest()
    files[path.name] = release.sha256_of(folder / path.name)
    release.MANIFEST.write_text(json.dumps({"files": files}))
    return path


def test_a_published_file_is_used_instead_of_training(published):
    task, train = tiny_task(), Trainer()
    torch.manual_seed(7)
    original = SignNet(num_classes=3, width=8).eval()
    path = publish(published, task, original)
    model = store.cached(task, "clean", "quick", 0, train)
    assert train.calls == 0, "nothing was trained"
    assert path.exists(), "the download landed in the cache"
    a, b = original.state_dict(), model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert model.meta["seconds"] == 12.5, "the cost recorded at training time comes along"


def test_a_tampered_file_is_refused_and_the_network_trained(published):
    task, train = tiny_task(), Trainer()
    path = publish(published, task, SignNet(num_classes=3, width=8))
    body = bytearray((published / path.name).read_bytes())
    body[-5] ^= 0xFF
    (published / path.name).write_bytes(bytes(body))     # same length, other bytes
    with pytest.warns(UserWarning, match="sha256"):
        model = store.cached(task, "clean", "quick", 0, train)
    assert train.calls == 1 and isinstance(model, SignNet)
    assert not list(path.parent.glob("*.part")), "the bad download was removed"


def test_offline_falls_back_to_training(published, monkeypatch):
    task, train = tiny_task(), Trainer()
    publish(published, task, SignNet(num_classes=3, width=8))
    with socket.socket() as s:          # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("FPCORE_RELEASE_URL", f"http://127.0.0.1:{port}")
    with pytest.warns(UserWarning, match="training instead"):
        store.cached(task, "clean", "quick", 0, train)
    assert train.calls == 1


def test_a_file_from_other_code_or_data_is_never_used(published, monkeypatch):
    """The manifest names files by cache key: other code, data or settings, other name."""
    task, train = tiny_task(), Trainer()
    publish(published, task, SignNet(num_classes=3, width=8))
    monkeypatch.setattr(store, "code_hash", lambda: "0123456789ab")   # the code changed
    store.cached(task, "clean", "quick", 0, train)
    assert train.calls == 1, "a stale file is never downloaded"
    monkeypatch.undo()
    other = tiny_task().shrink(20, 5)                                   # other data
    assert store.cache_path(other, "clean", "quick", 0).name not in release.manifest()


def test_the_committed_manifest_is_well_formed():
    table = json.loads(release.MANIFEST.read_text())
    assert table["url"] == release.RELEASE_URL
    for name, sha in table["files"].items():
        assert name.endswith(".safetensors") and len(sha) == 64, name
