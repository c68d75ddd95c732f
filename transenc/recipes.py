"""Training recipes: each stage's fit settings and how pseudo-labels become training targets.
Plain settings, without torch: `transenc`'s argument parser reads them for every command."""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace

import numpy as np

CROSS_TARGETS = ("raw", "rank")  # Recipe.cross_targets: cross_targets()
BI_TARGETS = ("cross", "mean", "mean_order", "mean_calibrated")  # Recipe.bi_targets: combine_targets()
BI_LOSS_NAMES = ("mse", "cosent", "margin_mse")  # Recipe.bi_loss: transenc.fit.BI_LOSSES


@dataclass
class FitConfig:
    batch_size: int
    epochs: float
    lr: float
    warmup: float  # fraction of all steps
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    precision: str = "auto"
    eval_every: int = 0  # steps between dev checks (0: only at the end)
    max_length: int | None = None  # training rows cut to this many tokens (None: the encoder's own length)


@dataclass(frozen=True)
class Recipe:
    cross: FitConfig
    bi: FitConfig
    # Training lengths in tokens; None: chosen from the pair set (transenc.lengths). Training rows
    # are cut to them; every model is scored and exported at its start model's own length.
    cross_max_length: int | None = None
    bi_max_length: int | None = None
    pooling: str | None = None  # None: the start model's own pooling
    # "raw": BCE targets are the bi-encoder cosines as they are (the reference);
    # "rank": their percentile ranks in [0, 1] (Spearman-preserving, spreads the soft targets).
    cross_targets: str = "raw"
    # "cross": the bi-encoder learns the cross-encoder's labels (the reference);
    # "mean": the mean of those and this cycle's bi-encoder labels, an ensemble teacher that is
    # better than either alone (the cross-encoder alone is weaker than a strong start model);
    # "mean_order": that mean's order on the bi-encoder labels' own values (its cosines' scale
    # kept, so labels cannot drift toward "paraphrase" cycle after cycle, as they do on MRPC);
    # "mean_calibrated": the mean after the cross-encoder's labels are put on the bi-encoder labels'
    # scale (calibrated_cross: their mean and spread on the training pairs).
    bi_targets: str = "cross"
    # The bi-encoder's loss on its targets (BI_LOSS_NAMES; transenc.fit.BI_LOSSES): "mse" regresses the cosines onto
    # them (the reference); "cosent" learns only their order within each batch, so targets skewed
    # toward "paraphrase" (MRPC) teach no shift of the cosines' scale; "margin_mse" learns the
    # differences between the batch's targets, not their level.
    bi_loss: str = "mse"
    # The bi-encoder's fit when co-teachers are in its labels (None: the same as without). A
    # co-teacher's mix is far above the start (+1.9 dev mean with all-mpnet-base-v2), so the student
    # has more to learn than from its own ensemble (+0.1), and a longer, faster fit closes more of it.
    bi_with_teacher: FitConfig | None = None
    # At least this many cross-encoder steps, by more epochs over a small corpus: with too few the
    # cross-encoder collapses (the 102 demo pairs: 14 steps gave demo dev 35.9, 110 steps 79.3 and
    # 330 steps 80.3, start 91.6; bench/results/small-corpus-cpu.md).
    cross_min_steps: int = 0

    def __post_init__(self):
        # checked here, not when a stage first uses them: a misspelt value fails before any training
        for field, value, allowed in (("cross_targets", self.cross_targets, CROSS_TARGETS),
                                      ("bi_targets", self.bi_targets, BI_TARGETS),
                                      ("bi_loss", self.bi_loss, BI_LOSS_NAMES)):
            if value not in allowed:
                raise ValueError(f"Recipe.{field} must be one of {', '.join(allowed)}; got {value!r}")


