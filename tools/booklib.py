"""Helpers shared by tools/build_book.py and tests/test_book.py.

One place for: where things are, which chapters the table of contents lists,
the repository URL (read from _config.yml), and how a chapter's committed
.ipynb is regenerated from its MyST-Markdown source with jupytext.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
BUILD = ROOT / "_build"
STAGE = BUILD / "stage"
HTML = BUILD / "html"
TIMINGS = BUILD / "timings.json"
STAMP = BUILD / "book-stamp.json"  # written after a successful build

CHAPTER_RE = re.compile(r"^chapters/(\d\d)_[A-Za-z0-9_]+$")


def read_yaml(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def config() -> dict:
    return read_yaml(ROOT / "_config.yml")


def repository() -> tuple[str, str]:
    """(url, branch) of the book's GitHub repository, from _config.yml."""
    repo = config()["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def colab_prefix() -> str:
    """Every Colab link of the book starts with this, then the .ipynb's path."""
    url, branch = repository()
    cfg = config()
    colab = cfg["launch_buttons"]["colab_url"].rstrip("/")
    org_repo = url.split("github.com/", 1)[1]
    return f"{colab}/github/{org_repo}/blob/{branch}/"


def toc() -> dict:
    return read_yaml(ROOT / "_toc.yml")


def toc_root() -> str:
    return toc()["root"]


def toc_chapters() -> list[str]:
    """Every chapter the TOC lists, in order, as 'chapters/NN_name' (no suffix)."""
    entries = [c["file"] for c in toc().get("chapters", [])]
    for e in entries:
        if not CHAPTER_RE.match(e):
            raise ValueError(f"_toc.yml: chapter entry {e!r} is not 'chapters/NN_name'")
    return entries


def existing_chapters() -> list[str]:
    """TOC chapters whose MyST-Markdown source exists."""
    return [c for c in toc_chapters() if (ROOT / f"{c}.md").exists()]


def missing_chapters() -> list[str]:
    return [c for c in toc_chapters() if not (ROOT / f"{c}.md").exists()]


def chapter_number(entry: str) -> str:
    return Path(entry).name[:2]


# --------------------------------------------------------------------------
# jupytext pairing
# --------------------------------------------------------------------------

def _cell_id(cell_type: str, source: str, seen: set) -> str:
    """A deterministic cell id (jupytext would draw a random one each time)."""
    base = hashlib.sha1(f"{cell_type}\n{source}".encode()).hexdigest()[:8]
    cid, n = base, 1
    while cid in seen:
        cid, n = f"{base}-{n}", n + 1
    seen.add(cid)
    return cid


def notebook_from_md(md_path: Path):
    """The notebook jupytext makes from a chapter's .md, without outputs and with
    deterministic cell ids."""
    import jupytext

    nb = jupytext.read(md_path)
    seen: set = set()
    for cell in nb.cells:
        cell["id"] = _cell_id(cell.cell_type, cell.source, seen)
        if cell.cell_type == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return nb


def write_paired_ipynb(md_path: Path) -> Path:
    import jupytext

    nb = notebook_from_md(md_path)
    out = md_path.with_suffix(".ipynb")
    jupytext.write(nb, out, fmt="ipynb")
    return out


def cell_signature(nb) -> list[tuple]:
    """What must agree between a committed .ipynb and a fresh regeneration:
    each cell's type, source and tags. Cell ids and notebook metadata that
    jupytext or Jupyter vary legitimately are ignored."""
    sig = []
    for cell in nb["cells"]:
        src = cell["source"]
        if isinstance(src, list):
            src = "".join(src)
        tags = tuple(cell.get("metadata", {}).get("tags", []))
        sig.append((cell["cell_type"], src, tags))
    return sig


def sync_problems(md_path: Path) -> list[str]:
    """Why the committed .ipynb next to md_path is not a faithful regeneration
    (empty list when it is)."""
    ipynb = md_path.with_suffix(".ipynb")
    if not ipynb.exists():
        return [f"{ipynb.relative_to(ROOT)} is missing"]
    with open(ipynb, encoding="utf-8") as fh:
        committed = json.load(fh)
    problems = []
    fresh = cell_signature(notebook_from_md(md_path))
    have = cell_signature(committed)
    if fresh != have:
        for i, (a, b) in enumerate(zip(fresh, have)):
            if a != b:
                problems.append(f"cell {i} differs from the .md (first difference)")
                break
        else:
            problems.append(f"{len(have)} cells in the .ipynb, {len(fresh)} from the .md")
    for i, cell in enumerate(committed["cells"]):
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count")):
            problems.append(f"cell {i} has outputs or an execution count")
            break
    kernel = committed.get("metadata", {}).get("kernelspec", {}).get("name")
    if kernel != "python3":
        problems.append(f"kernelspec is {kernel!r}, not 'python3'")
    return problems


def fpcore_sources() -> list[Path]:
    return sorted((ROOT / "fpcore").rglob("*.py"))
