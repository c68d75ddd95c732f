"""`transenc train`: Trans-Encoder distillation cycles, self (K=1) or mutual (K>1 models).

cycle c:  bi-label (mean over the K bi-encoders, fused pair cosine)
       -> K cross-encoders trained from fresh start weights on both pair orders (BCE)
       -> cross-label (mean over the K cross-encoders, packed predict)
       -> K bi-encoders trained from fresh start weights (cosine regression)
       -> dev / test evaluation
Each stage's outputs are saved before it is marked done in state.json, so --resume restarts
at the first unfinished stage; every stage reseeds from (seed, cycle, stage, model), so a
resumed run ends with the same weights as an uninterrupted one.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from transenc import distributed
from transenc.bundled import DEMO_DEV, DEMO_PAIRS
from transenc.errors import TransencError, require_count
from transenc.evaluate import read_labeled, resolve_metric, score100
from transenc.fit import FitConfig, fit_bi, fit_cross, fit_simcse
from transenc.labeling import bi_scores, cross_scores
from transenc.models import DEFAULT_MODEL, BiEncoder, CrossEncoder, resolve_device, resolve_model
from transenc.pairset import PairSet
from transenc.precision import PRECISIONS, check_precision, inference_precision, training_precision
from transenc.readers import read_pairs
from transenc.writers import atomic_open

STAGES = ("bi_label", "cross_train", "cross_label", "bi_train")


@dataclass(frozen=True)
class Recipe:
    cross: FitConfig
    bi: FitConfig
    cross_max_length: int
    bi_max_length: int
    pooling: str | None = None  # None: the start model's own pooling
    # "raw": BCE targets are the bi-encoder cosines as they are (the reference);
    # "rank": their percentile ranks in [0, 1] (Spearman-preserving, spreads the soft targets).
    cross_targets: str = "raw"
    # "cross": the bi-encoder learns the cross-encoder's labels (the reference);
    # "mean": the mean of those and this cycle's bi-encoder labels, an ensemble teacher that is
    # better than either alone (the cross-encoder alone is weaker than a strong start model);
    # "mean_order": that mean's order on the bi-encoder labels' own values (its cosines' scale
    # kept, so labels cannot drift toward "paraphrase" cycle after cycle, as they do on MRPC).
    bi_targets: str = "cross"
    # The bi-encoder's fit when co-teachers are in its labels (None: the same as without). A
    # co-teacher's mix is far above the start (+1.9 dev mean with all-mpnet-base-v2), so the student
    # has more to learn than from its own ensemble (+0.1), and a longer, faster fit closes more of it.
    bi_with_teacher: FitConfig | None = None
    # At least this many cross-encoder steps, by more epochs over a small corpus: with too few the
    # cross-encoder collapses (the 102 demo pairs: 14 steps gave demo dev 35.9, 110 steps 79.3 and
    # 330 steps 80.3, start 91.6; bench/results/small-corpus-cpu.md).
    cross_min_steps: int = 0


RECIPES = {
    # amzn/trans-encoder's self_distill.py with fresh start-model weights at every stage.
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
    "transenc": Recipe(
        cross=FitConfig(batch_size=32, epochs=2, lr=2e-5, warmup=0.1, eval_every=134),
        bi=FitConfig(batch_size=128, epochs=1, lr=2e-5, warmup=0.1, eval_every=10),
        cross_max_length=64,
        bi_max_length=32,
        bi_targets="mean",
        # chosen on STS-B dev + SICK-R trial in bench/results/quality-paper.md (the student table)
        bi_with_teacher=FitConfig(batch_size=128, epochs=3, lr=5e-5, warmup=0.1, eval_every=31),
        cross_min_steps=100,
    ),
}
DEFAULT_RECIPE = "transenc"


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pairs", default=None, help="unlabeled pairs file (default: the bundled demo corpus)")
    p.add_argument("--out", required=True, help="output folder: out/bi, out/cross, out/metrics.json")
    p.add_argument("--model", action="append", default=None,
                   help="start model; repeat for mutual distillation (default: all-MiniLM-L6-v2)")
    p.add_argument("--teacher", action="append", default=None,
                   help="frozen co-teacher (a sentence-transformers bi-encoder, e.g. all-mpnet-base-v2): its cosines "
                        "enter every label mean beside the trained models'; it is never trained; repeatable")
    p.add_argument("--cycles", type=int, default=3,
                   help="at most this many bi->cross->bi cycles; the best cycle by dev is kept (default 3; with "
                        "--resume a finished or stopped run may take more)")
    p.add_argument("--patience", type=int, default=1,
                   help="with dev sets, stop after this many cycles in a row whose models do not beat the best dev "
                        "mean so far (the start model's included); 0: run all --cycles (default 1)")
    p.add_argument("--dev", action="append", metavar="[NAME=]FILE",
                   help="labeled dev pairs (STS-B csv, or a pairs file with a score or 0/1 label column); repeat "
                        "for several sets (selection on their mean score); default with the demo corpus: the "
                        "bundled demo dev set")
    p.add_argument("--test", action="append", metavar="[NAME=]FILE",
                   help="labeled test pairs, reported per cycle, never used for selection; repeatable")
    p.add_argument("--recipe", choices=sorted(RECIPES), default=DEFAULT_RECIPE,
                   help="stage settings: transenc (chosen on dev, bench/results/recipes.md) or reference "
                        f"(amzn/trans-encoder's) (default: {DEFAULT_RECIPE})")
    p.add_argument("--simcse", action="store_true", help="SimCSE warm-up first (for a raw language model)")
    p.add_argument("--seed", type=int, default=2021, help="batch order, dropout and head initialisation")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if present)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="labeling and dev checks: as `transenc label --precision` (auto: bf16 on a GPU; on a CPU "
                        "bf16 with AMX, else int8 with VNNI, else bf16 with AVX512-BF16, else fp32); training steps "
                        "(never int8): auto is bf16 autocast on a GPU and on a CPU with AMX or AVX512-BF16, else fp32")
    p.add_argument("--resume", action="store_true", help="continue a killed run from its last finished stage")
    p.add_argument("--max-pairs", type=int, default=None, help="use only the first N pairs")


def labeled_sets(specs: list[str] | None) -> dict[str, tuple[PairSet, str]]:
    """`[NAME=]FILE` specs -> {name: (pairs, metric)}; the name defaults to the file's stem, the metric
    is AUC for 0/1 labels and Spearman otherwise."""
    sets = {}
    for spec in [specs] if isinstance(specs, (str, Path)) else specs or ():  # one set given as a plain path
        name, sep, path = str(spec).partition("=")
        if not sep or not name or "/" in name or Path(spec).exists():
            name, path = Path(spec).stem, spec
        elif not path:
            raise TransencError(f"{spec}: a name but no file after the '='")
        if name in sets:
            raise TransencError(f"two evaluation sets are named '{name}'; name them apart with NAME=FILE")
        pairs = read_labeled(path)
        sets[name] = (pairs, resolve_metric("auto", pairs.labels, path))
    return sets


def loss_curve(losses: list[float], points: int = 200) -> list[list[float]]:
    """[step, mean loss] over at most `points` windows of consecutive steps: a plot's worth of a long run."""
    windows = np.array_split(np.arange(len(losses)), min(points, len(losses)))
    return [[int(w[-1]) + 1, float(np.mean(np.asarray(losses)[w]))] for w in windows]


