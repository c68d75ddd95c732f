"""`transenc train`: Trans-Encoder distillation cycles, self (K=1) or mutual (K>1 models).

cycle c:  bi-label (mean over the K bi-encoders, fused pair cosine)
       -> K cross-encoders trained from fresh start weights on both pair orders (BCE)
       -> cross-label (mean over the K cross-encoders, packed predict)
       -> K bi-encoders trained from fresh start weights (their cosines on the targets: CoSENT or MSE)
       -> dev / test evaluation
Each stage's outputs are saved before it is marked done in state.json, so --resume restarts
at the first unfinished stage; every stage reseeds from (seed, cycle, stage, model), so a
resumed run ends with the same weights as an uninterrupted one. A fit also saves its progress
every ten minutes (cycleN/cross-K.steps.pt, bi-K.steps.pt; gone once the model is saved), and
--resume goes on from there. Choosing on dev lives in transenc.selection, the end of a run in
transenc.export.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from transenc import distributed, export, lengths, selection
from transenc.bundled import DEMO_DEV, DEMO_PAIRS
from transenc.claims import claimed
from transenc.dev_scores import DevScores, check_name, taught
from transenc.errors import OutputError, TransencError
from transenc.fit import StepCheckpoint, fit_bi, fit_cross, fit_simcse
from transenc.labeling import bi_scores, cross_scores
from transenc.metrics import labeled_sets
from transenc.models import DEFAULT_MODEL, BiEncoder, CrossEncoder, model_digest, resolve_device, resolve_model
from transenc.pairset import PairSet
from transenc.precision import inference_precision, training_precision
from transenc.readers import read_pairs
from transenc.recipes import RECIPES, FitConfig, Recipe, combine_targets, cross_fit_config, cross_targets  # noqa: F401  (Recipe: part of the API)
from transenc.run_folder import SCORES, STAGES, Run, check_free_space, save_array, save_model
from transenc.tokens import TokenCaches
from transenc.train_config import TrainConfig


def read_training_pairs(source, max_pairs: int | None = None) -> PairSet:
    pairs = source if isinstance(source, PairSet) else read_pairs(source)[0]
    return pairs.head(max_pairs) if max_pairs else pairs


def loss_curve(losses: list[float], points: int = 200) -> list[list[float]]:
    """[step, mean loss] over at most `points` windows of consecutive steps: a plot's worth of a long run."""
    windows = np.array_split(np.arange(len(losses)), min(points, len(losses)))
    return [[int(w[-1]) + 1, float(np.mean(np.asarray(losses)[w]))] for w in windows]


def _stats(labels: np.ndarray) -> dict:
    return {"mean": float(labels.mean()), "std": float(labels.std()), "min": float(labels.min()), "max": float(labels.max())}


def _digest(pairs: PairSet) -> str:
    """sha1 of the sentences, the pairs and their gold labels."""
    h = hashlib.sha1(json.dumps(pairs.sentences).encode())
    h.update(np.ascontiguousarray(pairs.pairs).tobytes())
    if pairs.labels is not None:
        h.update(np.ascontiguousarray(pairs.labels).tobytes())
    return h.hexdigest()


def _checked_labels(labels: np.ndarray, what: str) -> np.ndarray:
    """Labels a fit can learn from: finite, and not all equal (every target alike teaches no order, and
    an MSE fit onto them would undo the start's)."""
    stopping = "stopping (the last finished stage's checkpoint is kept)"
    if not np.isfinite(labels).all():
        raise TransencError(f"{what}: {int((~np.isfinite(labels)).sum())} labels are not finite; {stopping}")
    if len(labels) > 1 and labels.min() == labels.max():
        raise TransencError(f"{what}: all {len(labels):,} pairs got the same label ({labels[0]:.4g}), and a fit on one "
                            "target for every pair learns nothing: either the pairs are all alike (say, each sentence "
                            "with itself) or the models that labeled them score every pair alike (collapsed, or so "
                            f"nearly that a bf16 or fp16 pass rounded their scores together); {stopping}")
    return labels


