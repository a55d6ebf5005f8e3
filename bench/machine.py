"""What the numbers were measured on, and small helpers shared by the benchmarks."""
from __future__ import annotations

import os
import platform
import re
import resource
import statistics
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def timed(fn):
    """(seconds, result) of one call."""
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its waited-for children (DataLoader workers)."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def timed_cpu(fn):
    """(wall seconds, CPU seconds, result) of one call."""
    c, t = cpu_seconds(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t, cpu_seconds() - c, out


def median(xs) -> float:
    return statistics.median(xs)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def mem_total_gb() -> float:
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        return kb / 2**20
    except (OSError, AttributeError):
        return float("nan")


def git(*args) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def load() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def describe() -> dict:
    """The machine, the software and the code the run used."""
    from fpcore.store import code_hash
    dirty = git("status", "--porcelain", "--", "fpcore")
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory": f"{mem_total_gb():.1f} GB",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "commit": git("rev-parse", "--short", "HEAD") + (" (fpcore modified in the working tree)" if dirty else ""),
        "fpcore code hash": code_hash(),
        "load": load(),
    }


# ----------------------------------------------------------------- memory
def _status(field: str) -> float:
    """A /proc/self/status field in MB (NaN where /proc is missing)."""
    try:
        kb = int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))
        return kb / 1024
    except (OSError, AttributeError):
        return float("nan")


def rss_mb() -> float:
    return _status("VmRSS")


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) to the current RSS; False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def hwm_mb() -> float:
    """Peak RSS of this process (since the last reset_peak), from /proc/self/status."""
    return _status("VmHWM")


def children_peak_mb() -> float:
    """Largest peak RSS of any waited-for child (DataLoader workers)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
