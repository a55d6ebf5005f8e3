"""Build the course's autograded assignments with otter-grader (Otter Assign).

Every assignment has one source, a master notebook written in MyST Markdown:
assignments/NN_name/NN_name.md. It holds the questions, the solutions and
the tests in Otter Assign's format (```otter blocks for the configuration and
the question boundaries, # BEGIN SOLUTION ... # END SOLUTION in code cells,
exception-based test functions). For each master this tool

1. converts it to a notebook with jupytext and inserts the two setup cells
   every assignment shares (below), with the repository taken from _config.yml;
2. runs `otter assign` on it, which writes into _build/assignments/NN_name/
   - student/NN_name.ipynb and student/tests/: what students get (solutions
     replaced by `...`, public tests only);
   - autograder/NN_name.ipynb (the solution notebook), autograder/tests/ (all
     tests, hidden ones too) and autograder/autograder.zip (the instructors'
     package: Gradescope's autograder, or `otter run -a autograder.zip
     submission.ipynb` to grade one notebook locally);
3. with --sync, copies student/ into assignments/NN_name/student/, the copy
   that is committed: Colab opens that notebook from the repository, and its
   first cell downloads the tests from there. With --check, fails when that
   copy differs from a fresh build (tests/test_assignments.py runs it).

The shared setup cells:
- "Run this cell first": in Colab it installs otter-grader and the course
  package; anywhere, it downloads the assignment's public tests into tests/
  when they are missing. It is tagged otter_ignore, so grading skips it.
- `import otter; grader = otter.Notebook()`: the grader the check cells use.

Examples:
    python -m assignments.build                     # every assignment
    python -m assignments.build --only 02_pruning   # one of them
    python -m assignments.build --sync              # and refresh the committed copies
    python -m assignments.build --check             # are the committed copies fresh?
    python -m assignments.build --run-tests         # also let otter grade each solution (slow)
"""
from __future__ import annotations

import argparse
import contextlib
import filecmp
import io
import logging
import re
import shutil
import sys
from pathlib import Path

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "assignments"
OUT = ROOT / "_build" / "assignments"
NAME_RE = re.compile(r"^\d\d_[a-z0-9_]+$")
OTTER = "otter-grader>=7,<8"
# What running a notebook in place leaves behind (assignments/.gitignore too)
LEFTOVERS = {"__pycache__", ".ipynb_checkpoints", ".OTTER_LOG"}

SETUP_CELL = '''\
# Run this cell first. In Colab it installs the course package and otter-grader;
# anywhere, it downloads this assignment's tests into tests/ if they are missing.
import os, subprocess, sys, urllib.request

REPOSITORY, BRANCH = "{repository}", "{branch}"
TESTS = "assignments/{name}/student/tests"
if "google.colab" in sys.modules:
    PACKAGES = ["{otter}", f"git+https://github.com/{{REPOSITORY}}@{{BRANCH}}"]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *PACKAGES],
                   check=True)
os.makedirs("tests", exist_ok=True)
for q in [{questions}]:
    if not os.path.exists(f"tests/{{q}}.py"):
        urllib.request.urlretrieve(f"https://raw.githubusercontent.com/"
                                   f"{{REPOSITORY}}/{{BRANCH}}/{{TESTS}}/{{q}}.py",
                                   f"tests/{{q}}.py")'''

GRADER_CELL = '''\
import otter

grader = otter.Notebook()  # grader.check("q...") runs the tests of one question'''


