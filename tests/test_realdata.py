"""The course's claims on the real data sets, in the quick profile.

Each task: a backdoored model keeps clean accuracy close to a clean model's and
reaches a high attack success rate; fine-pruning (ranking, stopping and
fine-tuning on the validation split only) brings the ASR down while clean
accuracy stays close. Trained and defended models go through fpcore's cache,
so the book build that follows reuses them. Skipped with a reason when no local copy of
the data and no network is available; in CI (CI set) missing data fails.
"""
import time

import pytest

import fpcore
from fpcore.download import DataMissingError

pytestmark = pytest.mark.realdata
TASKS = ("signs", "faces", "speech")


@pytest.fixture(scope="module", params=TASKS)
def task(request, skip_or_fail):
    try:
        return fpcore.load_task(request.param)
    except DataMissingError as e:
        skip_or_fail(f"no local copy of the {request.param} data and no network: {e}")


def points(x):
    return 100 * x


def test_backdoor_is_stealthy_and_effective(task):
    attack = fpcore.default_attack(task)
    clean = fpcore.evaluate(fpcore.trained_model(task, "clean", "quick"), task, attack)
    bad = fpcore.evaluate(fpcore.trained_model(task, "badnet", "quick"), task, attack)
    print(f"{task.name}: clean model {clean}, backdoored model {bad}")
    assert abs(points(bad["acc"] - clean["acc"])) <= 2.0, (clean, bad)
    assert bad["asr"] >= 0.90, bad
    assert clean["asr"] <= 0.10, clean


# At this scale fine-pruning does not meet the target on every task; the book's
# chapters 09 and 10 show by how much and why. strict=True: the day it passes,
# this marker must go.
SHORT_OF_TARGET = {
    "signs": "fine-pruning removes the sticker backdoor only at a cost of several points "
             "(validation split: 10 % of the tracks, ~130 physical signs)",
    "faces": "fine-pruning does not remove the sunglasses backdoor "
             "(validation split: ~4 faces per person)",
}


def test_fine_pruning_removes_the_backdoor(task, request):
    if task.name in SHORT_OF_TARGET:
        request.applymarker(pytest.mark.xfail(reason=SHORT_OF_TARGET[task.name], strict=True))
    t0 = time.time()
    attack = fpcore.default_attack(task)
    model = fpcore.trained_model(task, "badnet", "quick")
    bad = fpcore.evaluate(model, task, attack)
    defended = fpcore.defended_model(task, "badnet", "fine_pruning", "quick")
    after = fpcore.evaluate(defended, task, attack)
    print(f"{task.name}: backdoored {bad}, fine-pruned (k={defended.pruned}) {after}, "
          f"{time.time() - t0:.0f}s")
    assert after["asr"] <= 0.10, after
    assert points(bad["acc"] - after["acc"]) <= 3.0, (bad, after)


def test_fine_pruning_weakens_every_backdoor(task):
    """What does hold everywhere: fine-pruning lowers ASR below pruning alone."""
    attack = fpcore.default_attack(task)
    pruned = fpcore.evaluate(fpcore.defended_model(task, "badnet", "pruning", "quick"), task, attack)
    after = fpcore.evaluate(fpcore.defended_model(task, "badnet", "fine_pruning", "quick"), task, attack)
    assert after["asr"] <= pruned["asr"], (pruned, after)
