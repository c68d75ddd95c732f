"""Where a data-parallel cross-encoder step's time goes, per rank: compute (forward and backward
of the rank's share), wait (for the slowest rank, read off a barrier), reduce (DataParallel.reduce:
gradients and loss summed), clip, AdamW. all-MiniLM-L6-v2, STS-B pairs both orders, batch 32,
max length 64, fp32, the CPU step policy; mean ms over steps 5-20 (the first 4 warm up).

    OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 bench/dist_step_phases.py
    OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 1 bench/dist_step_phases.py   # one process

Run it with nothing else on the machine: every phase shares the same cores.
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import model_workloads as w  # noqa: E402
from transenc import distributed  # noqa: E402
from transenc.fit import CPU_POLICY, FitConfig, _optimizer, cross_step_loss  # noqa: E402

STEPS, WARM, BATCH = 20, 4, 32


def main() -> None:
    distributed.setup(torch.device("cpu"))
    group = distributed.world()
    _, encoder, cache, rows, labels = w.sts_cross_fit(STEPS, BATCH)
    targets = torch.from_numpy(labels)
    parallel = distributed.DataParallel(encoder.model, group) if distributed.active(group) else None
    opt, schedule = _optimizer(encoder.model, FitConfig(batch_size=BATCH, epochs=1, lr=2e-5, warmup=0.1), STEPS,
                               CPU_POLICY.optimizer)
    encoder.model.train()
    phases = dict.fromkeys(("compute", "wait", "reduce", "clip", "adamw"), 0.0)
    for step in range(STEPS):
        idx = np.arange(step * BATCH, (step + 1) * BATCH)
        mine, weight = parallel.share(idx) if parallel else (idx, 1.0)
        marks = [time.perf_counter()]
        loss = cross_step_loss(encoder, cache, rows[mine], targets[mine], CPU_POLICY) * weight
        loss.backward()
        marks.append(time.perf_counter())
        distributed.barrier(group)
        marks.append(time.perf_counter())
        if parallel:
            parallel.reduce(loss)
        marks.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(encoder.model.parameters(), 1.0)
        marks.append(time.perf_counter())
        opt.step()
        schedule.step()
        opt.zero_grad(set_to_none=True)
        marks.append(time.perf_counter())
        if step >= WARM:
            for name, start, end in zip(phases, marks, marks[1:]):
                phases[name] += (end - start) * 1000 / (STEPS - WARM)
    print(f"rank {distributed.rank()} of {distributed.size()}: ms per step "
          + ", ".join(f"{name} {ms:.0f}" for name, ms in phases.items()) + f", step {sum(phases.values()):.0f}",
          flush=True)
    distributed.teardown()


if __name__ == "__main__":
    main()
