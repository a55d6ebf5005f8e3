"""The findings behind chapters 06-10 and 12, over several seeds: the experiments and their results.

One training run can mislead (chapter 09's seed exercise shows verdicts that
flip with the seed), so the book's claims come from several runs. They cost
more than a book build may spend, so they run here, from their own command,
and write a results file that is committed with the code:

    python -m fpcore.study run seeds      # every task x model x defense, seeds 0-2
    python -m fpcore.study run budget     # the defender's data budget, 1 % to 40 %
    python -m fpcore.study run recipe     # the course's fine-tuning against BackdoorBench's
    python -m fpcore.study run phases     # when is a backdoor dormant? (the paper's phase 2)
    python -m fpcore.study collect        # join the parts into fpcore/results/*.json

`make study` does all of it. A part can be split across processes
(`--shard 0/2` and `--shard 1/2`, one per core); every row is appended to a
work file as soon as it is measured, and a rerun skips the rows already there,
so an interrupted study resumes. Models go to fpcore's cache: the seeds part
measures exactly the networks the book trains, so a chapter can recompute
seed 0 live and check it against the file.

The chapters read the files with `results(part)` and summarise them with
`over_seeds`. Each file records the code hash, the machine and the date; a
chapter says so when the code has changed since (`stale`).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

RESULTS = Path(__file__).with_name("results")   # committed: the chapters read these
SEEDS = (0, 1, 2)
TASKS = ("signs", "faces", "speech")
KINDS = ("clean", "badnet", "pruning_aware")
DEFENSES = ("none", "pruning", "fine_tuning", "fine_pruning")
BUDGETS = (0.01, 0.05, 0.1, 0.2, 0.4)
THRESHOLDS = (2.0, 4.0)                          # fine-pruning's, next to the default 10 points
LEARNING_RATES = (0.001, 0.003, 0.01, 0.03, 0.1)  # fine-tuning's (the course's default: 0.01)
# BackdoorBench's fine-tuning (its defense configs for fine-tuning and fine-pruning):
# SGD, lr 0.01, momentum 0.9, weight decay 5e-4, cosine schedule, 100 epochs, batch 128.
# The course's (fpcore.cases.FINE_TUNE, quick profile), spelled out so that the
# comparison keeps its meaning if the default changes.
RECIPES = {"course": dict(epochs=20, lr=0.01, batch_size=32, optimizer="sgd", weight_decay=0.02),
           "backdoorbench": dict(epochs=100, lr=0.01, batch_size=128, optimizer="sgd",
                                 weight_decay=5e-4)}


def work_dir() -> Path:
    """Where a running study appends its rows: _build/study/ in a checkout."""
    from .data import project_root
    root = project_root() or Path.cwd()
    return root / "_build" / "study"


# ----------------------------------------------------------------- measuring
def _metrics(model, task, attack, prefix="") -> dict:
    from .train import evaluate
    test, val = evaluate(model, task, attack, "test"), evaluate(model, task, None, "val")
    return {f"{prefix}acc": test["acc"], f"{prefix}asr": test["asr"],
            f"{prefix}val_acc": val["acc"]}


def defended_row(task, kind: str, seed: int, defense: str, profile: str = "quick") -> dict:
    """One network after one defense (the book's cached networks): test and validation numbers."""
    from .cases import default_attack
    from .zoo import defended_model, trained_model
    start = time.perf_counter()
    if defense == "none":
        model, k = trained_model(task, kind, profile, seed, progress=False), 0
    else:
        model = defended_model(task, kind, defense, profile, seed, progress=False)
        k = int(model.pruned)
    return dict(_metrics(model, task, default_attack(task)), k=k,
                seconds=round(time.perf_counter() - start, 1))


def recipe_row(task, kind: str, seed: int, defense: str, recipe: str = "course",
               profile: str = "quick", max_drop: Optional[float] = None,
               check: bool = False, **overrides) -> dict:
    """Fine-tuning or fine-pruning with one recipe (plus `overrides`), timed.

    The received network comes from the cache. With `check`, the defender keeps
    a fifth of its validation split aside (`check_split`) and defends with the
    rest; the row then also has the check slice's accuracy before and after,
    the clean cost the defender can see without the test split.
    """
    from .cases import default_attack
    from .defenses import fine_prune, fine_tune
    from .train import evaluate
    from .zoo import trained_model
    received = trained_model(task, kind, profile, seed, progress=False)
    used, extra = task, {}
    if check:
        used, held = check_split(task)
        extra["check_before"] = evaluate(received, held, None, "val")["acc"]
    settings = {**RECIPES[recipe], **overrides}
    if defense == "fine_pruning" and max_drop is not None:
        settings["max_drop"] = max_drop
    start = time.perf_counter()
    run = fine_tune if defense == "fine_tuning" else fine_prune
    out = run(received, used, profile=profile, seed=seed, progress=False, **settings)
    seconds = time.perf_counter() - start
    if check:
        extra["check_after"] = evaluate(out.model, held, None, "val")["acc"]
    return dict(_metrics(out.model, task, default_attack(task)), k=out.k,
                seconds=round(seconds, 1), **extra)


CHECK_SHARE = 0.2      # of the defender's validation split, kept aside to see the clean cost


def check_split(task):
    """The defender's data in two: (task whose val is 80 % of it, task whose val is the rest).

    Fine-tuning on the validation split turns its accuracy into training accuracy,
    so the defender cannot read the clean cost there. A check slice the defense
    never touches can. Fixed per task (not per run), drawn per class.
    """
    from dataclasses import replace

    import torch
    from .data import SPLIT_SEED
    g = torch.Generator().manual_seed(SPLIT_SEED)
    y = task.val.y
    held = torch.zeros(len(y), dtype=torch.bool)
    for c in y.unique():
        rows = (y == c).nonzero().flatten()
        rows = rows[torch.randperm(len(rows), generator=g)]
        held[rows[: int(round(CHECK_SHARE * len(rows)))]] = True
    keep = lambda m: task.val.subset(m.nonzero().flatten())
    return replace(task, val=keep(~held)), replace(task, val=keep(held))


# The phase-2 search: what might make a backdoor's channels dormant on clean data?
# Each configuration changes one thing of the signs BadNets attack (quick profile).
PHASE_CONFIGS = {
    "baseline": {},
    "small sticker (10 %)": dict(size=0.1),
    "large sticker (35 %)": dict(size=0.35),
    "grey sticker (low contrast)": dict(color=(150, 150, 110)),
    "poison 0.5 %": dict(rate=0.005),
    "poison 10 %": dict(rate=0.10),
    "narrow conv4 (32)": dict(width=32),
    "wide conv4 (128)": dict(width=128),
    "3x training": dict(epochs=24),
    "no weight decay": dict(weight_decay=0.0),
    "strong weight decay (5e-3)": dict(weight_decay=5e-3),
    "full profile": dict(profile="full"),
}


def phase_row(config: str, seed: int, task_name: str = "signs") -> dict:
    """Train one configuration, sweep pruning, and say whether phase 2 appears.

    Phase 2 (the paper): pruning channels dormant on clean data makes the ASR fall
    while clean accuracy holds. We look at the whole curve, ranked on the
    validation split: the lowest ASR while validation accuracy is within 4 and
    within 10 points of the unpruned network's.
    """
    from functools import partial

    from .cases import case_study, hyper, load_task
    from .prune import channel_activity, prune_curve, prune_order
    from .train import device, evaluate, fit, seed_everything
    from .triggers import Attack
    c = dict(PHASE_CONFIGS[config])
    task = load_task(task_name)
    case = case_study(task)
    base = case.attack()
    stamp_args = {k: c.pop(k) for k in ("size", "color") if k in c}
    attack = Attack(base.name, partial(base.stamp, **stamp_args) if stamp_args else base.stamp,
                    base.relabel, base.sources)
    settings = {**hyper(task, c.pop("profile", "quick")), **c}
    rate, width = settings.pop("rate", case.poison_rate), settings.pop("width", None)
    start = time.perf_counter()
    seed_everything(seed)
    model = (case.model(task.num_classes, width) if width else case.model(task.num_classes))
    model = fit(model.to(device()), task, attack, rate=rate, seed=seed, progress=False,
                **settings)
    seconds = time.perf_counter() - start
    order = prune_order(channel_activity(model, task, "val"))
    curve = prune_curve(model, task, attack, order=order)
    drop = 100 * (curve.acc["val"][0] - curve.acc["val"])
    low = lambda pts: float(curve.asr[drop <= pts].min())
    return dict(acc=evaluate(model, task, attack)["acc"], asr=float(curve.asr[0]),
                asr_within_4=low(4), asr_within_10=low(10), channels=model.channels,
                val_acc_curve=[round(float(a), 4) for a in curve.acc["val"]],
                asr_curve=[round(float(a), 4) for a in curve.asr],
                seconds=round(seconds, 1))


# ----------------------------------------------------------------- the parts
@dataclass(frozen=True)
class Part:
    """An experiment: its jobs (dicts of parameters, grouped so a shard reuses its models)."""
    name: str
    groups: tuple          # each group: a tuple of jobs run by one shard, in order

    def jobs(self, shard: int = 0, shards: int = 1) -> list:
        return [job for i, group in enumerate(self.groups) if i % shards == shard
                for job in group]


def _part(name: str, seeds=SEEDS) -> Part:
    if name == "seeds":
        # the book's networks and defenses; fine-pruning with stricter thresholds
        groups = [tuple([dict(task=t, seed=s, kind=k, defense=d, budget=0.1)
                         for k in KINDS for d in DEFENSES]
                        + [dict(task=t, seed=s, kind=k, defense="fine_pruning", max_drop=m)
                           for k in KINDS for m in THRESHOLDS])
                  for t in TASKS for s in seeds]
    elif name == "budget":
        groups = [tuple(dict(task=t, seed=s, kind=k, defense=d, budget=b)
                        for k in ("badnet", "pruning_aware") for d in DEFENSES)
                  # seed by seed, so an interrupted study has every budget for the first seeds
                  for s in seeds for b in BUDGETS if b != 0.1 for t in TASKS]
    elif name == "recipe":
        # the two recipes side by side; then the learning rate, seen through a check
        # slice; then fine-pruning seen through one, on every kind of network
        groups = [tuple([dict(task=t, seed=s, kind="badnet", defense=d, recipe=r)
                         for d in ("fine_tuning", "fine_pruning") for r in RECIPES]
                        + [dict(task=t, seed=s, kind="badnet", defense="fine_tuning", lr=lr,
                                check=True) for lr in LEARNING_RATES]
                        + [dict(task=t, seed=s, kind=k, defense="fine_pruning", check=True)
                           for k in KINDS])
                  for t in TASKS for s in seeds]
    elif name == "phases":
        groups = [tuple(dict(config=c, seed=s) for c in PHASE_CONFIGS) for s in seeds[:2]]
    else:
        raise ValueError(f"unknown study part {name!r}: choose one of {', '.join(PARTS)}")
    return Part(name, tuple(groups))


PARTS = ("seeds", "budget", "recipe", "phases")


def _task(name: str, budget: float, cache: dict):
    from .cases import load_task
    key = (name, budget)
    if key not in cache:
        cache[key] = load_task(name, budget=None if budget == 0.1 else budget)
    return cache[key]


def measure(job: dict, tasks: dict) -> dict:
    """Run one job of any part; returns its measured numbers."""
    if "config" in job:
        return phase_row(job["config"], job["seed"])
    task = _task(job["task"], job.get("budget", 0.1), tasks)
    sizes = dict(n_train=len(task.train), n_val=len(task.val), n_test=len(task.test))
    extra = {k: job[k] for k in ("recipe", "max_drop", "check", "lr") if k in job}
    if extra:
        return {**recipe_row(task, job["kind"], job["seed"], job["defense"], **extra), **sizes}
    return {**defended_row(task, job["kind"], job["seed"], job["defense"]), **sizes}


def _key(job: dict) -> str:
    return json.dumps(job, sort_keys=True)


def run(part: str, shard: int = 0, shards: int = 1, seeds=SEEDS, log=print) -> Path:
    """Measure every job of a part's shard not yet in its work file; returns the file."""
    import torch

    from .store import code_hash
    code = code_hash()
    out = work_dir() / f"{part}-{shard}of{shards}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {_key(r["job"]) for r in _read_jsonl(out) if r["code"] == code}
    tasks: dict = {}
    jobs = _part(part, seeds).jobs(shard, shards)
    for i, job in enumerate(jobs):
        if _key(job) in done:
            continue
        row = {"job": job, "code": code, "threads": torch.get_num_threads(), **measure(job, tasks)}
        with out.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        log(f"[{part} {shard}/{shards}] {i + 1}/{len(jobs)} {job}: "
            + ", ".join(f"{k} {v:.3f}" for k, v in row.items()
                        if k in ("acc", "asr", "asr_within_10") and v is not None))
    return out


def _read_jsonl(path: Path) -> list:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def machine() -> dict:
    import torch
    return dict(date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                python=platform.python_version(), torch=torch.__version__,
                cpu=platform.processor() or platform.machine(),
                device="cuda" if torch.cuda.is_available() else "cpu")


def collect(part: str, seeds=SEEDS) -> Path:
    """Join a part's work files into fpcore/results/<part>.json (rows of the current code only)."""
    from .store import code_hash
    code = code_hash()
    rows = {}
    for path in sorted(work_dir().glob(f"{part}-*.jsonl")):
        for r in _read_jsonl(path):
            if r["code"] == code:
                rows[_key(r["job"])] = r
    jobs = _part(part, seeds).jobs()
    missing = [j for j in jobs if _key(j) not in rows]
    if missing:
        raise RuntimeError(f"study part {part!r}: {len(missing)} of {len(jobs)} jobs have no row "
                           f"for this code (first: {missing[0]}); run `python -m fpcore.study "
                           f"run {part}` first")
    picked = [rows[_key(j)] for j in jobs]
    threads = {r.get("threads", 1) for r in picked}     # rows before it was recorded: --threads 1
    flat = [{**r["job"], **{k: v for k, v in r.items() if k not in ("job", "code", "threads")}}
            for r in picked]
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{part}.json"
    out.write_text(json.dumps({"part": part, "code": code, "seeds": list(seeds),
                               "machine": {**machine(), "threads": max(threads)},
                               "rows": flat}, indent=0) + "\n",
                   encoding="utf-8")
    return out


# ----------------------------------------------------------------- reading, for the chapters
def results(part: str) -> dict:
    """A committed results file: {'part', 'code', 'seeds', 'machine', 'rows'}."""
    path = RESULTS / f"{part}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make study` (or `python -m fpcore.study "
                                f"run {part}` then `collect {part}`) to measure it")
    return json.loads(path.read_text(encoding="utf-8"))


