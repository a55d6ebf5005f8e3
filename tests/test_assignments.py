"""The autograded assignments (assignments/, built with otter-grader).

Fast checks: every master builds with `otter assign`; the student notebooks carry no
solution and no hidden test; the committed student copies (what Colab opens, and
where its first cell downloads the tests from) match a fresh build; that first cell
fetches exactly the committed tests from the repository named in _config.yml.

Slow checks (marked `realdata`: make test-realdata): each assignment is graded
twice with its instructors' package, autograder.zip, as `otter run` grades a
submission: the
solution notebook must get every point, hidden tests included, and the blank
student notebook, as generated, must fail every test. They use the small ORL
face set (a local copy: FPCORE_DATA) and fpcore's model cache. Alone:
python -m pytest -q tests/test_assignments.py
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import urllib.request
import zipfile
from pathlib import Path

import nbformat
import pytest

from assignments import build as assign

ROOT = Path(__file__).resolve().parents[1]
# otter-grader's own deprecation warnings (its widgets' traitlets, its pandas calls)
pytestmark = [pytest.mark.filterwarnings("ignore:Traits should be given as instances"),
              pytest.mark.filterwarnings("ignore:The inplace keyword")]
NAMES = assign.names()


@pytest.fixture(scope="module")
def built(tmp_path_factory, skip_or_fail):
    """Every assignment built into a temporary folder: name -> its folder."""
    try:
        import otter  # noqa: F401
    except ImportError:
        skip_or_fail('otter-grader is not installed: pip install "otter-grader>=7,<8"')
    out = tmp_path_factory.mktemp("assignments")
    return {name: assign.build(name, out) for name in NAMES}


def questions(name: str) -> list[str]:
    return assign.question_names(assign.jupytext.read(assign.HERE / name / f"{name}.md"))


# ------------------------------------------------------------------ fast checks
def test_there_are_at_least_four_assignments():
    assert len(NAMES) >= 4, NAMES


@pytest.mark.parametrize("name", NAMES)
def test_build_gives_student_and_instructor_versions(built, name):
    d = built[name]
    qs = questions(name)
    assert qs and qs[0] == "q1_predict", "every assignment opens with a prediction"
    student = nbformat.read(d / "student" / f"{name}.ipynb", as_version=4)
    code = [c.source for c in student.cells if c.cell_type == "code"]
    text = "\n".join(code)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "# SOLUTION", "BEGIN TESTS"):
        assert marker not in text, f"{name}: the student notebook shows {marker!r}"
    assert [q for q in qs if f'grader.check("{q}")' in text] == qs, \
        f"{name}: a grader.check cell for every question"
    assert "grader = otter.Notebook()" in text
    answers = [c for c in student.cells if "otter_answer_cell" in c.metadata.get("tags", [])]
    assert all("..." in c.source for c in answers if c.cell_type == "code"), \
        f"{name}: every code answer cell has blanks to fill"
    written = [c for c in answers if c.cell_type == "markdown"]
    assert written and all("Your answer" in c.source for c in written), \
        f"{name}: a free-text answer cell"
    assert not any("model answer" in c.source for c in student.cells), \
        f"{name}: the student notebook shows a model answer"

    public = sorted(p.stem for p in (d / "student" / "tests").glob("*.py"))
    assert public == sorted(qs)
    for p in (d / "student" / "tests").glob("*.py"):
        assert "hidden=True" not in p.read_text(), f"{name}: {p.name} shows a hidden test"
    with zipfile.ZipFile(d / "autograder" / "autograder.zip") as z:
        files = set(z.namelist())
        assert {f"tests/{q}.py" for q in qs} <= files
        hidden = sum(z.read(f"tests/{q}.py").decode().count("hidden=True") for q in qs)
        env = z.read("environment.yml").decode()
    assert hidden >= 2, f"{name}: the autograder should hold hidden tests"
    repo, branch = assign.repository()
    assert f"git+https://github.com/{repo}@{branch}" in env, "the autograder installs fpcore"


@pytest.mark.parametrize("name", NAMES)
def test_committed_student_copy_is_fresh(built, name):
    stale = assign.stale(name, built[name])
    assert not stale, (f"assignments/{name}/student/ differs from a fresh build in {stale}: "
                       "run python -m assignments.build --sync and commit it")


@pytest.mark.parametrize("name", NAMES)
def test_first_cell_fetches_the_committed_tests(built, name, tmp_path, monkeypatch):
    """Run the student notebook's first cell as Colab would (without pip): it must
    download each test from the repository of _config.yml, at the path it is committed."""
    student = nbformat.read(assign.committed(name) / f"{name}.ipynb", as_version=4)
    setup = student.cells[1]
    assert "otter_ignore" in setup.metadata.get("tags", []), "grading must skip this cell"
    assert "google.colab" in setup.source and "pip" in setup.source
    repo, branch = assign.repository()
    prefix = f"https://raw.githubusercontent.com/{repo}/{branch}/"
    fetched = []

    def fake_urlretrieve(url, dest):
        assert url.startswith(prefix), url
        source = ROOT / url[len(prefix):]
        assert source.is_file(), f"{url} names no committed file"
        shutil.copy(source, dest)
        fetched.append(url)

    monkeypatch.setattr(urllib.request, "urlretrieve", fake_urlretrieve)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.chdir(tmp_path)
    exec(compile(setup.source, f"{name}: first cell", "exec"), {})
    assert sorted(Path(u).stem for u in fetched) == sorted(questions(name))
    for q in questions(name):
        assert (tmp_path / "tests" / f"{q}.py").read_bytes() == \
            (built[name] / "student" / "tests" / f"{q}.py").read_bytes()
    fetched.clear()
    exec(compile(setup.source, f"{name}: first cell", "exec"), {})
    assert not fetched, "tests already present locally are not downloaded again"


# ------------------------------------------------------------------ grading (slow)
def grade(notebook: Path, autograder: Path, data: Path, monkeypatch):
    """Grade one notebook with otter's local runner; returns {question: [passed, ...]}."""
    from otter.run import main as otter_run

    monkeypatch.setenv("FPCORE_DATA", str(data))
    # The kernel inherits this: one torch thread is faster than two fighting
    # over a shared CPU (see bench/RESULTS.md).
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    with contextlib.redirect_stdout(io.StringIO()):
        results = otter_run(str(notebook), autograder=str(autograder), output_dir=None,
                            no_logo=True)
    errors = [f"{o['ename']}: {o['evalue']}" for c in results.notebook.cells
              if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    return {q: [tc.passed for tc in r.test_case_results] for q, r in results.results.items()}, errors


@pytest.mark.realdata
@pytest.mark.parametrize("name", NAMES)
def test_solution_passes_every_check(built, name, real_data, monkeypatch):
    d = built[name]
    passed, errors = grade(d / "autograder" / f"{name}.ipynb", d / "autograder" / "autograder.zip",
                           real_data("orl_faces", "s1"), monkeypatch)
    assert sorted(passed) == sorted(questions(name))
    assert not errors, f"{name}: the solution notebook raised {errors}"
    failed = {q: p for q, p in passed.items() if not all(p)}
    assert not failed, f"{name}: the solution fails tests {failed}"


@pytest.mark.realdata
@pytest.mark.parametrize("name", NAMES)
def test_blank_student_version_fails_every_check(built, name, real_data, monkeypatch):
    d = built[name]
    passed, _ = grade(d / "student" / f"{name}.ipynb", d / "autograder" / "autograder.zip",
                      real_data("orl_faces", "s1"), monkeypatch)
    assert sorted(passed) == sorted(questions(name))
    lucky = {q: p for q, p in passed.items() if any(p)}
    assert not lucky, f"{name}: blank answers pass tests {lucky}"
