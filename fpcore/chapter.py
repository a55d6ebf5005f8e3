"""What the chapters share: glue, tables, verdict words, and loading a chapter's models.

Text and pictures only: nothing here changes a trained model, so this module
is not part of the model cache's key (see `fpcore.store.training_modules`).

The verdict words are defined once, with named thresholds, so the same
numbers read the same way in every chapter:

- a backdoor is **removed** when its ASR is at most `REMOVED` (10 %);
- it is **weakened** when its ASR fell by at least `WEAKENED` (30 points);
- otherwise the defense **does not remove** it;
- an attack **works** when its ASR is at least `WORKS` (90 %).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from . import plots  # noqa: F401  (white figure backgrounds for every chapter)
from .cases import default_attack, load_task, resolve_profile
from .zoo import trained_model

if os.environ.get("FPCORE_BOOK"):
    # In the book build no progress bars: they are never shown in the HTML, and a bar
    # drawn only when a model was not cached would make nbval's re-run differ.
    from . import train as _train
    _bar = _train.tqdm
    _train.tqdm = lambda *args, **kwargs: _bar(*args, **{**kwargs, "disable": True})

REMOVED = 0.10    # ASR at or below this: the backdoor is removed
WEAKENED = 0.30   # an ASR fall of at least this much: the backdoor is weakened
WORKS = 0.90      # ASR at or above this: the attack works
TASKS = ("signs", "faces", "speech")
LABELS = {"clean": "clean", "badnet": "BadNets", "pruning_aware": "pruning-aware"}


def glue(name: str, value, display: bool = True):
    """Give a computed value a name the book's prose can show ({glue:text}`name`).

    In the book build (FPCORE_BOOK=1, set by tools/build_book.py) this is
    myst-nb's `glue`. Elsewhere (Colab, Jupyter) the Colab notebook's text shows
    the name, so the value is printed under the cell as "name = value".
    """
    if os.environ.get("FPCORE_BOOK"):
        from myst_nb import glue as myst_glue
        myst_glue(name, value, display=display)
        return
    shown = f"{value:.4g}" if isinstance(value, float) else value
    print(f"{name} = {shown}")


def table(header: Sequence, rows: Sequence[Sequence], markdown: bool = False):
    """A table that renders in the book, in Jupyter and in Colab.

    HTML by default; `markdown=True` gives a Markdown table, which the book
    renders like the prose (right-aligned numbers, wrapping cells).
    """
    from IPython.display import HTML, Markdown
    if markdown:
        lines = ["| " + " | ".join(map(str, header)) + " |",
                 "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
        return Markdown("\n".join(lines))
    tr = lambda tag, cells: "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"
    return HTML("<table>" + tr("th", header) + "".join(tr("td", r) for r in rows) + "</table>")


def verdict(after: float, before: float) -> str:
    """What a defense did to a backdoor, from its ASR before and after (fractions)."""
    if after <= REMOVED:
        return "removes"
    if after <= before - WEAKENED:
        return "weakens"
    return "does not remove"


@dataclass
class Setup:
    """What a chapter works with: the resolved profile, the tasks, their attacks
    and the received networks, keyed by task name (or by (task, kind))."""
    profile: str
    seed: int
    tasks: dict
    attacks: dict
    models: dict


def setup(profile: str = "auto", seed: int = 0, tasks: Sequence[str] = TASKS,
          kinds="badnet", progress: bool = True) -> Setup:
    """Load the tasks a chapter needs, their attacks, and their trained networks.

    `kinds` is one model kind ('clean', 'badnet', 'pruning_aware'), and then the
    models are keyed by task name; or a tuple of kinds, and then by (task, kind).
    Networks come from fpcore's cache, or are trained and cached now.
    """
    profile = resolve_profile(profile)
    loaded = {name: load_task(name) for name in tasks}
    attacks = {name: default_attack(T) for name, T in loaded.items()}
    if isinstance(kinds, str):
        models = {name: trained_model(T, kinds, profile, seed, progress)
                  for name, T in loaded.items()}
    else:
        models = {(name, kind): trained_model(T, kind, profile, seed, progress)
                  for name, T in loaded.items() for kind in kinds}
    return Setup(profile, seed, loaded, attacks, models)