def same_run(part: str, profile: str, seed: int) -> bool:
    """Is a live run of this chapter one of the file's runs, so the two must agree?

    Only in the quick profile, for a seed the file holds, with the code that
    made the file and the same number of torch threads: with another count,
    the CPU sums in another order, training drifts, and the live run is one
    more sample, not a repeat (the file's spread does not bound it).
    """
    import torch
    data = results(part)
    return (profile == "quick" and seed in data["seeds"] and not stale(part)
            and data["machine"].get("threads") == torch.get_num_threads())


def stale(part: str) -> bool:
    """Has the training code changed since the file was measured?"""
    from .store import code_hash
    return results(part)["code"] != code_hash()


def select(rows: Iterable[dict], **where) -> list:
    """The rows whose fields equal every given value."""
    return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


@dataclass(frozen=True)
class OverSeeds:
    """One metric over the seeds: the values, their mean, minimum and maximum."""
    values: tuple

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def min(self) -> float:
        return float(np.min(self.values))

    @property
    def max(self) -> float:
        return float(np.max(self.values))

    def count(self, test) -> int:
        """In how many runs `test(value)` holds ("removed in 3 of 3 runs")."""
        return sum(bool(test(v)) for v in self.values)

    def __str__(self) -> str:
        """Percent: '83.4 (80.1-86.0)'."""
        return f"{100 * self.mean:.1f} ({100 * self.min:.1f}-{100 * self.max:.1f})"


