"""The course's claims on the real data sets, in the quick profile.

Each task: a backdoored model keeps clean accuracy close to a clean model's and
reaches a high attack success rate; fine-pruning (ranking, stopping and
fine-tuning on the validation split only) brings the ASR down while clean
accuracy stays close. Trained models go through fpcore's cache, so the book
build that follows reuses them. Skipped with a reason when no local copy of
the data and no network is available; in CI (CI set) missing data fails.
"""
import os
import time

import pytest

import fpcore
from fpcore.download import DataMissingError

pytestmark = pytest.mark.realdata
TASKS = ("signs", "faces", "speech")


@pytest.fixture(scope="module", params=TASKS)
def task(request):
    try:
        return fpcore.load_task(request.param)
    except DataMissingError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no local copy of the {request.param} data and no network: {e}")


def points(x):
    return 100 * x


def test_backdoor_then_fine_pruning(task, record_property):
    t0 = time.time()
    attack = fpcore.default_attack(task)
    clean = fpcore.evaluate(fpcore.trained_model(task, "clean", "quick"), task, attack)
    model = fpcore.trained_model(task, "badnet", "quick")
    bad = fpcore.evaluate(model, task, attack)
    assert abs(points(bad["acc"] - clean["acc"])) <= 2.0, (clean, bad)
    assert bad["asr"] >= 0.90, bad

    defended = fpcore.fine_prune(model, task, profile="quick")
    after = fpcore.evaluate(defended.model, task, attack)
    print(f"{task.name}: clean {clean}, backdoored {bad}, fine-pruned k={defended.k} {after}, "
          f"{time.time() - t0:.0f}s")
    record_property("numbers", {"clean": clean, "badnet": bad, "k": defended.k, "fine_pruned": after})
    assert after["asr"] <= 0.10, after
    assert points(bad["acc"] - after["acc"]) <= 3.0, (bad, after)
