"""Model-level workloads on STS-B (train+dev+test, from ../shared or TRANSENC_STS_DIR), shared by
test_bench_models.py and report_models.py: our packed encode/predict against sentence-transformers
on the same weights."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from transenc.models import BiEncoder, CrossEncoder, resolve_model
from transenc.packing import padding_efficiency
from transenc.pairset import PairSet, PairSetBuilder
from transenc.readers import read_pairs

REPO = Path(__file__).resolve().parents[1]


def sts_dir() -> Path:
    path = Path(os.environ.get("TRANSENC_STS_DIR", REPO.parent / "shared" / "data" / "stsbenchmark"))
    if not (path / "sts-train.csv").is_file():
        raise FileNotFoundError(f"STS-B not found in {path}; set TRANSENC_STS_DIR")
    return path


def mpnet_path() -> Path | None:
    """all-mpnet-base-v2 where scripts/get_mpnet.sh put it (or TRANSENC_MPNET_DIR); None elsewhere."""
    path = Path(os.environ.get("TRANSENC_MPNET_DIR", REPO / "models" / "all-mpnet-base-v2"))
    return path if (path / "config.json").is_file() else None


def sts_unique_pairs() -> PairSet:
    """The 8,567 unique (sentence1, sentence2) pairs of STS-B train+dev+test, labels dropped."""
    builder, seen = PairSetBuilder(), set()
    for split in ("train", "dev", "test"):
        ps, _ = read_pairs(sts_dir() / f"sts-{split}.csv")
        for i in range(len(ps)):
            pair = ps.pair_texts(i)
            if pair not in seen:
                seen.add(pair)
                builder.add(*pair)
    return builder.build()


def sts_cross_fit(steps: int, batch: int = 32):
    """A cross-encoder fit's inputs on STS-B: the unique pairs, all-MiniLM-L6-v2 (max length 64, a
    fresh head from seed 0) with its token cache, `steps` batches of both-order rows (the reference
    recipe's 32) and random soft labels."""
    pairs = sts_unique_pairs()
    torch.manual_seed(0)
    encoder = CrossEncoder.load(None, "cpu", max_length=64)
    cache = encoder.token_cache(pairs.sentences)
    rows = pairs.both_orders()[:batch * steps]
    labels = np.random.default_rng(1).uniform(0, 1, len(rows)).astype(np.float32)
    return pairs, encoder, cache, rows, labels


def cross_models(model=None):
    """Our CrossEncoder (default weights, seeded fresh head) and sentence-transformers' on the same dir."""
    from sentence_transformers import CrossEncoder as STCrossEncoder

    torch.manual_seed(0)
    ours = CrossEncoder.load(model, "cpu", max_length=128)
    folder = tempfile.mkdtemp(prefix="transenc-bench-cross-")
    ours.save(folder)
    return ours, STCrossEncoder(folder, device="cpu", max_length=128)


def bi_models(model=None):
    from sentence_transformers import SentenceTransformer

    return BiEncoder.load(model, "cpu"), SentenceTransformer(str(resolve_model(model)), device="cpu")


def ours_predict(model: CrossEncoder, pairs: PairSet, batch_size: int, precision: str = "fp32") -> np.ndarray:
    return model.predict(pairs.sentences, pairs.pairs, batch_size=batch_size, precision=precision, show_progress=False)


def st_predict(model, pairs: PairSet, batch_size: int = 32) -> np.ndarray:
    texts = [pairs.pair_texts(i) for i in range(len(pairs))]
    return np.asarray(model.predict(texts, batch_size=batch_size, show_progress_bar=False))


def ours_encode(model: BiEncoder, sentences: list[str], batch_size: int, precision: str = "fp32") -> torch.Tensor:
    return model.encode(sentences, batch_size=batch_size, precision=precision, show_progress=False)


def st_encode(model, sentences: list[str], batch_size: int = 32) -> torch.Tensor:
    return model.encode(sentences, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False)


def cross_padding(model: CrossEncoder, pairs: PairSet, batch_size: int) -> float:
    cache = model.token_cache(pairs.sentences)
    return padding_efficiency(model.batches(cache, pairs.pairs, batch_size))


def bi_padding(model: BiEncoder, sentences: list[str], batch_size: int) -> float:
    cache = model.token_cache(sentences)
    return padding_efficiency(model.batches(cache, np.arange(len(sentences), dtype=np.int32), batch_size))


def training_batches(n: int, batch_size: int, steps: int, seed: int = 0) -> list[np.ndarray]:
    """`steps` shuffled index batches over n rows, the same for every contender."""
    order = np.random.default_rng(seed).permutation(n)
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(steps)]