def over_seeds(rows: Iterable[dict], metric: str, **where) -> OverSeeds:
    """A metric of the rows matching `where`, one value per seed, sorted by seed."""
    picked = sorted(select(rows, **where), key=lambda r: r["seed"])
    if not picked:
        raise KeyError(f"no results row matches {where}")
    return OverSeeds(tuple(r[metric] for r in picked))


def clean_cost(rows: Iterable[dict], defense: str, **where) -> OverSeeds:
    """Clean accuracy a defense cost, seed by seed, in points (negative: a gain).

    Each seed's defended network is compared with the same seed's received one
    (defense "none", same `where`), so the spread is that of the cost itself.
    """
    rows = list(rows)
    before = {r["seed"]: r["acc"] for r in select(rows, defense="none", **where)}
    after = over_seeds(rows, "acc", defense=defense, **where)
    seeds = sorted(r["seed"] for r in select(rows, defense=defense, **where))
    return OverSeeds(tuple(100 * (before[s] - a) for s, a in zip(seeds, after.values)))


def verdicts(rows: Iterable[dict], defense: str, **where) -> dict:
    """Per seed, what `defense` did to the backdoor (fpcore.chapter.verdict words).

    Compares each seed's ASR after the defense with the same seed's undefended
    ASR. Returns {verdict: number of runs}, e.g. {'removes': 3}.
    """
    from .chapter import verdict
    rows = list(rows)
    after = sorted(select(rows, defense=defense, **where), key=lambda r: r["seed"])
    before = {r["seed"]: r["asr"] for r in select(rows, defense="none", **where)}
    if not after:
        raise KeyError(f"no results row matches defense={defense!r}, {where}")
    counts: dict = {}
    for r in after:
        v = verdict(r["asr"], before[r["seed"]])
        counts[v] = counts.get(v, 0) + 1
    return counts


