"""Shared pytest set-up. Keep it small; add your part under its own heading."""
import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def in_ci() -> bool:
    """The one test of "are we in CI": .ci/run sets CI=true. There, nothing may be
    skipped for lack of data or a tool."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def skip_or_fail():
    """skip_or_fail(reason): skip the test with this reason, but fail it in CI."""

    def _skip_or_fail(reason: str):
        if in_ci():
            pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
        pytest.skip(reason)

    return _skip_or_fail


@pytest.fixture(scope="session")
def real_data(skip_or_fail):
    """real_data(*parts): the offline data root ($FPCORE_DATA, else ../shared/data beside
    the checkout) when it holds parts; else skip the test (fail it in CI), saying what is missing."""

    def _real_data(*parts: str) -> Path:
        env = os.environ.get("FPCORE_DATA")
        root = Path(env).expanduser() if env else SHARED_DATA
        if not root.joinpath(*parts).exists():
            skip_or_fail(f"real data not found: {root.joinpath(*parts)} does not exist; set FPCORE_DATA "
                         "to a folder with the offline layout (see data/README.md)")
        return root

    return _real_data


# --- the book (tests/test_book.py) -------------------------------------------
# The tests marked `book` build _build/html with tools/build_book.py unless a build that
# is newer than every input already exists (as after `make book` or the build step of
# `make test`). Set FP_BOOK_REBUILD=1 to force a rebuild.
