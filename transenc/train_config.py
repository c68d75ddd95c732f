"""What a `transenc train` run is asked to do: one TrainConfig, built and checked in one place for
the CLI (from its flags) and the Python API (from keywords)."""
from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from transenc.errors import TransencError, is_whole, require_count
from transenc.pairset import PairSet
from transenc.precision import DEVICE_HELP, PRECISIONS, check_precision
from transenc.recipes import DEFAULT_RECIPE, RECIPES

SHORTEST_LENGTH = 8  # tokens: below this a pair row is little more than its special tokens


def _as_list(name: str, value) -> list[str]:
    """A keyword's file or model names, one or a list, as str; anything else is refused by name (a
    loaded model, a PairSet as a dev set: these take names)."""
    if value is None:
        return []
    values = [value] if isinstance(value, (str, Path)) else value
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, (str, Path)) for v in values):
        raise TransencError(f"{name}: expected a path or name, or a list of them, got {_kind(value)}")
    return [str(v) for v in values]


def _kind(value) -> str:
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} holding " + ", ".join(sorted({type(v).__name__ for v in value}))
    return type(value).__name__


def _whole(value) -> int | None:
    """A whole number written as text or given as an int, else None."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return int(value) if is_whole(value) else None


def parse_max_length(text) -> tuple[int, int] | None:
    """`--max-length N` (both encoders) or `BI,CROSS` -> (bi, cross) tokens; None stays None."""
    if text is None:
        return None
    parts = text.split(",") if isinstance(text, str) else list(text) if isinstance(text, (list, tuple)) else [text]
    lengths = [_whole(p) for p in parts]  # 64.7 or True is no length: never cut to one
    if len(lengths) not in (1, 2) or None in lengths:
        raise TransencError(f"--max-length {text}: expected a number of tokens, or BI,CROSS (e.g. 128,256)")
    if min(lengths) < SHORTEST_LENGTH:
        raise TransencError(f"--max-length {text}: at least {SHORTEST_LENGTH} tokens")
    return (lengths[0], lengths[-1])


@dataclass
class TrainConfig:
    out: str | Path
    pairs: str | Path | PairSet | None = None  # None: the bundled demo corpus (with its dev set)
    models: list[str] = field(default_factory=list)  # empty: the default model
    teachers: list[str] = field(default_factory=list)
    dev: list[str] = field(default_factory=list)  # [NAME=]FILE specs
    test: list[str] = field(default_factory=list)
    recipe: str = DEFAULT_RECIPE
    cycles: int = 3
    patience: int = 1
    seed: int = 2021
    device: str = "auto"
    precision: str = "auto"
    max_pairs: int | None = None
    max_length: tuple[int, int] | None = None  # (bi, cross) tokens; None: from the data
    simcse: bool = False
    resume: bool = False

    def __post_init__(self):
        """Lists from single values, then every check that needs no model or file."""
        for name in ("models", "teachers", "dev", "test"):
            setattr(self, name, _as_list(name, getattr(self, name)))
        self.max_length = parse_max_length(self.max_length)
        if not isinstance(self.out, (str, os.PathLike)):
            raise TransencError(f"out must be the run's folder, a path, got {type(self.out).__name__}")
        if str(self.out) == "":  # an unset shell variable, say: Path("") would be the current folder
            raise TransencError("--out is empty; name the run's folder")
        for name in ("simcse", "resume"):  # "no" would be true
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise TransencError(f"{name} must be True or False, got {value!r}")
            setattr(self, name, bool(value))  # recorded as JSON
        if isinstance(self.pairs, Path):
            self.pairs = str(self.pairs)  # recorded in state.json as the CLI gives it
        if not is_whole(self.seed):
            raise TransencError(f"--seed must be a whole number, got {self.seed!r}")
        self.cycles = require_count("--cycles", self.cycles)
        self.max_pairs = require_count("--max-pairs", self.max_pairs)
        if not is_whole(self.patience) or self.patience < 0:
            raise TransencError(f"--patience must be 0 (run every cycle) or more, got {self.patience!r}")
        self.seed, self.patience = int(self.seed), int(self.patience)  # numpy's ints too, recorded as JSON
        if self.recipe not in RECIPES:
            raise TransencError(f"--recipe must be one of {sorted(RECIPES)}, got {self.recipe!r}")
        check_precision(self.precision, self.device)

    def record(self) -> dict:
        """The settings a resumed run must share (state.json): where the run lives and what runs it
        are none (a run folder can be moved, or resumed on other devices)."""
        return {f.name: getattr(self, f.name) if f.name != "max_length" or self.max_length is None
                else list(self.max_length) for f in fields(self) if f.name not in ("out", "resume", "device", "pairs")}

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "TrainConfig":
        return cls(out=args.out, pairs=args.pairs, models=args.model, teachers=args.teacher, dev=args.dev,
                   test=args.test, recipe=args.recipe, cycles=args.cycles, patience=args.patience, seed=args.seed,
                   device=args.device, precision=args.precision, max_pairs=args.max_pairs,
                   max_length=args.max_length, simcse=args.simcse, resume=args.resume)


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pairs", default=None,
                   help="unlabeled pairs file, - for standard input (default: the bundled demo corpus)")
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
                   help="stage settings: transenc (chosen on dev, bench/results/recipes.md), transenc-cosent (the "
                        "same, the bi-encoder learning its targets' order: CoSENT) or reference (amzn/trans-encoder's, "
                        f"at its 32/64-token lengths) (default: {DEFAULT_RECIPE})")
    p.add_argument("--max-length", default=None, metavar="N|BI,CROSS",
                   help="training lengths in tokens, for both encoders or bi,cross (default: the smallest multiple "
                        "of 16 that keeps 99%% of the sentences, and of the pairs, whole; at most the start model's "
                        "own length, its max_seq_length); at least 8, at most what the model reads (512 for MiniLM); "
                        "exported models keep the start model's length, or this one")
    p.add_argument("--simcse", action="store_true", help="SimCSE warm-up first (for a raw language model)")
    p.add_argument("--seed", type=int, default=2021, help="batch order, dropout and head initialisation (default 2021)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="labeling and dev checks: as `transenc label --precision` (auto: bf16 on a GPU; on a CPU "
                        "bf16 with AMX, else int8 with VNNI or AVX2, else fp32); training steps "
                        "(never int8): auto is bf16 autocast on a GPU and on a CPU with AMX or AVX512-BF16, else fp32")
    p.add_argument("--resume", action="store_true", help="continue a killed run from its last finished stage (a fit: from its last save, every 10 min)")
    p.add_argument("--max-pairs", type=int, default=None, help="use only the first N pairs")
