"""The book: execution time of every chapter, from tools/build_book.py's _build/timings.json."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import yaml

from machine import ROOT, timed

TIMINGS = ROOT / "_build" / "timings.json"
STAMP = ROOT / "_build" / "book-stamp.json"


def build(args=("--profile", "quick")) -> float:
    """Run the whole book build now; its wall time in seconds (raises if it fails)."""
    cmd = [sys.executable, str(ROOT / "tools" / "build_book.py"), *args]
    secs, proc = timed(lambda: subprocess.run(cmd, cwd=ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return secs


def toc_chapters() -> list:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    out = []
    for part in [toc] + toc.get("parts", []):
        out += [Path(c["file"]).name for c in part.get("chapters", [])]
    return out


def mtime(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def read() -> dict:
    """Per-chapter seconds and parameters for every TOC chapter, with the file's date."""
    if not TIMINGS.exists():
        return {"present": False}
    data = json.loads(TIMINGS.read_text())
    chapters = data.get("chapters", {})
    rows = []
    for name in toc_chapters():
        t = chapters.get(name)
        exists = (ROOT / "chapters" / f"{name}.md").exists()
        rows.append({"chapter": name, "seconds": t["seconds"] if t else None,
                     "params": {k: v for k, v in t.items() if k != "seconds"} if t else {},
                     "exists": exists})
    out = {"present": True, "date": mtime(TIMINGS), "rows": rows,
           "total": sum(r["seconds"] for r in rows if r["seconds"] is not None),
           "executed": sum(r["seconds"] is not None for r in rows), "listed": len(rows)}
    if STAMP.exists():
        try:
            out["html_seconds"] = json.loads(STAMP.read_text()).get("html_seconds")
        except ValueError:
            pass
    return out
