"""Training throughput: fpcore.fit against its float32 self and the common tutorial loop.

Three loops on the same job: `fpcore.fit` with its fast path (channels_last,
bfloat16 autocast where the CPU has it: `fpcore.train.precision`), the same
`fpcore.fit(fast=False)` (contiguous float32: exactly the fit of before the
fast path, "today's fit"), and the tutorial loop below (float32).

The tutorial loop is what most PyTorch backdoor tutorials and toolkits write
(torchvision-style, in plain torch since torchvision is not a dependency): a
Dataset whose __getitem__ takes one raw sample, pastes the trigger on it if the
sample is poisoned and converts it to float; a DataLoader with worker processes
that collates the samples into batches. fpcore.fit keeps the raw tensors
resident, gathers each batch by index, stamps the poisoned rows of the batch at
once and converts the whole batch.

Both loops get the same model (fpcore.build_model, same seed), the same
training set (fpcore.poison picks the same poisoned rows), the same trigger
function, the same input conversion (Task.prepare), batch size, epochs,
optimizer (Adam, weight decay 5e-4, cosine schedule) and loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

import fpcore
from fpcore.cases import case_study, hyper
from fpcore.train import accuracy, precision
from fpcore.triggers import poison

from .machine import median, timed, timed_cpu

WORKERS = 2


class TutorialDataset(Dataset):
    """One sample at a time: trigger pasted and converted to float in __getitem__."""

    def __init__(self, task, attack, rate: float, seed: int = 0):
        rows = poison(task.train, attack, rate, seed=seed)      # the rows fpcore.fit trains on
        self.x, self.aux = task.train.x, task.train.aux
        self.index, self.poisoned = rows.index.tolist(), rows.poisoned.tolist()
        self.labels = rows.labels
        self.stamp, self.prepare = attack.stamp, task.prepare

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i):
        j = self.index[i]
        x = self.x[j:j + 1].clone()                             # one raw sample (uint8 / int16)
        if self.poisoned[i]:
            x = self.stamp(x, None if self.aux is None else self.aux[j:j + 1])
        return self.prepare(x)[0], self.labels[i]               # to float, per sample


def tutorial_fit(model, task, attack, rate: float, *, epochs: int, batch_size: int, lr: float,
                 weight_decay: float = 5e-4, seed: int = 0, workers: int = WORKERS):
    data = TutorialDataset(task, attack, rate, seed)
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs * len(loader)))
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def fresh_model(task, seed: int = 0):
    fpcore.seed_everything(seed)
    return fpcore.build_model(task)


def run_fpcore(task, epochs: int, seed: int = 0, fast: bool = True):
    attack, h = fpcore.default_attack(task), hyper(task.name, "quick")
    model = fresh_model(task, seed)
    return timed_cpu(lambda: fpcore.fit(model, task, attack, rate=case_study(task).poison_rate, epochs=epochs,
                                        batch_size=h["batch_size"], lr=h["lr"], seed=seed, progress=False,
                                        fast=fast))


def run_tutorial(task, epochs: int, seed: int = 0):
    attack, h = fpcore.default_attack(task), hyper(task.name, "quick")
    model = fresh_model(task, seed)
    return timed_cpu(lambda: tutorial_fit(model, task, attack, case_study(task).poison_rate, epochs=epochs,
                                      batch_size=h["batch_size"], lr=h["lr"], seed=seed))


def bench_training(task, epochs: int, repeats: int, log=print) -> dict:
    """Images per second of the three loops, `repeats` times interleaved; medians.

    fast = fpcore.fit (fast path), today = fpcore.fit(fast=False), slow = the tutorial loop.
    """
    h = hyper(task.name, "quick")
    n = len(poison(task.train, fpcore.default_attack(task), case_study(task).poison_rate))
    small = task.shrink(4 * h["batch_size"], 16)       # warm-up, not timed: first calls pick kernels
    run_fpcore(small, 1), run_fpcore(small, 1, fast=False), run_tutorial(small, 1)
    t = {k: [] for k in ("fast", "today", "slow")}
    c = {k: [] for k in t}
    models = {}
    for r in range(repeats):
        for k, run in (("fast", lambda: run_fpcore(task, epochs)),
                       ("today", lambda: run_fpcore(task, epochs, fast=False)),
                       ("slow", lambda: run_tutorial(task, epochs))):
            secs, cpu, models[k] = run()
            t[k].append(secs), c[k].append(cpu)
        log(f"  {task.name} repeat {r + 1}/{repeats}: fpcore {n * epochs / t['fast'][-1]:.0f} img/s, "
            f"float32 fpcore {n * epochs / t['today'][-1]:.0f} img/s "
            f"({t['today'][-1] / t['fast'][-1]:.2f}x), tutorial {n * epochs / t['slow'][-1]:.0f} img/s")
    paired = lambda a, b, xs=t: [x / y for x, y in zip(xs[a], xs[b])]
    costs = data_costs(task, repeats)
    return {
        **costs,
        "task": task.name,
        "model": type(models["fast"]).__name__,
        "precision": str(precision(task, "cpu")),
        "images": n, "epochs": epochs, "batch_size": h["batch_size"],
        **{k: median(v) for k, v in t.items()},
        **{f"{k}_ips": n * epochs / median(v) for k, v in t.items()},
        # ratios are paired: the loops run in turn in each repeat; the median of the ratios
        "speedup": median(paired("today", "fast")),                 # new fit / today's fit
        "speedup_range": (min(paired("today", "fast")), max(paired("today", "fast"))),
        "ratio": median(paired("slow", "fast")),                    # new fit / tutorial loop
        "ratio_range": (min(paired("slow", "fast")), max(paired("slow", "fast"))),
        "ratio_today": median(paired("slow", "today")),             # today's fit / tutorial loop
        # CPU seconds per 1000 images, workers included: what each loop costs the machine
        **{f"{k}_cpu": 1000 * median(v) / (n * epochs) for k, v in c.items()},
        "speedup_cpu": median(paired("today", "fast", c)),
        "ratio_cpu": median(paired("slow", "fast", c)),
        # the same work was done: all three learn (clean validation accuracy after the last run)
        "val_acc": {k: accuracy(m, task, task.val) for k, m in models.items()},
    }


def data_costs(task, repeats: int) -> dict:
    """Seconds per epoch of the data paths alone (no model), to see where training time goes.

    fpcore: gather each batch by index, stamp its poisoned rows, convert it.
    tutorial, in process: the same Dataset and collation with num_workers=0.
    tutorial, 2 workers: iterating the DataLoader of the benchmark, workers started included.
    """
    attack, h = fpcore.default_attack(task), hyper(task.name, "quick")
    rate, bs = case_study(task).poison_rate, h["batch_size"]
    rows = poison(task.train, attack, rate)
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))

    def fp():
        for r in order.split(bs):
            x, _ = rows.batch(r, attack)
            task.prepare(x)

    def tutorial(workers):
        data = TutorialDataset(task, attack, rate)
        for _ in DataLoader(data, batch_size=bs, shuffle=True, num_workers=workers,
                            generator=torch.Generator().manual_seed(0)):
            pass

    fp(), tutorial(0)                                           # warm-up
    t = {k: [] for k in ("fpcore", "tutorial0", "tutorial2")}
    for _ in range(repeats):
        t["fpcore"].append(timed(fp)[0])
        t["tutorial0"].append(timed(lambda: tutorial(0))[0])
        t["tutorial2"].append(timed(lambda: tutorial(WORKERS))[0])
    return {f"data_{k}": median(v) for k, v in t.items()}