def repository() -> tuple[str, str]:
    """(owner/name, branch) of the repository, from _config.yml."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    repo = config["repository"]
    url = repo["url"].rstrip("/")
    match = re.fullmatch(r"https://github\.com/([^/]+/[^/]+?)(?:\.git)?", url)
    if not match:
        raise ValueError(f"_config.yml: repository.url {url!r} is not a GitHub repository URL")
    return match.group(1), repo.get("branch", "main")


def names() -> list[str]:
    """Every assignment: a folder assignments/NN_name holding NN_name.md."""
    return sorted(p.name for p in HERE.iterdir()
                  if p.is_dir() and NAME_RE.match(p.name) and (p / f"{p.name}.md").is_file())


def question_names(nb) -> list[str]:
    """The questions of a master notebook, in order (from its BEGIN QUESTION blocks)."""
    found = []
    for cell in nb.cells:
        for block in re.findall(r"```otter\n(.*?)```", cell.source + "\n", re.S):
            if re.match(r"\s*#\s*BEGIN\s+QUESTION", block):
                found.append(yaml.safe_load(block.split("\n", 1)[1])["name"])
    return found


def master_notebook(name: str):
    """The master as a notebook, with the shared setup cells after its title."""
    nb = jupytext.read(HERE / name / f"{name}.md")
    repo, branch = repository()
    setup = nbformat.v4.new_code_cell(SETUP_CELL.format(
        repository=repo, branch=branch, name=name, otter=OTTER,
        questions=",\n          ".join(f'"{q}"' for q in question_names(nb))))
    setup.metadata["tags"] = ["otter_ignore"]
    grader = nbformat.v4.new_code_cell(GRADER_CELL)
    at = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
    nb.cells[at:at] = [setup, grader]
    nb.metadata.pop("jupytext", None)
    nb.nbformat_minor = 4          # no cell ids: the same master gives the same files
    for cell in nb.cells:
        cell.pop("id", None)
    return nb


def requirements() -> str:
    """What the autograder installs (on Gradescope) besides otter's own list."""
    repo, branch = repository()
    return f"torch>=2.0\nfpcore @ git+https://github.com/{repo}@{branch}\n"


def build(name: str, out: Path = OUT, run_tests: bool = False, quiet: bool = True) -> Path:
    """Run otter assign on one master; returns _build/assignments/NAME."""
    from otter.assign import main as otter_assign

    dest = out / name
    source = dest / "source"
    shutil.rmtree(dest, ignore_errors=True)
    source.mkdir(parents=True)
    master = source / f"{name}.ipynb"
    nbformat.write(master_notebook(name), master)
    (source / "requirements.txt").write_text(requirements(), encoding="utf-8")
    log = io.StringIO()
    with contextlib.redirect_stdout(log) if quiet else contextlib.nullcontext():
        otter_assign(str(master), str(dest), no_pdfs=True, no_run_tests=not run_tests)
    zips = sorted((dest / "autograder").glob("*.zip"))
    if len(zips) != 1:
        raise RuntimeError(f"{name}: expected one autograder zip, found {zips}\n{log.getvalue()}")
    zips[0].rename(dest / "autograder" / "autograder.zip")
    return dest


def committed(name: str) -> Path:
    return HERE / name / "student"


def stale(name: str, built: Path) -> list[str]:
    """Files in which the committed student copy differs from a fresh build."""
    new, old = built / "student", committed(name)
    files = lambda root: {p.relative_to(root).as_posix() for p in root.rglob("*")
                          if p.is_file() and not LEFTOVERS & {p.name, *p.parts}}
    if not old.is_dir():
        return [f"{old.relative_to(ROOT)} is missing"]
    a, b = files(new), files(old)
    diff = sorted(a ^ b) + sorted(f for f in a & b if not filecmp.cmp(new / f, old / f, False))
    return diff


def sync(name: str, built: Path) -> None:
    shutil.rmtree(committed(name), ignore_errors=True)
    shutil.copytree(built / "student", committed(name),
                    ignore=shutil.ignore_patterns(*LEFTOVERS))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", metavar="NAME", help="build only these assignments")
    p.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    p.add_argument("--sync", action="store_true",
                   help="copy each student version into assignments/NAME/student/")
    p.add_argument("--check", action="store_true",
                   help="fail if a committed student version differs from the build")
    p.add_argument("--run-tests", action="store_true",
                   help="let otter assign run the tests on each solution notebook (slow)")
    p.add_argument("--list", action="store_true", help="print the assignments and exit")
    args = p.parse_args(argv)
    todo = names()
    if args.list:
        print("\n".join(todo))
        return 0
    if args.only:
        unknown = sorted(set(args.only) - set(todo))
        if unknown:
            p.error(f"unknown assignment(s) {unknown}; choose from {todo}")
        todo = [n for n in todo if n in args.only]
    logging.getLogger("otter").setLevel(logging.WARNING)
    problems = []
    for name in todo:
        built = build(name, args.out, run_tests=args.run_tests, quiet=not args.run_tests)
        print(f"{name}: {built.relative_to(ROOT) if built.is_relative_to(ROOT) else built}/"
              "{student, autograder/autograder.zip}")
        if args.sync:
            sync(name, built)
        elif args.check:
            diff = stale(name, built)
            if diff:
                problems.append(f"{name}: the committed student copy is stale ({', '.join(diff)}); "
                                "run: python -m assignments.build --sync")
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
