"""One rank of tests/test_distributed.py's data-parallel fit check, launched by torchrun: trains a
cross-encoder and a bi-encoder with the group, dev checks included, and saves the final weights."""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from transenc import distributed
from transenc.fit import FitConfig, fit_bi, fit_cross
from transenc.labeling import score
from transenc.models import BiEncoder, CrossEncoder
from transenc.readers import read_pairs


def main(model, pairs_path, out):
    distributed.setup(torch.device("cpu"))
    rank, out, group = distributed.rank(), Path(out), distributed.world()
    pairs, _ = read_pairs(pairs_path)
    labels = np.random.default_rng(0).uniform(0, 1, len(pairs)).astype(np.float32)
    dev_gold = np.random.default_rng(1).uniform(0, 1, len(pairs))
    # batch sizes leave a 1-row last batch: one rank's share of it is empty
    for kind, fit, batch, rows, targets in (("cross", fit_cross, 9, pairs.both_orders(), np.concatenate([labels, labels])),
                                             ("bi", fit_bi, 11, pairs.pairs, labels)):
        assert len(rows) % batch == 1
        torch.manual_seed(11)  # the cross-encoder's fresh head
        encoder = CrossEncoder.load(model, "cpu", 16) if kind == "cross" else BiEncoder.load(model, "cpu", "mean", 12)
        # A smooth dev figure: the ranks' summed gradients round apart from one process's by ~1e-8, and
        # a rank correlation of near-tied scores can flip on that and keep another check's weights.
        evaluate = lambda: -100 * float(np.mean((score(encoder, pairs, group=group) - dev_gold) ** 2))  # noqa: E731
        cache = encoder.token_cache(pairs.sentences)
        # fp32 steps: a rank's share rounds differently from the whole batch in bf16 (auto on some CPUs)
        result = fit(encoder, cache, rows, targets, FitConfig(batch_size=batch, epochs=2, lr=1e-3, warmup=0.1,
                                                              eval_every=3, precision="fp32"), 5, evaluate, group=group)
        torch.save(encoder.model.state_dict(), out / f"{kind}-{rank}.pt")
        (out / f"{kind}-{rank}.json").write_text(json.dumps({"losses": result.losses, "best_step": result.best_step,
                                                                 "checks": result.checks}))
    distributed.teardown()
    distributed.exit_now(0)  # see exit_now: gloo can abort the interpreter's own exit


if __name__ == "__main__":
    main(*sys.argv[1:])
