"""`transenc report RUN_DIR`: what a training run did, as one self-contained page.

RUN_DIR/report.html (PNGs inlined as base64, and written beside it): a table start -> each cycle ->
best with every dev and test set; the dev score at every check of every training stage, the kept
checkpoint marked; the loss curves; the bi- and cross-encoder label distributions and their
agreement; the seconds per stage. It reads only metrics.json and cycleN/labels_*.npy.
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from transenc.errors import InputError, TransencError
from transenc.metrics import figure, ranked
from transenc.writers import write_files

FIT_STAGES = (("cross_train", "cross-encoder training"), ("bi_train", "bi-encoder training"))
EVAL_STAGES = (("cross_label", "cross-encoder"), ("bi_train", "bi-encoder"))


class ReportUnavailable(TransencError):
    """matplotlib is not installed."""


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ReportUnavailable("the report needs matplotlib: pip install 'transenc[report]' "
                                "(or pip install matplotlib)") from None
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def load_metrics(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise InputError(path, 0, "no such file (is this a transenc train --out folder?)")
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(path, e.lineno, f"invalid JSON ({e.msg})") from None
    # another program's JSON would otherwise end in a traceback deep in the drawing code
    cycles = metrics.get("cycles") if isinstance(metrics, dict) else None
    if not (isinstance(cycles, list) and all(isinstance(c, dict) and isinstance(c.get("stages"), dict)
                                             for c in cycles)):
        raise InputError(path, 0, "not a transenc run's metrics (expected an object whose 'cycles' "
                                  "is a list of cycles, each with its 'stages')")
    return metrics


def write_report(run_dir: str | Path) -> Path:
    """Render everything in memory first, then write the files as one (writers.write_files): no
    half-written report."""
    run = Path(run_dir)
    metrics = load_metrics(run)
    plt = _pyplot()
    figures = {"dev_curves.png": dev_figure(plt, metrics), "losses.png": loss_figure(plt, metrics),
               "labels.png": label_figure(plt, metrics, run), "stage_times.png": time_figure(plt, metrics)}
    images = {name: _png(plt, fig) for name, fig in figures.items()}
    page = render_html(run, metrics, images)
    # one output: a full disk or a read-only folder leaves neither the page nor any image of this report
    write_files({**{run / name: data for name, data in images.items()}, run / "report.html": page.encode("utf-8")})
    return run / "report.html"


def _png(plt, fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


# ---- the table -----------------------------------------------------------------------------
def _sets(evaluation: dict | None) -> dict:
    """{name: {"metric", "models", ["ensemble"]}}; runs from before named dev sets had one, unnamed."""
    if not evaluation:
        return {}
    return evaluation.get("sets") or {"dev": {"metric": "spearman", **evaluation}}


def table(metrics: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows: start, each cycle's cross- and bi-encoder, the exported best; one row per model
    (and the ensemble's, with K > 1); one column per dev set (and their mean), one per test set."""
    start = metrics.get("start", {})
    dev_names, test_names = list(_sets(start.get("dev"))), list(_sets(start.get("test")))
    k_models = len((start.get("dev") or start.get("test") or {"models": [0]})["models"])
    header = ["", *(f"dev {n} ({_sets(start['dev'])[n]['metric']})" for n in dev_names)]
    header += ["dev mean"] * (len(dev_names) > 1)
    header += [f"test {n} ({_sets(start['test'])[n]['metric']})" for n in test_names]

    def row(label: str, dev: dict | None, test: dict | None, key: int | str) -> list[str]:
        def pick(d):
            return "-" if d is None else figure(d['models'][key] if key != 'ensemble' else d['ensemble'])
        cols = [label, *(pick(_sets(dev).get(n)) for n in dev_names)]
        return cols + [pick(dev)] * (len(dev_names) > 1) + [pick(_sets(test).get(n)) for n in test_names]

    def cells(label: str, dev: dict | None, test: dict | None) -> list[list[str]]:
        who = [(i, f" #{i}" if k_models > 1 else "") for i in range(k_models)] + [("ensemble", " ensemble")] * (k_models > 1)
        return [row(label + suffix, dev, test, key) for key, suffix in who]

    rows = cells("start", start.get("dev"), start.get("test"))
    for i, teacher in enumerate(metrics.get("teachers", [])):  # frozen, one model: its own figures
        rows.append(row(f"co-teacher {i}: {Path(teacher['model']).name}", teacher.get("dev"), teacher.get("test"), 0))
    cycles = metrics.get("cycles", [])
    for c in cycles:
        for stage, what in EVAL_STAGES:
            teacher = c["stages"].get(stage, {}).get("teacher_dev")
            if teacher:  # one figure for all K models: what their bi-encoders were taught, on the dev pairs
                rows.append(row(f"cycle {c['cycle']} teacher of the bi-encoder (its targets)", teacher, None, 0))
            if stage in c["stages"]:
                rows += cells(f"cycle {c['cycle']} {what}", c["stages"][stage].get("dev"), c["stages"][stage].get("test"))
    for name, cycle in metrics.get("best_cycle", {}).items():
        stage = "bi_train" if name.startswith("bi") else "cross_label"
        s = cycles[cycle - 1]["stages"][stage]
        k = int(name.split("-")[1]) if "-" in name else 0
        if metrics.get("exported", {}).get(name, {}).get("model") == "start":  # do no harm: the start went out
            rows += [cells(f"exported {name}: the start model", start.get("dev"), start.get("test"))[k]]
        else:
            rows += [cells(f"best {name} (cycle {cycle})", s.get("dev"), s.get("test"))[k]]
    return header, rows