def in_runs(counts: dict) -> str:
    """{'removes': 2, 'weakens': 1} -> 'removes it in 2 of 3 runs and weakens it in 1'."""
    n = sum(counts.values())
    order = ("removes", "weakens", "does not remove")
    parts = [(v, counts[v]) for v in order if counts.get(v)]
    text = [f"{v} it in {c} of {n} runs" if i == 0 else f"{v} it in {c}"
            for i, (v, c) in enumerate(parts)]
    return text[0] if len(text) == 1 else ", ".join(text[:-1]) + " and " + text[-1]


def agrees(value: float, spread: "OverSeeds", slack: float = 0.02) -> bool:
    """Is a live measurement within the seeds' range, give or take `slack`?

    A chapter recomputes seed 0 and checks it against the committed file: on the
    machine that wrote the file they are equal; elsewhere (another CPU, a GPU)
    floating point differs a little, and the seeds' range is the yardstick.
    """
    return spread.min - slack <= value <= spread.max + slack


def binomial_interval(successes: int, n: int, z: float = 1.96) -> tuple:
    """Wilson's 95 % interval for a proportion measured on n inputs."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))



# ----------------------------------------------------------------- chapters 08-09: an ASR's two uncertainties
def asr_bounds(spread: OverSeeds, n: int) -> tuple:
    """Where the runs' true ASRs may lie, as fractions.

    Each run's ASR is measured on `n` triggered test inputs, so each has a Wilson
    95 % interval; the bounds go from the lowest run's lower end to the highest
    run's upper end. They hold the spread between training runs (min-max) and
    the test set's own noise (the binomial interval) in one range.
    """
    ends = [binomial_interval(int(round(v * n)), n) for v in spread.values]
    return min(lo for lo, _ in ends), max(hi for _, hi in ends)


def asr_text(spread: OverSeeds, n: int) -> str:
    """An ASR over the runs in words, percent: '38.7 % (runs 5.4-66.7, 95 % bounds 2.3-76.0)'."""
    lo, hi = asr_bounds(spread, n)
    return (f"{100 * spread.mean:.1f} % (runs {100 * spread.min:.1f}\u2013{100 * spread.max:.1f}, "
            f"95 % bounds {100 * lo:.1f}\u2013{100 * hi:.1f})")


# ----------------------------------------------------------------- chapters 06-07: provenance, ASR intervals
def provenance(part: str) -> dict:
    """Where a results file comes from, for a chapter's small provenance table.

    Its date and machine, the seeds its rows cover, how many rows, and whether
    the training code has changed since it was measured (`stale`).
    """
    data = results(part)
    m = data["machine"]
    seeds = sorted({r["seed"] for r in data["rows"] if "seed" in r})
    return {"results file": f"fpcore/results/{part}.json", "measured": m["date"],
            "machine": f"{m['cpu']}, {m['device']}, torch {m['torch']}",
            "seeds": ", ".join(map(str, seeds)), "rows": len(data["rows"]),
            "training code": "changed since" if stale(part) else "unchanged since"}


def triggered_inputs(task, attack) -> int:
    """How many triggered test inputs an ASR rests on: the test split's eligible inputs."""
    return int(attack.eligible(task.test.y).sum())


