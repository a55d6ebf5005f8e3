"""The course's claims on the real data sets, in the quick profile.

Each task: a backdoored model keeps clean accuracy close to a clean model's and
reaches a high attack success rate; fine-pruning (ranking, stopping and
fine-tuning on the validation split only) brings the ASR down while clean
accuracy stays close. Trained and defended models go through fpcore's cache,
so the book build that follows reuses them. Skipped with a reason when no local copy of
the data and no network is available; in CI (CI set) missing data fails.
"""
import pytest

import fpcore
from fpcore import study
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


# The course's target for fine-pruning: the backdoor removed (ASR <= 10 %) for at
# most 3 points of clean accuracy. At the default budget (fpcore.data.BUDGET) the
# study's runs (fpcore/results/seeds.json, seeds 0-2) meet it on speech and not on
# signs or faces; chapter 12 shows which budget those would need. The test asserts
# what held in every run: the target where every run met it, elsewhere the best the
# runs reached (the live run must land where they did).
TARGET_ASR, TARGET_COST = 0.10, 3.0
COST_SLACK = 2.0       # points: a live run with another thread count is one more run


def study_runs(name):
    """Fine-pruning of the BadNets network at the default budget, in the study's runs."""
    rows = study.results("seeds")["rows"]
    where = dict(task=name, kind="badnet", budget=fpcore.data.BUDGET, max_drop=None)
    return (study.over_seeds(rows, "asr", defense="fine_pruning", **where),
            study.clean_cost(rows, "fine_pruning", **where))


def test_fine_pruning_at_the_default_budget(task):
    """Fine-pruning (ranking, stopping, fine-tuning on validation only) does what it did
    in every run of the study: the target on speech; on signs and faces, no worse."""
    asr, cost = study_runs(task.name)
    on_target = all(a <= TARGET_ASR and c <= TARGET_COST for a, c in zip(asr.values, cost.values))
    attack = fpcore.default_attack(task)
    bad = fpcore.evaluate(fpcore.trained_model(task, "badnet", "quick"), task, attack)
    defended = fpcore.defended_model(task, "badnet", "fine_pruning", "quick")
    after = fpcore.evaluate(defended, task, attack)
    lost = points(bad["acc"] - after["acc"])
    print(f"{task.name}: backdoored {bad}, fine-pruned (k={defended.pruned}) {after}; "
          f"the study's runs: ASR {asr}, cost {cost.min:.1f}-{cost.max:.1f} points")
    if on_target:          # speech: the target itself
        assert after["asr"] <= TARGET_ASR, after
        assert lost <= TARGET_COST, (bad, after)
        return
    # signs, faces: short of the target in the study; the live run lands where its runs did
    n = study.triggered_inputs(task, attack)
    _, hi = study.asr_bounds(asr, n)
    assert after["asr"] <= hi, f"ASR {after['asr']:.3f} above the study's runs' bound {hi:.3f}"
    assert lost <= cost.max + COST_SLACK, f"cost {lost:.1f} points, the study's runs {cost}"


def test_fine_pruning_weakens_every_backdoor(task):
    """What does hold everywhere: fine-pruning lowers ASR below pruning alone."""
    attack = fpcore.default_attack(task)
    pruned = fpcore.evaluate(fpcore.defended_model(task, "badnet", "pruning", "quick"), task, attack)
    after = fpcore.evaluate(fpcore.defended_model(task, "badnet", "fine_pruning", "quick"), task, attack)
    assert after["asr"] <= pruned["asr"], (pruned, after)
