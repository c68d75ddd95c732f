"""One rank of tests/test_distributed.py's labeling check, launched by torchrun: labels a pairs
file with the group sharing the work, saves what it got and how many rows it computed itself."""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from transenc import distributed
from transenc.labeling import bi_scores, cross_scores
from transenc.models import BiEncoder, CrossEncoder
from transenc.readers import read_pairs


def counted(encoder, method):
    """Count the rows this rank's forward passes compute."""
    real, seen = getattr(encoder, method), [0]

    def forward(batch):
        seen[0] += len(batch.rows)
        return real(batch)

    setattr(encoder, method, forward)
    return seen


def main(bi_model, cross_model, pairs_path, out):
    distributed.setup(torch.device("cpu"))
    rank, out = distributed.rank(), Path(out)
    pairs, _ = read_pairs(pairs_path)
    bi, cross = BiEncoder.load(bi_model, "cpu"), CrossEncoder.load(cross_model, "cpu")
    seen = {"bi": counted(bi, "embed"), "cross": counted(cross, "logits")}
    np.save(out / f"bi-{rank}.npy", bi_scores(bi, pairs, batch_size=2, group=distributed.world()))
    np.save(out / f"cross-{rank}.npy", cross_scores(cross, pairs, batch_size=2, group=distributed.world()))
    (out / f"rows-{rank}.json").write_text(json.dumps({k: v[0] for k, v in seen.items()}))
    distributed.teardown()
    distributed.exit_now(0)  # see exit_now: gloo can abort the interpreter's own exit


if __name__ == "__main__":
    main(*sys.argv[1:])
