"""Published model files: download a trained network instead of training it.

A fresh Colab runtime would otherwise train every network a chapter needs.
The course publishes the networks the chapters use, as safetensors files, at
one address (`RELEASE_URL`, or $FPCORE_RELEASE_URL). `manifest.json`, next to
this module and committed with the code, lists each file by its cache name
with its sha256. The cache name holds the cache key (code, data and
settings), so a file made by other code is simply not listed: it is never
used, and the network is trained instead. A file whose sha256 does not match
is refused; offline, the network is trained.

Instructors and maintainers build the files and the manifest with
`python -m fpcore.release build` (`make release`), then upload the files.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

from .download import DataMissingError, fetch

# The one place that names the release. Uploaded files go under this address.
RELEASE_URL = ("https://github.com/fine-pruning-course/fine-pruning-book/"
               "releases/download/models")
MANIFEST = Path(__file__).resolve().parent / "manifest.json"


def release_url() -> str:
    """$FPCORE_RELEASE_URL if set (a mirror, or a local server in tests), else RELEASE_URL."""
    return os.environ.get("FPCORE_RELEASE_URL", RELEASE_URL).rstrip("/")


def manifest(path: Path | None = None) -> dict:
    """File name -> sha256 of every published model file ({} when there is none)."""
    path = path or MANIFEST
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8")).get("files", {})


def fetch_published(dest: Path) -> bool:
    """Download the published file named like `dest` into `dest`, checked by sha256.

    Returns False, leaving nothing behind, when the manifest does not list the
    name, when the release cannot be reached, or when the bytes do not match.
    """
    sha256 = manifest().get(dest.name)
    if sha256 is None:
        return False
    url = f"{release_url()}/{dest.name}"
    try:
        fetch(url, dest, sha256=sha256, desc=f"model {dest.name}")
    except DataMissingError as err:
        warnings.warn(f"published model not used, training instead: {err}", stacklevel=3)
        return False
    return True


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def build(out: Path, profiles=("quick",), seeds=(0,), tasks=("signs", "faces", "speech"),
          manifest_path: Path | None = None) -> dict:
    """Train (or take from the cache) every network the chapters use; copy the files
    into `out` and write the manifest. Returns the manifest's file table."""
    from .cases import load_task
    from .store import cache_path
    from .zoo import DEFENSES, KINDS, defended_model, trained_model

    manifest_path = manifest_path or MANIFEST
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in tasks:
        task = load_task(name)
        for profile in profiles:
            for seed in seeds:
                kinds = [(kind, None) for kind in KINDS]
                kinds += [(kind, d) for kind in KINDS if kind != "clean" for d in DEFENSES]
                for kind, defense in kinds:
                    if defense is None:
                        trained_model(task, kind, profile, seed)
                        src = cache_path(task, kind, profile, seed)
                    else:
                        defended_model(task, kind, defense, profile, seed)
                        src = cache_path(task, f"{kind}+{defense}", profile, seed)
                    shutil.copy2(src, out / src.name)
                    files[src.name] = sha256_of(src)
    table = {**manifest(manifest_path), **files}
    manifest_path.write_text(json.dumps({"url": RELEASE_URL, "files": dict(sorted(table.items()))},
                                        indent=1) + "\n", encoding="utf-8")
    return files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fpcore.release", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the model files and the manifest")
    b.add_argument("--out", type=Path, default=Path("_build/release"))
    b.add_argument("--profiles", nargs="+", default=["quick"], choices=["quick", "full"])
    b.add_argument("--seeds", nargs="+", type=int, default=[0])
    b.add_argument("--tasks", nargs="+", default=["signs", "faces", "speech"])
    args = p.parse_args(argv)
    files = build(args.out, tuple(args.profiles), tuple(args.seeds), tuple(args.tasks))
    print(f"{len(files)} model files in {args.out}; manifest: {MANIFEST}")
    print(f"upload them to {RELEASE_URL}/ and commit {MANIFEST.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