def train_steps(encoder, step_loss, batches: list[np.ndarray], targets: np.ndarray) -> float:
    """Forward, backward, clip and AdamW step per batch; `step_loss(idx, targets)`. Returns seconds/step."""
    import time

    model = encoder.model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-9)  # near-zero lr: every contender sees the same weights
    t = torch.from_numpy(targets.astype(np.float32))
    start = time.perf_counter()
    for idx in batches:
        loss = step_loss(idx, t[idx])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / len(batches)


def two_layer_minilm() -> Path:
    """all-MiniLM-L6-v2 cut to its first 2 layers (real weights), saved with its tokenizer: a
    model whose training step is small enough that the loop's overhead shows."""
    from transformers import AutoModel, AutoTokenizer

    source = resolve_model(None)
    folder = Path(tempfile.mkdtemp(prefix="transenc-bench-2layer-"))
    AutoModel.from_pretrained(str(source), num_hidden_layers=2).save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(source)).save_pretrained(str(folder))
    return folder


def prepared_fit(kind: str, model: Path, pairs: PairSet, steps: int, policy, device: str = "cpu"):
    """A whole fit (fit_cross / fit_bi, no dev) over the first `steps` batches of the default
    recipe's shape (cross 32 rows (both orders) at max length 64, bi 128 pairs at 32), loaded and
    ready: returns the call that runs it."""
    from transenc import fit

    torch.manual_seed(0)
    if kind == "cross":
        encoder, rows, batch, run = CrossEncoder.load(model, device, 64), pairs.both_orders(), 32, fit.fit_cross
    else:
        encoder, rows, batch, run = BiEncoder.load(model, device, None, 32), pairs.pairs, 128, fit.fit_bi
    rows = rows[np.random.default_rng(0).permutation(len(rows))[:steps * batch]]
    labels = np.random.default_rng(1).uniform(0, 1, len(rows)).astype(np.float32)
    cache = encoder.token_cache(pairs.sentences)
    cfg = fit.FitConfig(batch_size=batch, epochs=1, lr=2e-5, warmup=0.1)
    return lambda: run(encoder, cache, rows, labels, cfg, 0, None, policy)  # ends with a loss check


def fit_steps_per_second(kind: str, model: Path, pairs: PairSet, steps: int, policy, device: str = "cpu") -> float:
    """Steps/s of prepared_fit's fit (loading and tokenizing not counted)."""
    import time

    fit_call = prepared_fit(kind, model, pairs, steps, policy, device)
    if device != "cpu":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fit_call()
    assert len(result.losses) == steps
    return steps / (time.perf_counter() - start)


def sts_test_rows(pairs: PairSet) -> tuple[np.ndarray, np.ndarray]:
    """Where STS-B test's 1,379 pairs sit among sts_unique_pairs' rows, and their gold scores."""
    row = {pairs.pair_texts(i): i for i in range(len(pairs))}
    test, _ = read_pairs(sts_dir() / "sts-test.csv")
    return np.array([row[test.pair_texts(i)] for i in range(len(test))]), test.labels


def trained_cross_encoder(steps: int = 600) -> Path:
    """A MiniLM cross-encoder trained the Trans-Encoder way: all-MiniLM-L6-v2's cosines on STS-B
    train's pairs as labels, `steps` batches of 32 (both orders; ~7 min on a 2-core CPU), saved once
    under .benchmarks/ and reused. A model whose scores mean something, for agreement figures
    (a fresh head's scores all sit near 0.5)."""
    from transenc import fit, ops

    folder = REPO / ".benchmarks" / f"minilm-cross-{steps}"
    if (folder / "config.json").is_file():
        return folder
    train, _ = read_pairs(sts_dir() / "sts-train.csv")
    embeddings = BiEncoder.load(None, "cpu").encode(train.sentences, precision="fp32", show_progress=False)
    labels = ops.pair_cosine_indexed(embeddings, train.pairs).numpy().clip(0, 1)
    torch.manual_seed(0)
    encoder = CrossEncoder.load(None, "cpu", max_length=64)
    rows = train.both_orders()
    cfg = fit.FitConfig(batch_size=32, epochs=steps * 32 / len(rows), lr=2e-5, warmup=0.1)
    fit.fit_cross(encoder, encoder.token_cache(train.sentences), rows, np.concatenate([labels, labels]), cfg, 0)
    encoder.max_length = 128
    encoder.save(folder)
    return folder