class Trainer:
    """Runs a TrainConfig: settings resolved once here (device, precisions, lengths), then the cycles."""

    def __init__(self, config: TrainConfig):
        self.config = config
        self.recipe: Recipe = RECIPES[config.recipe]
        # Under torchrun every rank runs this loop: labeling is sharded over the ranks, fits are
        # data-parallel, and rank 0 alone writes (labels, checkpoints, state); see transenc.distributed.
        self.device = distributed.setup(resolve_device(config.device))
        self.train_precision = training_precision(self.device, config.precision)
        self.label_precision = inference_precision(self.device, config.precision)
        self.group = distributed.world()
        self.pairs = read_training_pairs(config.pairs or DEMO_PAIRS, config.max_pairs)  # (a bad path stops here)
        on_demo = config.pairs is None or (isinstance(config.pairs, (str, Path))
                                           and Path(config.pairs).resolve() == DEMO_PAIRS.resolve())
        # named demo-dev, not by its file's stem as eval names it: a demo run's kept dev scores are
        # keyed by that name, and a resumed run takes them up
        dev = labeled_sets(config.dev or ([f"demo-dev={DEMO_DEV}"] if on_demo else []))
        self.models = [str(resolve_model(m)) for m in (config.models or [DEFAULT_MODEL])]
        self.teachers = [str(resolve_model(t)) for t in config.teachers]
        for model in self.models:
            lengths.check_asked(config.max_length, Path(model))
        test = labeled_sets(config.test)
        # The models as the user named them, and what their folders hold: the default model's folder
        # is a package's, and a hub model's a cache's, on this machine alone (a run folder may move).
        named = {"models": config.models or [DEFAULT_MODEL], "teachers": config.teachers}
        record = config.record() | named
        pairs_digest = _digest(self.pairs)
        if isinstance(config.pairs, PairSet):  # the API's pairs, by their content (hashed once where max_pairs cut none)
            record["pairs"] = "sha1:" + (pairs_digest if self.pairs is config.pairs else _digest(config.pairs))
        else:  # a file, by its name
            record["pairs"] = config.pairs
        # What the files held, not only their names: a resumed run whose pairs or dev sets changed in
        # the meantime would take up labels and dev scores of other rows.
        record["content"] = {"pairs": pairs_digest, **{f"{split} {name}": _digest(pairs)
                             for split, sets in (("dev", dev), ("test", test)) for name, (pairs, _) in sets.items()},
                             **{f"{what[:-1]} {name}": model_digest(Path(folder)) for what in named
                                for name, folder in zip(named[what], getattr(self, what))}}
        # runs recorded before the names were recorded hold the folders
        self.run = Run(Path(config.out), record, config.resume, {"models": self.models, "teachers": self.teachers})
        self.scored = DevScores(dev, test, self.score, self.run.out / SCORES, self.label_precision)
        distributed.barrier()  # every rank has read the state before rank 0 writes it
        # With at least K ranks (a multiple of K), the K models train at once, each on its own ranks.
        self.split = distributed.split(len(self.models))
        self.caches = TokenCaches()

    # ---- models, fresh from their start weights -------------------------------------------
    def _seed_for(self, *stage) -> int:
        seed = int.from_bytes(hashlib.sha256(repr((self.config.seed, *stage)).encode()).digest()[:4], "little")
        torch.manual_seed(seed)
        return seed

    def bi_start(self, k: int, path=None) -> BiEncoder:
        """Start model k's bi-encoder (or the one at `path`), at the length model k exports."""
        return BiEncoder.load(path or self.start[k], self.device, self.recipe.pooling, self.lengths[k].bi_export)

    def cross_start(self, k: int) -> CrossEncoder:
        return CrossEncoder.load(self.models[k], self.device, self.lengths[k].cross_export)

    def choose_lengths(self) -> list[lengths.Lengths]:
        """Each model's training and export lengths (transenc.lengths), said in the run's first lines."""
        chosen = []
        for k, model in enumerate(self.models):
            tokenized = self.cache(BiEncoder.load(model, self.device), self.pairs)
            fixed = (self.recipe.bi_max_length, self.recipe.cross_max_length)
            chosen.append(lengths.choose(Path(model), tokenized, self.pairs.pairs, self.config.max_length, fixed))
            if distributed.is_main():
                print(f"transenc: lengths of {self.model_names[k]}: {chosen[-1].why}", file=sys.stderr)
        self.run.metrics["lengths"] = [c.record() for c in chosen]
        return chosen

    @property
    def model_names(self) -> list[str]:
        """The start models as the user named them, not their folders (the default's is a package's)."""
        return [Path(m).name for m in (self.config.models or [DEFAULT_MODEL])]

    def cache(self, encoder, pairs: PairSet):
        return self.caches.get(encoder.tokenizer, pairs.sentences, owner=pairs)

    def score(self, encoder, pairs: PairSet, group="all") -> np.ndarray:
        """Labels from one encoder, shared out over the group's ranks (default: all ranks)."""
        scorer = bi_scores if isinstance(encoder, BiEncoder) else cross_scores
        group = self.group if group == "all" else group
        return scorer(encoder, pairs, self.cache(encoder, pairs), precision=self.label_precision, group=group)

    # ---- the loop --------------------------------------------------------------------------
    def train(self) -> None:
        busy = (f"{self.run.out}: another transenc is training in this folder now; let that one end (or stop it), "
                "then --resume, or choose another --out")
        with claimed(self.run.out, busy) if distributed.is_main() else contextlib.nullcontext():
            if distributed.is_main():
                self.run.remove_leftovers()
            distributed.barrier()  # no rank reads scores/ before rank 0 swept it
            try:
                self._train()
            except OutputError:
                self.run.check_still_there()  # a write failed because the folder went: say so, not "--resume"
                raise

    def _train(self) -> None:
        self.lengths = self.choose_lengths()
        check_free_space(self.run.out, self.models, self.config.cycles)
        self.start = [self.simcse(k) for k in range(len(self.models))] if self.config.simcse else list(self.models)
        metrics = self.run.metrics
        metrics["start_names"] = self.model_names  # for the model cards
        metrics["pairs"] = {"count": len(self.pairs), "sentences": len(self.pairs.sentences)}
        metrics["precision"] = {"training": self.train_precision, "labeling": self.label_precision}
        if "start" not in metrics:
            starts = [self.bi_start(k) for k in range(len(self.start))]  # scored as they would be exported
            names = [f"start-{k}" for k in range(len(starts))]
            metrics["start"] = {split: self.scored.evaluate(starts, split, names) for split in ("dev", "test")}
            self.run.save()
        self.teacher_scores = self.teacher_labels()
        self.cross_cfg = cross_fit_config(self.recipe, 2 * len(self.pairs), distributed.is_main())  # both pair orders
        if distributed.is_main():
            print(f"transenc: on {self.device}, training steps {self.train_precision}, "
                  f"labeling and dev checks {self.label_precision}", file=sys.stderr)
        # A run stopped early and resumed with more --cycles goes on past its stop.
        cycles, patience = self.config.cycles, self.config.patience
        stopped = metrics.get("stopped") or {}
        resumed_past = stopped.get("cycle", 0) if cycles > stopped.get("cycles", cycles) else 0
        dev_names = ", ".join(f"{n} {m}" for n, (_, m) in self.scored.dev.items()) or "none"
        dev_names += ", mean" if len(self.scored.dev) > 1 else ""
        for cycle in range(1, cycles + 1):
            folder = self.run.folder(f"cycle{cycle}")
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
            print(selection.cycle_line(metrics, cycle, dev_names), file=sys.stderr)
            reason = selection.stop_reason(metrics, cycle, patience) if cycle > resumed_past else None
            metrics["stopped"] = {"cycle": cycle, "cycles": cycles,
                                  "reason": reason or selection.finish_reason(bool(self.scored.dev), patience, cycles)}
            self.run.save()
            if reason:
                print(f"stopping after cycle {cycle} of {cycles}: {reason}", file=sys.stderr)
                break
        export.export_best(self.run, self.start, self.scored, lambda path, k: self.bi_start(k, path))
        export.write_report(self.run)

    def simcse(self, k: int) -> str:
        target = self.run.out / f"simcse-{k}"
        key = f"simcse.{k}"
        if not self.run.done(key):
            if distributed.is_main():  # a stage of minutes whose progress lines come every 30 s
                print(f"transenc: SimCSE warm-up of {self.model_names[k]} on the {len(self.pairs.sentences):,} "
                      "sentences", file=sys.stderr)
            seed = self._seed_for("simcse", k)
            encoder = BiEncoder.load(self.models[k], self.device, self.recipe.pooling, self.lengths[k].bi_export)
            cfg = FitConfig(batch_size=64, epochs=1, lr=3e-5, warmup=0.0, precision=self.train_precision,
                            max_length=self.lengths[k].bi)
            result = fit_simcse(encoder, self.cache(encoder, self.pairs), cfg, seed)  # every rank alike
            save_model(encoder, target)
            self.run.metrics[key] = {"loss_first": result.losses[0], "loss_last": result.losses[-1]}
            self.run.finish(key)
            distributed.barrier()
        return str(target)

    def teacher_labels(self) -> list[np.ndarray]:
        """Each co-teacher's cosines on the pairs, computed once (out/teacher-K.npy) and reused by every
        cycle; its dev/test figures go to metrics.json["teachers"]."""
        labels = []
        for k, (path, named) in enumerate(zip(self.teachers, self.config.teachers)):
            target, key = self.run.out / f"teacher-{k}.npy", f"teacher.{k}"
            if not self.run.done(key):
                print(f"co-teacher {k}: labeling with {named} ...", file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                teacher = BiEncoder.load(path, self.device)
                save_array(target, _checked_labels(self.score(teacher, self.pairs).astype(np.float32), "co-teacher labels"))
                seconds = round(time.perf_counter() - t0, 2)  # its cost: load and label, not the dev checks
                self.run.metrics.setdefault("teachers", []).append(
                    {"model": named, "seconds": seconds, **{split: self.scored.evaluate([teacher], split, [f"teacher-{k}"])
                                                          for split in ("dev", "test")}})
                self.run.finish(key)
                distributed.barrier()  # rank 0's file is there for every rank
            labels.append(np.load(target))
        return labels

    def label_mean(self, scores: list[np.ndarray], what: str) -> np.ndarray:
        """The mean of the trained models' labels and the co-teachers' (every teacher is one more member)."""
        return _checked_labels(np.mean(scores + self.teacher_scores, 0).astype(np.float32), what)

    def labelers(self, kind: str, cycle: int) -> list[tuple[object, str]]:
        """(encoder, lasting name) of the models that label cycle `cycle`'s pairs: bi-encoders from
        the cycle before (cycle 1: the start models), or this cycle's cross-encoders."""
        ks = range(len(self.models))
        if kind == "cross":
            return [(CrossEncoder.load(self.run.out / f"cycle{cycle}" / f"cross-{k}", self.device),
                     f"cycle{cycle}-cross-{k}") for k in ks]
        if cycle == 1:
            return [(self.bi_start(k), f"start-{k}") for k in ks]
        return [(self.bi_start(k, self.run.out / f"cycle{cycle - 1}" / f"bi-{k}"), f"cycle{cycle - 1}-bi-{k}") for k in ks]

    def bi_label(self, cycle: int, folder: Path) -> dict:
        labels = self.label_mean([self.score(e, self.pairs) for e, _ in self.labelers("bi", cycle)], "bi-encoder labels")
        save_array(folder / "labels_bi.npy", labels)
        return {"labels": _stats(labels)}

    def cross_label(self, cycle: int, folder: Path) -> dict:
        encoders, names = zip(*self.labelers("cross", cycle))
        labels = self.label_mean([self.score(e, self.pairs) for e in encoders], "cross-encoder labels")
        save_array(folder / "labels_cross.npy", labels)
        return {"labels": _stats(labels), **{split: self.scored.evaluate(list(encoders), split, list(names))
                                            for split in ("dev", "test")}}

    def cross_train(self, cycle: int, folder: Path) -> dict:
        labels = cross_targets(np.load(folder / "labels_bi.npy"), self.recipe.cross_targets)
        both = self.pairs.both_orders()

        def train_one(k, group):
            seed = self._seed_for("cross", cycle, k)  # before loading: the new head's init is seeded too
            return self._fit(fit_cross, self.cross_start(k), both, np.concatenate([labels, labels]),
                             replace(self.cross_cfg, max_length=self.lengths[k].cross), folder / f"cross-{k}", seed, group)

        return {"models": self.train_models(train_one)}

    def bi_train(self, cycle: int, folder: Path) -> dict:
        training_labels = self.cycle_labels(folder)
        labels = combine_targets(*training_labels, self.recipe.bi_targets)
        with_teacher = self.teachers and self.recipe.bi_with_teacher is not None
        cfg = self.recipe.bi_with_teacher if with_teacher else self.recipe.bi

        def train_one(k, group):
            seed = self._seed_for("bi", cycle, k)
            return self._fit(partial(fit_bi, loss=self.recipe.bi_loss), self.bi_start(k), self.pairs.pairs, labels,
                             replace(cfg, max_length=self.lengths[k].bi), folder / f"bi-{k}", seed, group)

        info = {"models": self.train_models(train_one)}
        encoders = [self.bi_start(k, folder / f"bi-{k}") for k in range(len(self.models))]
        names = [f"cycle{cycle}-bi-{k}" for k in range(len(self.models))]
        info |= {split: self.scored.evaluate(encoders, split, names) for split in ("dev", "test")}
        info["teacher_dev"] = self.teacher_dev(cycle, training_labels)
        return info

    def teacher_dev(self, cycle: int, training_labels: tuple[np.ndarray, np.ndarray]) -> dict | None:
        """What the bi-encoders were taught, scored on dev (dev_scores.taught), from the dev scores of
        the models that labeled the training pairs, kept from when they were evaluated.
        training_labels: the cycle's (cross, bi) labels of the training pairs (cycle_labels)."""
        if not self.scored.dev:
            return None
        fixed = [self.scored.scores(BiEncoder.load(t, self.device), "dev", f"teacher-{k}")
                 for k, t in enumerate(self.teachers)]  # in both label means, as in label_mean
        bi, cross = ([self.scored.scores(e, "dev", name) for e, name in self.labelers(kind, cycle)] + fixed
                     for kind in ("bi", "cross"))
        return taught(self.scored.dev, bi, cross, self.recipe.bi_targets, training_labels)

    @staticmethod
    def cycle_labels(folder: Path) -> tuple[np.ndarray, np.ndarray]:
        """A cycle's (cross-encoder, bi-encoder) labels of the training pairs."""
        return np.load(folder / "labels_cross.npy"), np.load(folder / "labels_bi.npy")

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
        cfg = replace(cfg, precision=self.train_precision)
        by_set = {name: [] for name in self.scored.dev}  # every dev set's score at every check
        started = time.time()

        def evaluate():  # each check's scores kept under its name: do no harm corrects for the choice
            result = self.scored.check(encoder, check_name(f"{target.parent.name}-{target.name}",
                                                           len(next(iter(by_set.values()))) + 1), group)
            for set_name, r in result["sets"].items():
                by_set[set_name].append(r["models"][0])
            return result["models"][0]

        steps = StepCheckpoint(target.with_name(f"{target.name}.steps.pt"), resume=self.config.resume, alongside=by_set)
        result = fit(encoder, self.cache(encoder, self.pairs), pairs, labels, cfg, seed,
                     evaluate if self.scored.dev else None, group=group, checkpoint=steps)
        save_model(encoder, target, group)
        if distributed.is_main(group):
            steps.remove()  # the model is saved: the stage no longer needs its steps
        return {"loss_first": result.losses[0], "loss_last": result.losses[-1], "steps": len(result.losses),
                "precision": result.precision, "resumed_after_step": result.resumed_after,
                "best_dev": result.best_dev, "best_step": result.best_step,
                "checks": [list(c) for c in result.checks], "checks_by_set": by_set,
                "loss_curve": loss_curve(result.losses),
                "started": round(started, 3), "ended": round(time.time(), 3)}  # wall clock, seconds since 1970