def gain_lines(metrics: dict, out: str | Path) -> list[str]:
    """The run's closing lines: per exported model, start -> its best cycle on every dev and test set
    and where it went (or that the start went out in its place); per co-teacher, its own figures."""
    start, cycles = metrics.get("start", {}), metrics.get("cycles", [])

    def figures(before: dict | None, after: dict | None, k: int, what: str) -> list[str]:
        return [f"{what} {n} {figure(s['models'][k])} -> {figure(_sets(after)[n]['models'][k])}"
                for n, s in _sets(before).items() if n in _sets(after)]

    lines = []
    for name, cycle in metrics.get("best_cycle", {}).items():
        k = int(name.split("-")[1]) if "-" in name else 0
        best = cycles[cycle - 1]["stages"]["bi_train" if name.startswith("bi") else "cross_label"]
        gains = figures(start.get("dev"), best.get("dev"), k, "dev") + figures(start.get("test"), best.get("test"), k, "test")
        where = f"{Path(out) / name}"
        if metrics.get("exported", {}).get(name, {}).get("model") == "start":
            verdict = f"no gain beyond dev's noise: {where} is the start model"
        elif name.startswith("cross") and best.get("dev") and start.get("dev") and \
                ranked(best["dev"]["models"][k]) < ranked(start["dev"]["models"][k]):
            verdict = f"{where} (below the start model's level on dev: prefer the bi-encoder)"
        else:
            verdict = where
        lines.append(f"{name}: start -> cycle {cycle}: {', '.join(gains) or 'no dev or test set'}; {verdict}")
    for teacher in metrics.get("teachers", []):
        own = [f"{w} {n} {figure(s['models'][0])}" for w in ("dev", "test") for n, s in _sets(teacher.get(w)).items()]
        cost = f", labels in {teacher['seconds']:.1f} s" if "seconds" in teacher else ""
        lines.append(f"co-teacher {teacher['model']}: {', '.join(own) or 'no dev or test set'}{cost}")
    return lines


# ---- the figures ---------------------------------------------------------------------------
def _grid(plt, metrics: dict, title: str):
    n = max(len(metrics.get("cycles", [])), 1)
    fig, axes = plt.subplots(n, 2, figsize=(11, 3.0 * n), squeeze=False)
    fig.suptitle(title)
    return fig, axes


