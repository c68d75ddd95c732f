"""Choosing on dev: each cycle's figure, when a run stops (--patience), and which cycle of each
model is the best. Reads metrics.json's figures only."""
from __future__ import annotations

import numpy as np

from transenc.metrics import figure, ranked
from transenc.run_folder import STAGES


def cycle_dev(metrics: dict, cycle: int) -> float | None:
    """A cycle's dev mean: its better kind (bi-encoders or cross-encoders), averaged over the models."""
    stages = metrics["cycles"][cycle - 1]["stages"]
    scores = [float(np.mean(d["models"])) for d in
              (stages.get("bi_train", {}).get("dev"), stages.get("cross_label", {}).get("dev")) if d]
    return max(scores, key=ranked) if scores else None


def stop_reason(metrics: dict, cycle: int, patience: int) -> str | None:
    """Why the run stops after `cycle`, or None: `patience` cycles in a row (this one last) did not
    beat the best dev mean before them, the start models' included. Without dev sets: None."""
    start = metrics["start"]["dev"]
    if not patience or not start:
        return None
    history = [float(np.mean(start["models"]))] + [cycle_dev(metrics, c) for c in range(1, cycle + 1)]
    best = int(np.argmax([ranked(h) for h in history]))  # the first of equal scores: a tie is no gain
    if cycle - best < patience:
        return None
    where = "the start models" if best == 0 else f"cycle {best}"
    return (f"{'cycle' if patience == 1 else f'{patience} cycles up to'} {cycle} did not beat "
            f"the best dev mean so far ({figure(history[best])}, {where}); --patience {patience}")


def finish_reason(has_dev: bool, patience: int, cycles: int) -> str:
    if not has_dev:
        return f"ran the {cycles} cycle(s) asked (no dev set to stop on)"
    if not patience:
        return f"ran the {cycles} cycle(s) asked (--patience 0)"
    return f"reached --cycles {cycles}"


def best_cycle(metrics: dict, kind: str, k: int) -> int:
    """Model k's best cycle of one kind ("bi" or "cross") by its dev figure, else the last cycle."""
    stage = "bi_train" if kind == "bi" else "cross_label"

    def dev_of(c):
        d = c["stages"][stage].get("dev")
        return d["models"][k] if d else c["cycle"]

    return max(metrics["cycles"], key=lambda c: ranked(dev_of(c)))["cycle"]


def cycle_line(metrics: dict, cycle: int, dev_names: str) -> str:
    """One line: the start models' dev score against this cycle's cross- and bi-encoders', and the
    seconds its stages took (as recorded: a resumed cycle's include those of the run before)."""
    stages = metrics["cycles"][cycle - 1]["stages"]

    def dev(d):
        return "-" if not d else " ".join(map(figure, d["models"]))

    labels = " ".join(f"{s.split('_')[0]} labels mean {stages[s]['labels']['mean']:.3f}"
                      for s in ("bi_label", "cross_label") if s in stages)
    split = " ".join(f"{s}={stages[s]['seconds']:.0f}s" for s in STAGES if s in stages)
    seconds = sum(stages[s]["seconds"] for s in STAGES if s in stages)
    teacher = stages.get("bi_train", {}).get("teacher_dev")
    taught = f" (taught by {dev(teacher)})" if teacher else ""
    return (f"cycle {cycle}: dev ({dev_names}): start {dev(metrics['start']['dev'])} -> this cycle cross "
            f"{dev(stages.get('cross_label', {}).get('dev'))}, bi {dev(stages.get('bi_train', {}).get('dev'))}{taught} "
            f"| {labels} | {split} | {seconds:.0f}s")