RECIPES = {
    # amzn/trans-encoder's self_distill.py with fresh start-model weights at every stage, at the
    # paper's lengths (32 / 64 tokens, fit for STS's short sentences).
    "reference": Recipe(
        cross=FitConfig(batch_size=32, epochs=1, lr=2e-5, warmup=0.1, eval_every=200),
        bi=FitConfig(batch_size=128, epochs=10, lr=5e-5, warmup=0.0, eval_every=200),
        cross_max_length=64,
        bi_max_length=32,
    ),
    # The default, chosen by STS-B dev in bench/results/recipes.md: the cross-encoder gets a second
    # epoch (after one it is still learning; it ends below its bi-encoder teacher), the
    # bi-encoder learns the mean of the cross-encoder's and its teacher's labels for one epoch at
    # a gentle lr with frequent dev checks (ten epochs on cross labels alone unlearn the start).
    # Lengths from the data: the paper's 32 tokens cut news pairs (MRPC) short.
    "transenc": Recipe(
        cross=FitConfig(batch_size=32, epochs=2, lr=2e-5, warmup=0.1, eval_every=134),
        bi=FitConfig(batch_size=128, epochs=1, lr=2e-5, warmup=0.1, eval_every=10),
        bi_targets="mean",
        # chosen on STS-B dev + SICK-R trial in bench/results/quality-paper.md (the student table)
        bi_with_teacher=FitConfig(batch_size=128, epochs=3, lr=5e-5, warmup=0.1, eval_every=31),
        cross_min_steps=100,
    ),
}
# The default with a CoSENT bi-encoder: on the same targets above MSE in every held-out cycle 1
# tried (MRPC +0.05, with --teacher +0.20; STS-B +0.31; the paper's pairs with --teacher +0.19 /
# +0.18 on two seeds, to 84.63 / 84.65), but below it on the 102 demo pairs, whose bi-encoder fit is
# one step (91.34 against MSE's 91.66, start 91.41), on MRPC trained transductively (cycle 1: 73.84
# / 74.54 against 74.21 / 74.95, without / with --teacher) and past cycle 1 on MRPC held out (cycle
# 2: 73.93 / 74.50 against 74.86 / 75.39): not the default (bench/results/mrpc-cpu.md).
RECIPES["transenc-cosent"] = replace(RECIPES["transenc"], bi_loss="cosent")
DEFAULT_RECIPE = "transenc"


def cross_targets(labels: np.ndarray, kind: str) -> np.ndarray:
    if kind == "raw":
        return labels
    if kind == "rank":
        from scipy.stats import rankdata  # here: seconds to import, and every command imports this module

        return (rankdata(labels) / len(labels)).astype(np.float32)
    raise ValueError(f"unknown cross-encoder target kind '{kind}'")


def calibrated_cross(cross: np.ndarray, on: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """`cross` moved linearly onto the bi-encoder labels' scale: the map that gives the training
    pairs' cross-encoder labels (on[0]) the mean and standard deviation of their bi-encoder labels
    (on[1]). A sigmoid's labels are squeezed and skewed unlike cosines; unmapped, the mean weighs
    and shifts them as they come."""
    train_cross, train_bi = (np.asarray(a, np.float64) for a in on)
    slope = train_bi.std() / max(train_cross.std(), 1e-12)
    return ((cross - train_cross.mean()) * slope + train_bi.mean()).astype(np.float32)


def combine_targets(cross: np.ndarray, bi: np.ndarray, kind: str,
                    calibrated_on: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The bi-encoder's targets from the cross-encoder's and the bi-encoder's labels (Recipe.bi_targets).
    calibrated_on: the training pairs' (cross, bi) labels that "mean_calibrated" maps by (default: these)."""
    if kind == "cross":
        return cross
    if kind == "mean":
        return (cross + bi) / 2
    if kind == "mean_calibrated":
        return (calibrated_cross(cross, calibrated_on or (cross, bi)) + bi) / 2
    if kind == "mean_order":
        from scipy.stats import rankdata

        order = np.argsort(rankdata(cross) + rankdata(bi), kind="stable")
        targets = np.empty_like(bi)
        targets[order] = np.sort(bi)  # the pair ranked j-th by the teachers gets the j-th smallest cosine
        return targets
    raise ValueError(f"unknown bi-encoder target kind '{kind}'")


def cross_fit_config(recipe: Recipe, rows: int, warn: bool = True) -> FitConfig:
    """The recipe's cross-encoder fit, with more epochs where a small corpus would give it fewer
    than recipe.cross_min_steps steps (and a warning naming the pairs and steps)."""
    cfg, least = recipe.cross, recipe.cross_min_steps
    per_epoch = math.ceil(rows / cfg.batch_size)
    steps = math.ceil(per_epoch * cfg.epochs)  # as fit counts them
    if steps >= least:
        return cfg
    if warn:
        print(f"transenc: warning: {rows // 2} pairs give the cross-encoder {steps} steps in {cfg.epochs:g} "
              f"epochs, too few to learn from (it collapses); it trains {least} steps instead "
              f"({least / per_epoch:.1f} epochs). The method is meant for thousands of pairs", file=sys.stderr)
    return replace(cfg, epochs=least / per_epoch, eval_every=max(1, least // 4))