def _steps_axis(ax, steps: int) -> None:
    """Steps 0 to the stage's last, in whole numbers: a stage with one check still reads as a stage."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlim(0, steps * 1.05 + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step")


def _fits(metrics: dict):
    """(axis row, axis column, title, [fit info per model], the stage's metrics) for every training stage that ran."""
    for row, c in enumerate(metrics.get("cycles", [])):
        for col, (stage, what) in enumerate(FIT_STAGES):
            models = c["stages"].get(stage, {}).get("models")
            if models:
                yield row, col, f"cycle {c['cycle']}: {what}", models, c["stages"][stage]


def dev_figure(plt, metrics: dict):
    fig, axes = _grid(plt, metrics, "dev score at every check (star: the kept checkpoint; dotted: the start model; "
                                    "dashed: the bi-encoder's teacher)")
    start = metrics.get("start", {}).get("dev")
    for ax in axes.flat:
        ax.set_axis_off()
    for row, col, title, models, stage in _fits(metrics):
        ax = axes[row][col]
        ax.set_axis_on()
        ax.set_title(title, fontsize=10)
        if not models[0].get("checks"):
            ax.text(0.5, 0.5, "no dev set: no checks", ha="center", va="center", transform=ax.transAxes)
            continue
        for k, fit in enumerate(models):
            who = f"model {k} " if len(models) > 1 else ""
            steps = [s for s, _ in fit["checks"]]
            by_set = fit.get("checks_by_set") or {}
            for name, scores in by_set.items():
                ax.plot(steps, scores, marker="o", ms=4, label=f"{who}{name}")
            if len(by_set) != 1:
                ax.plot(steps, [v for _, v in fit["checks"]], color="black", lw=2, label=f"{who}mean")
            ax.plot([fit["best_step"]], [fit["best_dev"]], marker="*", ms=14, color="gold", mec="black", ls="none",
                    alpha=0.8, zorder=3)
            if start:
                ax.axhline(start["models"][k], ls=":", color="gray", label=f"{who}start model")
        if stage.get("teacher_dev"):  # what the bi-encoders learn, scored on the same dev pairs
            ax.axhline(stage["teacher_dev"]["models"][0], ls="--", color="purple", label="its teacher")
        _steps_axis(ax, max(fit["steps"] for fit in models))
        ax.set_ylabel("dev score")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def loss_figure(plt, metrics: dict):
    fig, axes = _grid(plt, metrics, "training loss (mean over windows of steps)")
    for ax in axes.flat:
        ax.set_axis_off()
    for row, col, title, models, _ in _fits(metrics):
        ax = axes[row][col]
        ax.set_axis_on()
        ax.set_title(title + (" (BCE)" if col == 0 else " (cosine MSE)"), fontsize=10)
        for k, fit in enumerate(models):
            curve = np.asarray(fit.get("loss_curve") or [[1, fit["loss_first"]], [fit["steps"], fit["loss_last"]]])
            ax.plot(curve[:, 0], curve[:, 1], marker="o" if len(curve) < 30 else None, ms=4,
                    label=f"model {k}" if len(models) > 1 else None)
        _steps_axis(ax, max(fit["steps"] for fit in models))
        ax.set_ylabel("loss")
        if len(models) > 1:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def label_figure(plt, metrics: dict, run: Path):
    cycles = [c["cycle"] for c in metrics.get("cycles", [])
              if (run / f"cycle{c['cycle']}" / "labels_bi.npy").is_file()
              and (run / f"cycle{c['cycle']}" / "labels_cross.npy").is_file()]
    n = max(len(cycles), 1)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 7), squeeze=False)
    fig.suptitle("training-pair labels: bi-encoder cosine vs cross-encoder score")
    if not cycles:
        for ax in axes.flat:
            ax.set_axis_off()
        axes[0][0].text(0.5, 0.5, "no cycle has both label files yet", ha="center", transform=axes[0][0].transAxes)
    for i, cycle in enumerate(cycles):
        bi = np.load(run / f"cycle{cycle}" / "labels_bi.npy")
        cross = np.load(run / f"cycle{cycle}" / "labels_cross.npy")
        bins = np.linspace(min(bi.min(), cross.min(), 0.0), max(bi.max(), cross.max(), 1.0), 41)
        ax = axes[0][i]
        ax.hist(bi, bins, alpha=0.6, label=f"bi (mean {bi.mean():.2f}, std {bi.std():.3f})")
        ax.hist(cross, bins, alpha=0.6, label=f"cross (mean {cross.mean():.2f}, std {cross.std():.3f})")
        ax.set_title(f"cycle {cycle}: label distributions", fontsize=10)
        ax.set_xlabel("label")
        ax.set_ylabel("pairs")
        ax.legend(fontsize=8)
        ax = axes[1][i]
        ax.scatter(bi, cross, s=6, alpha=0.5)
        ax.ticklabel_format(useOffset=False)
        defined = len(bi) > 1 and np.ptp(bi) > 0 and np.ptp(cross) > 0  # no rank order in constant labels
        agreement = f"Spearman {spearmanr(bi, cross).statistic * 100:.1f}" if defined else "no Spearman (constant labels)"
        ax.set_title(f"cycle {cycle}: agreement, {agreement}", fontsize=10)
        ax.set_xlabel("bi-encoder label")
        ax.set_ylabel("cross-encoder label")
    fig.tight_layout()
    return fig


