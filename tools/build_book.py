#!/usr/bin/env python
"""Build the course book: execute the chapters with papermill, then build the HTML.

For every chapter that _toc.yml lists and whose chapters/NN_name.md exists:

1. check that the committed chapters/NN_name.ipynb (what Colab opens) is
   tools/colab.py's rendering of the .md (with --sync: write it first);
2. execute jupytext's notebook of the .md with papermill (kernel python3, cwd chapters/, parameters
   PROFILE and SEED) into _build/stage/chapters/NN_name.ipynb; a failing cell
   fails the build;
3. record each chapter's wall time in _build/timings.json and print a table;
   with --jobs N > 1 (the default on a CPU with several cores) the networks the
   chapters train are trained first, N at a time (`book_networks`), and then N
   chapters run at once; every process then has one torch thread (`kernel_threads`);
4. stage _config.yml, a _toc.yml filtered to the executed chapters, the landing
   page, _static/ and images, then run
   jupyter-book build _build/stage -W -n --keep-going  (HTML in _build/html).

Examples:
    python -m tools.build_book                     # the whole book, PROFILE=auto
    python -m tools.build_book --only 03 05        # execute chapters 03 and 05 only
    python -m tools.build_book --reuse             # skip chapters whose staged output is fresh
    python -m tools.build_book --sync --only 03    # rewrite chapter 03's Colab .ipynb first
    python -m tools.build_book --no-html           # execute only
    python -m tools.build_book --jobs 1            # one chapter at a time, torch's threads

tests/test_book.py and bench/book.py import this module (tools.build_book) for the
paths and the table of contents.
"""
from __future__ import annotations

import argparse
import ast
import functools
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import NamedTuple, Optional

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
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="chapters (and networks) run at once, one torch thread each; default: the "
                        "number of CPU cores (at most 4), or 1 on a GPU")
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
    return meta == params and staged_threads(entry) == kernel_threads()


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
    nb["metadata"]["fpcore"] = {"torch_threads": kernel_threads()}
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def kernel_threads() -> Optional[int]:
    """The torch threads of the kernels this build starts: 1 when chapters run in
    parallel (OMP_NUM_THREADS=1, one process per core), else None, torch's default.

    It decides more than speed: a CPU sums in another order with another thread
    count, so training drifts. nbval's re-execution must use the same count
    (the top-level conftest.py reads it from the executed notebooks), and the study's
    files (measured with 1 thread) are repeated only by 1-thread kernels.
    """
    value = os.environ.get("OMP_NUM_THREADS")
    return int(value) if value and value.isdigit() else None


def staged_threads(entry: str) -> Optional[int]:
    """The torch threads an executed chapter's kernel had (None: torch's default)."""
    try:
        nb = json.loads(staged(entry).read_text(encoding="utf-8"))
        return nb["metadata"]["fpcore"]["torch_threads"]
    except (OSError, ValueError, KeyError):
        return None


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


def execute_quietly(entry: str, params: dict, timeout: int) -> tuple[Optional[float], str]:
    """`execute` in a worker process: (seconds, "") or (None, the error's last line),
    since papermill's exception does not always survive the trip back."""
    logging.getLogger("papermill").setLevel(logging.WARNING)
    try:
        return execute(entry, params, timeout), ""
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        return None, lines[-1] if lines else type(exc).__name__


def execute_all(entries: list[str], params: dict, timeout: int, jobs: int):
    """Yield (entry, (seconds or None, error)) as chapters finish, `jobs` at a time."""
    if jobs <= 1 or len(entries) <= 1:
        for entry in entries:
            yield entry, execute_quietly(entry, params, timeout)
        return
    with pool(jobs) as workers:
        running = {workers.submit(execute_quietly, e, params, timeout): e for e in entries}
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                yield running.pop(future), future.result()


# --------------------------------------------------------------------------
# several at once: the networks first, then the chapters
# --------------------------------------------------------------------------

class Network(NamedTuple):
    """One network a chapter trains (or defends) on a cold cache."""
    task: str
    kind: str
    defense: Optional[str] = None
    budget: Optional[float] = None     # the defender's share; None is the default

    def needs(self) -> Optional["Network"]:
        """The network this one is made from, if any."""
        if self.defense:
            return self._replace(defense=None)
        if self.kind == "pruning_aware":
            return self._replace(kind="clean")
        return None


def book_networks() -> list[Network]:
    """What the chapters train with their PROFILE and SEED, longest first: the
    received networks of chapters 02-04 and 07, their defenses (08-10), and the
    live point of chapter 12. A network missing here is trained by the chapter that
    asks for it, one process at a time: slower, never wrong."""
    received = [Network(t, k) for t in ("faces", "speech", "signs")
                for k in ("clean", "pruning_aware", "badnet")]
    received.append(Network("speech", "badnet", budget=0.05))
    defended = [n._replace(defense=d) for n in received if n.kind != "clean"
                for d in ("fine_pruning", "fine_tuning", "pruning")
                if n.budget is None or d == "fine_pruning"]
    return received + defended


@functools.lru_cache(maxsize=None)
def load_task(name: str, budget: Optional[float]):
    """A worker loads each task once."""
    import fpcore

    return fpcore.load_task(name, budget=budget)


