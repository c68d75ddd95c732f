"""The CPU engine's benchmark workloads and their anchors, shared by the pytest-benchmark file
and report_cpu_engine.py so that both measure exactly the same calls."""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from transenc import ops

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


def topk_semantic_search(queries: torch.Tensor, corpus: torch.Tensor, k: int = K):
    from sentence_transformers import util

    return util.semantic_search(queries, corpus, top_k=k)


def semantic_search_ids(hits) -> np.ndarray:
    return np.array([[h["corpus_id"] for h in row] for row in hits], dtype=np.int64)


def topk_torch(queries: torch.Tensor, corpus: torch.Tensor, k: int = K, chunk: int = 4096) -> np.ndarray:
    """torch topk(q @ c.T) in 4,096-query chunks, as in the DESIGN anchors."""
    out = [torch.topk(queries[i : i + chunk] @ corpus.T, k, dim=1).indices for i in range(0, len(queries), chunk)]
    return torch.cat(out).numpy()


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
