"""Does the fast path cost accuracy? Quick-profile models, fast path against float32.

For every task (signs, faces, speech), model kind (clean, badnet,
pruning_aware) and seed, the model is trained twice through
`fpcore.trained_model`: once with the fast path (channels_last, bfloat16
autocast where the CPU has it) and once in float32 (FPCORE_FAST=0, exactly the
training of before the fast path). Both are scored in float32 on the test
split: clean accuracy, ASR, and both again after the pruning defense. The
models go to fpcore's cache (its key holds the precision, so the two never
mix).

Each precision runs in its own process, because FPCORE_FAST is read from the
environment:

    python -m bench.accuracy --fast 1 --out bench/_work/accuracy-fast.json
    python -m bench.accuracy --fast 0 --out bench/_work/accuracy-float32.json

`python -m bench.run --accuracy` runs both at once and joins them into
bench/accuracy.json, which every RESULTS.md reports (one to several hours on
2 shared cores: 2 x 27 models, the float32 ones 2-3x slower to train).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

TASKS = ("signs", "faces", "speech")
KINDS = ("clean", "badnet", "pruning_aware")
SEEDS = (0, 1, 2)


def measure(tasks=TASKS, kinds=KINDS, seeds=SEEDS, log=print) -> dict:
    """Metrics of every model under the precision that FPCORE_FAST selects now."""
    import torch

    import fpcore
    from fpcore.train import precision
    rows = []
    for name in tasks:
        task = fpcore.load_task(name)
        attack = fpcore.default_attack(task)
        for seed in seeds:
            for kind in kinds:
                start = time.perf_counter()
                model = fpcore.trained_model(task, kind, "quick", seed, progress=False)
                ev = fpcore.evaluate(model, task, attack)
                pruned = fpcore.prune_defense(model, task)
                pv = fpcore.evaluate(pruned.model, task, attack)
                row = dict(task=name, kind=kind, seed=seed, acc=ev["acc"], asr=ev["asr"],
                           pruned_k=pruned.k, pruned_acc=pv["acc"], pruned_asr=pv["asr"],
                           train_seconds=getattr(model, "meta", {}).get("seconds"),
                           wall=time.perf_counter() - start)
                rows.append(row)
                log(f"  {name} {kind} seed {seed}: acc {row['acc']:.3f}, asr {row['asr']:.3f}, "
                    f"pruned k={row['pruned_k']} asr {row['pruned_asr']:.3f} "
                    f"({row['wall']:.0f} s)")
    return {"precision": {n: str(precision(n)) for n in tasks},
            "threads": torch.get_num_threads(), "rows": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fast", choices=("0", "1"), required=True, help="FPCORE_FAST for this run")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p.add_argument("--tasks", nargs="*", default=list(TASKS))
    p.add_argument("--kinds", nargs="*", default=list(KINDS))
    p.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    os.environ["FPCORE_FAST"] = args.fast
    import torch
    torch.set_num_threads(args.threads)
    out = measure(args.tasks, args.kinds, args.seeds, log=lambda m: print(m, flush=True))
    out["fast"] = args.fast == "1"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
