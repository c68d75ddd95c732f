"""Anchoring to the start model by weight averaging (WiSE-FT): each trained bi-encoder's weights
mixed with the start's, (1 - a) * start + a * trained for a in 0, 0.25, 0.5, 0.75, 1, scored on
dev sets in fp32 by `transenc eval` (issue 33's domain study, bench/results/mrpc-cpu.md).

  python scripts/weight_average.py TRAINED_FOLDER DEV_FILE [DEV_FILE ...]
"""
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from safetensors.torch import load_file, save_file

from transenc.models import resolve_model


def dev_scores(model: Path, dev_files: list[str]) -> list[str]:
    """`transenc eval`'s figure for each dev file, as it prints it."""
    figures = []
    for path in dev_files:
        done = subprocess.run([sys.executable, "-m", "transenc", "eval", "--data", path, "--model", str(model),
                               "--precision", "fp32", "--device", "cpu"], capture_output=True, text=True, check=True)
        figures.append(done.stdout.strip().splitlines()[-1].split("\t")[-1])
    return figures


def main(trained: Path, dev_files: list[str]) -> None:
    start = resolve_model(None)
    start_weights, trained_weights = load_file(start / "model.safetensors"), load_file(trained / "model.safetensors")
    with tempfile.TemporaryDirectory() as tmp:
        for a in (0.0, 0.25, 0.5, 0.75, 1.0):
            mixed = Path(tmp) / f"a{a}"
            shutil.copytree(trained, mixed)  # the trained model's config, tokenizer and length
            save_file({k: ((1 - a) * start_weights[k].double() + a * w.double()).to(w.dtype)
                       for k, w in trained_weights.items()}, mixed / "model.safetensors")
            print(f"{trained}\ta={a}\t" + "\t".join(dev_scores(mixed, dev_files)), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
