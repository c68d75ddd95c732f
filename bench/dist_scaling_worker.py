"""One rank of bench/test_bench_scaling.py, launched by torchrun: times cross-encoder fit steps and
cross-encoder labeling of STS-B pairs, the work shared over the ranks, and (rank 0) writes the rates."""
import json
import sys
import time

import torch

import workloads as w
from transenc import distributed
from transenc.fit import FitConfig, fit_cross
from transenc.labeling import cross_scores

if __name__ == "__main__":
    steps, label_pairs, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    distributed.setup(torch.device("cpu"))
    group = distributed.world()
    pairs, encoder, cache, rows, labels = w.sts_cross_fit(steps)
    distributed.barrier()
    t0 = time.perf_counter()
    fit_cross(encoder, cache, rows, labels, FitConfig(batch_size=32, epochs=1, lr=2e-5, warmup=0.1), 5, group=group)
    fit_s = time.perf_counter() - t0
    head = pairs.head(label_pairs)
    distributed.barrier()
    t0 = time.perf_counter()
    cross_scores(encoder, head, batch_size=64, group=group, show_progress=False)
    label_s = time.perf_counter() - t0
    if distributed.is_main():
        with open(out, "w") as f:
            json.dump({"fit_steps_per_s": steps / fit_s, "label_pairs_per_s": label_pairs / label_s}, f)
    distributed.teardown()