def asr_interval(asr: float, n: int) -> tuple:
    """Wilson's 95 % interval of an ASR measured on n triggered inputs (fractions)."""
    return binomial_interval(int(round(asr * n)), n)


def quote_asr(asr: float, n: int) -> str:
    """One run's ASR, in percent, with its binomial interval: '97.8 % (95 % interval 92.3–99.4 %)'."""
    lo, hi = asr_interval(asr, n)
    return f"{100 * asr:.1f} % (95 % interval {100 * lo:.1f}–{100 * hi:.1f} %)"


def span(spread: OverSeeds, scale: float = 100, digits: int = 1) -> str:
    """Mean (lowest–highest run), for a table: '96.4 (93.5–98.9)'; scale=1 for counts."""
    f = lambda v: f"{scale * v:.{digits}f}"
    return f"{f(spread.mean)} ({f(spread.min)}–{f(spread.max)})"


# ----------------------------------------------------------------- the command line
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fpcore.study", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n")[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="measure a part (resumes where it stopped)")
    r.add_argument("part", choices=PARTS)
    r.add_argument("--shard", default="0/1", help="i/n: this process runs every n-th group")
    r.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    c = sub.add_parser("collect", help="write fpcore/results/<part>.json from the work files")
    c.add_argument("parts", nargs="*", default=list(PARTS))
    for q in (r, c):
        q.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS))
    args = p.parse_args(argv)
    if args.command == "run":
        import torch
        if args.threads:
            torch.set_num_threads(args.threads)
        shard, shards = (int(v) for v in args.shard.split("/"))
        run(args.part, shard, shards, tuple(args.seeds), log=lambda m: print(m, flush=True))
        return 0
    for part in args.parts:
        print(collect(part, tuple(args.seeds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