def train_network(net: Network, profile: str, seed: int) -> float:
    """Put one network in fpcore's model cache (a worker process); its seconds."""
    import fpcore

    t0 = time.perf_counter()
    task = load_task(net.task, net.budget)
    if net.defense:
        fpcore.defended_model(task, net.kind, net.defense, profile, seed, progress=False)
    else:
        fpcore.trained_model(task, net.kind, profile, seed, progress=False)
    return time.perf_counter() - t0


def pool(jobs: int) -> ProcessPoolExecutor:
    """Fresh interpreters (spawn), so no worker inherits the parent's threads."""
    return ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"))


def train_networks(nets: list[Network], params: dict, jobs: int) -> float:
    """Train `nets` `jobs` at a time, each after the network it is made from,
    taking the first ready one in list order; the wall time in seconds."""
    t0 = time.perf_counter()
    todo, done, running = list(nets), set(), {}
    with pool(jobs) as workers:
        while todo or running:
            for net in [n for n in todo if n.needs() in done or n.needs() not in nets]:
                if len(running) == jobs:
                    break
                todo.remove(net)
                running[workers.submit(train_network, net, params["PROFILE"], params["SEED"])] = net
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                net = running.pop(future)
                try:
                    secs = future.result()
                except Exception as exc:
                    raise RuntimeError(f"training {net} failed: {exc}") from exc
                done.add(net)
                print(f"    {secs:5.1f} s  {net.task} {net.kind}"
                      f"{' + ' + net.defense if net.defense else ''}"
                      f"{f' (budget {net.budget:.0%})' if net.budget else ''}", flush=True)
    return time.perf_counter() - t0


def default_jobs() -> int:
    """One chapter per CPU core (at most 4, for memory); one at a time on a GPU."""
    import torch

    return 1 if torch.cuda.is_available() else max(1, min(os.cpu_count() or 1, 4))


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
    if data.get("networks_seconds"):
        how = (f"Before the chapters, the build trained the networks they use, {data['jobs']} at a time "
               f"({data['networks_seconds']:.0f} s), and then ran {data['jobs']} chapters at a time, "
               f"each with one torch thread: the whole execution took {data['wall_seconds']:.0f} s. "
               "A chapter's time is what it takes from a full model cache.")
    else:
        how = ("The times include training any network that was not yet in fpcore's model "
               "cache, so a chapter that runs after another one can be much faster than alone.")
    return "\n".join([
        "# Build status", "",
        "How long each chapter took to execute when this book was built, and with which",
        "parameters.", how, "",
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
    try:
        previous = json.loads(TIMINGS.read_text())
        timings = dict(previous["chapters"])
    except (OSError, ValueError, KeyError, TypeError):
        previous, timings = {}, {}
    jobs = args.jobs or default_jobs()
    if jobs > 1:
        os.environ["OMP_NUM_THREADS"] = "1"     # every worker and kernel: see kernel_threads
    status, to_run = {}, []
    for c in chapters:
        if c not in selected:
            status[c] = ("not selected (earlier output)" if staged(c).exists()
                         else "not selected, never executed: left out")
        elif args.reuse and is_fresh(c, params):
            status[c] = "reused"
        else:
            to_run.append(c)

    wall0, networks = time.perf_counter(), None
    if jobs > 1 and to_run and not args.only:
        print(f"  training the chapters' networks, {jobs} at a time ...", flush=True)
        try:
            networks = train_networks(book_networks(), params, jobs)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"    {networks:.1f} s", flush=True)
    print(f"  executing {len(to_run)} chapter(s) (PROFILE={args.profile!r}, SEED={args.seed}), "
          f"{min(jobs, max(len(to_run), 1))} at a time ...", flush=True)
    failed = []
    for c, (secs, error) in execute_all(to_run, params, args.cell_timeout, jobs):
        name = Path(c).name
        if secs is None:
            failed.append(c)
            status[c] = "FAILED"
            timings.pop(name, None)
            print(f"  FAILED {c}: {error}", file=sys.stderr)
            print(f"    the executed notebook with the error: {FAILED.relative_to(ROOT) / (name + '.ipynb')}",
                  file=sys.stderr)
            continue
        timings[name] = {"seconds": round(secs, 2), **params}
        status[c] = "executed"
        print(f"    {secs:6.1f} s  {name}", flush=True)
    wall = time.perf_counter() - wall0

    rows = []
    for c in chapters:
        t = timings.get(Path(c).name, {}).get("seconds")
        shown = "-" if t is None or status[c] in ("FAILED", "not selected, never executed: left out") else f"{t:.1f}"
        rows.append((Path(c).name, shown, status[c]))
    names = {Path(c).name for c in chapters}
    total = sum(t["seconds"] for n, t in timings.items() if n in names)
    BUILD.mkdir(parents=True, exist_ok=True)
    run = {"jobs": jobs, "networks_seconds": networks and round(networks, 2),
           "wall_seconds": round(wall, 2)}
    if not to_run:                          # nothing executed: keep how the times were made
        run = {k: previous.get(k) for k in run}
    TIMINGS.write_text(json.dumps({"chapters": timings, "total_seconds": round(total, 2), **run},
                                  indent=2) + "\n")
    if networks is not None:
        rows.insert(0, ("(networks first)", f"{networks:.1f}", f"trained {jobs} at a time"))
    print_table(rows + [("total", f"{total:.1f}", f"{len(timings)} chapters, see {TIMINGS.relative_to(ROOT)}"),
                        ("wall time", f"{wall:.1f}", f"{jobs} at a time" if jobs > 1 else "one at a time")])
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
