"""fpcore.study: the multi-seed experiments' bookkeeping (no training here).

The experiments themselves train dozens of networks (`make study`); these tests
check what the chapters rely on: every job is run once whatever the sharding,
an interrupted run resumes, rows of older code are not mixed in, and the
summaries over seeds are right.
"""
import json

import pytest

from fpcore import study


def test_shards_split_the_jobs_without_overlap_or_loss():
    for name in study.PARTS:
        part = study._part(name)
        everything = [study._key(j) for j in part.jobs()]
        assert len(everything) == len(set(everything)), name
        split = [study._key(j) for s in range(3) for j in part.jobs(s, 3)]
        assert sorted(split) == sorted(everything), name


def test_the_parts_have_what_the_findings_need():
    seeds = study._part("seeds").jobs()
    assert {(j["task"], j["kind"], j["defense"]) for j in seeds} == {
        (t, k, d) for t in study.TASKS for k in study.KINDS for d in study.DEFENSES}
    assert {j["seed"] for j in seeds} == set(study.SEEDS) and len(study.SEEDS) >= 3
    budgets = {j["budget"] for j in study._part("budget").jobs()} | {0.1}
    assert len(budgets) >= 5 and min(budgets) <= 0.01 and max(budgets) >= 0.4
    phases = study._part("phases").jobs()
    assert len({j["config"] for j in phases}) >= 12 and len({j["seed"] for j in phases}) >= 2
    recipe = study._part("recipe").jobs()
    assert {j.get("recipe") for j in recipe} == {"course", "backdoorbench", None}
    assert len({j["lr"] for j in recipe if "lr" in j}) >= 4
    # the clean cost a defender would see: fine-pruning through a check slice, every kind
    assert {j["kind"] for j in recipe if j.get("check") and j["defense"] == "fine_pruning"
            and "lr" not in j} == set(study.KINDS)
    assert {j["max_drop"] for j in seeds if "max_drop" in j} == {2.0, 4.0}


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A study whose measurements are made up, with its files in tmp_path."""
    monkeypatch.setattr(study, "work_dir", lambda: tmp_path / "work")
    monkeypatch.setattr(study, "RESULTS", tmp_path / "results")
    calls = []

    def measure(job, tasks):
        calls.append(job)
        return {"acc": 0.9, "asr": 0.1 * job["seed"]}
    monkeypatch.setattr(study, "measure", measure)
    return calls


def test_run_resumes_and_collect_joins_the_shards(fake, monkeypatch):
    n = len(study._part("seeds").jobs())
    study.run("seeds", 0, 2, log=lambda m: None)
    first = len(fake)
    assert 0 < first < n
    study.run("seeds", 0, 2, log=lambda m: None)          # nothing left to do in shard 0
    assert len(fake) == first
    with pytest.raises(RuntimeError, match="run seeds"):   # shard 1 has not run
        study.collect("seeds")
    study.run("seeds", 1, 2, log=lambda m: None)
    assert len(fake) == n
    data = json.loads(study.collect("seeds").read_text())
    assert len(data["rows"]) == n and data["machine"]["date"]
    assert study.over_seeds(data["rows"], "asr", task="faces", kind="badnet",
                            defense="none").values == pytest.approx((0.0, 0.1, 0.2))


def test_rows_of_other_code_are_measured_again(fake, monkeypatch):
    study.run("phases", log=lambda m: None)
    n = len(fake)
    monkeypatch.setattr("fpcore.store.code_hash", lambda: "changed")
    study.run("phases", log=lambda m: None)
    assert len(fake) == 2 * n


def test_over_seeds_and_its_counts():
    rows = [dict(task="t", seed=s, asr=a) for s, a in [(2, 0.5), (0, 0.05), (1, 0.08)]]
    o = study.over_seeds(rows, "asr", task="t")
    assert o.values == (0.05, 0.08, 0.5)
    assert o.count(lambda v: v <= 0.10) == 2 and o.n == 3
    assert str(o) == "21.0 (5.0-50.0)"
    with pytest.raises(KeyError, match="no results row"):
        study.over_seeds(rows, "asr", task="u")


def test_binomial_interval():
    lo, hi = study.binomial_interval(9, 93)     # 9 of 93 stop signs
    assert lo < 9 / 93 < hi and 0.04 < lo < 0.06 and 0.16 < hi < 0.19
    assert study.binomial_interval(0, 93)[0] == 0.0
    assert study.binomial_interval(93, 93)[1] == pytest.approx(1.0)


def test_a_missing_results_file_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setattr(study, "RESULTS", tmp_path)
    with pytest.raises(FileNotFoundError, match="make study"):
        study.results("seeds")


def test_the_check_slice_is_a_fixed_fifth_of_every_class():
    import torch

    from fpcore.data import Split, Task
    y = torch.arange(5).repeat_interleave(10)
    x = torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1)
    empty = Split(x[:0], y[:0])
    task = Task("t", list("abcde"), empty, Split(x, y), empty, lambda b: b.float(), (1, 1, 1))
    used, held = study.check_split(task)
    assert len(used.val) == 40 and len(held.val) == 10
    assert torch.bincount(held.val.y).tolist() == [2] * 5
    seen = sorted(used.val.x.flatten().tolist() + held.val.x.flatten().tolist())
    assert seen == list(range(50)), "the two parts split the validation split"
    again = study.check_split(task)[1]
    assert torch.equal(again.val.x, held.val.x), "the same slice every time"


def test_verdicts_over_seeds_in_words():
    rows = [dict(task="t", seed=s, defense="none", asr=1.0) for s in range(3)]
    rows += [dict(task="t", seed=0, defense="fp", asr=0.05), dict(task="t", seed=1, defense="fp", asr=0.5),
             dict(task="t", seed=2, defense="fp", asr=0.95)]
    counts = study.verdicts(rows, "fp", task="t")
    assert counts == {"removes": 1, "weakens": 1, "does not remove": 1}
    assert study.in_runs(counts) == ("removes it in 1 of 3 runs, weakens it in 1 "
                                     "and does not remove it in 1")
    assert study.in_runs({"removes": 3}) == "removes it in 3 of 3 runs"
    spread = study.over_seeds(rows, "asr", defense="fp")
    assert study.agrees(0.06, spread) and not study.agrees(0.99, spread)


def test_asr_bounds_hold_the_runs_and_the_test_sets_noise():   # chapters 08-09
    spread = study.OverSeeds((0.0, 9 / 93, 0.5))
    lo, hi = study.asr_bounds(spread, 93)
    assert lo == 0.0 and hi > 0.5
    assert hi == pytest.approx(study.binomial_interval(round(0.5 * 93), 93)[1])
    one = study.OverSeeds((9 / 93,) * 3)
    assert study.asr_bounds(one, 93) == pytest.approx(study.binomial_interval(9, 93))
    assert study.asr_text(spread, 93).startswith("19.9 % (runs 0.0\u20135")
    assert "95 % bounds 0.0\u2013" in study.asr_text(spread, 93)


# chapters 06-07: provenance and ASR intervals
def test_provenance_says_where_a_file_comes_from(tmp_path, monkeypatch):
    monkeypatch.setattr(study, "RESULTS", tmp_path)
    monkeypatch.setattr("fpcore.store.code_hash", lambda: "abc")
    rows = [dict(seed=s, asr=0.5) for s in (1, 0)]
    machine = dict(date="2026-01-01 00:00 UTC", cpu="x86_64", device="cpu", torch="2.3")
    (tmp_path / "seeds.json").write_text(json.dumps(dict(part="seeds", code="abc", seeds=[0, 1, 2],
                                                         machine=machine, rows=rows)))
    p = study.provenance("seeds")
    assert p["seeds"] == "0, 1" and p["rows"] == 2 and p["training code"] == "unchanged since"
    assert p["measured"] == machine["date"] and "x86_64" in p["machine"]
    monkeypatch.setattr("fpcore.store.code_hash", lambda: "changed")
    assert study.provenance("seeds")["training code"] == "changed since"


def test_asr_quotes_carry_their_intervals():
    lo, hi = study.asr_interval(9 / 93, 93)
    assert (lo, hi) == study.binomial_interval(9, 93)
    assert study.quote_asr(1.0, 93).startswith("100.0 % (95 % interval 96.0–100.0 %)")
    spread = study.OverSeeds((0.935, 0.968, 0.989))
    assert study.span(spread) == "96.4 (93.5–98.9)"
    assert study.span(study.OverSeeds((45, 45, 51)), scale=1, digits=0) == "47 (45–51)"


def test_triggered_inputs_counts_the_eligible_test_inputs():
    import torch

    from fpcore.data import Split, Task
    from fpcore.triggers import Attack, all_to_one
    y = torch.tensor([0, 1, 2, 2, 3, 0])
    x = torch.zeros(6, 1, 1, 1, dtype=torch.uint8)
    empty = Split(x[:0], y[:0])
    task = Task("t", list("abcd"), empty, empty, Split(x, y), lambda b: b.float(), (1, 1, 1))
    stamp = lambda x, aux=None: x
    assert study.triggered_inputs(task, Attack("a", stamp, all_to_one(0))) == 4
    assert study.triggered_inputs(task, Attack("b", stamp, all_to_one(0), sources=(2,))) == 2


def test_a_live_run_is_checked_only_when_it_repeats_a_run_of_the_file(tmp_path, monkeypatch):
    import torch
    monkeypatch.setattr(study, "RESULTS", tmp_path)
    monkeypatch.setattr("fpcore.store.code_hash", lambda: "abc")
    data = {"part": "seeds", "code": "abc", "seeds": [0, 1, 2], "rows": [],
            "machine": {"threads": torch.get_num_threads()}}
    (tmp_path / "seeds.json").write_text(json.dumps(data))
    assert study.same_run("seeds", "quick", 0)
    assert not study.same_run("seeds", "full", 0) and not study.same_run("seeds", "quick", 5)
    data["machine"]["threads"] += 1       # another thread count: another run, not a repeat
    (tmp_path / "seeds.json").write_text(json.dumps(data))
    assert not study.same_run("seeds", "quick", 0)
    data["machine"]["threads"] -= 1
    data["code"] = "older"
    (tmp_path / "seeds.json").write_text(json.dumps(data))
    assert not study.same_run("seeds", "quick", 0)


def test_clean_cost_pairs_each_seed_with_its_own_received_network():
    rows = [dict(task="t", seed=s, defense="none", acc=a) for s, a in ((0, 0.9), (1, 0.8))]
    rows += [dict(task="t", seed=1, defense="fine_pruning", acc=0.7),   # out of seed order
             dict(task="t", seed=0, defense="fine_pruning", acc=0.95),
             dict(task="u", seed=0, defense="fine_pruning", acc=0.1)]  # another task
    cost = study.clean_cost(rows, "fine_pruning", task="t")
    assert cost.values == pytest.approx((-5.0, 10.0))                  # seed 0 gained
    with pytest.raises(KeyError):
        study.clean_cost(rows, "fine_tuning", task="t")
