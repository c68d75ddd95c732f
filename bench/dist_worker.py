"""One rank of a data-parallel CPU benchmark, launched by torchrun: all-MiniLM-L6-v2's cross-encoder
on STS-B pairs (both orders, batch 32, max length 64, fp32, transenc's own fit_cross).

rates STEPS LABEL_PAIRS OUT (bench/test_bench_scaling.py): fit steps/s and labeling pairs/s, the
work shared over the ranks; rank 0 writes them to OUT as JSON.

phases: where a step's time goes, per rank: compute (forward and backward of the rank's share),
wait (for the slowest rank, read off a barrier), reduce (DataParallel.reduce: gradients and loss
summed), clip, AdamW; mean ms over steps 5-20 (the first 4 warm up). Run it on an idle machine:

    OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 bench/dist_worker.py phases   # or 1
"""
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import workloads as w  # noqa: E402
from transenc import distributed  # noqa: E402
from transenc.fit import FitConfig, fit_cross  # noqa: E402
from transenc.labeling import cross_scores  # noqa: E402

FIT = FitConfig(batch_size=32, epochs=1, lr=2e-5, warmup=0.1)
PHASE_STEPS, WARM = 20, 4
PHASES = ("compute", "wait", "reduce", "clip", "adamw")


class StepClock:
    """Timers around the fit's own calls. A step runs compute, [wait, reduce,] clip, AdamW in that
    order; compute is what is left of the step before clip once wait and reduce are taken out."""

    def __init__(self):
        self.ms, self.current = dict.fromkeys(PHASES, 0.0), dict.fromkeys(PHASES, 0.0)
        self.step, self.step_start = 0, time.perf_counter()

    def wrap(self, owner, name, phase, before=None):
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            if phase == "clip":  # the step's compute ends here
                self.current["compute"] = self._since(self.step_start) - self.current["wait"] - self.current["reduce"]
            if before:
                start = time.perf_counter()
                before()
                self.current["wait"] += self._since(start)
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.current[phase] += self._since(start)
                if phase == "adamw":
                    self._end_step()

        setattr(owner, name, timed)

    def _since(self, start: float) -> float:
        return (time.perf_counter() - start) * 1000

    def _end_step(self) -> None:
        self.step += 1
        if self.step > WARM:
            for name, value in self.current.items():
                self.ms[name] += value / (PHASE_STEPS - WARM)
        self.current = dict.fromkeys(PHASES, 0.0)
        self.step_start = time.perf_counter()


def rates(group, steps: int, label_pairs: int, out: str) -> None:
    pairs, encoder, cache, rows, labels = w.sts_cross_fit(steps)
    distributed.barrier()
    t0 = time.perf_counter()
    fit_cross(encoder, cache, rows, labels, FIT, 5, group=group)
    fit_s = time.perf_counter() - t0
    distributed.barrier()
    t0 = time.perf_counter()
    cross_scores(encoder, pairs.head(label_pairs), batch_size=64, group=group, show_progress=False)
    label_s = time.perf_counter() - t0
    if distributed.is_main():
        Path(out).write_text(json.dumps({"fit_steps_per_s": steps / fit_s, "label_pairs_per_s": label_pairs / label_s}))


def phases(group) -> None:
    _, encoder, cache, rows, labels = w.sts_cross_fit(PHASE_STEPS)
    clock = StepClock()
    clock.wrap(distributed.DataParallel, "reduce", "reduce", before=lambda: distributed.barrier(group))
    clock.wrap(torch.nn.utils, "clip_grad_norm_", "clip")
    clock.wrap(torch.optim.AdamW, "step", "adamw")
    clock.step_start = time.perf_counter()
    fit_cross(encoder, cache, rows, labels, FIT, 5, group=group)
    print(f"rank {distributed.rank()} of {distributed.size()}: ms per step "
          + ", ".join(f"{name} {ms:.0f}" for name, ms in clock.ms.items()) + f", step {sum(clock.ms.values()):.0f}",
          flush=True)


if __name__ == "__main__":
    distributed.setup(torch.device("cpu"))
    if sys.argv[1] == "rates":
        rates(distributed.world(), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        phases(distributed.world())
    distributed.teardown()
