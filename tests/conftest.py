"""Shared pytest set-up. Keep it small; add your part under its own heading."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def in_ci() -> bool:
    """True in CI (.ci/run runs with CI=true): there, nothing may be skipped for lack of a tool."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def skip_or_fail():
    """skip_or_fail(reason): skip the test with this reason, but fail it in CI."""

    def _skip_or_fail(reason: str):
        if in_ci():
            pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
        pytest.skip(reason)

    return _skip_or_fail


# --- the book (tests/test_book.py) -------------------------------------------
# The book tests build _build/html with tools/build_book.py unless a build that is
# newer than every input already exists (as after `make book` or the build step of
# `make test`). Set FP_BOOK_REBUILD=1 to force a rebuild.