def _seed(*parts) -> int:
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _stats(labels: np.ndarray) -> dict:
    return {"mean": float(labels.mean()), "std": float(labels.std()), "min": float(labels.min()), "max": float(labels.max())}


def cross_targets(labels: np.ndarray, kind: str) -> np.ndarray:
    if kind == "raw":
        return labels
    if kind == "rank":
        from scipy.stats import rankdata  # here: seconds to import, and every command imports this module

        return (rankdata(labels) / len(labels)).astype(np.float32)
    raise ValueError(f"unknown cross-encoder target kind '{kind}'")


def combine_targets(cross: np.ndarray, bi: np.ndarray, kind: str) -> np.ndarray:
    """The bi-encoder's targets from the cross-encoder's and the bi-encoder's labels (Recipe.bi_targets)."""
    if kind == "cross":
        return cross
    if kind == "mean":
        return (cross + bi) / 2
    if kind == "mean_order":
        from scipy.stats import rankdata

        order = np.argsort(rankdata(cross) + rankdata(bi), kind="stable")
        targets = np.empty_like(bi)
        targets[order] = np.sort(bi)  # the pair ranked j-th by the teachers gets the j-th smallest cosine
        return targets
    raise ValueError(f"unknown bi-encoder target kind '{kind}'")


def bi_targets(folder: Path, kind: str) -> np.ndarray:
    return combine_targets(np.load(folder / "labels_cross.npy"), np.load(folder / "labels_bi.npy"), kind)


