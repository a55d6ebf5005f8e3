#!/usr/bin/env python
"""Build the course book: execute the chapters with papermill, then build the HTML.

For every chapter that _toc.yml lists and whose chapters/NN_name.md exists:

1. check that the committed chapters/NN_name.ipynb (what Colab opens) is
   tools/colab.py's rendering of the .md (with --sync: write it first);
2. execute jupytext's notebook of the .md with papermill (kernel python3, cwd chapters/, parameters
   PROFILE and SEED) into _build/stage/chapters/NN_name.ipynb; a failing cell
   fails the build;
3. record each chapter's wall time in _build/timings.json and print a table;
4. stage _config.yml, a _toc.yml filtered to the executed chapters, the landing
   page, _static/ and images, then run
   jupyter-book build _build/stage -W -n --keep-going  (HTML in _build/html).

Examples:
    python -m tools.build_book                     # the whole book, PROFILE=auto
    python -m tools.build_book --only 03 05        # execute chapters 03 and 05 only
    python -m tools.build_book --reuse             # skip chapters whose staged output is fresh
    python -m tools.build_book --sync --only 03    # rewrite chapter 03's Colab .ipynb first
    python -m tools.build_book --no-html           # the same tool, run as a module

tests/test_book.py and bench/book.py import this module (tools.build_book) for the
paths and the table of contents.
"""
from __future__ import annotations

import argparse
import ast
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
BUILD = ROOT / "_build"
STAGE = BUILD / "stage"
HTML = BUILD / "html"
FAILED = BUILD / "failed"
TIMINGS = BUILD / "timings.json"
STAMP = BUILD / "book-stamp.json"  # written after a successful build

CHAPTER_RE = re.compile(r"^chapters/(\d\d)_[A-Za-z0-9_]+$")
ASSET_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".bib", ".css", ".csv"}
WIDGET = "application/vnd.jupyter.widget-view+json"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="auto", help='PROFILE parameter: "auto" (default), "quick" or "full"')
    p.add_argument("--seed", type=int, default=0, help="SEED parameter (default 0)")
    p.add_argument("--only", nargs="+", metavar="NN", help="execute only these chapters (numbers, e.g. 02 05); "
                   "other chapters keep their staged output from an earlier run")
    p.add_argument("--reuse", action="store_true", help="skip executing a chapter whose staged output is newer "
                   "than its .md/.ipynb and the fpcore sources and was run with the same parameters")
    p.add_argument("--sync", action="store_true", help="rewrite each selected chapter's Colab .ipynb from its .md first")
    p.add_argument("--cell-timeout", type=int, default=1800, help="seconds a single cell may run (default 1800)")
    p.add_argument("--no-html", action="store_true", help="execute only, do not run jupyter-book")
    p.add_argument("--list-notebooks", action="store_true",
                   help="print the executed notebook (_build/stage/chapters/NN_name.ipynb) of every TOC "
                        "chapter whose .md exists, for nbval (make test-notebooks), and exit")
    return p.parse_args(argv)


# --------------------------------------------------------------------------
# the table of contents
# --------------------------------------------------------------------------

def toc() -> dict:
    return yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))


def toc_chapters() -> list[str]:
    """Every chapter the TOC lists, in order, as 'chapters/NN_name' (no suffix)."""
    entries = [c["file"] for c in toc().get("chapters", [])]
    for e in entries:
        if not CHAPTER_RE.match(e):
            raise ValueError(f"_toc.yml: chapter entry {e!r} is not 'chapters/NN_name'")
    return entries


def existing_chapters() -> list[str]:
    """TOC chapters whose MyST-Markdown source exists (never chapters/_template.md)."""
    return [c for c in toc_chapters() if (ROOT / f"{c}.md").exists()]


def chapter_number(entry: str) -> str:
    return Path(entry).name[:2]


def staged(entry: str) -> Path:
    return STAGE / f"{entry}.ipynb"


def fpcore_sources() -> list[Path]:
    return sorted((ROOT / "fpcore").rglob("*.py"))


