"""Re-run only cycle 1's bi-encoder stage of a finished `transenc train` run, on that run's own
labels, with Recipe fields changed: a recipe variant of the bi-encoder measured in minutes instead
of a whole cycle, through the same Trainer (issue 33's domain study, bench/results/mrpc-cpu.md).

  python scripts/bi_stage_variant.py SOURCE_RUN OUT FIELD=VALUE [...]     (values: Python literals)
  python scripts/bi_stage_variant.py runs/mrpc-heldout runs/var-cosent bi_loss='"cosent"'

OUT gets SOURCE_RUN's cycle-1 labels and cross-encoder and its state up to the bi-encoder stage
(one cycle, fp32 labeling and dev checks as the source runs had), then `train --resume` runs the
stage with the changed recipe.
"""
import ast
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from transenc import cli, training


def prepare(source: Path, out: Path) -> None:
    (out / "cycle1").mkdir(parents=True)
    for name in ("labels_bi.npy", "labels_cross.npy"):
        shutil.copy(source / "cycle1" / name, out / "cycle1" / name)
    shutil.copytree(source / "cycle1" / "cross-0", out / "cycle1" / "cross-0")
    state = json.loads((source / "state.json").read_text())
    state["done"] = [s for s in state["done"]
                     if s.startswith("teacher.") or s in ("cycle1.bi_label", "cycle1.cross_train", "cycle1.cross_label")]
    state["config"] |= {"cycles": 1, "precision": "fp32"}
    cycle1 = state["metrics"]["cycles"][0]
    cycle1["stages"].pop("bi_train")
    state["metrics"]["cycles"] = [cycle1]
    (out / "state.json").write_text(json.dumps(state))
    for teacher in source.glob("teacher-*.npy"):
        shutil.copy(teacher, out / teacher.name)


def main(source: Path, out: Path, changes: dict[str, str]) -> int:
    if not out.exists():
        prepare(source, out)
    config = json.loads((out / "state.json").read_text())["config"]
    recipe = config["recipe"]
    training.RECIPES[recipe] = replace(training.RECIPES[recipe], **{k: ast.literal_eval(v) for k, v in changes.items()})
    print(f"{out}: recipe {recipe} with {changes}", flush=True)
    args = ["train", "--pairs", config["pairs"], "--out", str(out), "--cycles", "1", "--resume", "--seed", str(config["seed"]),
            "--precision", config["precision"], "--patience", str(config["patience"])]
    args += [a for spec in config["dev"] for a in ("--dev", spec)] + [a for spec in config["test"] for a in ("--test", spec)]
    args += [a for t in config["teachers"] for a in ("--teacher", t)]
    return cli.main(args)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), dict(a.split("=", 1) for a in sys.argv[3:])))
