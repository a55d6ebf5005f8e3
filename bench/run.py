"""Run every benchmark and rewrite bench/RESULTS.md (see bench/README.md).

    python -m bench.run                 # sweep, training, memory; book timings as last recorded
    python -m bench.run --book          # also rebuild the whole book (quick profile) first
    python -m bench.run --repeats 5     # more repeats per timing (medians are reported)

Run it from the checkout's root (`make bench` does). Benchmarks are not tests:
nothing fails on a slow machine. Only the check that fpcore's sweep and the naive
sweep give identical curves fails the run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

import fpcore
from fpcore.train import EVAL_BATCH

from . import book, machine, sweep, training
from .machine import ROOT, timed

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"                      # git-ignored: the model files the children load
RESULTS_JSON = HERE / "results.json"       # the numbers of RESULTS.md, machine-readable
ACCURACY_JSON = HERE / "accuracy.json"     # written by --accuracy, reported by every run
LAST_RUN = WORK / "last-run.json"          # the last full run's numbers, for --report-only
SWEEP_TASKS = ("faces", "speech")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="repeats of every timing (default 3)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: the cores are shared, see README)")
    p.add_argument("--train-tasks", nargs="*", default=["signs", "faces", "speech"],
                   help="tasks of the training benchmark (default: signs faces speech)")
    p.add_argument("--book", action="store_true",
                   help="rebuild the book (tools/build_book.py --profile quick) before reading its timings")
    p.add_argument("--cold-book", action="store_true",
                   help="build the book twice with an empty model cache (every model trained): "
                        "one chapter at a time (--jobs 1, book.cold_sequential_seconds), then "
                        "in parallel (the default, book.cold_seconds); implies --book")
    p.add_argument("--accuracy", action="store_true",
                   help="rerun the fast-vs-float32 accuracy comparison (bench/accuracy.py, about an "
                        "hour); without it, the last bench/accuracy.json is reported")
    p.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="the report to rewrite")
    p.add_argument("--smoke", action="store_true",
                   help="check the pipeline in a minute: small subsets, untrained models, report to bench/_work/")
    p.add_argument("--report-only", action="store_true",
                   help="measure nothing: rewrite the report from the last run's numbers "
                        "(bench/_work/last-run.json) and the current bench/accuracy.json")
    p.add_argument("--book-only", action="store_true",
                   help="with --book or --cold-book: measure the book only and report it with the last "
                        "run's other numbers (bench/_work/last-run.json)")
    p.add_argument("--child", nargs=2, metavar=("KIND", "TASK"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


# Epochs of the training benchmark (signs: 7,185 images per epoch; faces: 2,393).
TRAIN_EPOCHS = {"signs": 1, "faces": 2, "speech": 2, "orl": 20}


def log(msg: str) -> None:
    print(msg, flush=True)


def model_file(task_name: str) -> Path:
    return WORK / f"{task_name}-badnet-quick.safetensors"


def get_model(task, smoke: bool = False):
    """The quick-profile backdoored model: fpcore's cache, else trained once (and cached)."""
    from fpcore.store import cache_path
    if smoke:
        fpcore.seed_everything(0)
        model = fpcore.build_model(task).eval()
        fpcore.save_model(model, model_file(task.name))
        return model, "untrained (--smoke)"
    cached = cache_path(task, "badnet", "quick", 0).exists()
    secs, model = timed(lambda: fpcore.trained_model(task, "badnet", "quick", progress=False))
    model = model.cpu().eval()
    fpcore.save_model(model, model_file(task.name))    # children measure memory on the very same weights
    how = "from fpcore's cache" if cached else f"not cached: trained now in {secs:.0f} s (not timed)"
    return model, how


# ----------------------------------------------------------------- memory (children)
def load(name: str, smoke: bool):
    task = fpcore.load_task(name)
    return task.shrink(400, 120) if smoke else task


