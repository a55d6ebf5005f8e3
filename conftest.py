"""pytest set-up for the executed chapters (make test-notebooks).

It sits at the top of the checkout because pytest reads a conftest.py only from the
folders of what it tests and above them: nbval tests _build/stage/chapters/*.ipynb,
and tests/conftest.py is not on that path. The tests' own set-up is tests/conftest.py.
"""
import os

import pytest


def pytest_configure(config):
    """nbval re-executes the chapters the book build executed: its kernels get the
    torch threads the build's kernels had (tools.build_book.kernel_threads), since
    another count trains other networks and prints other numbers."""
    if not (config.getoption("nbval", False) or config.getoption("nbval_lax", False)):
        return
    from tools import build_book

    counts = {build_book.staged_threads(c) for c in build_book.existing_chapters()
              if build_book.staged(c).exists()}
    if len(counts) > 1:
        raise pytest.UsageError(
            f"the executed chapters in {build_book.STAGE} ran with different torch thread "
            f"counts {sorted(counts, key=str)}: rebuild them all with one --jobs value "
            "(python -m tools.build_book)")
    threads = counts.pop() if counts else None
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    else:
        os.environ.pop("OMP_NUM_THREADS", None)