# --------------------------------------------------------------------------
# the committed .ipynb: the Colab notebook tools/colab.py makes from the .md
# --------------------------------------------------------------------------

def sync_problems(md_path: Path) -> list[str]:
    """Why the committed .ipynb next to md_path is not tools/colab.py's rendering of
    the .md (empty when it is); the build and tests/test_book.py share this check."""
    from tools import colab

    ipynb = md_path.with_suffix(".ipynb")
    if not ipynb.exists():
        return [f"{ipynb.relative_to(ROOT)} is missing"]
    if ipynb.read_text(encoding="utf-8") != colab.render(md_path):
        return [f"{ipynb.relative_to(ROOT)} is not the Colab rendering of {md_path.name}"]
    return []


def write_colab(md_path: Path) -> None:
    from tools import colab

    md_path.with_suffix(".ipynb").write_text(colab.render(md_path), encoding="utf-8")


def source_notebook(entry: str) -> Path:
    """What papermill executes: jupytext's notebook of the .md, MyST and all (the
    committed .ipynb is for Colab, without MyST, so the book cannot be built from it)."""
    import jupytext

    path = BUILD / "src" / f"{entry}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(jupytext.read(ROOT / f"{entry}.md"), path, fmt="ipynb")
    return path


# --------------------------------------------------------------------------
# execution
# --------------------------------------------------------------------------

def is_fresh(entry: str, params: dict) -> bool:
    """--reuse: myst-nb's execution cache cannot pass papermill parameters, so
    freshness (inputs older than the output, same parameters) is checked here."""
    out = staged(entry)
    if not out.exists():
        return False
    inputs = [ROOT / f"{entry}.md", ROOT / f"{entry}.ipynb", *fpcore_sources()]
    if out.stat().st_mtime <= max(p.stat().st_mtime for p in inputs if p.exists()):
        return False
    try:
        meta = json.loads(out.read_text(encoding="utf-8"))["metadata"]["papermill"]["parameters"]
    except (KeyError, ValueError):
        return False
    return meta == params


def parameter_defaults(nb: dict) -> dict:
    """The literal assignments of the cell tagged 'parameters'."""
    defaults = {}
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            for node in ast.parse("".join(cell["source"])).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    try:
                        defaults[node.targets[0].id] = ast.literal_eval(node.value)
                    except ValueError:
                        pass
    return defaults


