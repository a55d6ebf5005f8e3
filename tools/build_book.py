#!/usr/bin/env python
"""Build the course book: check the paired notebooks, execute them, build the HTML.

For every chapter that _toc.yml lists and whose chapters/NN_name.md exists:

1. check that the committed chapters/NN_name.ipynb is the jupytext regeneration of
   the .md (with --sync: regenerate it);
2. execute the .ipynb with papermill (kernel python3, cwd chapters/, parameters
   PROFILE and SEED) into _build/stage/chapters/NN_name.ipynb; a failing cell
   fails the build;
3. record each chapter's wall time in _build/timings.json and print a table;
4. stage _config.yml, a _toc.yml filtered to the executed chapters, the landing
   page, _static/ and images, then run
   jupyter-book build _build/stage -W -n --keep-going  (HTML in _build/html).

Examples:
    python tools/build_book.py                     # the whole book, PROFILE=auto
    python tools/build_book.py --only 03 05        # execute chapters 03 and 05 only
    python tools/build_book.py --reuse             # skip chapters whose staged output is fresh
    python tools/build_book.py --sync --only 03    # regenerate 03's .ipynb from its .md first
"""
from __future__ import annotations

import argparse
import ast
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import booklib  # noqa: E402
from booklib import BUILD, CHAPTERS, HTML, ROOT, STAGE, STAMP, TIMINGS  # noqa: E402

ASSET_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".bib", ".css", ".csv"}
FAILED = BUILD / "failed"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="auto", help='PROFILE parameter: "auto" (default), "quick" or "full"')
    p.add_argument("--seed", type=int, default=0, help="SEED parameter (default 0)")
    p.add_argument("--only", nargs="+", metavar="NN", help="execute only these chapters (numbers, e.g. 02 05); "
                   "other chapters keep their staged output from an earlier run")
    p.add_argument("--reuse", action="store_true", help="skip executing a chapter whose staged output is newer "
                   "than its .md/.ipynb and the fpcore sources and was run with the same parameters")
    p.add_argument("--sync", action="store_true", help="regenerate each selected chapter's .ipynb from its .md")
    p.add_argument("--cell-timeout", type=int, default=1800, help="seconds a single cell may run (default 1800)")
    p.add_argument("--no-html", action="store_true", help="execute only, do not run jupyter-book")
    p.add_argument("--list-notebooks", action="store_true",
                   help="print the .ipynb of every TOC chapter whose .md exists, and exit")
    return p.parse_args(argv)


# --------------------------------------------------------------------------
# execution
# --------------------------------------------------------------------------

def staged(entry: str) -> Path:
    return STAGE / f"{entry}.ipynb"


def is_fresh(entry: str, params: dict) -> bool:
    out = staged(entry)
    if not out.exists():
        return False
    inputs = [ROOT / f"{entry}.md", ROOT / f"{entry}.ipynb", *booklib.fpcore_sources()]
    newest = max(p.stat().st_mtime for p in inputs if p.exists())
    if out.stat().st_mtime <= newest:
        return False
    try:
        meta = json.loads(out.read_text(encoding="utf-8"))["metadata"]["papermill"]["parameters"]
    except (KeyError, ValueError):
        return False
    return meta == params


def hide_injected_parameters(path: Path, params: dict) -> None:
    """Papermill adds an 'injected-parameters' cell. Remove it from the HTML when
    it only repeats the defaults of the 'parameters' cell; keep it visible otherwise
    so the page says which profile it was run with."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    defaults = {}
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            for node in ast.parse(src).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    try:
                        defaults[node.targets[0].id] = ast.literal_eval(node.value)
                    except ValueError:
                        pass
    for cell in nb["cells"]:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and all(defaults.get(k) == v for k, v in params.items()):
            tags.append("remove-cell")
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def execute(entry: str, params: dict, timeout: int) -> float:
    import papermill

    src = ROOT / f"{entry}.ipynb"
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
    hide_injected_parameters(tmp, params)
    os.replace(tmp, out)
    (FAILED / out.name).unlink(missing_ok=True)
    return seconds


# --------------------------------------------------------------------------
# staging and HTML
# --------------------------------------------------------------------------

def stage_book(chapters: list[str]) -> None:
    STAGE.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "_config.yml", STAGE / "_config.yml")
    toc = booklib.toc()
    toc["chapters"] = [c for c in toc.get("chapters", []) if c["file"] in chapters]
    if not toc["chapters"]:
        del toc["chapters"]
    import yaml

    (STAGE / "_toc.yml").write_text(
        "# Generated by tools/build_book.py from ../../_toc.yml: only the chapters that were executed.\n"
        + yaml.safe_dump(toc, sort_keys=False), encoding="utf-8")
    root = booklib.toc_root()
    for suffix in (".md", ".ipynb"):
        if (ROOT / f"{root}{suffix}").exists():
            shutil.copy2(ROOT / f"{root}{suffix}", STAGE / f"{root}{suffix}")
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


def build_html() -> int:
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
    chapters = booklib.existing_chapters()
    if args.list_notebooks:
        for c in chapters:
            print(f"{c}.ipynb")
        return 0

    if STAMP.exists():
        STAMP.unlink()  # written again only when this run builds the HTML
    missing = booklib.missing_chapters()
    print(f"Book: {len(chapters)} of {len(booklib.toc_chapters())} chapters in _toc.yml have a source.")
    for m in missing:
        print(f"  missing (left out of the book): {m}.md")

    selected = chapters
    if args.only:
        wanted = {n.zfill(2) for n in args.only}
        unknown = wanted - {booklib.chapter_number(c) for c in chapters}
        if unknown:
            print(f"error: --only {' '.join(sorted(unknown))}: no such chapter with a .md in _toc.yml", file=sys.stderr)
            return 2
        selected = [c for c in chapters if booklib.chapter_number(c) in wanted]

    # 1. paired notebooks
    out_of_sync = []
    for c in selected:
        md = ROOT / f"{c}.md"
        if args.sync:
            booklib.write_paired_ipynb(md)
            print(f"  synced {c}.ipynb from {c}.md")
        else:
            problems = booklib.sync_problems(md)
            if problems:
                out_of_sync.append(c)
                print(f"error: {c}.ipynb is not the jupytext regeneration of {c}.md: {'; '.join(problems)}",
                      file=sys.stderr)
    if out_of_sync:
        nums = " ".join(booklib.chapter_number(c) for c in out_of_sync)
        print(f"Regenerate with:  python tools/build_book.py --sync --only {nums}", file=sys.stderr)
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
        if c not in selected:
            if staged(c).exists():
                prev = timings.get(name, {}).get("seconds")
                rows.append((name, f"{prev:.1f}" if prev is not None else "-", "not selected (earlier output)"))
            else:
                rows.append((name, "-", "not selected, never executed: left out"))
            continue
        if args.reuse and is_fresh(c, params):
            prev = timings.get(name, {}).get("seconds")
            rows.append((name, f"{prev:.1f}" if prev is not None else "-", "reused"))
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

    total = sum(t["seconds"] for n, t in timings.items() if any(Path(c).name == n for c in chapters))
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