def _digest(pairs: PairSet) -> str:
    h = hashlib.sha1(json.dumps(pairs.sentences).encode())
    h.update(np.ascontiguousarray(pairs.pairs).tobytes())
    return h.hexdigest()


def _check_finite(labels: np.ndarray, what: str) -> np.ndarray:
    if not np.isfinite(labels).all():
        raise TransencError(f"{what}: {int((~np.isfinite(labels)).sum())} labels are not finite; stopping "
                            "(the last finished stage's checkpoint is kept)")
    return labels


def _read_state(path: Path) -> dict:
    """state.json as Run writes it, or a clear error (a damaged file must not end in a traceback)."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TransencError(f"{path}: cannot resume, the run's state is damaged ({e}); "
                            "start again with another --out") from None
    fields = {"config": dict, "done": list, "metrics": dict}
    if not isinstance(state, dict) or any(not isinstance(state.get(k), t) for k, t in fields.items()):
        raise TransencError(f"{path}: cannot resume, the run's state is damaged (expected an object with "
                            "'config', 'done' and 'metrics'); start again with another --out")
    return state


def _save(encoder, target: Path) -> None:
    if distributed.is_main():
        encoder.save(target)


def _save_array(path: Path, values: np.ndarray) -> None:
    if distributed.is_main():
        np.save(path, values)


class Run:
    """The state of one training run folder: finished stages, metrics, model paths."""

    def __init__(self, out: Path, config: dict, resume: bool):
        self.out = out
        if out.exists() and not out.is_dir():
            raise TransencError(f"--out {out} is a file; a run is written to a folder")
        self.state_path = out / "state.json"
        if self.state_path.is_file() and not resume:
            raise TransencError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        if resume and self.state_path.is_file():
            self.state = _read_state(self.state_path)
            recorded = self.state["config"]
            recorded.pop("out", None)  # recorded by earlier versions: no setting
            # A run may be resumed with more cycles (continue a finished run), never with fewer.
            if recorded.get("cycles", 0) > config.get("cycles", 0):
                raise TransencError(f"{out} holds a run of {recorded['cycles']} cycles; --resume takes that many or more")
            if {**recorded, "cycles": None} != {**config, "cycles": None}:
                raise TransencError(f"{out} holds a run with other settings; --resume needs the same arguments")
            recorded["cycles"] = config.get("cycles")
        else:
            out.mkdir(parents=True, exist_ok=True)
            self.state = {"config": config, "done": [], "metrics": {"cycles": []}}

    def done(self, key: str) -> bool:
        return key in self.state["done"]

    def finish(self, key: str) -> None:
        self.state["done"].append(key)
        self.save()

    def save(self) -> None:
        if not distributed.is_main():  # under torchrun every rank keeps the state, rank 0 writes it
            return
        with atomic_open(self.state_path) as f:
            json.dump(self.state, f, indent=2)
        with atomic_open(self.out / "metrics.json") as f:
            json.dump(self.state["metrics"], f, indent=2)

    def cycle_metrics(self, cycle: int) -> dict:
        cycles = self.state["metrics"]["cycles"]
        while len(cycles) < cycle:
            cycles.append({"cycle": len(cycles) + 1, "stages": {}})
        return cycles[cycle - 1]


class Trainer:
    def __init__(self, args):
        require_count("--cycles", args.cycles)
        if args.patience < 0:
            raise TransencError(f"--patience must be 0 (run every cycle) or more, got {args.patience}")
        require_count("--max-pairs", args.max_pairs)
        self.args = args
        self.recipe = RECIPES[args.recipe]
        # Under torchrun every rank runs this loop: labeling is sharded over the ranks, fits are
        # data-parallel, and rank 0 alone writes (labels, checkpoints, state); see transenc.distributed.
        self.device = distributed.setup(resolve_device(args.device))
        check_precision(args.precision, self.device)
        self.group = distributed.world()
        on_demo = args.pairs is None or (isinstance(args.pairs, (str, Path))
                                         and Path(args.pairs).resolve() == DEMO_PAIRS.resolve())
        self.pairs = self._read(args.pairs or DEMO_PAIRS, args.max_pairs)
        self.dev = labeled_sets(args.dev or ([f"demo-dev={DEMO_DEV}"] if on_demo else None))
        self.test = labeled_sets(args.test)
        self.models = [str(resolve_model(m)) for m in (args.model or [DEFAULT_MODEL])]
        self.teachers = [str(resolve_model(t)) for t in (args.teacher or [])]
        # where the run lives and what runs it are no settings: a run folder can be moved, or resumed on other devices
        config = {k: v for k, v in vars(args).items() if k not in ("out", "resume", "device", "command")}
        if isinstance(args.pairs, PairSet):  # pairs from the Python API: known by their content
            config["pairs"] = "sha1:" + _digest(args.pairs)
        config["models"] = self.models
        config["teachers"] = self.teachers
        self.run = Run(Path(args.out), config, args.resume)
        distributed.barrier()  # every rank has read the state before rank 0 writes it
        # With at least K ranks (a multiple of K), the K models train at once, each on its own ranks.
        self.split = distributed.split(len(self.models))
        self.caches = {}
        self.vocabularies = {}

    @staticmethod
    def _read(source, max_pairs=None) -> PairSet:
        pairs = source if isinstance(source, PairSet) else read_pairs(source)[0]
        return pairs.head(max_pairs) if max_pairs else pairs

    # ---- models, fresh from their start weights -------------------------------------------
    def _seed_for(self, *stage) -> int:
        seed = _seed(self.args.seed, *stage)
        torch.manual_seed(seed)
        return seed

    def bi_start(self, k: int) -> BiEncoder:
        return BiEncoder.load(self.start[k], self.device, self.recipe.pooling, self.recipe.bi_max_length)

    def cross_start(self, k: int) -> CrossEncoder:
        return CrossEncoder.load(self.models[k], self.device, self.recipe.cross_max_length)

    def cache(self, encoder, pairs: PairSet):
        """One token cache per (tokenizer, sentence table), reused by every stage and cycle."""
        key = (self._vocabulary(encoder.tokenizer), id(pairs))
        if key not in self.caches:
            self.caches[key] = encoder.token_cache(pairs.sentences)
        return self.caches[key]

    def _vocabulary(self, tokenizer) -> tuple[str, str]:
        """The tokenizer's identity: a hash of its vocabulary and rules, the same wherever it is saved.
        Computed once per tokenizer object (it is asked at every dev check)."""
        if id(tokenizer) not in self.vocabularies:
            backend = getattr(tokenizer, "backend_tokenizer", None)
            identity = hashlib.sha1(backend.to_str().encode()).hexdigest() if backend else tokenizer.name_or_path
            self.vocabularies[id(tokenizer)] = (tokenizer, (type(tokenizer).__name__, identity))  # keeps id valid
        return self.vocabularies[id(tokenizer)][1]

    def score(self, encoder, pairs: PairSet, group="all") -> np.ndarray:
        """Labels from one encoder, shared out over the group's ranks (default: all ranks)."""
        scorer = bi_scores if isinstance(encoder, BiEncoder) else cross_scores
        group = self.group if group == "all" else group
        return scorer(encoder, pairs, self.cache(encoder, pairs), precision=self.args.precision, group=group)

    def evaluate(self, encoders, sets: dict[str, tuple[PairSet, str]], group="all") -> dict | None:
        """Per set: each model's score and the ensemble's (K > 1); at the top, their means over the
        sets, which is what selects checkpoints and cycles. Scoring is shared out over the group."""
        if not sets:
            return None
        per_set = {}
        for name, (pairs, metric) in sets.items():
            scores = [self.score(e, pairs, group) for e in encoders]
            per_set[name] = {"metric": metric, "models": [score100(metric, s, pairs.labels) for s in scores]}
            if len(scores) > 1:
                per_set[name]["ensemble"] = score100(metric, np.mean(scores, 0), pairs.labels)
        result = {"models": np.mean([r["models"] for r in per_set.values()], 0).tolist(), "sets": per_set}
        if len(encoders) > 1:
            result["ensemble"] = float(np.mean([r["ensemble"] for r in per_set.values()]))
        return result

    # ---- the loop --------------------------------------------------------------------------
    def train(self) -> None:
        out = self.run.out
        self.start = list(self.models)
        if self.args.simcse:
            self.start = [self.simcse(k) for k in range(len(self.models))]
        metrics = self.run.state["metrics"]
        if "start" not in metrics:
            starts = [BiEncoder.load(m, self.device) for m in self.start]  # at their own max length
            metrics["start"] = {"dev": self.evaluate(starts, self.dev), "test": self.evaluate(starts, self.test)}
            self.run.save()
        self.teacher_scores = self.teacher_labels()
        self.cross_cfg = self.cross_fit_config(2 * len(self.pairs))  # both pair orders
        if distributed.is_main():
            print(f"transenc: on {self.device}, training steps {training_precision(self.device, self.args.precision)}, "
                  f"labeling and dev checks {inference_precision(self.device, self.args.precision)}", file=sys.stderr)
        # A run stopped early and resumed with more --cycles goes on past its stop.
        stopped = metrics.get("stopped") or {}
        resumed_past = stopped.get("cycle", 0) if self.args.cycles > stopped.get("cycles", self.args.cycles) else 0
        for cycle in range(1, self.args.cycles + 1):
            folder = out / f"cycle{cycle}"
            folder.mkdir(exist_ok=True)
            started = time.perf_counter()
            for stage in STAGES:
                key = f"cycle{cycle}.{stage}"
                if self.run.done(key):
                    continue
                print(f"cycle {cycle}: {stage.replace('_', ' ')} ...", file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                info = getattr(self, stage)(cycle, folder)
                info["seconds"] = round(time.perf_counter() - t0, 2)
                self.run.cycle_metrics(cycle)["stages"][stage] = info
                self.run.finish(key)
                distributed.barrier()  # rank 0's files of this stage are there for every rank
            self.summarise(cycle, time.perf_counter() - started)
            reason = self.stop_reason(cycle) if cycle > resumed_past else None
            metrics["stopped"] = {"cycle": cycle, "cycles": self.args.cycles,
                                  "reason": reason or self.finish_reason()}
            self.run.save()
            if reason:
                print(f"stopping after cycle {cycle} of {self.args.cycles}: {reason}", file=sys.stderr)
                break
        self.export_best()
        self.write_report()

    def simcse(self, k: int) -> str:
        target = self.run.out / f"simcse-{k}"
        key = f"simcse.{k}"
        if not self.run.done(key):
            seed = self._seed_for("simcse", k)
            encoder = BiEncoder.load(self.models[k], self.device, self.recipe.pooling, self.recipe.bi_max_length)
            cfg = FitConfig(batch_size=64, epochs=1, lr=3e-5, warmup=0.0, precision=self.args.precision)
            result = fit_simcse(encoder, self.cache(encoder, self.pairs), cfg, seed)  # every rank alike
            _save(encoder, target)
            self.run.state["metrics"][key] = {"loss_first": result.losses[0], "loss_last": result.losses[-1]}
            self.run.finish(key)
            distributed.barrier()
        return str(target)

    def teacher_labels(self) -> list[np.ndarray]:
        """Each co-teacher's cosines on the pairs, computed once (out/teacher-K.npy) and reused by every
        cycle; its dev/test figures go to metrics.json["teachers"]."""
        labels = []
        for k, path in enumerate(self.teachers):
            target, key = self.run.out / f"teacher-{k}.npy", f"teacher.{k}"
            if not self.run.done(key):
                print(f"co-teacher {k}: labeling with {path} ...", file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                teacher = BiEncoder.load(path, self.device)
                _save_array(target, _check_finite(self.score(teacher, self.pairs).astype(np.float32), "co-teacher labels"))
                seconds = round(time.perf_counter() - t0, 2)  # its cost: load and label, not the dev checks
                self.run.state["metrics"].setdefault("teachers", []).append(
                    {"model": path, "seconds": seconds, "dev": self.evaluate([teacher], self.dev),
                     "test": self.evaluate([teacher], self.test)})
                self.run.finish(key)
                distributed.barrier()  # rank 0's file is there for every rank
            labels.append(np.load(target))
        return labels

    def label_mean(self, scores: list[np.ndarray], what: str) -> np.ndarray:
        """The mean of the trained models' labels and the co-teachers' (every teacher is one more member)."""
        return _check_finite(np.mean(scores + self.teacher_scores, 0).astype(np.float32), what)

    def bi_encoders_for_labeling(self, cycle: int) -> list[BiEncoder]:
        if cycle == 1:
            return [self.bi_start(k) for k in range(len(self.models))]
        prev = self.run.out / f"cycle{cycle - 1}"
        return [BiEncoder.load(prev / f"bi-{k}", self.device) for k in range(len(self.models))]

    def bi_label(self, cycle: int, folder: Path) -> dict:
        labels = self.label_mean([self.score(e, self.pairs) for e in self.bi_encoders_for_labeling(cycle)],
                                 "bi-encoder labels")
        _save_array(folder / "labels_bi.npy", labels)
        return {"labels": _stats(labels)}

    def cross_label(self, cycle: int, folder: Path) -> dict:
        encoders = [CrossEncoder.load(folder / f"cross-{k}", self.device) for k in range(len(self.models))]
        labels = self.label_mean([self.score(e, self.pairs) for e in encoders], "cross-encoder labels")
        _save_array(folder / "labels_cross.npy", labels)
        return {"labels": _stats(labels), "dev": self.evaluate(encoders, self.dev), "test": self.evaluate(encoders, self.test)}

    def cross_train(self, cycle: int, folder: Path) -> dict:
        labels = cross_targets(np.load(folder / "labels_bi.npy"), self.recipe.cross_targets)
        both = self.pairs.both_orders()

        def train_one(k, group):
            seed = self._seed_for("cross", cycle, k)  # before loading: the new head's init is seeded too
            return self._fit(fit_cross, self.cross_start(k), both, np.concatenate([labels, labels]),
                             self.cross_cfg, folder / f"cross-{k}", seed, group)

        return {"models": self.train_models(train_one)}

    def cross_fit_config(self, rows: int) -> FitConfig:
        """The recipe's cross-encoder fit, with more epochs where a small corpus would give it fewer
        than recipe.cross_min_steps steps (and a warning naming the pairs and steps)."""
        cfg, least = self.recipe.cross, self.recipe.cross_min_steps
        per_epoch = math.ceil(rows / cfg.batch_size)
        steps = math.ceil(per_epoch * cfg.epochs)  # as fit counts them
        if steps >= least:
            return cfg
        if distributed.is_main():
            print(f"transenc: warning: {rows // 2} pairs give the cross-encoder {steps} steps in {cfg.epochs:g} "
                  f"epochs, too few to learn from (it collapses); it trains {least} steps instead "
                  f"({least / per_epoch:.1f} epochs). The method is meant for thousands of pairs", file=sys.stderr)
        return replace(cfg, epochs=least / per_epoch, eval_every=max(1, least // 4))

    def bi_train(self, cycle: int, folder: Path) -> dict:
        labels = bi_targets(folder, self.recipe.bi_targets)

        def train_one(k, group):
            seed = self._seed_for("bi", cycle, k)
            return self._fit(fit_bi, self.bi_start(k), self.pairs.pairs, labels, self.bi_fit_config(),
                             folder / f"bi-{k}", seed, group)

        info = {"models": self.train_models(train_one)}
        encoders = [BiEncoder.load(folder / f"bi-{k}", self.device) for k in range(len(self.models))]
        info["dev"] = self.evaluate(encoders, self.dev)
        info["test"] = self.evaluate(encoders, self.test)
        info["teacher_dev"] = self.teacher_dev(cycle, folder)
        return info

    def teacher_dev(self, cycle: int, folder: Path) -> dict | None:
        """What the bi-encoders were taught, scored on the dev sets: their targets (Recipe.bi_targets)
        made from the dev pairs' scores by the models that labeled the training pairs. A teacher below
        the start model leaves a long fit nothing to learn (MRPC: bench/results/mrpc-cpu.md)."""
        if not self.dev:
            return None
        labelers = {"bi": self.bi_encoders_for_labeling(cycle),
                    "cross": [CrossEncoder.load(folder / f"cross-{k}", self.device) for k in range(len(self.models))]}
        teachers = [BiEncoder.load(t, self.device) for t in self.teachers]
        per_set = {}
        for name, (pairs, metric) in self.dev.items():
            fixed = [self.score(t, pairs) for t in teachers]  # in both label means, as in label_mean
            bi, cross = (np.mean([self.score(e, pairs) for e in labelers[kind]] + fixed, 0) for kind in ("bi", "cross"))
            targets = combine_targets(cross, bi, self.recipe.bi_targets)
            per_set[name] = {"metric": metric, "models": [score100(metric, targets, pairs.labels)]}
        return {"models": [float(np.mean([r["models"][0] for r in per_set.values()]))], "sets": per_set}

    def bi_fit_config(self) -> FitConfig:
        if self.teachers and self.recipe.bi_with_teacher is not None:
            return self.recipe.bi_with_teacher
        return self.recipe.bi

    def train_models(self, train_one) -> list[dict]:
        """train_one(k, group) for every model k: one after another on all ranks, or under a split
        all at once, model k data-parallel on its own ranks. Returns each model's fit info."""
        if self.split is None:
            infos = [train_one(k, self.group) for k in range(len(self.models))]
        else:
            mine, group = self.split
            infos = dict(distributed.gather_objects((mine, train_one(mine, group))))
            infos = [infos[k] for k in range(len(self.models))]
        distributed.barrier()  # every checkpoint is complete before any rank loads it
        return infos

    def _fit(self, fit, encoder, pairs, labels, cfg: FitConfig, target: Path, seed: int, group) -> dict:
        """Train one model on the group's ranks and save it (rank 0 of the group); with dev sets, the
        weights of its best check by their mean score (kept in memory during the fit, written once
        here: the stage is done only once they are on disk)."""
        cfg = replace(cfg, precision=self.args.precision)
        by_set = {name: [] for name in self.dev}  # every dev set's score at every check
        started = time.time()

        def evaluate():
            result = self.evaluate([encoder], self.dev, group)
            for name, r in result["sets"].items():
                by_set[name].append(r["models"][0])
            return result["models"][0]

        result = fit(encoder, self.cache(encoder, self.pairs), pairs, labels, cfg, seed,
                     evaluate if self.dev else None, group=group)
        if distributed.is_main(group):
            encoder.save(target)
        return {"loss_first": result.losses[0], "loss_last": result.losses[-1], "steps": len(result.losses),
                "precision": result.precision,
                "best_dev": result.best_dev, "best_step": result.best_step,
                "checks": [list(c) for c in result.checks], "checks_by_set": by_set,
                "loss_curve": loss_curve(result.losses),
                "started": round(started, 3), "ended": round(time.time(), 3)}  # wall clock, seconds since 1970

    # ---- when to stop ------------------------------------------------------------------------
    def cycle_dev(self, cycle: int) -> float | None:
        """A cycle's dev mean: its better kind (bi-encoders or cross-encoders), averaged over the models."""
        stages = self.run.cycle_metrics(cycle)["stages"]
        scores = [float(np.mean(d["models"])) for d in
                  (stages.get("bi_train", {}).get("dev"), stages.get("cross_label", {}).get("dev")) if d]
        return max(scores) if scores else None

    def stop_reason(self, cycle: int) -> str | None:
        """Why the run stops after `cycle`, or None: `--patience` cycles in a row (this one last) did
        not beat the best dev mean before them, the start models' included. Without dev sets: None."""
        start = self.run.state["metrics"]["start"]["dev"]
        if not self.args.patience or not start:
            return None
        history = [float(np.mean(start["models"]))] + [self.cycle_dev(c) for c in range(1, cycle + 1)]
        best = int(np.argmax(history))  # the first of equal scores: a tie is no gain
        if cycle - best < self.args.patience:
            return None
        where = "the start models" if best == 0 else f"cycle {best}"
        return (f"{'cycle' if self.args.patience == 1 else f'{self.args.patience} cycles up to'} {cycle} did not beat "
                f"the best dev mean so far ({history[best]:.2f}, {where}); --patience {self.args.patience}")

    def finish_reason(self) -> str:
        if not self.dev:
            return f"ran the {self.args.cycles} cycle(s) asked (no dev set to stop on)"
        if not self.args.patience:
            return f"ran the {self.args.cycles} cycle(s) asked (--patience 0)"
        return f"reached --cycles {self.args.cycles}"

    def summarise(self, cycle: int, seconds: float) -> None:
        """One line: the start models' dev score against this cycle's cross- and bi-encoders'."""
        stages = self.run.cycle_metrics(cycle)["stages"]

        def dev(d):
            return "-" if not d else " ".join(f"{x:.2f}" for x in d["models"])

        labels = " ".join(f"{s.split('_')[0]} labels mean {stages[s]['labels']['mean']:.3f}"
                          for s in ("bi_label", "cross_label") if s in stages)
        split = " ".join(f"{s}={stages[s]['seconds']:.0f}s" for s in STAGES if s in stages)
        names = ", ".join(f"{n} {m}" for n, (_, m) in self.dev.items()) or "none"
        teacher = stages.get("bi_train", {}).get("teacher_dev")
        taught = f" (taught by {dev(teacher)})" if teacher else ""
        print(f"cycle {cycle}: dev ({names}{', mean' if len(self.dev) > 1 else ''}): start "
              f"{dev(self.run.state['metrics']['start']['dev'])} -> this cycle cross "
              f"{dev(stages.get('cross_label', {}).get('dev'))}, bi {dev(stages.get('bi_train', {}).get('dev'))}{taught} "
              f"| {labels} | {split} | {seconds:.0f}s", file=sys.stderr)

    def export_best(self) -> None:
        """Copy each model's best cycle (by dev, else the last) to out/bi and out/cross; a bi-encoder
        whose dev gain over its start model is inside dev's noise is replaced by the start (do no harm)."""
        if not distributed.is_main():
            return
        metrics = self.run.state["metrics"]
        cycles, chosen, kept = metrics["cycles"], {}, {}
        for kind, stage in (("bi", "bi_train"), ("cross", "cross_label")):
            for k in range(len(self.models)):
                def dev_of(c):
                    d = c["stages"][stage].get("dev")
                    return d["models"][k] if d else c["cycle"]  # no dev: the last cycle wins
                best = max(cycles, key=dev_of)["cycle"]
                name = kind if len(self.models) == 1 else f"{kind}-{k}"
                target = self.run.out / name
                if target.exists():
                    shutil.rmtree(target)
                trained = self.run.out / f"cycle{best}" / f"{kind}-{k}"
                chosen[name] = best
                if kind == "bi" and self.dev:
                    kept[name] = self.harm_check(k, trained)
                    if kept[name]["model"] == "start":
                        BiEncoder.load(self.start[k], "cpu").save(target)
                        continue
                shutil.copytree(trained, target)
        metrics["best_cycle"] = chosen
        if kept:
            metrics["exported"] = kept
        self.run.save()
        from transenc.report import gain_lines

        for name, verdict in kept.items():
            print(f"{name}: {verdict['reason']}", file=sys.stderr)
        for line in gain_lines(metrics, self.run.out):
            print(line, file=sys.stderr)

    def harm_check(self, k: int, trained: Path) -> dict:
        """Start model k against its trained bi-encoder on the dev sets, by evaluate.paired_gain."""
        from transenc.evaluate import paired_gain

        sets = [(metric, pairs.labels) for pairs, metric in self.dev.values()]
        scores = [[self.score(model, pairs, group=None) for pairs, _ in self.dev.values()]
                  for model in (BiEncoder.load(self.start[k], self.device), BiEncoder.load(trained, self.device))]
        gain, low = paired_gain(sets, *scores)
        verdict = {"gain": gain, "gain_5th_percentile": low, "model": "trained" if low > 0 else "start"}
        kept = "the trained bi-encoder is exported"
        if low <= 0:
            why = "inside dev's noise" if gain > 0 else "no gain"
            kept = f"{why}, so the start model is exported in its place (do no harm)"
        verdict["reason"] = f"dev mean {gain:+.2f} over the start model (bootstrap 5th percentile {low:+.2f}): {kept}"
        return verdict

    def write_report(self) -> None:
        """report.html beside metrics.json (rank 0 alone, as every file); a missing matplotlib costs
        the report, not the run."""
        if not distributed.is_main():
            return
        from transenc.report import ReportUnavailable, write_report

        try:
            path = write_report(self.run.out)
        except ReportUnavailable as e:
            print(f"transenc: no report: {e}", file=sys.stderr)
            return
        print(f"report: {path}", file=sys.stderr)


def train_command(args) -> None:
    Trainer(args).train()