def clean_executed(path: Path, params: dict) -> None:
    """Two fixes to papermill's output that no Jupyter Book or myst-nb setting makes:
    - papermill adds an 'injected-parameters' cell: hide it (remove-cell) when it only
      repeats the defaults, keep it visible otherwise so the page says how it was run;
    - drop widget outputs: tqdm.auto's progress bars, shown only when a model was
      trained (a cache miss); papermill saves no widget state, so they cannot render,
      and nbval's re-execution (warm cache) would not show them."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    defaults = parameter_defaults(nb)
    for cell in nb["cells"]:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and all(defaults.get(k) == v for k, v in params.items()):
            tags.append("remove-cell")
        if cell["cell_type"] == "code":
            cell["outputs"] = [o for o in cell["outputs"] if WIDGET not in o.get("data", {})]
    nb["metadata"].pop("widgets", None)   # their state: myst-nb would load require.js from a CDN
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def execute(entry: str, params: dict, timeout: int) -> float:
    import papermill

    src = source_notebook(entry)
    out = staged(entry)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".running.ipynb")
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(src), str(tmp), parameters=params, kernel_name="python3",
            cwd=str(CHAPTERS), progress_bar=False, log_output=False, execution_timeout=timeout,
        )
    except BaseException:
        FAILED.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.move(str(tmp), FAILED / out.name)
        if out.exists():
            out.unlink()  # never build the book from an older, passing output
        raise
    seconds = time.perf_counter() - t0
    clean_executed(tmp, params)
    os.replace(tmp, out)
    (FAILED / out.name).unlink(missing_ok=True)
    return seconds


# --------------------------------------------------------------------------
# staging and HTML
# --------------------------------------------------------------------------

def stage_book(chapters: list[str]) -> None:
    """Jupyter Book builds a folder: the executed notebooks (not the .md sources next
    to them), the configuration, a TOC of the executed chapters, and the assets."""
    STAGE.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "_config.yml", STAGE / "_config.yml")
    contents = toc()
    contents["chapters"] = [c for c in contents.get("chapters", []) if c["file"] in chapters]
    contents["chapters"].append({"file": "status"})
    (STAGE / "status.md").write_text(status_page(), encoding="utf-8")
    (STAGE / "_toc.yml").write_text(
        "# Generated by tools/build_book.py from ../../_toc.yml: only the chapters that were executed.\n"
        + yaml.safe_dump(contents, sort_keys=False), encoding="utf-8")
    for suffix in (".md", ".ipynb"):
        landing = ROOT / f"{contents['root']}{suffix}"
        if landing.exists():
            shutil.copy2(landing, STAGE / landing.name)
    (STAGE / "tools").mkdir(exist_ok=True)
    shutil.copy2(ROOT / "tools" / "book_fixes.py", STAGE / "tools" / "book_fixes.py")
    for folder in ("_static", "images"):
        if (STAGE / folder).exists():
            shutil.rmtree(STAGE / folder)
        if (ROOT / folder).is_dir():
            shutil.copytree(ROOT / folder, STAGE / folder)
    # images and other assets next to the chapters (chapters/images/x.png, ...)
    for path in CHAPTERS.rglob("*"):
        rel = path.relative_to(ROOT)
        if (path.is_file() and path.suffix.lower() in ASSET_SUFFIXES
                and not any(part.startswith(("_", ".")) for part in rel.parts[1:])):
            dest = STAGE / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)


def status_page() -> str:
    """The book's last page: what each chapter cost to execute in this build, and with
    which parameters, from _build/timings.json (so instructors know what a chapter costs)."""
    import platform

    import torch

    data = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {"chapters": {}}
    rows = [f"| {name} | {t.get('PROFILE', '?')} | {t.get('SEED', '?')} | {t['seconds']:.0f} |"
            for name, t in sorted(data["chapters"].items())]
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else (
        f"CPU ({os.cpu_count()} cores, {platform.machine()})")
    return "\n".join([
        "# Build status", "",
        "How long each chapter took to execute when this book was built, and with which",
        "parameters. The times include training any network that was not yet in fpcore's model",
        "cache, so a chapter that runs after another one can be much faster than alone.",
        f"The build ran on: {device}; torch {torch.__version__}.", "",
        "| chapter | PROFILE | SEED | seconds |", "|---|---|---|--:|", *rows,
        f"| **total** | | | **{data.get('total_seconds', 0):.0f}** |", ""])


def build_html() -> int:
    # jupyter-book's own entry point run by this Python: no reliance on a `jupyter-book` on PATH
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(STAGE),
           "--path-output", str(ROOT), "-W", "-n", "--keep-going", "--all", "-q"]
    print("+ jupyter-book build _build/stage --path-output . -W -n --keep-going --all -q", flush=True)
    return subprocess.call(cmd, cwd=ROOT)


# --------------------------------------------------------------------------

def print_table(rows: list[tuple[str, str, str]]) -> None:
    w = max(len(r[0]) for r in rows)
    print(f"\n{'chapter':<{w}}  {'seconds':>8}  status")
    for name, secs, status in rows:
        print(f"{name:<{w}}  {secs:>8}  {status}")


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.getLogger("papermill").setLevel(logging.WARNING)
    os.environ["FPCORE_BOOK"] = "1"   # fpcore.chapter.glue: myst-nb's glue, not a print
    chapters = existing_chapters()
    if args.list_notebooks:
        for c in chapters:
            print(staged(c).relative_to(ROOT))
        return 0

    if STAMP.exists():
        STAMP.unlink()  # written again only when this run builds the HTML
    listed = toc_chapters()
    print(f"Book: {len(chapters)} of {len(listed)} chapters in _toc.yml have a source.")
    for m in listed:
        if m not in chapters:
            print(f"  missing (left out of the book): {m}.md")

    selected = chapters
    if args.only:
        wanted = {n.zfill(2) for n in args.only}
        unknown = wanted - {chapter_number(c) for c in chapters}
        if unknown:
            print(f"error: --only {' '.join(sorted(unknown))}: no such chapter with a .md in _toc.yml", file=sys.stderr)
            return 2
        selected = [c for c in chapters if chapter_number(c) in wanted]

    # 1. paired notebooks
    out_of_sync = []
    for c in selected:
        md = ROOT / f"{c}.md"
        if args.sync:
            write_colab(md)
        problems = sync_problems(md)
        if problems:
            out_of_sync.append(c)
            print(f"error: {c}.ipynb does not match {c}.md: {'; '.join(problems)}", file=sys.stderr)
    if out_of_sync:
        nums = " ".join(chapter_number(c) for c in out_of_sync)
        print(f"Update with:  python -m tools.build_book --sync --only {nums}",
              file=sys.stderr)
        return 2

    # 2. execution
    params = {"PROFILE": args.profile, "SEED": args.seed}
    timings = {}
    if TIMINGS.exists():
        try:
            timings = json.loads(TIMINGS.read_text())["chapters"]
        except (ValueError, KeyError):
            timings = {}
    rows, failed = [], []
    for c in chapters:
        name = Path(c).name
        prev = timings.get(name, {}).get("seconds")
        prev = f"{prev:.1f}" if prev is not None else "-"
        if c not in selected:
            rows.append((name, prev, "not selected (earlier output)") if staged(c).exists()
                        else (name, "-", "not selected, never executed: left out"))
            continue
        if args.reuse and is_fresh(c, params):
            rows.append((name, prev, "reused"))
            continue
        print(f"  executing {c}.ipynb (PROFILE={args.profile!r}, SEED={args.seed}) ...", flush=True)
        try:
            secs = execute(c, params, args.cell_timeout)
        except Exception as exc:  # papermill raises PapermillExecutionError on a failing cell
            failed.append(c)
            first = str(exc).strip().splitlines()
            print(f"  FAILED {c}: {first[-1] if first else type(exc).__name__}", file=sys.stderr)
            print(f"    the executed notebook with the error: {FAILED.relative_to(ROOT) / (name + '.ipynb')}",
                  file=sys.stderr)
            rows.append((name, "-", "FAILED"))
            timings.pop(name, None)
            continue
        timings[name] = {"seconds": round(secs, 2), **params}
        rows.append((name, f"{secs:.1f}", "executed"))
        print(f"    {secs:.1f} s", flush=True)

    names = {Path(c).name for c in chapters}
    total = sum(t["seconds"] for n, t in timings.items() if n in names)
    BUILD.mkdir(parents=True, exist_ok=True)
    TIMINGS.write_text(json.dumps({"chapters": timings, "total_seconds": round(total, 2)}, indent=2) + "\n")
    print_table(rows + [("total", f"{total:.1f}", f"{len(timings)} chapters, see {TIMINGS.relative_to(ROOT)}")])
    if failed:
        print(f"\nerror: {len(failed)} chapter(s) failed: {', '.join(failed)}; no HTML built.", file=sys.stderr)
        return 1
    if args.no_html:
        return 0

    # 3. HTML
    in_book = [c for c in chapters if staged(c).exists()]
    stage_book(in_book)
    t0 = time.perf_counter()
    rc = build_html()
    html_secs = time.perf_counter() - t0
    if rc != 0:
        print(f"\nerror: jupyter-book build failed (exit {rc}); warnings count as errors.", file=sys.stderr)
        return rc
    STAMP.write_text(json.dumps({"chapters": in_book, "params": params, "html_seconds": round(html_secs, 1),
                                 "time": time.time()}, indent=2) + "\n")
    print(f"\nHTML: {HTML.relative_to(ROOT)}/index.html  ({len(in_book)} chapters, "
          f"jupyter-book {html_secs:.0f} s, execution {total:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
