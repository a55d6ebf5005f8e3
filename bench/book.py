"""The book: execution time of every chapter, from tools/build_book.py's _build/timings.json."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from tools import build_book

from .machine import timed


def build(args=("--profile", "quick")) -> float:
    """Run the whole book build now; its wall time in seconds (raises if it fails)."""
    cmd = [sys.executable, "-m", "tools.build_book", *args]
    secs, proc = timed(lambda: subprocess.run(cmd, cwd=build_book.ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return secs


def mtime(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def read() -> dict:
    """Per-chapter seconds and parameters for every TOC chapter, with the file's date."""
    if not build_book.TIMINGS.exists():
        return {"present": False}
    data = json.loads(build_book.TIMINGS.read_text())
    chapters = data.get("chapters", {})
    rows = []
    for entry in build_book.toc_chapters():
        t = chapters.get(Path(entry).name)
        rows.append({"chapter": Path(entry).name, "seconds": t["seconds"] if t else None,
                     "params": {k: v for k, v in t.items() if k != "seconds"} if t else {},
                     "exists": (build_book.ROOT / f"{entry}.md").exists()})
    out = {"present": True, "date": mtime(build_book.TIMINGS), "rows": rows,
           "total": sum(r["seconds"] for r in rows if r["seconds"] is not None),
           "executed": sum(r["seconds"] is not None for r in rows), "listed": len(rows),
           "jobs": data.get("jobs", 1), "networks_seconds": data.get("networks_seconds")}
    if build_book.STAMP.exists():
        try:
            out["html_seconds"] = json.loads(build_book.STAMP.read_text()).get("html_seconds")
        except ValueError:
            pass
    return out