def child(kind: str, task_name: str, smoke: bool) -> dict:
    """Runs in a fresh process: peak RSS of one phase, and of the whole process."""
    task = load(task_name, smoke)
    if kind == "sweep":
        model = fpcore.load_model(model_file(task_name))
        attack = fpcore.default_attack(task)
        order = fpcore.prune_order(fpcore.channel_activity(model, task))
        phase = lambda: fpcore.prune_curve(model, task, attack, order=order)
    elif kind == "fit":
        phase = lambda: training.run_fpcore(task, TRAIN_EPOCHS[task_name])
    elif kind == "fit32":
        phase = lambda: training.run_fpcore(task, TRAIN_EPOCHS[task_name], fast=False)
    elif kind == "tutorial":
        phase = lambda: training.run_tutorial(task, TRAIN_EPOCHS[task_name])
    else:
        raise ValueError(kind)
    before, loading_peak = machine.rss_mb(), machine.hwm_mb()
    reset = machine.reset_peak()
    secs, _ = timed(phase)
    peak = machine.hwm_mb()
    return {"before": before, "peak": peak, "phase_only": reset,
            "process": max(loading_peak, peak), "children": machine.children_peak_mb(),
            "seconds": secs}


def measure_memory(kind: str, task_name: str, threads: int, smoke: bool) -> dict:
    cmd = [sys.executable, "-m", "bench.run", "--threads", str(threads), "--child", kind, task_name]
    cmd += ["--smoke"] if smoke else []
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"memory child {kind} {task_name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------- the report
def report(info, threads_note, sweeps, trains, mem, bk, total_secs, args) -> str:
    L = []
    add = L.append
    phases = ", ".join(f"{k} {v:.0f} s" for k, v in info["phases"].items())
    add("# Benchmarks\n")
    add(f"Written by `make bench` (`python -m bench.run`) on **{info['date']}**; the whole run took "
        f"{total_secs / 60:.1f} min ({phases}). How to read and rerun it: [README.md](README.md).\n")
    add("| machine | |\n|---|---|")
    for k in ("cpu", "cores", "memory", "python", "torch", "threads", "commit", "fpcore code hash"):
        label = {"threads": "torch threads", "cores": "CPU cores", "cpu": "CPU"}.get(k, k)
        add(f"| {label} | {info[k]} |")
    add(f"| load average (1/5/15 min) | {info['load']} at the start, {info['load_end']} at the end |")
    add("")
    add(f"Every time is the median of {args.repeats} repeats. Each repeat runs the ways being "
        "compared in turn, in the same process, and every ratio is the median of these per-repeat "
        "ratios (their range in parentheses), so a ratio compares runs made under the same load. "
        "The machine's cores are shared with other jobs: absolute times are noisy, ratios much less so.\n")

    add("## 1. Pruning sweep\n")
    add("The full pruning curve (validation accuracy, test accuracy and ASR for every k = 0…C) of the "
        "quick-profile backdoored model. **fpcore** = `fpcore.prune_curve`: the layers up to the prune "
        "site run once per evaluation set; then, walking k from C down to 0, putting one channel back per "
        "step only adds that channel's share to the output of the head's first, affine layers "
        "(`head_linear`, through `PrunableNet.linear_maps`), and the rest of the head (`head_rest`) runs "
        "again only on the inputs where that channel is active. **Naive** = "
        "`fpcore.naive_prune_curve`, the way public toolkits do it: mask k channels and re-run the whole "
        "network on every set, for every k. **Floor** = one pass of the trunk (`m.trunk`, input "
        "conversion included) over the same sets: the least any sweep can cost. Both sweeps get the same "
        "channel ranking (computed once on the validation split, not timed).\n")
    add("| task | model, prune site | evaluated (val + test + triggered) | k values | fpcore | naive | "
        "**naive / fpcore** | same in CPU time | floor | fpcore / floor | curves identical |")
    add("|---|---|---|---|---|---|---|---|---|---|---|")
    for s in sweeps:
        z = s["sizes"]
        lo, hi = s["ratio_range"]
        add(f"| {s['task']} | {s['model']}, {s['site']} | {z['val']} + {z['test']} + {z['triggered']} | "
            f"{s['k_values']} | {s['fast']:.2f} s | {s['naive']:.1f} s | **{s['ratio']:.0f}×** "
            f"({lo:.0f}–{hi:.0f}) | {s['ratio_cpu']:.0f}× | {s['floor']:.2f} s | {s['over_floor']:.2f}× | "
            "yes, asserted |")
    add("")
    add("*Same in CPU time*: the same ratio in CPU seconds (user + system), less sensitive to the "
        "load than wall time. "
        "Targets: naive / fpcore ≥ 50× on faces, fpcore / floor ≤ 1.3×. "
        "What fpcore spends above the floor is mostly `head_rest`, run for each of the C + 1 values of k; "
        "on faces that is DeepID's second fully connected layer (on conv4's 960 outputs), which no "
        "shortcut can skip because a ReLU comes before it. "
        "*Curves identical* is asserted for every repeat: the validation and test accuracies and the ASR "
        "at every k are exactly the naive sweep's. The two round differently in float32, which could only "
        "matter where the two largest logits nearly tie; fpcore predicts those few inputs again the naive "
        "way.\n")
    add("The models (so that the curves are the real ones):\n")
    for s in sweeps:
        c, st = s["curve_k0"], s["stop_10pt"]
        add(f"- {s['task']}: {s['how']}; unpruned: validation {100 * c['val']:.1f} %, test "
            f"{100 * c['test']:.1f} %, ASR {100 * c['asr']:.1f} %; pruned to a 10-point validation drop "
            f"(k = {st['k']}): test {100 * st['test']:.1f} %, ASR {100 * st['asr']:.1f} %.")
    add("")

    add("## 2. Training throughput\n")
    add("Three loops on the same job. **fpcore** is `fpcore.fit` as it is now: raw tensors resident, "
        "batches gathered by index, trigger stamped on the poisoned rows of a batch at once, the whole "
        "batch converted at once, and the fast path (`fpcore.train.precision`: channels_last, and "
        "bfloat16 autocast where the CPU has it). **float32 fpcore** is `fpcore.fit(fast=False)` "
        "(`FPCORE_FAST=0`): contiguous float32, exactly the `fit` of before the fast path. The "
        "**tutorial loop** (`bench/training.py`: a `Dataset` whose `__getitem__` pastes the trigger on "
        f"one raw sample and converts it to float, a `DataLoader` with `num_workers={2}`) is float32 too. "
        "Same model (`fpcore.build_model`, same seed), same poisoned training set, trigger function, input "
        "conversion, batch size, epochs, optimizer (Adam + cosine schedule) and loss. Images per epoch "
        "include the poisoned copies.\n")
    add("| task | model | fpcore precision | images × epochs | batch | fpcore | float32 fpcore | "
        "tutorial loop | **fpcore / float32 fpcore** | fpcore / tutorial | float32 fpcore / tutorial | "
        "same first ratio in CPU time |")
    add("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for t in trains:
        lo, hi = t["speedup_range"]
        add(f"| {t['task']} | {t['model']} | {t['precision']} | {t['images']} × {t['epochs']} | "
            f"{t['batch_size']} | {t['fast_ips']:.0f} img/s ({t['fast']:.1f} s) | "
            f"{t['today_ips']:.0f} img/s ({t['today']:.1f} s) | {t['slow_ips']:.0f} img/s ({t['slow']:.1f} s) | "
            f"**{t['speedup']:.2f}×** ({lo:.2f}–{hi:.2f}) | {t['ratio']:.2f}× | {t['ratio_today']:.2f}× | "
            f"{t['speedup_cpu']:.2f}× |")
    add("")
    add("Targets: fpcore ≥ 2× float32 fpcore on signs and speech, ≥ 1.5× on faces, in images per second. "
        "The tutorial loop runs three processes (the main one and two workers) where fpcore runs one, so on "
        "a machine shared with other jobs it also gets a larger share of the cores. Whether the fast path "
        "costs accuracy is not judged from these short runs but from fully trained models, in section 5. "
        "Validation accuracy after these few epochs, only to show that all three did the same job: "
        + "; ".join(f"{t['task']} {100 * t['val_acc']['fast']:.1f} / {100 * t['val_acc']['today']:.1f} / "
                    f"{100 * t['val_acc']['slow']:.1f} %" for t in trains) + " (fpcore / float32 / tutorial).\n")
    add("Where the time goes: the data paths alone (no model), seconds per epoch, against a whole "
        "training epoch. *Tutorial, in process* is the same `Dataset` and collation with `num_workers=0`; "
        "*tutorial, 2 workers* iterates the benchmark's `DataLoader` (worker start-up included).\n")
    add("| task | fpcore data path | tutorial, in process | tutorial, 2 workers | fpcore epoch | "
        "tutorial epoch | data path / fpcore epoch |")
    add("|---|---|---|---|---|---|---|")
    for t in trains:
        ef, es = t["fast"] / t["epochs"], t["slow"] / t["epochs"]
        add(f"| {t['task']} | {t['data_fpcore']:.2f} s | {t['data_tutorial0']:.2f} s | "
            f"{t['data_tutorial2']:.2f} s | {ef:.1f} s | {es:.1f} s | "
            f"{100 * t['data_fpcore'] / ef:.1f} % (tutorial's in process: {100 * t['data_tutorial0'] / ef:.1f} %) |")
    add("")

    add("## 3. The book\n")
    if not bk.get("present"):
        add("No `_build/timings.json` yet: run `make book` or `python -m bench.run --book`.\n")
    else:
        src = ("rebuilt by this run (`--book`: `python -m tools.build_book --profile quick`)" if args.book else
               "**not rebuilt by this run**: the latest `_build/timings.json` written by "
               "`tools/build_book.py`, dated " + bk["date"] + " (rerun with `--book` to rebuild)")
        add(f"Execution time of every chapter (papermill, one fresh kernel each), {src}. "
            "`PROFILE = auto` means quick on a CPU. A chapter executed with `--only` or skipped with "
            "`--reuse` keeps the time of its last execution. Target: the whole book ≤ 10 min on 2 cores.\n")
        add("| chapter | seconds | parameters |")
        add("|---|---|---|")
        for r in bk["rows"]:
            if r["seconds"] is None:
                why = "not executed yet" if r["exists"] else "not written yet"
                add(f"| {r['chapter']} | – | {why} |")
            else:
                params = ", ".join(f"{k} = {v}" for k, v in r["params"].items())
                add(f"| {r['chapter']} | {r['seconds']:.1f} | {params} |")
        add(f"| **whole book** | **{bk['total']:.1f}** ({bk['total'] / 60:.1f} min) | "
            f"{bk['executed']} of {bk['listed']} chapters executed |")
        if bk.get("html_seconds") is not None:
            add(f"\nThe last HTML build (`jupyter-book build`, after execution) took {bk['html_seconds']:.0f} s.")
        if args.book:
            add(f"\nWall time of the whole `tools/build_book.py` run: {bk['wall']:.0f} s.")
        add("")

    if bk.get("cold_seconds") is not None:
        seq = bk["cold_sequential_seconds"]
        add(f"**Cold book** (`--cold-book`: an empty model cache, so every model of every chapter is "
            f"trained): **{bk['cold_seconds']:.0f} s** ({bk['cold_seconds'] / 60:.1f} min) for the whole "
            f"`tools.build_book --profile quick` run, HTML included, with {bk['jobs']} jobs: the "
            f"chapters' networks first ({bk['networks_seconds']:.0f} s), then the chapters, "
            f"{bk['jobs']} processes at a time with one torch thread each; the chapter times above "
            f"are from that run. The baseline, measured just before in the same run: one chapter "
            f"at a time with torch's threads (`--jobs 1 --no-html`), **{seq:.0f} s** "
            f"({seq / 60:.1f} min): **{seq / bk['cold_seconds']:.2f}×** faster in parallel. "
            "Target: ≤ 5 min.\n")
    else:
        add("The cold book (an empty model cache) was not measured by this run: "
            "`python -m bench.run --cold-book`.\n")

    add("## 4. Memory\n")
    chunks = "; ".join(f"{s['task']}: {s['chunk'][0]}, {s['chunk'][1]:.0f} MB" for s in sweeps)

    add("Each row runs in a fresh process (`python -m bench.run --child KIND TASK`). *Before* is the "
        "resident memory once Python, torch, the data set and the model are loaded; *peak* is the "
        "largest resident memory during the phase alone (the kernel's VmHWM, reset just before it); "
        "*process peak* is the largest resident memory of the whole process, loading included (VmHWM; "
        "not `ru_maxrss`, which Linux carries over from the parent across `exec`). DataLoader workers "
        "are separate processes: their largest peak (`ru_maxrss` of the children) is given apart; it "
        "counts the pages they share with the main process.\n")
    add("| phase | task | before | peak during the phase | process peak | workers' peak |")
    add("|---|---|---|---|---|---|")
    for m in mem:
        peak = f"{m['peak']:.0f} MB" + ("" if m["phase_only"] else " (whole process: VmHWM reset refused)")
        workers = f"{m['children']:.0f} MB (largest)" if m["kind"] == "tutorial" else "–"
        add(f"| {m['label']} | {m['task']} | {m['before']:.0f} MB | {peak} | {m['process']:.0f} MB | {workers} |")
    add("")
    add("The sweep's extra memory is set by fpcore's evaluation chunk (`fpcore.train.EVAL_BATCH` = "
        f"{EVAL_BATCH} inputs), not by the cached activations: the largest trunk output for one chunk is "
        f"{chunks}.\n")
    add("A training run's peak does not grow with the number of epochs; the runs above train "
        + ", ".join(f"{t} for {TRAIN_EPOCHS[t]} epoch{'s' if TRAIN_EPOCHS[t] > 1 else ''}"
                    for t in sorted({m['task'] for m in mem if m['kind'] != 'sweep'})) + ".\n")

    add(accuracy_section())

    add("## Threads\n")
    add(threads_note + "\n")
    return "\n".join(L)


# ----------------------------------------------------------------- accuracy, fast vs float32
def run_accuracy(threads: int) -> dict:
    """bench/accuracy.py once per precision, both at once (fresh processes: FPCORE_FAST is read
    from the environment); their results joined into bench/accuracy.json."""
    outs = {m: WORK / f"accuracy-{m}.json" for m in ("fast", "float32")}
    procs = {m: subprocess.Popen([sys.executable, "-m", "bench.accuracy", "--fast",
                                  "1" if m == "fast" else "0", "--out", str(out),
                                  "--threads", str(threads)], cwd=ROOT)
             for m, out in outs.items()}
    start = machine.load()
    for m, proc in procs.items():
        if proc.wait() != 0:
            raise RuntimeError(f"bench.accuracy ({m}) failed with exit code {proc.returncode}")
    data = {"date": machine.describe()["date"], "load": f"{start} at the start, {machine.load()} at the end",
            **{m: json.loads(out.read_text()) for m, out in outs.items()}}
    ACCURACY_JSON.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return data


# Below half a point two runs differ by one or two inputs (one of speech's 300 test clips is
# 0.33 points), so a difference that small counts as equal even where the seeds agree exactly.
RESOLUTION = 0.005


def accuracy_summary(data: dict) -> dict:
    """Per task and kind: each metric's mean and seed range, fast and float32, and the verdict."""
    out = {}
    for r in data["fast"]["rows"]:
        key = f"{r['task']}.{r['kind']}"
        if key in out:
            continue
        rows = {m: [x for x in data[m]["rows"] if (x["task"], x["kind"]) == (r["task"], r["kind"])]
                for m in ("fast", "float32")}
        entry = {"seeds": sorted(x["seed"] for x in rows["fast"])}
        for metric in ("acc", "asr", "pruned_asr"):
            v = {m: [x[metric] for x in rows[m]] for m in rows}
            spread = max(max(x) - min(x) for x in v.values())
            diff = sum(v["fast"]) / len(v["fast"]) - sum(v["float32"]) / len(v["float32"])
            entry[metric] = {"fast": v["fast"], "float32": v["float32"], "mean_difference": diff,
                             "seed_spread": spread, "within_spread": abs(diff) <= max(spread, RESOLUTION) + 1e-9}
        out[key] = entry
    return out


def accuracy_section() -> str:
    if not ACCURACY_JSON.exists():
        return ("## 5. Accuracy of the fast path\n\nNo bench/accuracy.json yet: "
                "`python -m bench.run --accuracy`.\n")
    data = json.loads(ACCURACY_JSON.read_text())
    summary = accuracy_summary(data)
    pct = lambda xs: " / ".join(f"{100 * x:.1f}" for x in xs)
    L = ["## 5. Accuracy of the fast path\n",
         f"Measured on {data['date']} (`python -m bench.run --accuracy`; load {data['load']}); not rerun "
         "by a plain `make bench`. Every quick-profile model of every case study, trained twice through "
         "`fpcore.trained_model`, for seeds " + ", ".join(map(str, summary[next(iter(summary))]["seeds"]))
         + ": with the fast path (" + ", ".join(f"{t}: {p}" for t, p in data["fast"]["precision"].items())
         + ") and in float32 (`FPCORE_FAST=0`, the training of before the fast path). Both are scored in "
         "float32 on the test split: clean accuracy, ASR, and the ASR left after the pruning defense "
         "(`fpcore.prune_defense`, the case study's threshold). Per seed, in %, fast / float32; *Δ* is the "
         "difference of the means over the seeds (fast − float32, points), *spread* the larger seed-to-seed "
         "range of the two; *within* means |Δ| ≤ spread, or ≤ 0.5 points (one or two test "
         "inputs) where the seeds agree more closely than that.\n",
         "| task | model | clean accuracy, fast | float32 | Δ (spread) | ASR, fast | float32 | Δ (spread) | "
         "ASR after pruning, fast | float32 | Δ (spread) |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, e in summary.items():
        task, kind = key.split(".")
        cells = []
        for metric in ("acc", "asr", "pruned_asr"):
            m = e[metric]
            mark = "" if m["within_spread"] else " **outside**"
            cells += [pct(m["fast"]), pct(m["float32"]),
                      f"{100 * m['mean_difference']:+.1f} ({100 * m['seed_spread']:.1f}){mark}"]
        L.append(f"| {task} | {kind} | " + " | ".join(cells) + " |")
    bad = [k for k, e in summary.items() if not all(e[m]["within_spread"] for m in ("acc", "asr", "pruned_asr"))]
    L.append("")
    L.append("Every difference is within the seed-to-seed spread: the fast path is on for every "
             "case study." if not bad else
             "Outside the seed-to-seed spread: " + ", ".join(bad) + ".")
    return "\n".join(L) + "\n"


def results_json(info, sweeps, trains, mem, bk) -> dict:
    """The numbers of RESULTS.md that matter, machine-readable (bench/results.json)."""
    old = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    keys = ("cold_seconds", "cold_sequential_seconds", "parallel_speedup", "jobs", "cold_date")
    cold = ({"cold_seconds": bk["cold_seconds"],
             "cold_sequential_seconds": bk["cold_sequential_seconds"],
             "parallel_speedup": round(bk["cold_sequential_seconds"] / bk["cold_seconds"], 2),
             "jobs": bk["jobs"], "cold_date": bk.get("cold_date", info["date"])}
            if bk.get("cold_seconds")
            else {k: old.get("book", {}).get(k) for k in keys})
    return {
        "date": info["date"], "commit": info["commit"], "fpcore_code_hash": info["fpcore code hash"],
        "machine": {k: info[k] for k in ("cpu", "cores", "memory", "torch", "threads")},
        "load": {"start": info["load"], "end": info["load_end"]},
        "training": {t["task"]: {
            "speedup": t["speedup"], "speedup_range": list(t["speedup_range"]),
            "speedup_cpu": t["speedup_cpu"], "vs_tutorial": t["ratio"],
            "float32_vs_tutorial": t["ratio_today"], "precision": t["precision"],
            "images_per_second": {"fpcore": t["fast_ips"], "float32": t["today_ips"],
                                  "tutorial": t["slow_ips"]}} for t in trains},
        "sweep": {s["task"]: {
            "ratio": s["ratio"], "ratio_range": list(s["ratio_range"]), "ratio_cpu": s["ratio_cpu"],
            "over_floor": s["over_floor"], "identical": s["identical"],
            "seconds": {"fpcore": s["fast"], "naive": s["naive"], "floor": s["floor"]}} for s in sweeps},
        "book": {"chapters_seconds": bk.get("total"), "timings_date": bk.get("date"), **cold},
        "memory": [{"phase": m["label"], "task": m["task"], "before_mb": m["before"],
                    "peak_mb": m["peak"], "process_peak_mb": m["process"]} for m in mem],
        "accuracy": accuracy_summary(json.loads(ACCURACY_JSON.read_text()))
        if ACCURACY_JSON.exists() else None,
    }


def threads_check(task, model, repeats: int) -> str:
    """One trunk pass and one head pass over the test split with 1 and with 2 threads."""
    x = task.test.x
    with torch.no_grad():
        a = model.trunk(task.prepare(x))
        res = {}
        before = torch.get_num_threads()
        for n in (1, 2):
            torch.set_num_threads(n)
            model.trunk(task.prepare(x)), model.head(a)             # warm-up
            tt = machine.median([timed(lambda: model.trunk(task.prepare(x)))[0] for _ in range(repeats)])
            th = machine.median([timed(lambda: model.head(a))[0] for _ in range(repeats)])
            res[n] = (tt, th)
        torch.set_num_threads(before)
    rows = "\n".join(f"| {n} | {res[n][0] * 1000:.0f} ms | {res[n][1] * 1000:.1f} ms |" for n in res)
    return ("The benchmarks run with a fixed number of torch intra-op threads (`--threads`, default 1). "
            "On this shared machine two threads are often *slower* than one: when another job holds a "
            "core, every parallel kernel waits for its descheduled second thread. Measured in this run "
            f"on the {task.name} test split ({len(x)} inputs, {type(model).__name__}), median of {repeats}:\n\n"
            "| threads | trunk pass | head pass |\n|---|---|---|\n" + rows + "\n\n"
            "On an idle machine run `python -m bench.run --threads 2`.")


def write(args, info, note, sweeps, trains, mem, bk, total) -> None:
    """RESULTS.md (or --out) and results.json beside it."""
    args.out.write_text(report(info, note, sweeps, trains, mem, bk, total, args), encoding="utf-8")
    out_json = RESULTS_JSON if args.out == HERE / "RESULTS.md" else args.out.with_suffix(".json")
    out_json.write_text(json.dumps(results_json(info, sweeps, trains, mem, bk), indent=1) + "\n",
                        encoding="utf-8")


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(child(*args.child, args.smoke)))
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    if args.smoke and args.out == HERE / "RESULTS.md":
        args.out = WORK / "SMOKE.md"
    if args.report_only:
        last = json.loads(LAST_RUN.read_text())
        args.repeats, args.book = last["repeats"], last["book"]
        write(args, *(last[k] for k in ("info", "note", "sweeps", "trains", "mem", "bk", "total")))
        return 0
    start = time.perf_counter()
    info = machine.describe()
    log(f"bench: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, {info['threads']} thread(s), "
        f"load {info['load']}")

    phases, mark = {}, time.perf_counter()

    def phase_done(name):
        nonlocal mark
        now = time.perf_counter()
        phases[name] = phases.get(name, 0.0) + now - mark
        mark = now

    if args.accuracy:
        log("accuracy: fast path against float32, every quick-profile model (bench.accuracy) ...")
        run_accuracy(args.threads)
        phase_done("accuracy")
    if args.cold_book:
        args.book = True
        cold = WORK / "cold-cache"                 # an empty model cache: every model is trained
        shutil.rmtree(cold, ignore_errors=True)
        cold.mkdir(parents=True)
        before = os.environ.get("FPCORE_CACHE")
        os.environ["FPCORE_CACHE"] = str(cold)
        try:
            # the baseline first: one chapter at a time with torch's threads, as before --jobs
            log(f"book, cold (FPCORE_CACHE={cold}): tools.build_book --profile quick --jobs 1 ...")
            sequential = book.build(("--profile", "quick", "--jobs", "1", "--no-html"))
            shutil.rmtree(cold)
            cold.mkdir(parents=True)
            log(f"book, cold (FPCORE_CACHE={cold}): tools.build_book --profile quick ...")
            wall = book.build()
        finally:
            if before is None:
                os.environ.pop("FPCORE_CACHE")
            else:
                os.environ["FPCORE_CACHE"] = before
        bk = book.read()
        bk["wall"] = bk["cold_seconds"] = wall
        bk["cold_sequential_seconds"] = sequential
        bk["cold_date"] = info["date"]
        phase_done("cold book build")
    elif args.book:
        log("book: tools/build_book.py --profile quick ...")
        wall = book.build()
        bk = book.read()
        bk["wall"] = wall
        phase_done("book build")
    else:
        bk = book.read()
    if args.book_only:                   # the other numbers stay those of the last full run
        last = json.loads(LAST_RUN.read_text())
        last["bk"] = bk
        LAST_RUN.write_text(json.dumps(last))
        args.repeats = last["repeats"]
        write(args, *(last[k] for k in ("info", "note", "sweeps", "trains", "mem", "bk", "total")))
        return 0
    log("1. pruning sweep")
    sweeps, tasks, models = [], {}, {}
    for name in SWEEP_TASKS:
        tasks[name] = load(name, args.smoke)
        models[name], how = get_model(tasks[name], args.smoke)
        log(f"  {name}: model {how}")
        phase_done("data and models")
        s = sweep.bench_sweep(tasks[name], models[name], args.repeats, log)
        s["how"] = how
        sweeps.append(s)
        naive = sum(s["naive_all"])
        phases["naive sweeps"] = phases.get("naive sweeps", 0.0) + naive
        phases["fpcore sweeps and floors"] = (phases.get("fpcore sweeps and floors", 0.0)
                                              + time.perf_counter() - mark - naive)
        mark = time.perf_counter()
    note = threads_check(tasks["faces"], models["faces"], args.repeats)
    phase_done("threads check")

    log("2. training throughput")
    trains = []
    for name in args.train_tasks:
        task = tasks.get(name) or load(name, args.smoke)
        trains.append(training.bench_training(task, TRAIN_EPOCHS[name], args.repeats, log))
    phase_done("training")

    log("4. memory (fresh processes)")
    mem = []
    plan = [("sweep", n, "pruning sweep (fpcore)") for n in SWEEP_TASKS]
    first = args.train_tasks[0] if args.train_tasks else "signs"
    plan += [("fit", first, "training (fpcore.fit)"), ("fit32", first, "training (fpcore.fit, float32)"),
             ("tutorial", first, "training (tutorial loop)")]
    for kind, name, label in plan:
        m = measure_memory(kind, name, args.threads, args.smoke)
        m.update(kind=kind, task=name, label=label)
        log(f"  {label}, {name}: peak {m['peak']:.0f} MB (before {m['before']:.0f} MB)")
        mem.append(m)

    phase_done("memory")
    info["load_end"], info["phases"] = machine.load(), phases
    total = time.perf_counter() - start
    if not args.smoke:
        LAST_RUN.write_text(json.dumps(dict(info=info, note=note, sweeps=sweeps, trains=trains, mem=mem,
                                            bk=bk, total=total, repeats=args.repeats, book=args.book)))
    write(args, info, note, sweeps, trains, mem, bk, total)
    log(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out} "
        f"({total / 60:.1f} min)")
    for s in sweeps:
        log(f"  sweep {s['task']}: naive / fpcore {s['ratio']:.1f}x, fpcore / floor {s['over_floor']:.2f}x")
    for t in trains:
        log(f"  training {t['task']}: fpcore / float32 fpcore {t['speedup']:.2f}x, "
            f"fpcore / tutorial {t['ratio']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
