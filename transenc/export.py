"""The end of a run: each model's best cycle copied to out/bi and out/cross, a bi-encoder kept
only when its dev gain over its start is beyond dev's noise (do no harm), the closing lines and
the report."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from transenc import distributed
from transenc.dev_scores import DevScores, check_name
from transenc.metrics import figure, paired_gain
from transenc.model_card import model_card
from transenc.run_folder import RESUME_HINT, Run, save_model, write_text
from transenc.writers import atomic_dir
from transenc.selection import best_cycle


def check_scores(dev: DevScores, metrics: dict, k: int, length: int) -> tuple[list[list[np.ndarray]] | None, int]:
    """The bi-encoders model k's export was chosen from on dev: every dev check of every cycle's fit
    (each check's weights could have been kept). Returns (their kept dev scores, or None where a run
    from before checks were kept lacks some; how many there are)."""
    names = [check_name(f"cycle{c['cycle']}-bi-{k}", i)
             for c in metrics["cycles"] for i in range(1, len(c["stages"]["bi_train"]["models"][k]["checks"]) + 1)]
    kept = [dev.kept_scores(name, length, "dev") for name in names]
    if any(scores is None for scores in kept):
        return None, max(len(names), 1)
    return [[scores[name] for name in dev.dev] for scores in kept], len(names)


def harm_verdict(sets: list[tuple[str, np.ndarray]], before: list[np.ndarray], after: list[np.ndarray],
                 others: list[list[np.ndarray]] | None, chosen_from: int) -> dict:
    """Keep the trained bi-encoder only if its dev gain over the start is beyond dev's noise and beyond
    its choice among `chosen_from` candidates on the same dev pairs (metrics.paired_gain): by their
    scores (`others`), or by Bonferroni where those were not kept (None)."""
    if others is None:
        gain, low = paired_gain(sets, before, after, bonferroni=chosen_from)
        how = "Bonferroni, the checks' scores not kept"
    else:
        gain, low = paired_gain(sets, before, after, others=others)
        how = "max-T over their bootstrap draws"
    verdict = {"gain": gain, "gain_5th_percentile": low, "candidates": chosen_from,
               "correction": "bonferroni" if others is None else "max-t", "model": "trained" if low > 0 else "start"}
    kept = "the trained bi-encoder is exported"
    if low <= 0:
        why = "inside dev's noise" if gain > 0 else "no gain"
        kept = f"{why}, so the start model is exported in its place (do no harm)"
    verdict["reason"] = (f"dev mean {figure(gain, '+')} over the start model (bootstrap 5th percentile {figure(low, '+')}, corrected "
                         f"for the best of {chosen_from} dev checks: {how}): {kept}")
    return verdict


def harm_check(dev: DevScores, metrics: dict, k: int, start, trained, trained_name: str) -> dict:
    """Model k's start against its trained bi-encoder on the dev sets (their kept scores), by harm_verdict."""
    sets = [(metric, pairs.labels) for pairs, metric in dev.dev.values()]
    before, after = (list(dev.scores(m, "dev", n, group=None).values())
                     for m, n in ((start, f"start-{k}"), (trained, trained_name)))
    others, chosen_from = check_scores(dev, metrics, k, trained.max_length)
    return harm_verdict(sets, before, after, others, chosen_from)


def export_best(run: Run, starts: list[str], dev: DevScores, load_bi: Callable[[str | Path, int], object]) -> None:
    """Copy each model's best cycle (by dev, else the last) to out/bi and out/cross; a bi-encoder
    whose dev gain over its start model is inside dev's noise is replaced by the start (do no harm)."""
    if not distributed.is_main():
        return
    metrics, chosen, kept = run.metrics, {}, {}
    for kind in ("bi", "cross"):
        for k in range(len(starts)):
            best = best_cycle(metrics, kind, k)
            name = kind if len(starts) == 1 else f"{kind}-{k}"
            target = run.out / name
            trained = run.out / f"cycle{best}" / f"{kind}-{k}"
            chosen[name] = best
            if kind == "bi" and dev.dev:
                start = load_bi(starts[k], k)  # at model k's export length, as every bi-encoder of the run
                kept[name] = harm_check(dev, metrics, k, start, load_bi(trained, k), f"cycle{best}-bi-{k}")
                if kept[name]["model"] == "start":
                    save_model(start, target)
                    continue
            with atomic_dir(target, RESUME_HINT) as folder:
                shutil.copytree(trained, folder, dirs_exist_ok=True)
    metrics["best_cycle"] = chosen
    if kept:
        metrics["exported"] = kept
    for name in chosen:
        k = int(name.split("-")[1]) if "-" in name else 0
        write_text(run.out / name / "README.md", model_card(name, k, metrics, run.state["config"]))
    run.save()
    from transenc.report import gain_lines

    for name, verdict in kept.items():
        print(f"{name}: {verdict['reason']}", file=sys.stderr)
    for line in gain_lines(metrics, run.out):
        print(line, file=sys.stderr)


def write_report(run: Run) -> None:
    """report.html beside metrics.json (rank 0 alone, as every file); a missing matplotlib costs
    the report, not the run."""
    if not distributed.is_main():
        return
    from transenc.report import ReportUnavailable, write_report as write

    try:
        path = write(run.out)
    except ReportUnavailable as e:
        print(f"transenc: no report: {e}", file=sys.stderr)
        return
    print(f"report: {path}", file=sys.stderr)