def time_figure(plt, metrics: dict):
    from transenc.run_folder import STAGES  # here: the run folder's module imports torch, `transenc report` need not

    cycles = metrics.get("cycles", [])
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(cycles) + 1.6))
    ax.set_title("seconds per stage")
    left = np.zeros(len(cycles))
    names = [f"cycle {c['cycle']}" for c in cycles]
    for stage in STAGES:
        seconds = np.array([c["stages"].get(stage, {}).get("seconds", 0.0) for c in cycles])
        ax.barh(names, seconds, left=left, label=stage.replace("_", " "))
        left += seconds
    for y, total in enumerate(left):
        ax.text(total, y, f" {total:.0f} s", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.legend(fontsize=8, ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.25 - 0.3 / max(len(cycles), 1)))
    fig.tight_layout()
    return fig


# ---- the page ------------------------------------------------------------------------------
def render_html(run: Path, metrics: dict, images: dict[str, bytes]) -> str:
    header, rows = table(metrics)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    captions = {"dev_curves.png": "Dev score during training", "losses.png": "Training loss",
                "labels.png": "Labels", "stage_times.png": "Time"}
    stopped = metrics.get("stopped")
    stop = (f"<p id=\"stopped\">Ended after cycle {stopped['cycle']} of {stopped['cycles']}: "
            f"{html.escape(stopped['reason'])}.</p>") if stopped else \
        ("<p id=\"stopped\">This run has not ended: these are its figures so far, and nothing is exported yet; "
         "the same <code>transenc train</code> command with <code>--resume</code> goes on.</p>")
    stop += "".join(f"<p class=\"exported\">{html.escape(name)}: {html.escape(v['reason'])}.</p>"
                    for name, v in metrics.get("exported", {}).items())
    figures = "".join(f"<h2>{captions[name]}</h2><img alt=\"{name}\" src=\"data:image/png;base64,"
                      f"{base64.b64encode(data).decode()}\">" for name, data in images.items())
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>transenc run {html.escape(run.name)}"
            "</title><style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
            "td:first-child{text-align:left}img{max-width:100%}</style></head><body>"
            f"<h1>transenc run {html.escape(str(run))}</h1>"
            "<p>Scores are Spearman &times; 100 (graded dev sets) or ROC AUC &times; 100 (0/1 dev sets).</p>"
            f"<h2>Scores</h2>{stop}<table id=\"scores\"><tr>{head}</tr>{body}</table>{figures}</body></html>\n")
