"""Re-run a finished `transenc train` run from one of its stages on, with Recipe fields changed:
by default only cycle 1's bi-encoder stage, on that run's own labels, so a recipe variant of the
bi-encoder is measured in minutes instead of a whole cycle, through the same Trainer (issue 33's
domain study, bench/results/mrpc-cpu.md).

  python scripts/bi_stage_variant.py SOURCE_RUN OUT [--from cycleN.STAGE] FIELD=VALUE [...]   (values: Python literals)
  python scripts/bi_stage_variant.py runs/mrpc-heldout runs/var-cosent bi_loss='"cosent"'
  python scripts/bi_stage_variant.py runs/mrpc-heldout-teacher-cosent runs/var-c2-mse --from cycle2.bi_label bi_loss='"mse"'

OUT gets SOURCE_RUN's files and state up to that stage (the run then ends with that stage's cycle,
fp32 labeling and dev checks as the source runs had), then the run resumes (transenc.api.train) with the
changed recipe. Every stage reseeds from (seed, cycle, stage, model), so the stages re-run before the
changed one repeat the source's.
"""
import argparse
import ast
import json
import re
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from transenc import api, training
from transenc.errors import TransencError
from transenc.run_folder import STAGES


def prepare(source: Path, out: Path, start: str) -> None:
    """OUT as SOURCE was before stage `start` ("cycleN.STAGE"), ending with cycle N. Not copied: the
    dev checks' kept scores (out/scores), so do no harm corrects by Bonferroni."""
    match = re.fullmatch(r"cycle(\d+)\.(\w+)", start)
    if not match or match[2] not in STAGES:
        raise SystemExit(f"--from takes cycleN.STAGE, STAGE one of {', '.join(STAGES)}; got {start!r}")
    cycle, stage = int(match[1]), match[2]
    state = json.loads((source / "state.json").read_text())
    keep = state["done"][:state["done"].index(start)]
    out.mkdir(parents=True)
    for done in range(1, cycle + 1):  # the kept cycles' files: labels and models
        shutil.copytree(source / f"cycle{done}", out / f"cycle{done}")
    rerun = STAGES[STAGES.index(stage):]
    for name, prefix in (("cross_train", "cross-"), ("bi_train", "bi-")):  # the re-run stages' models go
        if name in rerun:
            for model in (out / f"cycle{cycle}").glob(f"{prefix}*"):
                shutil.rmtree(model) if model.is_dir() else model.unlink()
    for teacher in source.glob("teacher-*.npy"):
        shutil.copy(teacher, out / teacher.name)
    state["done"] = keep
    state["config"] |= {"cycles": cycle, "precision": "fp32"}
    cycles = state["metrics"]["cycles"][:cycle]
    for name in rerun:
        cycles[-1]["stages"].pop(name, None)
    state["metrics"] = {k: v for k, v in state["metrics"].items() if k not in ("stopped", "best_cycle", "exported")}
    state["metrics"]["cycles"] = cycles
    (out / "state.json").write_text(json.dumps(state))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, help="a finished run folder")
    p.add_argument("out", type=Path, help="the variant's run folder (prepared once, then resumed)")
    p.add_argument("changes", nargs="*", metavar="FIELD=VALUE", help="Recipe fields, values as Python literals")
    p.add_argument("--from", dest="start", default="cycle1.bi_train", help="the first stage re-run (cycleN.STAGE)")
    args = p.parse_args()
    if not args.out.exists():
        prepare(args.source, args.out, args.start)
    config = json.loads((args.out / "state.json").read_text())["config"]
    changes = dict(c.split("=", 1) for c in args.changes)
    recipe = config["recipe"]
    training.RECIPES[recipe] = replace(training.RECIPES[recipe], **{k: ast.literal_eval(v) for k, v in changes.items()})
    print(f"{args.out}: recipe {recipe} with {changes} from {args.start}", flush=True)
    try:  # the run's recorded settings as they are, so --resume finds them the same
        api.train(out=args.out, resume=True, **config)
    except TransencError as e:
        print(f"transenc: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
