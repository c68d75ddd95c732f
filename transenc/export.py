"""The end of a run: each model's best cycle copied to out/bi and out/cross, a bi-encoder kept
only when its dev gain over its start is beyond dev's noise (do no harm), the closing lines and
the report."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Callable

from transenc import distributed
from transenc.dev_scores import DevScores
from transenc.evaluate import paired_gain
from transenc.run_folder import Run
from transenc.selection import best_cycle


def harm_check(dev: DevScores, start, start_name: str, trained, trained_name: str) -> dict:
    """Start model against its trained bi-encoder on the dev sets, by evaluate.paired_gain."""
    sets = [(metric, pairs.labels) for pairs, metric in dev.dev.values()]
    before, after = (list(dev.scores(m, "dev", n, group=None).values())
                     for m, n in ((start, start_name), (trained, trained_name)))
    gain, low = paired_gain(sets, before, after)
    verdict = {"gain": gain, "gain_5th_percentile": low, "model": "trained" if low > 0 else "start"}
    kept = "the trained bi-encoder is exported"
    if low <= 0:
        why = "inside dev's noise" if gain > 0 else "no gain"
        kept = f"{why}, so the start model is exported in its place (do no harm)"
    verdict["reason"] = f"dev mean {gain:+.2f} over the start model (bootstrap 5th percentile {low:+.2f}): {kept}"
    return verdict


def export_best(run: Run, starts: list[str], dev: DevScores, load_bi: Callable[[str | Path], object]) -> None:
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
            if target.exists():
                shutil.rmtree(target)
            trained = run.out / f"cycle{best}" / f"{kind}-{k}"
            chosen[name] = best
            if kind == "bi" and dev.dev:
                start = load_bi(starts[k])
                kept[name] = harm_check(dev, start, f"start-{k}", load_bi(trained), f"cycle{best}-bi-{k}")
                if kept[name]["model"] == "start":
                    start.save(target)
                    continue
            shutil.copytree(trained, target)
    metrics["best_cycle"] = chosen
    if kept:
        metrics["exported"] = kept
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
