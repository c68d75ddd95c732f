"""GPU: steps/s of whole cross- and bi-encoder fits (real all-MiniLM-L6-v2 from .device-data, the
default recipe's batch shapes, bf16 autocast), the loop as it was against the CUDA step policy,
and the host syncs per step of the CUDA policy counted by torch.cuda.set_sync_debug_mode.

    python bench/gpu_steps.py --model .device-data/minilm-fp32 --pairs .device-data/stsb_unlabeled.tsv
"""
from __future__ import annotations

import argparse
import collections
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import workloads as w  # noqa: E402
from transenc import fit  # noqa: E402
from transenc.readers import read_pairs  # noqa: E402

# before: length-sorted sub-batches (the CPU cut), the loss read back every step, per-tensor AdamW
LOOPS = {"before": replace(fit.CPU_POLICY, optimizer="plain", check_every=1), "cuda policy": fit.GPU_POLICY}
STEPS = {"cross": 120, "bi": 30}  # the old loop runs ~4 cross steps/s on an H200: keep the stage short


def syncs_per_step(kind: str, model: str, pairs, steps: int) -> tuple[float, dict]:
    """Synchronizing calls per step of a CUDA-policy fit, loading excluded (its parameter copies
    each count), the fit's one closing loss check included; and where they came from."""
    fit_call = w.prepared_fit(kind, model, pairs, steps, fit.GPU_POLICY, "cuda")
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fit_call()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [c for c in caught if "called a synchronizing" in str(c.message)]
    places = collections.Counter(f"{Path(c.filename).name}:{c.lineno}" for c in syncs)
    return len(syncs) / steps, dict(places)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--pairs", required=True)
    args = ap.parse_args()
    pairs, _ = read_pairs(args.pairs)
    print(f"| fit | steps | {' | '.join(f'{loop} steps/s' for loop in LOOPS)} | speed-up | syncs per step (cuda policy) |")
    print("|---|---:|" + "---:|" * len(LOOPS) + "---:|---:|")
    for kind, steps in STEPS.items():
        w.fit_steps_per_second(kind, args.model, pairs, 10, fit.GPU_POLICY, "cuda")  # warm-up, untimed
        rates = {loop: w.fit_steps_per_second(kind, args.model, pairs, steps, policy, "cuda")
                 for loop, policy in LOOPS.items()}
        syncs, places = syncs_per_step(kind, args.model, pairs, 30)
        print(f"| {kind} | {steps} | {' | '.join(f'{r:.1f}' for r in rates.values())} | "
              f"{rates['cuda policy'] / rates['before']:.2f}x | {syncs:.2f} ({places}) |", flush=True)


if __name__ == "__main__":
    main()
